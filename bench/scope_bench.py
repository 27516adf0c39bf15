"""Benchmark 4: scoped reads.

A page of 50 contacts (and a count) read through crmkit's real service path,
``crm.contacts.list(limit=50, sort=...)`` / ``crm.contacts.count()``, by the system actor (no
scope) and by managers whose ``contact:read`` scope is "own team and all its sub-teams", on
one database holding 1 M contacts (100 k with ``--quick``), 500 users and a 5-level team
tree. The scoped calls add ``owner_id = :me OR team_id IN (:subtree)`` to the SQL (see
``Access.condition``); the goal is that a scoped page costs at most 1.5 × the unscoped one.

The data is written with raw bulk inserts (``sqlite3`` ``executemany`` / psycopg ``COPY``)
into the migrated schema (the secondary indexes of ``contacts`` are dropped for the load and
created again from their own definitions, so the schema is exactly the migrated one).
Run alone with ``python bench/scope_bench.py [--quick] [--backend B]`` (prints, writes
nothing); ``bench/run.py --only scope`` writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import re
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from attrs import define, field
from sqlalchemy import event, select
from sqlalchemy.orm import Session

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dbs import BACKENDS, Databases, libpq_url, sqlite_path  # noqa: E402

import crmkit  # noqa: E402
from crmkit.entities.organisation import User  # noqa: E402
from crmkit.permissions.access import subtree  # noqa: E402

Log = Callable[[str], None]

USERS = 500
FANOUT = 4  # 1 → 4 → 16 → 64 → 256 teams: 341 teams, 5 levels
LEVELS = 5
PAGE = 50
DEEP_AFTER = 500  # the "deep page" is the one after the first 500 rows (page 11)
BASE_TIME = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
SPAN = dt.timedelta(days=3 * 365)

#: (key, label, sort) of the timed page queries, and the count.
QUERIES: tuple[tuple[str, str, str | None], ...] = (
    ("id-1", "sort id, page 1", "id"),
    ("id-11", "sort id, page 11", "id"),
    ("created-1", "sort -created_at, page 1", "-created_at"),
    ("created-11", "sort -created_at, page 11", "-created_at"),
    ("name-1", "sort full_name, page 1", "full_name"),
    ("name-11", "sort full_name, page 11", "full_name"),
    ("count", "count()", None),
)

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧蔡潘田董袁"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕"
_LATIN = ("David", "Amy", "Kevin", "Grace", "Tony", "Linda", "Jason", "Cindy", "Eric", "Helen")
_LATIN_LAST = ("Smith", "Müller", "Tan", "Lim", "Wong", "Chan", "Garcia", "Nguyen", "Ng")
_CITIES = ("上海", "北京", "深圳", "广州", "杭州", "成都", "南京", "武汉", "台北", "香港")
_TITLES = ("销售经理", "采购总监", "总经理", "Purchasing Manager", "CEO", "市场专员")
_CHANNELS = ("wechat", "展会", "website", "referral", "cold call", "抖音")


# -- the organisation ----------------------------------------------------------------------


@define
class Organisation:
    """Teams (id → parent), users (id → team) and the actors the benchmark reads as."""

    parents: dict[int, int | None]
    levels: dict[int, int]
    user_teams: dict[int, int]
    actors: list[Actor] = field(factory=list)


@define
class Actor:
    """Who reads: ``user_id`` ``None`` is the system (no scope)."""

    key: str
    label: str
    user_id: int | None
    team_id: int | None = None
    teams: int = 0  # teams in the subtree
    visible: int = 0  # contacts the actor may see
    share: float = 1.0


def organisation() -> Organisation:
    """The team tree, the users, and the actors.

    Team 1 is the company; each team has ``FANOUT`` sub-teams down to level 4 (256 leaf
    teams). Users 1-85 head the 85 non-leaf teams (user 1, the head of the company, is an
    admin; the others hold the built-in ``manager`` role, scope "team and sub-teams"); users
    86-500 are sales reps in the leaf teams (``sales_rep``), two per leaf for the first 159
    leaves and one for the rest."""
    parents: dict[int, int | None] = {1: None}
    levels = {1: 0}
    by_level = [[1]]
    next_id = 2
    for level in range(1, LEVELS):
        row = []
        for parent in by_level[-1]:
            for _ in range(FANOUT):
                parents[next_id] = parent
                levels[next_id] = level
                row.append(next_id)
                next_id += 1
        by_level.append(row)
    heads = [team for level in by_level[:-1] for team in level]  # 85 teams
    leaves = by_level[-1]
    user_teams = {index + 1: team for index, team in enumerate(heads)}
    for offset in range(USERS - len(heads)):
        user_teams[len(heads) + offset + 1] = leaves[offset % len(leaves)]
    org = Organisation(parents, levels, user_teams)
    org.actors = [
        Actor("system", "system (no scope)", None),
        Actor("admin", "admin user (no scope)", 1, 1),
    ]
    leaf_rep = next(user for user, team in user_teams.items() if team == leaves[0])
    for level, user_id in ((1, 2), (2, 6), (3, 22), (4, leaf_rep)):
        team = user_teams[user_id]
        assert levels[team] == level
        what = "leaf-team rep" if level == 4 else f"level-{level} manager"
        org.actors.append(
            Actor(f"L{level}", what, user_id, team, teams=len(subtree(parents, team)))
        )
    return org


def _count_visible(org: Organisation, owners: Counter[int], teams: Counter[int]) -> None:
    total = sum(owners.values())
    for actor in org.actors:
        if actor.user_id is None or actor.key == "admin":
            actor.visible, actor.share = total, 1.0
            continue
        assert actor.team_id is not None
        reach = subtree(org.parents, actor.team_id)
        own_elsewhere = owners[actor.user_id] if org.user_teams[actor.user_id] not in reach else 0
        actor.visible = sum(teams[team] for team in reach) + own_elsewhere
        actor.share = actor.visible / total


# -- building the database -----------------------------------------------------------------

CONTACT_COLUMNS = (
    "id", "full_name", "email", "phone", "city", "title", "source_channel", "lifecycle_stage",
    "extra_emails", "extra_phones", "social", "custom", "created_at", "updated_at", "version",
    "owner_id", "team_id", "created_by_id", "updated_by_id",
)  # fmt: skip


def _names(rng: random.Random, count: int) -> list[str]:
    names = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.7:
            given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
            names.append(rng.choice(_SURNAMES) + given)
        elif kind < 0.85:
            names.append(f"{rng.choice(_LATIN)} {rng.choice(_SURNAMES)}{rng.choice(_GIVEN)}")
        else:
            names.append(f"{rng.choice(_LATIN)} {rng.choice(_LATIN_LAST)}")
    return names


def contact_tuples(
    org: Organisation, count: int, *, sqlite: bool, seed: int = 7
) -> tuple[Iterator[tuple[Any, ...]], Counter[int], Counter[int]]:
    """The contacts, as tuples of ``CONTACT_COLUMNS``, and the per-owner and per-team counts.

    Owners are drawn uniformly from the 500 users (the order of ids is unrelated to teams, as
    when everybody creates contacts over time); a contact's team is its owner's team (what
    ``create`` does); ``created_at`` grows with the id over three years, with jitter."""
    rng = random.Random(seed)
    owners = [rng.randrange(1, USERS + 1) for _ in range(count)]
    owner_counts = Counter(owners)
    team_counts: Counter[int] = Counter()
    for user, n in owner_counts.items():
        team_counts[org.user_teams[user]] += n
    pool = _names(rng, 50_000)
    step = SPAN / max(count, 1)

    def stamp(moment: dt.datetime) -> str:
        if sqlite:  # SQLAlchemy's SQLite DATETIME text, naive UTC
            return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return moment.isoformat(sep=" ", timespec="microseconds")

    def rows() -> Iterator[tuple[Any, ...]]:
        randrange, choice = rng.randrange, rng.choice
        for index, owner in enumerate(owners):
            record_id = index + 1
            moment = BASE_TIME + step * index + dt.timedelta(seconds=randrange(-3600, 3600))
            created = stamp(moment)
            yield (
                record_id,
                pool[randrange(len(pool))],
                f"c{record_id}@example.cn" if randrange(10) else None,
                f"+86138{randrange(10**8):08d}",
                choice(_CITIES),
                choice(_TITLES),
                choice(_CHANNELS),
                "prospect",
                "[]",
                "[]",
                "{}",
                "{}",
                created,
                created,
                1,
                owner,
                org.user_teams[owner],
                owner,
                owner,
            )

    return rows(), owner_counts, team_counts


def _org_rows(org: Organisation, *, sqlite: bool) -> dict[str, list[tuple[Any, ...]]]:
    now = "2023-01-01 00:00:00.000000" + ("" if sqlite else "+00")
    true, false = (1, 0) if sqlite else (True, False)
    teams = [(team, f"team-{team}", parent, now) for team, parent in org.parents.items()]
    head = {team: user for user, team in org.user_teams.items() if user <= 85}
    users = []
    for user, team in org.user_teams.items():
        parent = org.parents[team]  # a head reports to the head of the team above; a rep
        manager = head.get(parent) if parent is not None else None  # to the leaf's parent's
        users.append(
            (
                user,
                f"user{user}",
                f"User {user}",
                f"user{user}@example.cn",
                team,
                true,
                true if user == 1 else false,
                now,
                manager,
            )
        )
    return {"teams": teams, "users": users}


def _grant_rows(org: Organisation, roles: dict[str, int]) -> list[tuple[int, int]]:
    leaf_actor = next(a.user_id for a in org.actors if a.key == "L4")
    rows = []
    for user in org.user_teams:
        if user == 1:
            rows.append((user, roles["admin"]))
        elif user <= 85 or user == leaf_actor:
            rows.append((user, roles["manager"]))
        else:
            rows.append((user, roles["sales_rep"]))
    return rows


TEAM_SQL = "INSERT INTO teams (id, name, parent_id, created_at) VALUES ({})"
USER_SQL = (
    "INSERT INTO users (id, username, display_name, email, team_id, is_active, is_admin,"
    " created_at, manager_id) VALUES ({})"
)


def build_sqlite(url: str, org: Organisation, contacts: int) -> None:
    """Fill a migrated SQLite database: ``executemany`` in one transaction."""
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = OFF")  # the load only; reads use crmkit's own
    connection.execute("PRAGMA cache_size = -200000")
    indexes = [
        (name, sql)
        for name, sql in connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'contacts'"
            " AND sql IS NOT NULL"
        )
    ]
    roles = dict(connection.execute("SELECT name, id FROM roles"))
    rows, owners, teams = contact_tuples(org, contacts, sqlite=True)
    connection.execute("BEGIN IMMEDIATE")
    # teams reference their parents, users their managers: no deferred FKs needed as parents
    # come first, but managers may be later users
    connection.execute("PRAGMA defer_foreign_keys = ON")
    org_rows = _org_rows(org, sqlite=True)
    connection.executemany(TEAM_SQL.format(", ".join("?" * 4)), org_rows["teams"])
    connection.executemany(USER_SQL.format(", ".join("?" * 9)), org_rows["users"])
    connection.executemany(
        "INSERT INTO user_roles (user_id, role_id) VALUES (?, ?)", _grant_rows(org, roles)
    )
    for name, _ in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    marks = ", ".join("?" * len(CONTACT_COLUMNS))
    connection.executemany(
        f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) VALUES ({marks})", rows
    )
    for _, sql in indexes:
        connection.execute(sql)
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    _count_visible(org, owners, teams)


def build_postgres(url: str, org: Organisation, contacts: int) -> None:
    """Fill a migrated PostgreSQL database: ``COPY`` in one transaction, then
    ``VACUUM ANALYZE`` (what autovacuum does by itself shortly after such a load)."""
    with psycopg.connect(libpq_url(url)) as connection:
        roles: dict[str, int] = dict(connection.execute("SELECT name, id FROM roles").fetchall())
        indexes = connection.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'contacts'"
            " AND indexname LIKE 'ix\\_%'"
        ).fetchall()
        rows, owners, teams = contact_tuples(org, contacts, sqlite=False)
        org_rows = _org_rows(org, sqlite=False)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            with cursor.copy("COPY teams (id, name, parent_id, created_at) FROM STDIN") as copy:
                for row in org_rows["teams"]:
                    copy.write_row(row)
            columns = "id, username, display_name, email, team_id, is_active, is_admin,"
            columns += " created_at, manager_id"
            with cursor.copy(f"COPY users ({columns}) FROM STDIN") as copy:
                for row in org_rows["users"]:
                    copy.write_row(row)
            with cursor.copy("COPY user_roles (user_id, role_id) FROM STDIN") as copy:
                for row in _grant_rows(org, roles):
                    copy.write_row(row)
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            with cursor.copy(f"COPY contacts ({', '.join(CONTACT_COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            for _, definition in indexes:
                cursor.execute(definition)
            for table in ("teams", "users", "contacts"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))"
                )
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")
    _count_visible(org, owners, teams)


# -- measuring -----------------------------------------------------------------------------


@define
class Timings:
    """Seconds of repeated calls."""

    seconds: list[float] = field(factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


@define
class Plan:
    """The plan of one query as the database ran it: a one-line shape and the full text."""

    shape: str
    text: str
    sql_ms: float | None = None  # PostgreSQL's own execution time (EXPLAIN ANALYZE)


@define
class BackendResult:
    """Everything measured on one engine."""

    backend: str
    contacts: int
    build_seconds: float
    actors: list[Actor]
    repeats: dict[str, int]
    calls: dict[tuple[str, str], Timings]  # (actor key, query key) → service-path times
    sql: dict[tuple[str, str], Timings]  # the same statement run bare on the connection
    access: dict[str, Timings]  # opening a read operation and loading the actor's access
    plans: dict[tuple[str, str], Plan]
    rows: dict[tuple[str, str], int]  # rows returned (a page) or counted


class StatementCatcher:
    """Remembers the last ``SELECT ... FROM contacts`` the engine ran."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statement: str | None = None
        self.parameters: Any = None
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM contacts" in statement and statement.lstrip().upper().startswith("SELECT"):
            self.statement, self.parameters = statement, parameters

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def _load_user(crm: Any, user_id: int | None) -> User | None:
    if user_id is None:
        return None
    with Session(crm.engine) as session:
        user = session.scalars(select(User).where(User.id == user_id)).one()
        session.expunge(user)
        return user


def _call(crm: Any, query: str, actor: User | None, cursors: dict[str, str | None]) -> int:
    """Run one query through the service; the number of rows returned or counted."""
    if query == "count":
        return int(crm.contacts.count(actor=actor))
    sort = next(s for key, _, s in QUERIES if key == query)
    assert sort is not None
    cursor = cursors.get(query)
    page = crm.contacts.list(limit=PAGE, sort=sort, cursor=cursor, actor=actor)
    return len(page.items)


def _deep_cursor(crm: Any, sort: str, actor: User | None) -> str | None:
    cursor: str | None = crm.contacts.list(limit=DEEP_AFTER, sort=sort, actor=actor).next_cursor
    return cursor


def _bare_seconds(crm: Any, statement: str, parameters: Any) -> float:
    """One run of ``statement`` on a pooled DBAPI connection, all rows fetched."""
    raw = crm.engine.raw_connection()
    try:
        cursor = raw.cursor()
        start = time.perf_counter()
        cursor.execute(statement, parameters)
        cursor.fetchall()
        elapsed = time.perf_counter() - start
        cursor.close()
        raw.rollback()
    finally:
        raw.close()
    return elapsed


def _explain(crm: Any, backend: str, statement: str, parameters: Any) -> Plan:
    raw = crm.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if backend == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            details = [(row[0], row[1], row[3]) for row in cursor.fetchall()]
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, detail in details:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + detail)
            shape = _grouped(
                [
                    re.sub(r"(subquery-|anon_)\d+", r"\1N", d)
                    for _, _, d in details
                    if not re.fullmatch(r"INDEX \d+", d)
                ],
                "; ",
            )
            plan = Plan(shape, "\n".join(lines))
        else:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            document = cursor.fetchone()[0]
            top = document[0]
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            text = "\n".join(row[0] for row in cursor.fetchall())
            plan = Plan(_pg_shape(top["Plan"]), text, float(top["Execution Time"]))
        cursor.close()
        raw.rollback()
    finally:
        raw.close()
    return plan


def _grouped(parts: list[str], glue: str) -> str:
    """``parts`` joined by ``glue``, each distinct part once, in order of first appearance,
    with ``N ×`` before one that appears N times (a union's 22 alike branches)."""
    counts = Counter(parts)
    return glue.join(
        f"{counts[part]} × {part}" if counts[part] > 1 else part for part in dict.fromkeys(parts)
    )


def _pg_shape(node: dict[str, Any]) -> str:
    """``Limit ← Index Scan (pk_contacts; filter removed 431 rows) ← ...`` from a JSON plan."""
    kind = str(node["Node Type"])
    notes = []
    if "Index Name" in node:
        notes.append(node["Index Name"])
    if node.get("Sort Method"):
        notes.append(node["Sort Method"])
    if node.get("Rows Removed by Filter"):
        removed = node["Rows Removed by Filter"] * node.get("Actual Loops", 1)
        notes.append(f"{int(removed):,} rows filtered out")
    if kind.startswith(("Seq Scan", "Index", "Bitmap Heap")):
        notes.append(f"{int(node['Actual Rows'] * node.get('Actual Loops', 1)):,} rows")
    if node.get("Workers Launched"):
        notes.append(f"{node['Workers Launched']} workers")
    label = kind + (f" ({'; '.join(notes)})" if notes else "")
    children = [_pg_shape(child) for child in node.get("Plans", [])]
    if not children:
        return label
    inner = children[0] if len(children) == 1 else "[" + _grouped(children, " + ") + "]"
    return f"{label} ← {inner}"


def measure(
    backend: str,
    url: str,
    org: Organisation,
    *,
    repeats: int,
    budget: float,
    log: Log,
) -> BackendResult:
    """Time every query for every actor, interleaved (each round visits the actors in a new
    random order), after a warm-up."""
    crm = crmkit.open(url, discover=False)
    rng = random.Random(11)
    try:
        users = {actor.key: _load_user(crm, actor.user_id) for actor in org.actors}
        cursors: dict[str, dict[str, str | None]] = {actor.key: {} for actor in org.actors}
        for actor in org.actors:
            for key, _, sort in QUERIES:
                if sort is not None and key.endswith("-11"):
                    cursors[actor.key][key] = _deep_cursor(crm, sort, users[actor.key])
        calls: dict[tuple[str, str], Timings] = {}
        sql: dict[tuple[str, str], Timings] = {}
        plans: dict[tuple[str, str], Plan] = {}
        rows: dict[tuple[str, str], int] = {}
        used: dict[str, int] = {}
        catcher = StatementCatcher(crm.engine)
        statements: dict[tuple[str, str], tuple[str, Any]] = {}
        try:
            for key, label, _ in QUERIES:
                slowest = 0.0
                for actor in org.actors:  # warm-up, row counts and the statements
                    start = time.perf_counter()
                    rows[actor.key, key] = _call(crm, key, users[actor.key], cursors[actor.key])
                    slowest = max(slowest, time.perf_counter() - start)
                    assert catcher.statement is not None
                    statements[actor.key, key] = (catcher.statement, catcher.parameters)
                # spend about ``budget`` seconds per query, at least 7 rounds
                rounds = max(7, min(repeats, int(budget / (slowest * len(org.actors) * 1.3))))
                used[key] = rounds
                gc.collect()
                for _ in range(rounds):
                    order = list(org.actors)
                    rng.shuffle(order)
                    for actor in order:
                        user = users[actor.key]
                        start = time.perf_counter()
                        _call(crm, key, user, cursors[actor.key])
                        elapsed = time.perf_counter() - start
                        calls.setdefault((actor.key, key), Timings()).seconds.append(elapsed)
                        statement, parameters = statements[actor.key, key]
                        bare = _bare_seconds(crm, statement, parameters)
                        sql.setdefault((actor.key, key), Timings()).seconds.append(bare)
                system = calls["system", key].median
                log(
                    f"  {label}: system {system * 1e3:.1f} ms; "
                    + ", ".join(
                        f"{a.key} {calls[a.key, key].median / system:.2f} ×"
                        for a in org.actors
                        if a.key != "system"
                    )
                    + f" ({rounds} rounds)"
                )
        finally:
            catcher.close()
        for (actor_key, key), (statement, parameters) in statements.items():
            plans[actor_key, key] = _explain(crm, backend, statement, parameters)
        access: dict[str, Timings] = {}
        for _ in range(repeats):
            for actor in org.actors:
                start = time.perf_counter()
                with crm.transaction(users[actor.key], write=False) as op:
                    op.access  # noqa: B018 - loading it is what is timed
                elapsed = time.perf_counter() - start
                access.setdefault(actor.key, Timings()).seconds.append(elapsed)
    finally:
        crm.close()
    return BackendResult(
        backend=backend,
        contacts=0,
        build_seconds=0.0,
        actors=org.actors,
        repeats=used,
        calls=calls,
        sql=sql,
        access=access,
        plans=plans,
        rows=rows,
    )


def run(
    backends: Sequence[str],
    *,
    contacts: int,
    repeats: int = 31,
    budget: float = 12.0,
    log: Log = print,
) -> list[BackendResult]:
    """Build the data set on each engine and measure it."""
    results = []
    for backend in backends:
        with Databases(backend) as dbs:
            url = dbs.fresh()
            org = organisation()
            log(f"scope: {backend}: building {contacts:,} contacts")
            start = time.perf_counter()
            (build_sqlite if backend == "sqlite" else build_postgres)(url, org, contacts)
            built = time.perf_counter() - start
            log(f"scope: {backend}: built in {built:.0f} s; measuring")
            result = measure(backend, url, org, repeats=repeats, budget=budget, log=log)
            result.contacts, result.build_seconds = contacts, built
            results.append(result)
            dbs.drop(url)
    return results


# -- the report ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:,.2f}" if ms < 10 else f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def _ratio(value: float, base: float) -> str:
    ratio = value / base
    text = f"{ratio:.2f} ×"
    return f"**{text}**" if ratio > 1.5 else text


def as_markdown(results: Sequence[BackendResult]) -> list[str]:
    """The results section of docs/benchmarks.md."""
    if not results:
        return []
    first = results[0]
    lines = [
        "### 4. Scoped reads",
        "",
        f"{first.contacts:,} contacts, {USERS} users, {len(organisation().parents)} teams in 5"
        " levels (1 → 4 → 16 → 64 → 256). Each figure: median / p95 of the service call"
        f" (`crm.contacts.list(limit={PAGE}, sort=...)` or `crm.contacts.count()`, a read"
        " transaction each), rounds interleaved over the actors; the ratio is the median over"
        " the system actor's median. Page 11 is the page after the first"
        f" {DEEP_AFTER} rows, reached with the cursor `list` returned. Ratios over 1.5 are in"
        " bold.",
        "",
    ]
    for result in results:
        actors = [a for a in result.actors if a.key != "system"]
        lines += [
            f"**{result.backend}**"
            + f" (data built in {result.build_seconds:.0f} s). Actors:"
            + "; ".join(
                f" {a.key} = {a.label}"
                + (
                    f" (subtree of {a.teams} team{'s' if a.teams > 1 else ''},"
                    f" {a.visible:,} contacts = {a.share:.1%})"
                    if a.teams
                    else ""
                )
                for a in actors
            )
            + ".",
            "",
            "| Query | system: median / p95 | "
            + " | ".join(f"{a.key}: median / p95, ratio" for a in actors)
            + " | rounds |",
            "|---|---:|" + "---:|" * len(actors) + "---:|",
        ]
        for key, label, _ in QUERIES:
            base = result.calls["system", key]
            cells = [f"{_ms(base.median)} / {_ms(base.p95)} ms"]
            for a in actors:
                t = result.calls[a.key, key]
                cells.append(f"{_ms(t.median)} / {_ms(t.p95)} ms, {_ratio(t.median, base.median)}")
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {result.repeats[key]} |")
        access_base = result.access["system"].median
        lines += [
            "| *opening the read operation + loading the actor's access* | "
            f"{_ms(access_base)} ms | "
            + " | ".join(f"{_ms(result.access[a.key].median)} ms" for a in actors)
            + " | |",
            "",
            "The same SQL statements run bare on the driver connection (median ms, all rows"
            " fetched; no ORM objects, no access loading):",
            "",
            "| Query | system | " + " | ".join(f"{a.key} (ratio)" for a in actors) + " |",
            "|---|---:|" + "---:|" * len(actors),
        ]
        for key, label, _ in QUERIES:
            bare = result.sql["system", key].median
            cells = [_ms(bare)]
            for a in actors:
                median = result.sql[a.key, key].median
                cells.append(f"{_ms(median)} ({_ratio(median, bare)})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        how = (
            "`EXPLAIN QUERY PLAN`"
            if result.backend == "sqlite"
            else "`EXPLAIN (ANALYZE, BUFFERS)` with the same parameters; execution time in brackets"
        )
        lines += ["", f"Plans on {result.backend} ({how}):", ""]
        for key, label, _ in QUERIES:
            shapes: dict[str, list[str]] = {}
            for a in result.actors:
                plan = result.plans[a.key, key]
                who = a.key if plan.sql_ms is None else f"{a.key} [{_ms(plan.sql_ms / 1e3)} ms]"
                shapes.setdefault(plan.shape, []).append(who)
            lines.append(f"- *{label}*:")
            for shape, actors_of in shapes.items():
                lines.append(f"  - {', '.join(actors_of)}: `{shape}`")
        lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="scoped reads benchmark (prints only)")
    parser.add_argument("--quick", action="store_true", help="100 000 contacts instead of 1 M")
    parser.add_argument("--contacts", type=int)
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--plans", action="store_true", help="also print the full plans")
    arguments = parser.parse_args(argv)
    began = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {message}", flush=True)

    contacts = arguments.contacts or (100_000 if arguments.quick else 1_000_000)
    results = run(arguments.backend or list(BACKENDS), contacts=contacts, log=log)
    print("\n".join(as_markdown(results)))
    if arguments.plans:
        for result in results:
            for (actor, key), plan in result.plans.items():
                print(f"--- {result.backend} {actor} {key}\n{plan.text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
