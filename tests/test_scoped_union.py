"""A narrow scope's list page read as one top-N per team plus one of the actor's own records
(``RecordService._union_page``) gives exactly the page the single query gives.

The tree has 40 teams, so a manager of a region (5 teams) and a leaf-team manager (1 team)
take the union for the id and the name order, and the head office's manager (16 teams) does
not. Every page is compared with the same list read as one query (``MAX_SCOPE_BRANCHES = 0``)
and with a reference computed in Python from every live contact: ties in the sort column,
soft-deleted rows, records the actor owns outside their subtree and inside it (found by two
branches), filters on built-in and custom fields, search, and keyset pages that cross from
one branch's rows to another's. A hypothesis test draws the contacts.

Runs on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import BACKEND
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sql_support import ContactSelects

import crmkit
from crmkit.entities.customers import Contact
from crmkit.entities.organisation import User
from crmkit.services import records as records_module

SCORE = {"entity": "contact", "name": "score", "type": "number"}
NAMES = ("王芳", "张伟", "王芳", "Alice", "张伟", "王芳", "Bob", "李娜")
CITIES = ("上海", None, "北京", "上海")
SORTS = ("id", "-id", "full_name", "-full_name")


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    return make_crm(custom_fields=[SCORE])


@pytest.fixture
def statements(crm: crmkit.CRM) -> Iterator[ContactSelects]:
    catcher = ContactSelects(crm.engine)
    yield catcher
    catcher.close()


@pytest.fixture
def org(crm: crmkit.CRM) -> dict[str, Any]:
    """HQ → R0, R1, R2 → four leaves each, and 24 teams beside HQ (40 teams). ``region``
    manages R0 (5 teams), ``leaf`` manages R1-0 (1 team), ``head`` manages HQ (16 teams),
    ``teamer`` reads their own team R0-1 only (scope ``team``)."""
    crm.users.create_team("HQ")
    for region in range(3):
        crm.users.create_team(f"R{region}", parent="HQ")
        for leaf in range(4):
            crm.users.create_team(f"R{region}-{leaf}", parent=f"R{region}")
    for other in range(24):
        crm.users.create_team(f"Other-{other}")
    crm.roles.create("team_reader")
    crm.roles.grant("team_reader", "contact:read", "team")
    users = {
        "region": crm.users.create("region", team="R0", roles=("manager",)),
        "leaf": crm.users.create("leaf", team="R1-0", roles=("manager",)),
        "head": crm.users.create("head", team="HQ", roles=("manager",)),
        "teamer": crm.users.create("teamer", team="R0-1", roles=("team_reader",)),
        "rep": crm.users.create("rep", team="R0-2", roles=("sales_rep",)),
    }
    teams = {team.name: team.id for team in crm.users.teams()}
    return {"users": users, "teams": teams}


def _fill(crm: crmkit.CRM, org: dict[str, Any], count: int = 160) -> None:
    """Contacts over R0's subtree, R1-0, R2's leaves and an outside team, owned by the
    actors (also outside their subtree) or others, with few names and cities (runs of equal
    values across page and branch boundaries); every seventh one soft-deleted."""
    teams, users = org["teams"], org["users"]
    places = ["R0", "R0-0", "R0-1", "R0-3", "R1-0", "R2-1", "Other-5", "HQ", None]
    owners = [users["region"].id, users["leaf"].id, users["teamer"].id, users["rep"].id, None]
    rows = []
    for index in range(count):
        place = places[index % len(places)]
        rows.append(
            (
                index + 1,
                {
                    "full_name": NAMES[index % len(NAMES)],
                    "city": CITIES[index % len(CITIES)],
                    "team_id": teams[place] if place else None,
                    "owner_id": owners[(index // 3) % len(owners)],
                    "score": index % 5,
                },
            )
        )
    result = crm.contacts.create_many(rows)
    assert not result.errors
    for record in list(crm.contacts.iterate())[::7]:
        crm.contacts.delete(record.id)


def _walk(
    crm: crmkit.CRM, actor: User, sort: str, limit: int, **options: Any
) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    cursor = None
    for _ in range(1000):
        page = crm.contacts.list(sort=sort, limit=limit, cursor=cursor, actor=actor, **options)
        seen.extend((record.id, record.full_name) for record in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("the cursors never ended")


def _reference(crm: crmkit.CRM, actor: User, sort: str) -> list[tuple[int, str]]:
    """The actor's contacts in the documented order, from every live contact in Python."""
    teams = crm.users.teams()
    home = next((team.name for team in teams if team.id == actor.team_id), None)
    reach: set[int] = set()
    if home is not None and actor.username == "teamer":
        reach = {actor.team_id} if actor.team_id is not None else set()
    elif home is not None:
        reach = {team.id for team in teams if home in team.path}
    rows = [
        (record.id, record.full_name)
        for record in crm.contacts.iterate()
        if record.owner_id == actor.id or record.team_id in reach
    ]
    descending = sort.startswith("-")
    if sort.lstrip("-") == "id":
        return sorted(rows, reverse=descending)
    return sorted(rows, key=lambda row: (row[1], row[0]), reverse=descending)


def _single_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "MAX_SCOPE_BRANCHES", 0)


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("limit", [1, 4, 9])
def test_union_pages_are_the_single_query_pages(
    crm: crmkit.CRM,
    org: dict[str, Any],
    statements: ContactSelects,
    monkeypatch: pytest.MonkeyPatch,
    sort: str,
    limit: int,
) -> None:
    _fill(crm, org)
    users = org["users"]
    for who in ("region", "leaf", "teamer"):
        actor = users[who]
        statements.seen.clear()
        union = _walk(crm, actor, sort, limit)
        assert statements.seen
        assert all(" UNION " in s for s, _ in statements.seen), who

        assert union == _reference(crm, actor, sort), who
        with monkeypatch.context() as patch:
            _single_query(patch)
            statements.seen.clear()
            assert _walk(crm, actor, sort, limit) == union, who
            assert not any(" UNION " in s for s, _ in statements.seen)
        assert len(union) == crm.contacts.count(actor=actor)


@pytest.mark.parametrize(
    "options",
    [
        {"filters": {"city": "上海"}},
        {"filters": {"city__empty": True}},
        {"filters": {"score__gte": 3}},
        {"filters": {"score__in": [0, 4], "full_name__contains": "王"}},
        {"search": "alice"},
        {"search": "张", "filters": {"score__lt": 2}},
    ],
)
def test_filters_and_search_apply_in_every_branch(
    crm: crmkit.CRM,
    org: dict[str, Any],
    statements: ContactSelects,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
) -> None:
    _fill(crm, org)
    region = org["users"]["region"]
    for sort in SORTS:
        statements.seen.clear()
        union = _walk(crm, region, sort, 3, **options)
        assert all(" UNION " in s for s, _ in statements.seen)
        with monkeypatch.context() as patch:
            _single_query(patch)
            assert _walk(crm, region, sort, 3, **options) == union, sort
        assert len(union) == crm.contacts.count(actor=region, **options)
        assert union, "the filter leaves something to page through"


def test_the_union_is_taken_only_for_a_narrow_scope_and_an_indexed_order(
    crm: crmkit.CRM, org: dict[str, Any], statements: ContactSelects
) -> None:
    _fill(crm, org, count=40)
    users = org["users"]

    def union(actor: User, sort: str) -> bool:
        statements.seen.clear()
        crm.contacts.list(sort=sort, limit=5, actor=actor)
        return " UNION " in statements.seen[-1][0]

    assert union(users["region"], "id")
    assert union(users["leaf"], "-full_name")
    # 16 of 40 teams: a walk reads 40 ÷ 16 rows per row of the page, the branches 17
    assert not union(users["head"], "full_name")
    assert not union(users["region"], "city")  # no (team_id, city) index
    assert not union(users["rep"], "id")  # own records only: one index range already
    assert not union(None, "id")  # type: ignore[arg-type]


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's plans")
def test_sqlite_reads_each_branch_from_a_covering_index(
    crm: crmkit.CRM, org: dict[str, Any], statements: ContactSelects
) -> None:
    _fill(crm, org, count=40)
    first = crm.contacts.list(sort="full_name", limit=3, actor=org["users"]["region"])
    crm.contacts.list(
        sort="full_name", limit=3, cursor=first.next_cursor, actor=org["users"]["region"]
    )

    for statement, parameters in statements.seen[-2:]:
        with crm.engine.connect() as connection:
            plan = [
                str(row[3])
                for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            ]
        searches = [step for step in plan if step.startswith("SEARCH contacts USING")]
        team_branches = [
            step
            for step in searches
            if step.startswith(
                "SEARCH contacts USING COVERING INDEX ix_contacts_team_id_full_name (team_id=?"
            )
        ]
        assert len(team_branches) == 5, plan
        assert any("COVERING INDEX ix_contacts_owner_id_full_name" in s for s in searches), plan
        assert not any("TEMP B-TREE FOR ORDER BY" in step and "subquery" in step for step in plan)


# -- drawn contacts ------------------------------------------------------------------------

contact_specs = st.lists(
    st.tuples(
        st.sampled_from(["R0", "R0-0", "R0-3", "R1-0", "R2-2", "Other-1", None]),
        st.sampled_from(["region", "leaf", "rep", None]),
        st.sampled_from(NAMES),
        st.integers(0, 4).map(lambda n: n == 0),  # deleted now and then
    ),
    max_size=40,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=contact_specs,
    sort=st.sampled_from(SORTS),
    limit=st.integers(1, 6),
    who=st.sampled_from(["region", "leaf", "teamer"]),
)
def test_drawn_contacts_page_like_the_reference(
    crm: crmkit.CRM,
    org: dict[str, Any],
    specs: list[tuple[str | None, str | None, str, bool]],
    sort: str,
    limit: int,
    who: str,
) -> None:
    teams, users = org["teams"], org["users"]
    now = dt.datetime.now(dt.UTC)
    with crm.transaction() as op:
        op.session.execute(sa.delete(Contact))
        op.session.add_all(
            Contact(
                full_name=name,
                team_id=teams[place] if place else None,
                owner_id=users[owner].id if owner else None,
                deleted_at=now if deleted else None,
            )
            for place, owner, name, deleted in specs
        )
    actor = users[who]

    assert _walk(crm, actor, sort, limit) == _reference(crm, actor, sort)
