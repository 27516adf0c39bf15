"""Hostile input on every desk route: whatever a browser (or anything pretending to be one)
sends, the desk answers a page with a clear status below 500, never a stack or SQL, and a
refused form changes nothing (every table compared before and after, except the logs a
refusal may write to). Runs on both engines (the values reach the services and the
database), with the referrals, reminders, dedupe and loyalty plugins enabled, so their pages,
buttons and actions are fuzzed too.

Every route of the desk is in :data:`GET_ROUTES`, :data:`POST_ROUTES` or has its own test
(sign-in, sign-out); ``test_every_desk_route_is_fuzzed`` fails when a route is added to the
desk without being added here."""

from __future__ import annotations

import datetime as dt
import string
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import crmkit_dedupe
import crmkit_loyalty
import crmkit_referrals
import crmkit_reminders
import pytest
import sqlalchemy as sa
from crmkit_reminders import service as reminders
from desk_support import DeskWorld, open_desk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit

#: Values a form field may carry: text of any script, markup, control characters (NUL too),
#: numbers out of range, dates that are not dates, very long text.
VALUE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.printable + "张伟欧阳\u0000\u202e<>\"'&", max_size=60),
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "9" * 40,
            "-1",
            "0",
            "1",
            "2026-02-30",
            "1e309",
            "NaN",
            "x" * 5000,
            "\u0000",
            "' OR 1=1 --",
            "../../etc/passwd",
            "//evil.example/x",
            "https://evil.example/",
            "en",
            "zh_CN",
            "snooze",
            "done",
            "merge",
            "dismiss",
        ]
    ),
)
#: A field may also be sent more than once.
VALUES = st.one_of(VALUE, st.lists(VALUE, max_size=3))
FIELD_NAMES = [
    "full_name",
    "name",
    "company_name",
    "title",
    "phone",
    "email",
    "source_channel",
    "inquiry",
    "account_id",
    "city",
    "address",
    "industry",
    "website",
    "birthday",
    "lifecycle_stage",
    "due_at",
    "priority",
    "description",
    "version",
    "kind",
    "notes",
    "stage_id",
    "back",
    "entity",
    "record_id",
    "locale",
    "next",
    "amount",
    "owner_id",
    "team_id",
    "action",
    "reminder",
    "for",
    "candidate",
    "keep",
    "csrf_token",  # overrides the real token: a forged or missing one
    "unknown",
]
FIELDS = st.dictionaries(st.sampled_from(FIELD_NAMES), VALUES, max_size=8)
QUERY = st.dictionaries(
    st.sampled_from(
        [
            "q",
            "sort",
            "cursor",
            "field",
            "value",
            "mine",
            "entity",
            "after",
            "pipeline",
            "notice",
            "next",
            "expired",
            "signed_out",
            "unknown",
        ]
    ),
    VALUE,
    max_size=5,
)
#: Examples per route: every route gets its own run.
FUZZ = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Tables a refused request may still write to: the audit log (a refused sign-in is on
#: record), the desk's sessions (last seen) and accounts (failed sign-ins). The event outbox
#: is compared: a refused form emits nothing.
LOG_TABLES = {"audit_log", "desk_sessions", "desk_accounts"}


@pytest.fixture
def world(make_crm: Callable[..., crmkit.CRM]) -> Iterator[DeskWorld]:
    """The desk with four plugins that add pages, buttons, panels, tiles and menu entries."""
    crm = make_crm(
        plugins={
            "referrals": crmkit_referrals,
            "reminders": crmkit_reminders,
            "dedupe": crmkit_dedupe,
            "loyalty": crmkit_loyalty,
        },
        plugin_settings={"dedupe": {"online_check": False}},
    )
    crm.pipelines.create("Sales")
    yield from open_desk(crm)


def records(world: DeskWorld) -> dict[str, int]:
    """One record of each kind for li.na (and a contact of chen.jie's): their ids."""
    crm = world.crm
    li_na, chen = crm.users.get("li.na"), crm.users.get("chen.jie")
    crm.roles.grant("sales_rep", "referral:read", "own")
    account = crm.accounts.create({"name": "星辰贸易"}, actor=li_na)
    contact = crm.contacts.create({"full_name": "刘洋", "account_id": account.id}, actor=li_na)
    friend = crm.contacts.create({"full_name": "黄晓明"}, actor=li_na)
    other = crm.contacts.create({"full_name": "张敏"}, actor=chen)
    lead = crm.leads.create({"full_name": "王芳"}, actor=li_na)
    deal = crm.deals.create({"name": "框架协议"}, actor=li_na)
    task = crm.tasks.create({"title": "回电话"}, actor=li_na)
    activity = crm.activities.create(
        {"kind": "call", "subject": "问候", "contact_id": contact.id}, actor=li_na
    )
    referral = crm.records("referral").create(
        {
            "referrer_contact_id": contact.id,
            "referred_contact_id": friend.id,
            "owner_id": li_na.id,
            "team_id": li_na.team_id,
        }
    )
    pooled = crm.leads.create({"full_name": "公海线索"})
    crm.leads.update(pooled.id, {"owner_id": None, "team_id": None})
    tomorrow = (crmkit.utcnow() + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    reminder = reminders.add_reminder(crm, "回访", at=tomorrow, owner="li.na")
    return {
        "account": account.id,
        "contact": contact.id,
        "other": other.id,
        "lead": lead.id,
        "deal": deal.id,
        "task": task.id,
        "activity": activity.id,
        "referral": referral.id,
        "pooled": pooled.id,
        "reminder": reminder.id,
    }


def get_routes(ids: dict[str, int]) -> list[str]:
    """Every page a GET reaches, for each kind of record."""
    paths = ["/desk", "/desk/board", "/desk/pool", "/desk/sign-in"]
    for plural, key in (
        ("contacts", "contact"),
        ("accounts", "account"),
        ("leads", "lead"),
        ("deals", "deal"),
        ("activities", "activity"),
        ("tasks", "task"),
        ("referrals", "referral"),
    ):
        paths += [
            f"/desk/{plural}",
            f"/desk/{plural}/new",
            f"/desk/{plural}/{ids[key]}",
            f"/desk/{plural}/{ids[key]}/edit",
        ]
    paths += [f"/desk/contacts/{ids['other']}", f"/desk/contacts/{ids['other']}/edit"]
    paths += [
        "/desk/plugins/referrals/latest",
        "/desk/plugins/reminders/today",
        "/desk/plugins/dedupe/duplicates",
        "/desk/plugins/loyalty/expiring",
        "/desk/plugins/nothing/here",
    ]
    return paths


def post_routes(ids: dict[str, int]) -> list[str]:
    """Every form the desk takes while signed in (sign-out apart: it ends the session)."""
    contact, other = ids["contact"], ids["other"]
    return [
        "/desk/leads/new",
        "/desk/contacts/new",
        "/desk/accounts/new",
        "/desk/tasks/new",
        "/desk/deals/new",
        f"/desk/contacts/{contact}/edit",
        f"/desk/leads/{ids['lead']}/edit",
        f"/desk/accounts/{ids['account']}/edit",
        f"/desk/deals/{ids['deal']}/edit",
        f"/desk/tasks/{ids['task']}/edit",
        f"/desk/contacts/{other}/edit",
        f"/desk/contacts/{contact}/log",
        f"/desk/deals/{ids['deal']}/log",
        f"/desk/contacts/{other}/log",
        f"/desk/deals/{ids['deal']}/move",
        "/desk/pool/claim",
        "/desk/language",
        f"/desk/contacts/{contact}/actions/referrals/issue-code",
        f"/desk/contacts/{other}/actions/referrals/issue-code",
        f"/desk/contacts/{contact}/actions/referrals/nothing",
        "/desk/plugins/referrals/latest",
        "/desk/plugins/reminders/today",
        "/desk/plugins/dedupe/duplicates",
        "/desk/plugins/loyalty/expiring",
        "/desk/plugins/nothing/here",
    ]


# Keyed by the CRM itself, weakly: an id() key could be taken by a later test's CRM once
# this one is freed, and hand it this one's tables.
_TABLES: weakref.WeakKeyDictionary[crmkit.CRM, list[sa.Table]] = weakref.WeakKeyDictionary()


def snapshot(crm: crmkit.CRM) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the logs, in primary-key order."""
    if crm not in _TABLES:
        metadata = sa.MetaData()
        metadata.reflect(crm.engine)
        _TABLES[crm] = [
            table
            for name, table in sorted(metadata.tables.items())
            if name not in LOG_TABLES and not name.startswith("alembic")
        ]
    tables = {}
    with crm.engine.connect() as connection:
        for table in _TABLES[crm]:
            name = table.name
            order = list(table.primary_key.columns) or list(table.columns)
            rows = connection.execute(sa.select(table).order_by(*order))
            tables[name] = [tuple(row) for row in rows]
    return tables


def assert_page(response: Any) -> None:
    assert response.status_code < 500, response.text[:500]
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    lowered = response.text.lower()
    for leak in ("sqlalchemy", "[sql:", "psycopg", "sqlite3", "integrityerror"):
        assert leak not in lowered, leak


def test_every_form_with_hostile_values_gets_a_page_and_a_refusal_changes_nothing(
    world: DeskWorld,
) -> None:
    ids = records(world)
    browser = world.signed_in("li.na")
    browser.get("/desk")
    before = {"state": snapshot(world.crm)}
    assert {"contacts", "referrals", "reminders", "event_outbox"} <= set(before["state"])

    def fuzz(path: str) -> Callable[[], None]:
        @FUZZ
        @given(form=FIELDS)
        def post(form: dict[str, Any]) -> None:
            response = browser.post(path, form, follow=False)
            if response.status_code == 303:  # see other: a valid change was made
                assert response.headers["location"].startswith("/desk")
                before["state"] = snapshot(world.crm)
                return
            assert_page(response)
            now = snapshot(world.crm)
            if response.status_code >= 400:
                assert now == before["state"], (path, form, response.status_code)
            before["state"] = now  # a plugin action that did its work answers 200

        return post

    for path in post_routes(ids):
        fuzz(path)()
        assert browser.get("/desk", follow=False).status_code == 200  # still signed in


def test_every_page_with_hostile_query_parameters_gets_a_page_and_changes_nothing(
    world: DeskWorld,
) -> None:
    ids = records(world)
    browser = world.signed_in("li.na")
    state = snapshot(world.crm)

    def fuzz(path: str) -> Callable[[], None]:
        @FUZZ
        @given(query=QUERY)
        def get(query: dict[str, str]) -> None:
            response = browser.get(path, params=query)
            assert_page(response)
            assert response.status_code in (200, 400, 403, 404, 422), (path, query)

        return get

    for path in get_routes(ids):
        fuzz(path)()
    assert snapshot(world.crm) == state


def test_sign_in_with_hostile_values_in_any_field_never_signs_in_or_fails(
    world: DeskWorld,
) -> None:
    records(world)
    state = snapshot(world.crm)
    names = st.one_of(VALUE, st.sampled_from(["li.na", "admin", "LI.NA", " li.na "]))

    @settings(FUZZ, max_examples=40)
    @given(
        username=names,
        password=VALUE,
        extra=st.dictionaries(st.sampled_from(["csrf_token", "next", "unknown"]), VALUES),
    )
    def attempt(username: str, password: str, extra: dict[str, Any]) -> None:
        browser = world.browser()
        browser.get("/desk/sign-in")
        response = browser.post(
            "/desk/sign-in", {"username": username, "password": password, **extra}, follow=False
        )
        assert_page(response)
        assert response.status_code in (400, 401, 403)
        assert browser.get("/desk", follow=False).status_code in (302, 303)  # not signed in
        next_field = response.text.split('name="next" value="', 1)[1].split('"', 1)[0]
        assert next_field.startswith("/desk")  # never a way off the site

    attempt()
    assert snapshot(world.crm) == state


def test_sign_out_with_a_hostile_form_is_refused_and_changes_nothing(world: DeskWorld) -> None:
    records(world)
    state = snapshot(world.crm)

    @settings(FUZZ, max_examples=15)
    @given(form=FIELDS)
    def sign_out(form: dict[str, Any]) -> None:
        browser = world.signed_in("li.na")
        response = browser.post("/desk/sign-out", form, follow=False)
        still = browser.get("/desk", follow=False).status_code
        if response.status_code == 303:  # the right token: signed out
            assert still in (302, 303)
            return
        assert_page(response)
        assert response.status_code == 403
        assert still == 200
        assert snapshot(world.crm) == state

    sign_out()


def test_hostile_path_segments_get_a_page(world: DeskWorld) -> None:
    browser = world.signed_in("li.na")
    for path in (
        "/desk/contacts/0",
        "/desk/contacts/-1",
        "/desk/contacts/99999999999999999999999",
        "/desk/%3Cscript%3E",
        "/desk/contacts/1/actions/x/y",
        "/desk/plugins/none/page",
        "/desk/plugins/referrals/%00",
        "/desk/contacts/1/edit/extra",
        "/desk/nothing/1",
        "/desk/nothing/new",
    ):
        response = browser.get(path)
        assert_page(response)
        assert response.status_code in (400, 404, 405)


def test_every_desk_route_is_fuzzed(world: DeskWorld) -> None:
    """The routes above cover each route the desk serves (a new route must be added here)."""
    from crmkit.desk.session import DESK_PATH

    served = {
        (method, route.path)
        for route in world.app.routes
        if route.path == DESK_PATH or route.path.startswith(DESK_PATH + "/")
        for method in getattr(route, "methods", ())
        if method in ("GET", "POST") and not route.path.startswith(DESK_PATH + "/static")
    }
    covered = {
        ("GET", "/desk"),
        ("GET", "/desk/board"),
        ("GET", "/desk/pool"),
        ("GET", "/desk/sign-in"),
        ("GET", "/desk/{entity_name:str}"),
        ("GET", "/desk/{entity_name:str}/new"),
        ("GET", "/desk/{entity_name:str}/{record_id:int}"),
        ("GET", "/desk/{entity_name:str}/{record_id:int}/edit"),
        ("GET", "/desk/plugins/{plugin:str}/{page_path:path}"),
        ("POST", "/desk/sign-in"),
        ("POST", "/desk/sign-out"),
        ("POST", "/desk/language"),
        ("POST", "/desk/{entity_name:str}/new"),
        ("POST", "/desk/{entity_name:str}/{record_id:int}/edit"),
        ("POST", "/desk/{entity_name:str}/{record_id:int}/log"),
        ("POST", "/desk/{entity_name:str}/{record_id:int}/actions/{plugin:str}/{action:str}"),
        ("POST", "/desk/deals/{record_id:int}/move"),
        ("POST", "/desk/pool/claim"),
        ("POST", "/desk/plugins/{plugin:str}/{page_path:path}"),
    }
    assert served == covered


def test_a_forged_token_in_any_script_is_a_403_not_a_500(world: DeskWorld) -> None:
    """Found by the fuzzing above: a token with non-ASCII characters was compared with
    ``secrets.compare_digest`` on ``str``, which raises for them."""
    browser = world.signed_in("li.na")
    browser.get("/desk")
    state = snapshot(world.crm)
    for token in ("令牌", "é" * 43, "\u0000"):
        response = browser.post("/desk/leads/new", {"csrf_token": token, "full_name": "王芳"})
        assert response.status_code == 403
        assert_page(response)
    signing_in = world.browser()
    signing_in.get("/desk/sign-in")
    response = signing_in.post(
        "/desk/sign-in", {"csrf_token": "令牌", "username": "li.na", "password": "x"}
    )
    assert response.status_code == 403
    assert snapshot(world.crm) == state
