"""The reminders plugin's faces: ``crmkit reminders ...`` (one-line errors) and the REST
routes under /plugins/reminders (problem+json, the public calendar feed, schemathesis)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import crmkit_reminders
import pytest
from api_support import Api, assert_problem, open_api
from openapi_support import PLUGIN_EXAMPLES, assert_conforms, operations
from schemathesis import GenerationMode

import crmkit
from crmkit.testing import CommandLine, command_line_for

BASE = "/plugins/reminders"


def soon() -> str:
    shanghai = dt.timezone(dt.timedelta(hours=8))
    return (crmkit.utcnow() + dt.timedelta(hours=2)).astimezone(shanghai).strftime("%Y-%m-%d %H:%M")


def reminders_crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    crm = make_crm(plugins={"reminders": crmkit_reminders})
    crm.pipelines.create("Sales")
    return crm


# -- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli(
    make_crm: Callable[..., crmkit.CRM], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> CommandLine:
    crm = reminders_crm(make_crm)
    crm.users.create("li.na")
    crm.contacts.create({"full_name": "张伟"})
    return command_line_for(crm, monkeypatch, tmp_path)


def test_a_rep_adds_lists_snoozes_and_finishes_a_reminder(cli: CommandLine) -> None:
    added = json.loads(
        cli.ok(
            "reminders",
            "add",
            "contact",
            "1",
            "回访报价",
            "--at",
            soon(),
            "--user",
            "li.na",
            "--json",
        )
    )
    (reminder,) = added
    listed = json.loads(cli.ok("reminders", "list", "--user", "li.na", "--json"))
    assert [r["id"] for r in listed] == [reminder["id"]]
    assert listed[0]["next_due_at"].endswith("+08:00")  # the owner's wall clock
    assert "active" in cli.ok("reminders", "snooze", str(reminder["id"]), "--minutes", "30")
    assert "done" in cli.ok("reminders", "done", str(reminder["id"]))
    assert cli.ok("reminders", "list", "--user", "li.na") == "No reminders.\n"


def test_bad_input_is_one_line_naming_the_problem(cli: CommandLine) -> None:
    assert "in the past" in cli.fails(
        "reminders", "add", "回访", "--at", "2020-01-01 09:00", "--user", "li.na"
    )
    assert "not a valid RFC 5545 RRULE" in cli.fails(
        "reminders", "add", "回访", "--at", soon(), "--every", "FREQ=NEVER", "--user", "li.na"
    )
    assert "unknown time zone" in cli.fails(
        "reminders", "add", "回访", "--at", soon(), "--timezone", "Asia/Beijing", "--user", "li.na"
    )
    assert "not found" in cli.fails("reminders", "done", "999")


def test_the_feed_command_prints_a_url_with_a_token(cli: CommandLine) -> None:
    url = cli.ok("reminders", "feed", "--user", "li.na").strip()
    assert "/plugins/reminders/feed/crmcal_" in url
    assert url.endswith(".ics")


# -- API -------------------------------------------------------------------------------------


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    yield from open_api(reminders_crm(make_crm))


def test_a_rep_manages_their_reminders_through_the_api(api: Api) -> None:
    api.user("li.na", roles=("sales_rep",))
    created = api.call("POST", f"{BASE}/", "li.na", json={"title": "回访", "at": soon()})
    assert created.status_code == 201, created.text
    reminder_id = created.json()["id"]

    assert [r["id"] for r in api.call("GET", f"{BASE}/", "li.na").json()] == [reminder_id]
    snoozed = api.call("POST", f"{BASE}/{reminder_id}/snooze", "li.na", json={"minutes": 15})
    assert snoozed.status_code == 200, snoozed.text
    assert api.call("POST", f"{BASE}/{reminder_id}/done", "li.na").json()["status"] == "done"


def test_another_reps_reminder_is_not_found(api: Api) -> None:
    api.user("li.na", roles=("sales_rep",))
    api.user("zhou", roles=("sales_rep",))
    reminder_id = api.call(
        "POST", f"{BASE}/", "li.na", json={"title": "回访", "at": soon()}
    ).json()["id"]
    assert_problem(api.call("POST", f"{BASE}/{reminder_id}/done", "zhou"), 404)


def test_a_bad_rrule_is_a_422_naming_the_field(api: Api) -> None:
    api.user("li.na")
    response = api.call(
        "POST", f"{BASE}/", "li.na", json={"title": "x", "at": soon(), "every": "FREQ=NEVER"}
    )
    assert_problem(response, 422, field="every")


def test_the_calendar_feed_is_public_behind_its_token(api: Api) -> None:
    api.user("li.na")
    api.call("POST", f"{BASE}/", "li.na", json={"title": "周会", "at": soon()})
    url = api.call("POST", f"{BASE}/feed", "li.na").json()["url"]
    path = url[url.index(BASE) :]

    feed = api.client.get(path)

    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("text/calendar")
    assert "SUMMARY:周会" in feed.text
    assert_problem(api.client.get(f"{BASE}/feed/crmcal_wrong.ics"), 404)


@pytest.mark.parametrize("mode", list(PLUGIN_EXAMPLES), ids=str)
def test_the_reminders_routes_conform_to_their_openapi(api: Api, mode: GenerationMode) -> None:
    chosen = operations(api, BASE)
    assert len(chosen) == 7
    assert_conforms(api, chosen, mode, PLUGIN_EXAMPLES[mode])
