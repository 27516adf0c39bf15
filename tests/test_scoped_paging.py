"""Scoped lists page by page: the query shapes the scoped-read work introduced.

- ``keyset_after`` adds a redundant bound (``sort >= :v``, ``<=`` when descending on a NOT
  NULL column) so that a later page starts an index range: walking every page must still
  return every visible record once, in order, across runs of equal sort values and NULLs,
  in both directions.
- On SQLite, a scoped list sorted by the id or an indexed column walks that index with the
  scope written ``owner_id + 0`` / ``team_id + 0`` when the actor's scope covers at least
  ``WALK_SHARE`` of the team tree, and keeps the owner/team index plan below that. Both must
  give the same rows; the plans are checked with ``EXPLAIN QUERY PLAN`` (with the per-team
  union of a narrow scope switched off: tests/test_scoped_union.py covers it).
- The access an operation loads (one statement) sees role, team and user changes at once.

Runs on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BACKEND
from sql_support import ContactSelects

import crmkit
from crmkit.entities.organisation import User
from crmkit.errors import PermissionDenied
from crmkit.services import records as records_module

#: Few distinct values per field, so runs of equal values and NULLs span page boundaries.
CITIES = (None, "北京", "上海", "Taipei", None, "上海")
EMAILS = (None, "a@example.com", "b@example.com", None, "a@example.com")
NAMES = ("王芳", "张伟", "王芳", "Alice", "张伟", "王芳", "Bob")


def _team_tree(crm: crmkit.CRM, leaves: int) -> None:
    """HQ → East, West; East → East-0 … East-(leaves-1)."""
    crm.users.create_team("HQ")
    crm.users.create_team("East", parent="HQ")
    crm.users.create_team("West", parent="HQ")
    for index in range(leaves):
        crm.users.create_team(f"East-{index}", parent="East")


@pytest.fixture
def world(crm: crmkit.CRM) -> dict[str, Any]:
    """A manager of East (subtree scope), a rep in East-0, a user in West; contacts spread
    over the teams with repeated and missing values."""
    _team_tree(crm, 3)
    users = {
        "mgr": crm.users.create("mgr", team="East", roles=("manager",)),
        "rep": crm.users.create("rep", team="East-0", roles=("sales_rep",)),
        "west": crm.users.create("west", team="West", roles=("manager",)),
    }
    teams = ["East", "East-0", "East-1", "East-2", "West", "HQ"]
    owners = [users["mgr"].id, users["rep"].id, users["west"].id, None]
    rows = []
    for index in range(60):
        rows.append(
            (
                index + 1,
                {
                    "full_name": NAMES[index % len(NAMES)],
                    "city": CITIES[index % len(CITIES)],
                    "email": EMAILS[index % len(EMAILS)],
                    "team_id": _team_id(crm, teams[index % len(teams)]),
                    "owner_id": owners[index % len(owners)],
                },
            )
        )
    result = crm.contacts.create_many(rows)
    assert not result.errors
    return {"crm": crm, "users": users}


def _team_id(crm: crmkit.CRM, name: str) -> int:
    return next(team.id for team in crm.users.teams() if team.name == name)


def _walk(crm: crmkit.CRM, actor: User, sort: str, limit: int) -> list[Any]:
    records: list[Any] = []
    cursor = None
    for _ in range(500):
        page = crm.contacts.list(sort=sort, limit=limit, cursor=cursor, actor=actor)
        records.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return records
    raise AssertionError("the cursors never ended")


def _expected(everything: list[Any], sort: str) -> list[int]:
    """Ids in the documented order: the sort field then the id, ascending with NULLs first,
    or both descending with NULLs last."""
    name = sort.lstrip("-")
    descending = sort.startswith("-")
    present = sorted((getattr(r, name), r.id) for r in everything if getattr(r, name) is not None)
    missing = sorted(r.id for r in everything if getattr(r, name) is None)
    if descending:
        return [i for _, i in reversed(present)] + list(reversed(missing))
    return missing + [i for _, i in present]


@pytest.mark.parametrize("sort", ["id", "-id", "full_name", "-full_name", "city", "-city",
                                  "email", "-email", "created_at", "-created_at"])  # fmt: skip
@pytest.mark.parametrize("limit", [1, 4, 7])
def test_every_visible_record_once_in_order_page_by_page(
    world: dict[str, Any], sort: str, limit: int
) -> None:
    crm, users = world["crm"], world["users"]
    for who in ("mgr", "rep", "west"):
        actor = users[who]
        visible = list(crm.contacts.iterate(actor=actor))

        walked = _walk(crm, actor, sort, limit)

        assert [r.id for r in walked] == _expected(visible, sort), who
        assert len(walked) == crm.contacts.count(actor=actor)


def test_the_scope_is_the_same_whichever_plan_is_chosen(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    crm, users = world["crm"], world["users"]
    seen: dict[tuple[float, int], list[list[int]]] = {}
    plans = [(0.0, 0), (2.0, 0), (2.0, 32)]  # every scope walks / none does / the union
    for share, branches in plans:
        monkeypatch.setattr(records_module, "WALK_SHARE", share)
        monkeypatch.setattr(records_module, "MAX_SCOPE_BRANCHES", branches)
        for who in ("mgr", "rep", "west"):
            for sort in ("full_name", "-city", "id", "-id"):
                pages = [r.id for r in _walk(crm, users[who], sort, 5)]
                seen.setdefault((share, branches), []).append(pages)
    assert seen[plans[0]] == seen[plans[1]] == seen[plans[2]]


# -- the plans SQLite chooses --------------------------------------------------------------


@pytest.fixture
def statements(crm: crmkit.CRM) -> Iterator[ContactSelects]:
    catcher = ContactSelects(crm.engine)
    yield catcher
    catcher.close()


def _plan(crm: crmkit.CRM, statement: str, parameters: Any) -> str:
    with crm.engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return "; ".join(str(row[3]) for row in rows)


sqlite_only = pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's plans")


@sqlite_only
@pytest.mark.parametrize(
    ("sort", "plans"),
    [("id", ("SCAN contacts", "SEARCH contacts USING INTEGER PRIMARY KEY (rowid>?)")),
     ("full_name", ("SCAN contacts USING INDEX ix_contacts_full_name",
                    "SEARCH contacts USING INDEX ix_contacts_full_name (full_name>?)")),
     ("-email", ("SCAN contacts USING INDEX ix_contacts_email",) * 2)],
)  # fmt: skip
def test_sqlite_walks_the_sort_index_for_a_wide_scope(
    world: dict[str, Any],
    statements: ContactSelects,
    monkeypatch: pytest.MonkeyPatch,
    sort: str,
    plans: tuple[str, str],
) -> None:
    # East is 4 of the 6 teams: wide, but few enough teams for the per-team union, which
    # tests/test_scoped_union.py covers; here it is off
    monkeypatch.setattr(records_module, "MAX_SCOPE_BRANCHES", 0)
    crm = world["crm"]
    first = crm.contacts.list(sort=sort, limit=3, actor=world["users"]["mgr"])
    crm.contacts.list(sort=sort, limit=3, cursor=first.next_cursor, actor=world["users"]["mgr"])

    # one index walk each, no owner/team index, no sort; a later page sorted ascending
    # starts at the cursor (descending on a nullable column, NULLs come after it: no bound)
    assert [_plan(crm, *seen) for seen in statements.seen[-2:]] == list(plans)


@sqlite_only
def test_a_later_page_starts_an_index_range_at_the_cursor(
    world: dict[str, Any], statements: ContactSelects
) -> None:
    crm = world["crm"]
    first = crm.contacts.list(sort="-full_name", limit=3)
    crm.contacts.list(sort="-full_name", limit=3, cursor=first.next_cursor)

    plan = _plan(crm, *statements.seen[-1])
    assert "SEARCH contacts USING INDEX ix_contacts_full_name (full_name<?)" in plan, plan


@sqlite_only
def test_sqlite_keeps_the_owner_and_team_indexes_for_a_narrow_scope(
    crm: crmkit.CRM, statements: ContactSelects, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_module, "MAX_SCOPE_BRANCHES", 0)  # (else: the union)
    _team_tree(crm, 120)  # a rep's one team is under 1 % of 123
    rep = crm.users.create("rep", team="East-7", roles=("sales_rep",))
    lead = crm.users.create("lead", team="East-7", roles=("manager",))
    crm.contacts.create({"full_name": "张伟", "owner_id": rep.id, "team_id": rep.team_id})

    assert [c.full_name for c in crm.contacts.list(sort="full_name", actor=lead).items] == ["张伟"]
    plan = _plan(crm, *statements.seen[-1])
    assert "MULTI-INDEX OR" in plan, plan
    assert "INDEX ix_contacts_team_id (team_id=?)" in plan, plan
    assert "INDEX ix_contacts_owner_id (owner_id=?)" in plan, plan


# -- access: one statement, nothing kept between operations ---------------------------------


def test_access_sees_changes_made_since_the_last_operation(world: dict[str, Any]) -> None:
    crm, users = world["crm"], world["users"]
    rep = users["rep"]
    before = crm.contacts.count(actor=rep)

    crm.users.set_team("rep", "East")  # rep's own team scope now covers East's contacts
    crm.roles.grant("sales_rep", "contact:read", "subtree")
    widened = crm.contacts.count(actor=rep)
    crm.users.deactivate("rep")

    assert widened > before
    with pytest.raises(PermissionDenied, match="deactivated"):
        crm.contacts.count(actor=rep)


def test_an_admin_and_a_user_without_a_team_load_their_access(crm: crmkit.CRM) -> None:
    crm.users.create_team("HQ")
    admin = crm.users.create("boss", team="HQ", admin=True)
    loner = crm.users.create("loner", roles=("manager",))
    crm.contacts.create({"full_name": "张伟", "owner_id": loner.id})
    crm.contacts.create({"full_name": "王芳"})

    assert crm.contacts.count(actor=admin) == 2
    assert [c.full_name for c in crm.contacts.list(actor=loner).items] == ["张伟"]
    with crm.transaction(loner, write=False) as op:
        assert op.access.subtree_ids == frozenset()
        assert op.access.team_count == 1
    with crm.transaction(admin, write=False) as op:
        assert op.access.unrestricted
