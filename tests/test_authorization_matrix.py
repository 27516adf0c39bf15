"""The authorisation matrix: every record operation × built-in role × where the record lies
relative to the actor, on every core customer entity, checked against the table EXPECTED
below — the specification, written out.

The world (built once per module for the tests that only read, afresh for each test that
writes)::

    HQ ─┬─ East ─── East-1          rep      sales_rep  East
        └─ West ─── West-1          rep2     sales_rep  East
                                    rep_e1   sales_rep  East-1
                                    mgr      manager    East    (scope: subtree)
                                    ro       read_only  West
                                    admin    admin      East
                                    trainee  sales_rep  East-1  (owns nothing: the
                                                                 new owner in "assign")

Every entity (contact, account, lead, deal, activity, task) has one record per RECORDS row
(an owner and a team; the pool records have no owner). PLACED says which of them is, for
each actor, their own record, one of their team by another owner, one of a team below theirs
and one of a team outside their tree. (West-1 and the pool records exist so the read-only
user, who sits in West, has all four placements too.)

Outcomes: ``ok`` (allowed, and it took effect), ``missing`` (as if the record did not exist:
``NotFoundError``, or absent from the result), ``refused`` (``PermissionDenied``). A write
that is not ``ok`` must leave the database, the outbox and the audit log as they were.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ADMIN_URL, BACKEND, RUN_ID

import crmkit
from crmkit.entities.organisation import User
from crmkit.errors import NotFoundError, PermissionDenied, ValidationError
from crmkit.events.outbox import OutboxEvent
from crmkit.permissions.models import AuditEntry
from crmkit.services.records import RecordService
from crmkit.services.roles import RoleService
from crmkit.settings import Settings

ENTITIES = ("contact", "account", "lead", "deal", "activity", "task")
ROLES = ("sales_rep", "manager", "read_only", "admin")
PLACEMENTS = ("own", "same_team", "sub_team", "other_team")
READS = ("get", "list", "count", "iterate", "export")
WRITES = ("update", "assign", "delete", "create")
OPERATIONS = READS + WRITES

OK = "ok"
MISSING = "missing"
REFUSED = "refused"

# fmt: off
EXPECTED: dict[tuple[str, str], tuple[str, str, str, str]] = {
    # (role, operation)          own      same_team  sub_team  other_team
    ("sales_rep", "get"):       (OK,      MISSING,   MISSING,  MISSING),
    ("sales_rep", "list"):      (OK,      MISSING,   MISSING,  MISSING),
    ("sales_rep", "count"):     (OK,      MISSING,   MISSING,  MISSING),
    ("sales_rep", "iterate"):   (OK,      MISSING,   MISSING,  MISSING),
    ("sales_rep", "export"):    (REFUSED, REFUSED,   REFUSED,  REFUSED),
    ("sales_rep", "update"):    (OK,      MISSING,   MISSING,  MISSING),
    ("sales_rep", "assign"):    (REFUSED, MISSING,   MISSING,  MISSING),
    ("sales_rep", "delete"):    (REFUSED, REFUSED,   REFUSED,  REFUSED),
    ("sales_rep", "create"):    (OK,      REFUSED,   REFUSED,  REFUSED),

    ("manager", "get"):         (OK,      OK,        OK,       MISSING),
    ("manager", "list"):        (OK,      OK,        OK,       MISSING),
    ("manager", "count"):       (OK,      OK,        OK,       MISSING),
    ("manager", "iterate"):     (OK,      OK,        OK,       MISSING),
    ("manager", "export"):      (OK,      OK,        OK,       MISSING),
    ("manager", "update"):      (OK,      OK,        OK,       MISSING),
    ("manager", "assign"):      (OK,      OK,        OK,       MISSING),
    ("manager", "delete"):      (OK,      OK,        OK,       MISSING),
    ("manager", "create"):      (OK,      OK,        OK,       REFUSED),

    ("read_only", "get"):       (OK,      OK,        OK,       OK),
    ("read_only", "list"):      (OK,      OK,        OK,       OK),
    ("read_only", "count"):     (OK,      OK,        OK,       OK),
    ("read_only", "iterate"):   (OK,      OK,        OK,       OK),
    ("read_only", "export"):    (REFUSED, REFUSED,   REFUSED,  REFUSED),
    ("read_only", "update"):    (REFUSED, REFUSED,   REFUSED,  REFUSED),
    ("read_only", "assign"):    (REFUSED, REFUSED,   REFUSED,  REFUSED),
    ("read_only", "delete"):    (REFUSED, REFUSED,   REFUSED,  REFUSED),
    ("read_only", "create"):    (REFUSED, REFUSED,   REFUSED,  REFUSED),

    ("admin", "get"):           (OK,      OK,        OK,       OK),
    ("admin", "list"):          (OK,      OK,        OK,       OK),
    ("admin", "count"):         (OK,      OK,        OK,       OK),
    ("admin", "iterate"):       (OK,      OK,        OK,       OK),
    ("admin", "export"):        (OK,      OK,        OK,       OK),
    ("admin", "update"):        (OK,      OK,        OK,       OK),
    ("admin", "assign"):        (OK,      OK,        OK,       OK),
    ("admin", "delete"):        (OK,      OK,        OK,       OK),
    ("admin", "create"):        (OK,      OK,        OK,       OK),
}
# fmt: on

#: The user acting in each role.
ACTOR = {"sales_rep": "rep", "manager": "mgr", "read_only": "ro", "admin": "admin"}

TEAMS = (("HQ", None), ("East", "HQ"), ("East-1", "East"), ("West", "HQ"), ("West-1", "West"))

USERS = (  # username, team, role
    ("rep", "East", "sales_rep"),
    ("rep2", "East", "sales_rep"),
    ("rep_e1", "East-1", "sales_rep"),
    ("mgr", "East", "manager"),
    ("ro", "West", "read_only"),
    ("admin", "East", "admin"),
    ("trainee", "East-1", "sales_rep"),
)

#: Each entity has one record per key: (owner, team); the key's code (R1, ...) is in its
#: name, so a search can aim at exactly one record.
RECORDS: dict[str, tuple[str | None, str]] = {
    "R1 rep@East": ("rep", "East"),
    "R2 rep2@East": ("rep2", "East"),
    "R3 rep_e1@East-1": ("rep_e1", "East-1"),
    "R4 mgr@East": ("mgr", "East"),
    "R5 admin@East": ("admin", "East"),
    "R6 ro@West": ("ro", "West"),
    "R7 pool@West": (None, "West"),
    "R8 pool@West-1": (None, "West-1"),
}

#: For each actor, the record in each placement.
PLACED: dict[str, dict[str, str]] = {
    "rep": {
        "own": "R1 rep@East",
        "same_team": "R2 rep2@East",
        "sub_team": "R3 rep_e1@East-1",
        "other_team": "R6 ro@West",
    },
    "mgr": {
        "own": "R4 mgr@East",
        "same_team": "R1 rep@East",
        "sub_team": "R3 rep_e1@East-1",
        "other_team": "R6 ro@West",
    },
    "ro": {
        "own": "R6 ro@West",
        "same_team": "R7 pool@West",
        "sub_team": "R8 pool@West-1",
        "other_team": "R1 rep@East",
    },
    "admin": {
        "own": "R5 admin@East",
        "same_team": "R1 rep@East",
        "sub_team": "R3 rep_e1@East-1",
        "other_team": "R6 ro@West",
    },
}

#: Every record each actor can read (of every entity).
VISIBLE: dict[str, set[str]] = {
    "rep": {"R1 rep@East"},
    "mgr": {"R1 rep@East", "R2 rep2@East", "R3 rep_e1@East-1", "R4 mgr@East", "R5 admin@East"},
    "ro": set(RECORDS),
    "admin": set(RECORDS),
}

#: The field holding a record's name (searched), and a harmless field to update.
LABEL = {
    "contact": "full_name",
    "account": "name",
    "lead": "full_name",
    "deal": "name",
    "activity": "subject",
    "task": "title",
}
UPDATED = {
    "contact": "notes",
    "account": "notes",
    "lead": "inquiry",
    "deal": "currency",
    "activity": "body",
    "task": "description",
}
NEW_VALUE = {"deal": "USD"}  # currency is three letters; the others are free text
REQUIRED: dict[str, dict[str, object]] = {"activity": {"kind": "call"}}
#: The entities that refer to an account (``account_id``).
RELATED = ("contact", "deal", "activity", "task")


@dataclass
class World:
    """The CRM of one test with its users, teams and record ids."""

    crm: crmkit.CRM
    users: dict[str, User] = field(default_factory=dict)
    teams: dict[str, int] = field(default_factory=dict)
    ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def service(self, entity: str) -> RecordService:
        return self.crm.records(entity)

    def key_of(self, entity: str, record_id: int) -> str:
        return next(k for (e, k), i in self.ids.items() if e == entity and i == record_id)

    def keys(self, entity: str, ids: list[int]) -> set[str]:
        return {self.key_of(entity, record_id) for record_id in ids}

    def state(self, entity: str) -> tuple[list[Any], int, int]:
        """Every row of the entity's table, and how many outbox events and audit entries
        exist: what a refused write must leave as it was."""
        table = self.crm.entity(entity).model.__table__
        with self.crm.engine.connect() as connection:
            rows = list(connection.execute(sa.select(table).order_by(table.c.id)))
            events = connection.scalar(sa.select(sa.func.count()).select_from(OutboxEvent))
            audits = connection.scalar(sa.select(sa.func.count()).select_from(AuditEntry))
        return rows, int(events or 0), int(audits or 0)


def build_world(crm: crmkit.CRM) -> World:
    world = World(crm)
    for name, parent in TEAMS:
        world.teams[name] = crm.users.create_team(name, parent=parent).id
    for username, team, role in USERS:
        world.users[username] = crm.users.create(
            username, team=team, roles=(role,), admin=role == "admin"
        )
    for entity in ("account", *(e for e in ENTITIES if e != "account")):
        rows = []
        for line, (key, (owner, team)) in enumerate(RECORDS.items(), start=1):
            data: dict[str, object] = {
                **REQUIRED.get(entity, {}),
                LABEL[entity]: key,
                "owner_id": world.users[owner].id if owner else None,
                "team_id": world.teams[team],
            }
            if entity in RELATED:  # every one of them belongs to rep's account
                data["account_id"] = world.ids["account", "R1 rep@East"]
            if entity == "contact":
                slug = key.split()[0].lower()
                data.update(email=f"{slug}@example.com", phone=f"1380000{line:04d}")
            rows.append((line, data))
        result = crm.records(entity).create_many(rows, all_or_nothing=True)
        for key, record_id in zip(RECORDS, result.ids, strict=True):
            world.ids[entity, key] = record_id
    return world


@pytest.fixture
def world(crm: crmkit.CRM) -> World:
    """A world of this test's own, for tests that write."""
    return build_world(crm)


@pytest.fixture(scope="module")
def shared_world(template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world for every test of this module that only reads (exports write nothing but
    audit entries), on a database of its own copied from the per-worker template like
    conftest's ``database_url`` does (which is per test)."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("authorization") / "crm.db"
        shutil.copyfile(template, path)
        yield from _world_on(f"sqlite:///{path}")
        return
    name = f"crmkit_m_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield from _world_on(
            sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _world_on(url: str) -> Iterator[World]:
    crm = crmkit.CRM(Settings.from_mapping({"crmkit": {}}, database_url=url), discover=False)
    try:
        crm.pipelines.create("Sales")
        yield build_world(crm)
    finally:
        crm.close()


def all_pages(service: RecordService, actor: User, **query: Any) -> list[int]:
    """The ids of every page of a list, two records a page."""
    ids: list[int] = []
    cursor = None
    for _ in range(100):
        page = service.list(limit=2, cursor=cursor, actor=actor, **query)
        ids += [record.id for record in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("the list never ended")


# -- running one operation ---------------------------------------------------------------------


def read_outcome(read: Callable[[], bool]) -> str:
    try:
        return OK if read() else MISSING
    except NotFoundError:
        return MISSING
    except PermissionDenied:
        return REFUSED


def write_outcome(
    world: World, entity: str, write: Callable[[], object], took_effect: Callable[[], bool]
) -> str:
    before = world.state(entity)
    try:
        write()
    except NotFoundError:
        outcome = MISSING
    except PermissionDenied:
        outcome = REFUSED
    else:
        return OK if took_effect() else "ok, but it did not take effect"
    if world.state(entity) != before:
        return f"{outcome}, but the database, outbox or audit log changed"
    return outcome


def outcome(world: World, operation: str, actor_name: str, entity: str, placement: str) -> str:
    actor = world.users[actor_name]
    key = PLACED[actor_name][placement]
    record_id = world.ids[entity, key]
    service = world.service(entity)
    if operation == "get":
        return read_outcome(lambda: service.get(record_id, actor=actor).id == record_id)
    if operation == "list":
        return read_outcome(lambda: record_id in all_pages(service, actor))
    if operation == "count":
        return read_outcome(lambda: service.count({"id": record_id}, actor=actor) == 1)
    if operation == "iterate":
        return read_outcome(lambda: record_id in [r.id for r in service.iterate(actor=actor)])
    if operation == "export":
        return read_outcome(lambda: record_id in [r.id for r in service.export(actor=actor)])
    if operation == "update":
        field_name, value = UPDATED[entity], NEW_VALUE.get(entity, "changed by the test")
        return write_outcome(
            world,
            entity,
            lambda: service.update(record_id, {field_name: value}, actor=actor),
            lambda: service.get(record_id)[field_name] == value,
        )
    if operation == "assign":
        trainee = world.users["trainee"].id
        return write_outcome(
            world,
            entity,
            lambda: service.update(record_id, {"owner_id": trainee}, actor=actor),
            lambda: service.get(record_id).owner_id == trainee,
        )
    if operation == "delete":
        return write_outcome(
            world,
            entity,
            lambda: service.delete(record_id, actor=actor),
            lambda: service.count({"id": record_id}) == 0,
        )
    assert operation == "create"
    owner, team = RECORDS[key]
    data = {
        **REQUIRED.get(entity, {}),
        LABEL[entity]: "R9 new",
        "owner_id": world.users[owner].id if owner else None,
        "team_id": world.teams[team],
    }
    placed = {"owner_id": data["owner_id"], "team_id": data["team_id"]}
    return write_outcome(
        world,
        entity,
        lambda: service.create(data, actor=actor),
        lambda: service.count(placed, search="R9 new") == 1,
    )


# -- the matrix --------------------------------------------------------------------------------


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_authorisation_matrix(
    request: pytest.FixtureRequest, operation: str, role: str, placement: str
) -> None:
    world: World = request.getfixturevalue("shared_world" if operation in READS else "world")
    expected = EXPECTED[role, operation][PLACEMENTS.index(placement)]

    outcomes = {
        entity: outcome(world, operation, ACTOR[role], entity, placement) for entity in ENTITIES
    }

    assert outcomes == dict.fromkeys(ENTITIES, expected)


def test_the_table_covers_every_role_and_operation() -> None:
    assert set(EXPECTED) == {(role, op) for role in ROLES for op in OPERATIONS}
    assert all(set(row) <= {OK, MISSING, REFUSED} for row in EXPECTED.values())


# -- converting a lead (a service operation of leads only) ------------------------------------

# fmt: off
EXPECTED_CONVERT: dict[str, tuple[str, str, str, str]] = {
    # role          own      same_team  sub_team  other_team
    "sales_rep":   (OK,      MISSING,   MISSING,  MISSING),
    "manager":     (OK,      OK,        OK,       MISSING),
    "read_only":   (REFUSED, REFUSED,   REFUSED,  REFUSED),
    "admin":       (OK,      OK,        OK,       OK),
}
# fmt: on


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("role", ROLES)
def test_converting_a_lead(world: World, role: str, placement: str) -> None:
    actor_name = ACTOR[role]
    lead_id = world.ids["lead", PLACED[actor_name][placement]]
    leads = world.crm.leads

    converted = write_outcome(
        world,
        "lead",
        lambda: leads.convert(lead_id, actor=world.users[actor_name]),
        lambda: leads.get(lead_id).status == "converted",
    )

    assert converted == EXPECTED_CONVERT[role][PLACEMENTS.index(placement)]


def test_converting_a_lead_needs_the_convert_permission(world: World) -> None:
    roles = RoleService(world.crm)
    roles.create("converter_less")
    granted = [f"{e}:{action}" for e in ENTITIES for action in ("read", "create", "update")]
    for permission in granted:
        roles.grant("converter_less", permission, "all")
    clerk = world.crm.users.create("clerk", team="East", roles=("converter_less",))
    lead_id = world.ids["lead", "R1 rep@East"]

    with pytest.raises(PermissionDenied, match="lead:convert"):
        world.crm.leads.convert(lead_id, actor=clerk)


# -- lists, counts and exports agree -----------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_a_list_shows_exactly_the_records_in_scope(shared_world: World, role: str) -> None:
    actor = shared_world.users[ACTOR[role]]

    seen = {
        entity: shared_world.keys(entity, all_pages(shared_world.service(entity), actor))
        for entity in ENTITIES
    }

    assert seen == dict.fromkeys(ENTITIES, VISIBLE[ACTOR[role]])


QUERIES: dict[str, dict[str, Any]] = {
    "everything": {},
    "a search": {"search": "East"},
    "a filter": {"filters": {"owner_id__empty": False}},
    "a sort": {"sort": "-id"},
}


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_a_list_adds_up_to_the_count(
    shared_world: World, role: str, query: str
) -> None:
    actor = shared_world.users[ACTOR[role]]
    asked = QUERIES[query]
    counting = {k: v for k, v in asked.items() if k != "sort"}

    agreement = {
        entity: (
            len(set(pages := all_pages(shared_world.service(entity), actor, **asked)))
            == len(pages),
            len(pages) == shared_world.service(entity).count(**counting, actor=actor),
            sorted(pages)
            == [r.id for r in shared_world.service(entity).iterate(**counting, actor=actor)],
        )
        for entity in ENTITIES
    }

    assert agreement == dict.fromkeys(ENTITIES, (True, True, True))


@pytest.mark.parametrize("role", ["manager", "admin"])
def test_an_export_takes_what_a_list_shows(shared_world: World, role: str) -> None:
    actor = shared_world.users[ACTOR[role]]

    exported = {
        entity: [r.id for r in shared_world.service(entity).export(actor=actor)]
        for entity in ENTITIES
    }

    assert exported == {
        entity: sorted(all_pages(shared_world.service(entity), actor)) for entity in ENTITIES
    }


# -- related records ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_the_records_of_a_visible_account_are_only_those_in_scope(
    shared_world: World, role: str
) -> None:
    """Every contact, deal, activity and task of the world belongs to rep's account, which
    every actor can see; listing them by the account shows only those the actor may see."""
    actor = shared_world.users[ACTOR[role]]
    account_id = shared_world.ids["account", "R1 rep@East"]
    by_account = {"account_id": account_id}
    assert shared_world.service("account").get(account_id, actor=actor).id == account_id

    related = {
        entity: (
            shared_world.keys(
                entity, all_pages(shared_world.service(entity), actor, filters=by_account)
            ),
            shared_world.service(entity).count(by_account, actor=actor),
        )
        for entity in RELATED
    }

    expected = VISIBLE[ACTOR[role]]
    assert related == dict.fromkeys(RELATED, (expected, len(expected)))


# -- search and filters never leak -------------------------------------------------------------


def found_by(world: World, actor: User, entity: str, **query: Any) -> tuple[list[int], int, int]:
    service = world.service(entity)
    return (
        all_pages(service, actor, **query),
        service.count(**query, actor=actor),
        len(list(service.iterate(**query, actor=actor))),
    )


@pytest.mark.parametrize("entity", ENTITIES)
def test_a_search_matching_only_records_out_of_scope_finds_nothing(
    shared_world: World, entity: str
) -> None:
    rep = shared_world.users["rep"]
    assert shared_world.service(entity).count(search="R2") == 1  # rep2's record is there

    assert found_by(shared_world, rep, entity, search="R2") == ([], 0, 0)


@pytest.mark.parametrize(
    "search", ["r2@example.com", "138 0000 0002", "+8613800000002"], ids=["email", "phone", "e164"]
)
def test_a_search_for_the_contact_details_of_a_contact_out_of_scope_finds_nothing(
    shared_world: World, search: str
) -> None:
    rep = shared_world.users["rep"]
    assert shared_world.service("contact").count(search=search) == 1

    assert found_by(shared_world, rep, "contact", search=search) == ([], 0, 0)


FILTERS: dict[str, Callable[[World], dict[str, object]]] = {
    "email": lambda world: {"email": "r2@example.com"},
    "phone": lambda world: {"phone": "138 0000 0002"},
    "name": lambda world: {"full_name__contains": "rep2"},
    "owner": lambda world: {"owner_id": world.users["rep2"].id},
    "team": lambda world: {"team_id": world.teams["West"]},
}


@pytest.mark.parametrize("name", FILTERS)
def test_a_filter_matching_only_records_out_of_scope_finds_nothing(
    shared_world: World, name: str
) -> None:
    rep = shared_world.users["rep"]
    filters = FILTERS[name](shared_world)
    assert shared_world.service("contact").count(filters) >= 1

    assert found_by(shared_world, rep, "contact", filters=filters) == ([], 0, 0)


# -- denied reads look like missing records; refused writes ------------------------------------


@pytest.mark.parametrize("entity", ENTITIES)
def test_a_record_out_of_scope_is_reported_like_one_that_does_not_exist(
    shared_world: World, entity: str
) -> None:
    rep = shared_world.users["rep"]
    hidden = shared_world.ids[entity, "R2 rep2@East"]
    absent = max(shared_world.ids.values()) + 1000

    with pytest.raises(NotFoundError) as out_of_scope:
        shared_world.service(entity).get(hidden, actor=rep)
    with pytest.raises(NotFoundError) as nowhere:
        shared_world.service(entity).get(absent, actor=rep)

    assert str(out_of_scope.value) == str(nowhere.value).replace(str(absent), str(hidden))


@pytest.mark.parametrize("entity", ["contact", "task"])
def test_a_manager_may_not_hand_a_record_to_a_team_outside_their_tree(
    world: World, entity: str
) -> None:
    mgr = world.users["mgr"]
    record_id = world.ids[entity, "R1 rep@East"]
    before = world.state(entity)

    with pytest.raises(PermissionDenied, match=f"{entity}:(assign|update) covers subtree"):
        world.service(entity).update(
            record_id,
            {"owner_id": world.users["ro"].id, "team_id": world.teams["West"]},
            actor=mgr,
        )

    assert world.state(entity) == before


def test_a_sales_rep_creating_many_records_for_someone_else_creates_none(world: World) -> None:
    rep = world.users["rep"]
    before = world.state("contact")
    rows = [
        (1, {"full_name": "R9 mine"}),
        (2, {"full_name": "R9 theirs", "owner_id": world.users["rep2"].id}),
    ]

    result = world.service("contact").create_many(rows, actor=rep)

    assert [(error.line, "may not create" in error.message) for error in result.errors] == [
        (2, True)
    ]
    rows_after = world.state("contact")[0]
    assert [row.full_name for row in rows_after[len(before[0]) :]] == ["R9 mine"]


def test_a_read_only_user_creating_many_records_is_refused_outright(world: World) -> None:
    ro = world.users["ro"]
    before = world.state("contact")

    with pytest.raises(PermissionDenied, match="contact:create"):
        world.service("contact").create_many([(1, {"full_name": "R9 new"})], actor=ro)

    assert world.state("contact") == before


# -- links to other records honour the read scope too ------------------------------------------

#: (entity, field, linked entity): a rep links their own record to rep2's record.
LINKS = [
    ("contact", "account_id", "account"),
    ("deal", "contact_id", "contact"),
    ("activity", "contact_id", "contact"),
    ("task", "deal_id", "deal"),
]


def link_error(world: World, entity: str, field_name: str, target: int) -> str:
    rep = world.users["rep"]
    with pytest.raises(ValidationError) as refused:
        world.service(entity).update(
            world.ids[entity, "R1 rep@East"], {field_name: target}, actor=rep
        )
    return str(refused.value)


@pytest.mark.parametrize(("entity", "field_name", "linked"), LINKS)
def test_linking_to_a_record_out_of_scope_is_refused_as_if_it_did_not_exist(
    world: World, entity: str, field_name: str, linked: str
) -> None:
    out_of_scope = world.ids[linked, "R2 rep2@East"]
    absent = max(world.ids.values()) + 1000
    before = world.state(entity)

    refused = link_error(world, entity, field_name, out_of_scope)

    assert refused == link_error(world, entity, field_name, absent).replace(
        str(absent), str(out_of_scope)
    )
    assert world.state(entity) == before


def test_creating_a_record_linked_to_one_out_of_scope_is_refused(world: World) -> None:
    rep = world.users["rep"]
    contact_id = world.ids["contact", "R2 rep2@East"]

    with pytest.raises(ValidationError, match=f"contact {contact_id} does not exist"):
        world.service("activity").create(
            {"kind": "call", "subject": "R9 new", "contact_id": contact_id}, actor=rep
        )


@pytest.mark.parametrize(
    ("role", "key"), [("sales_rep", "R1 rep@East"), ("manager", "R3 rep_e1@East-1")]
)
def test_linking_to_a_record_in_scope_is_allowed(world: World, role: str, key: str) -> None:
    actor = world.users[ACTOR[role]]
    contact_id = world.ids["contact", key]

    task = world.service("task").create(
        {"title": "R9 call back", "contact_id": contact_id}, actor=actor
    )

    assert task.contact_id == contact_id


# -- who the actor is now, not when their User object was read ---------------------------------


def test_a_deactivated_user_can_no_longer_read_records(world: World) -> None:
    world.crm.users.deactivate("rep2")
    rep2 = world.crm.users.get("rep2")

    with pytest.raises(PermissionDenied):
        world.service("contact").count(actor=rep2)


def test_a_manager_moved_to_another_team_no_longer_sees_the_old_one(world: World) -> None:
    mgr = world.users["mgr"]  # read before the move
    world.crm.users.set_team("mgr", "West")

    seen = world.keys("contact", all_pages(world.service("contact"), mgr))

    assert seen == {"R4 mgr@East", "R6 ro@West", "R7 pool@West", "R8 pool@West-1"}
