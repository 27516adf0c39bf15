"""The campaigns plugin's faces: ``crmkit campaigns ...`` (one-line errors) and the REST
routes under /plugins/campaigns (problem+json, the public click redirect, schemathesis)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import crmkit_campaigns
import pytest
from api_support import Api, assert_problem, open_api
from crmkit_campaigns.tracking import click_token
from openapi_support import PLUGIN_EXAMPLES, assert_conforms, operations
from schemathesis import GenerationMode
from smtp_support import MailServer

import crmkit
from crmkit.testing import CommandLine, command_line_for

BASE = "/plugins/campaigns"
SPRING = """
[[steps]]
kind = "first"
subject = {zh = "{{ full_name }}，春季新品", en = "Spring range, {{ full_name }}"}
body = {zh = "看看：{{ track('https://shop.example/spring') }} 退订 {{ unsubscribe_url }}"}

[[steps]]
kind = "follow_up"
after_days = 2
subject = {zh = "还有问题吗？"}
body = {zh = "请回复本邮件。"}

[window]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
start = "00:00"
end = "23:59"
"""
STEPS = [
    {
        "kind": "first",
        "subject": {"zh": "{{ full_name }}，春季新品"},
        "body": {"zh": "{{ track('https://shop.example/spring') }} {{ unsubscribe_url }}"},
    }
]


def campaigns_crm(make_crm: Callable[..., crmkit.CRM], port: int) -> crmkit.CRM:
    crm = make_crm(
        plugins={"campaigns": crmkit_campaigns},
        email={"host": "127.0.0.1", "port": port, "from_address": "news@shop.example"},
        messages={"backoff_seconds": 0},
        api={"public_url": "https://crm.shop.example"},
    )
    crm.pipelines.create("Sales")
    crm.users.create_team("East")
    return crm


# -- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli(
    make_crm: Callable[..., crmkit.CRM],
    smtp_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> CommandLine:
    crm = campaigns_crm(make_crm, smtp_server.port)
    crm.users.create("li.na", team="East", roles=("sales_rep",), email="li.na@shop.example")
    crm.contacts.create({"full_name": "张伟", "email": "zw@one.example", "city": "上海"})
    crm.contacts.create({"full_name": "李雷", "email": "ll@one.example", "city": "北京"})
    (tmp_path / "spring.toml").write_text(SPRING, encoding="utf-8")
    (tmp_path / "bad.toml").write_text(
        SPRING.replace("{{ full_name }}，春季新品", "{{ fullname }}"), encoding="utf-8"
    )
    return command_line_for(crm, monkeypatch, tmp_path)


def test_a_campaign_is_written_tested_started_and_run_from_the_command_line(
    cli: CommandLine, smtp_server: MailServer, tmp_path: Path
) -> None:
    spring = str(tmp_path / "spring.toml")
    assert "2 step(s)" in cli.ok("campaigns", "check", spring)
    created = json.loads(
        cli.ok("campaigns", "create", "春季", "--file", spring, "--where", "city=上海", "--json")
    )
    assert (created["status"], created["filters"]) == ("draft", {"city": "上海"})
    assert "li.na@shop.example: pending" in cli.ok("campaigns", "test", "春季", "--user", "li.na")
    assert "1 member(s)" in cli.ok("campaigns", "start", "春季")
    assert "queued 1 mail(s)" in cli.ok("campaigns", "run")
    cli.ok("worker", "--once")

    assert sorted(m["To"] for m in smtp_server.received) == ["li.na@shop.example", "zw@one.example"]
    assert "members: active 1" in cli.ok("campaigns", "show", "春季")
    assert "running" in cli.ok("campaigns", "list")
    assert "paused" in cli.ok("campaigns", "pause", "春季")
    assert "2 step(s)" not in cli.ok("campaigns", "update", "春季", "--file", spring)
    assert "--yes" in cli.run("campaigns", "delete", "春季").output
    assert "deleted" in cli.ok("campaigns", "delete", "春季", "--yes")
    assert cli.ok("campaigns", "list") == "No campaigns.\n"


def test_bad_input_is_one_line_naming_the_problem(cli: CommandLine, tmp_path: Path) -> None:
    bad = str(tmp_path / "bad.toml")
    spring = str(tmp_path / "spring.toml")
    assert "unknown variable(s) fullname" in cli.fails("campaigns", "check", bad)
    assert "fullname" in cli.fails("campaigns", "create", "x", "--file", bad)
    assert "shoe_size" in cli.fails(
        "campaigns", "create", "x", "--file", spring, "--where", "shoe_size=42"
    )
    cli.ok("campaigns", "create", "empty", "--file", spring, "--where", "city=拉萨")
    assert "empty audience" in cli.fails("campaigns", "start", "empty")
    assert "not found" in cli.fails("campaigns", "show", "nope")
    (tmp_path / "broken.toml").write_text("steps = [", encoding="utf-8")
    assert "broken.toml" in cli.fails("campaigns", "check", str(tmp_path / "broken.toml"))


# -- API -------------------------------------------------------------------------------------


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer) -> Iterator[Api]:
    crm = campaigns_crm(make_crm, smtp_server.port)
    crm.roles.create("marketer")
    crm.roles.grant("marketer", "campaign:manage")
    yield from open_api(crm)


def test_a_marketer_runs_a_campaign_on_their_contacts_through_the_api(
    api: Api, smtp_server: MailServer
) -> None:
    rep = api.user("li.na", roles=("sales_rep", "marketer"), team="East")
    other = api.user("zhou", roles=("sales_rep", "marketer"), team="East")
    api.crm.contacts.create({"full_name": "她的", "email": "hers@one.example"}, actor=rep)
    api.crm.contacts.create({"full_name": "他的", "email": "his@one.example"}, actor=other)

    created = api.call("POST", f"{BASE}/", "li.na", json={"name": "春季", "steps": STEPS})
    assert created.status_code == 201, created.text
    started = api.call("POST", f"{BASE}/春季/start", "li.na")
    assert started.status_code == 200, started.text
    assert started.json()["audience"] == 1
    assert_problem(api.call("GET", f"{BASE}/春季", "zhou"), 404)
    assert api.call("GET", f"{BASE}/", "zhou").json() == []
    steps = [*STEPS, {**STEPS[0], "kind": "follow_up", "after_days": 2}]
    updated = api.call("PUT", f"{BASE}/春季", "li.na", json={"steps": steps})
    assert updated.status_code == 200, updated.text
    assert [s["kind"] for s in updated.json()["steps"]] == ["first", "follow_up"]
    assert api.call("POST", f"{BASE}/春季/pause", "li.na").json()["status"] == "paused"
    assert api.call("DELETE", f"{BASE}/春季", "li.na").status_code == 204
    assert_problem(api.call("GET", f"{BASE}/春季", "li.na"), 404)


def test_an_unknown_template_variable_is_a_422_naming_the_step(api: Api) -> None:
    api.user("li.na", roles=("sales_rep", "marketer"))
    steps = [{**STEPS[0], "body": {"zh": "{{ secret_price }}"}}]
    response = api.call("POST", f"{BASE}/", "li.na", json={"name": "x", "steps": steps})
    assert_problem(response, 422, field="steps[1].body.zh")


def test_a_user_without_campaign_manage_is_refused(api: Api) -> None:
    api.user("li.na", roles=("sales_rep",))
    response = api.call("POST", f"{BASE}/", "li.na", json={"name": "x", "steps": STEPS})
    assert_problem(response, 403)


def test_a_click_redirects_once_counted_and_a_forged_link_is_refused(api: Api) -> None:
    contact = api.crm.contacts.create({"full_name": "张伟", "email": "zw@one.example"})
    created = api.call("POST", f"{BASE}/", "admin", json={"name": "春季", "steps": STEPS})
    campaign_id = created.json()["id"]
    api.call("POST", f"{BASE}/春季/start", "admin")
    secret = api.crm.settings.messages.secret
    token = click_token(secret, campaign_id, contact.id, "https://shop.example/spring")

    response = api.client.get(f"{BASE}/click/{token}", follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example/spring"
    forged = click_token("guess", campaign_id, contact.id, "https://evil.example")
    assert_problem(api.client.get(f"{BASE}/click/{forged}", follow_redirects=False), 400)
    with api.crm.transaction() as op:
        member = op.session.get(crmkit_campaigns.CampaignMember, (campaign_id, contact.id))
        assert member is not None
        assert member.clicked_at is not None


@pytest.mark.parametrize("mode", list(PLUGIN_EXAMPLES), ids=str)
def test_the_campaigns_routes_conform_to_their_openapi(api: Api, mode: GenerationMode) -> None:
    chosen = operations(api, BASE)
    assert len(chosen) == 9
    assert_conforms(api, chosen, mode, PLUGIN_EXAMPLES[mode])
