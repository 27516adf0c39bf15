"""Segment benchmark: count and list the members of a realistic segment through crmkit
(``crm.segments.count``, ``members``, ``member_ids``), for an administrator and for a scoped
sales rep, next to the SQL a consultant would write by hand for the same question, results
checked equal.

The segment (contacts): the contact's account is in 上海, one of its deals was won this
year, its RFM segment is ``champions`` (the insight plugin's measure, from the snapshot
``crmkit insight refresh`` computes) and its custom field ``vip_level`` is gold or silver:

    {"account.city": "上海", "deals.stage_kind": "won", "deals.closed_at__gte": "year_start",
     "rfm_segment": "champions", "vip_level__in": ["gold", "silver"]}

The data is the insight benchmark's (``insights_bench.py --build``: contacts, purchases,
deals and their stage history) plus, from ``--build`` here: ``--accounts`` accounts in eight
cities (上海 one in four), each owned by one of ``--reps`` sales reps; nine contacts in ten
belong to an account and are owned by its owner (the others by a rep of their own); a deal
is owned by its contact's owner; ``vip_level`` gold / silver / bronze / none on a tenth /
three tenths / three tenths / the rest, independent of the rest; then the insight snapshot.
Owners and values are drawn by integer hashing in SQL (the same on both engines).

The rep holds the built-in ``sales_rep`` role (``contact:read`` and ``account:read`` and
``deal:read`` of their own records) with ``insight:read`` granted to it (the RFM measure
needs it). crmkit then counts a contact only if the rep owns it, owns its account and owns
the won deal: the hand-written SQL for the rep says the same three conditions.

    .nox/bench/bin/python bench/insights_bench.py --build --url sqlite:///seg.db \\
        --contacts 1000000 --purchases 5.5
    .nox/bench/bin/python bench/segments_bench.py --build --url sqlite:///seg.db
    .nox/bench/bin/python bench/segments_bench.py --on sqlite:///seg.db --rounds 3

Every round times, for the administrator and then the rep, the count, the first page of 50
members (full records) and every member's id, crmkit first in odd rounds and the SQL first
in even ones, in one warm process; every round is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crmkit

SEGMENT = "上海今年赢单的VIP冠军"
FILTERS: dict[str, Any] = {
    "account.city": "上海",
    "deals.stage_kind": "won",
    "deals.closed_at__gte": "year_start",
    "rfm_segment": "champions",
    "vip_level__in": ["gold", "silver"],
}
CITIES = ("上海", "北京", "广州", "深圳", "杭州", "成都", "南京", "武汉")
PAGE = 50


class BenchFields:
    """The custom field the segment filters on."""

    @crmkit.hookimpl
    def crmkit_custom_fields(self) -> list[crmkit.CustomField]:
        return [
            crmkit.CustomField(
                entity="contact",
                name="vip_level",
                type=crmkit.FieldType.CHOICE,
                choices=("gold", "silver", "bronze"),
            )
        ]


def open_crm(url: str, *, upgrade: bool = False) -> crmkit.CRM:
    import crmkit_insights
    import crmkit_loyalty

    plugins = {"loyalty": crmkit_loyalty, "insights": crmkit_insights, "bench": BenchFields()}
    return crmkit.open(url, plugins=plugins, discover=False, upgrade=upgrade)


# -- data ----------------------------------------------------------------------------------


def _hash(column: str, multiplier: int, modulo: int) -> str:
    """A well-spread pseudo-random 0 .. modulo-1 of an integer column, in SQL both engines
    compute alike (64-bit integers)."""
    return f"((CAST({column} AS BIGINT) * {multiplier} + 12345) % 1000000007 % {modulo})"


def build(url: str, accounts: int, reps: int) -> dict[str, Any]:
    """Add accounts, reps, owners, ``vip_level`` and the insight snapshot to a database the
    insight benchmark built; create the segment."""

    crm = open_crm(url, upgrade=True)
    started = time.perf_counter()
    try:
        known = {user.username for user in crm.users.list()}
        if "boss" not in known:
            crm.users.create("boss", admin=True)
        for number in range(1, reps + 1):
            if f"rep{number}" not in known:
                crm.users.create(f"rep{number}", roles=["sales_rep"])
        crm.roles.grant("sales_rep", "insight:read")
        postgres = crm.engine.dialect.name == "postgresql"
        with crm.transaction() as op:
            connection = op.session.connection()
            first_rep = connection.execute(
                text("SELECT min(id) FROM users WHERE username LIKE 'rep%'")
            ).scalar()
            now = crmkit.utcnow()
            crmkit.bulk_insert(
                connection,
                crmkit.Account.__table__,  # type: ignore[arg-type]
                [
                    {
                        "id": i,
                        "name": f"公司{i}",
                        "city": CITIES[0] if i % 4 == 0 else CITIES[1 + i % 7],
                        "lifecycle_stage": "customer",
                        "owner_id": first_rep + i % reps,
                        "custom": {},
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(1, accounts + 1)
                ],
            )
            account = f"(1 + {_hash('id', 69621, accounts)})"
            has_account = f"{_hash('id', 48271, 10)} <> 0"
            vip = _hash("id", 16807, 10)
            level = (
                f"CASE WHEN {vip} < 1 THEN 'gold' WHEN {vip} < 4 THEN 'silver'"
                f" WHEN {vip} < 7 THEN 'bronze' END"
            )
            custom = (
                f"CASE WHEN {vip} < 7 THEN json_build_object('vip_level', {level})"
                " ELSE CAST('{}' AS json) END"
                if postgres
                else f"CASE WHEN {vip} < 7 THEN json_object('vip_level', {level}) ELSE '{{}}' END"
            )
            connection.execute(
                text(
                    f"UPDATE contacts SET account_id = CASE WHEN {has_account} THEN {account} END,"
                    f" custom = {custom}"
                )
            )
            connection.execute(
                text(
                    f"UPDATE contacts SET owner_id = CASE WHEN account_id IS NULL"
                    f" THEN {first_rep} + {_hash('id', 40503, reps)}"
                    f" ELSE {first_rep} + account_id % {reps} END"
                )
            )
            connection.execute(
                text(
                    "UPDATE deals SET owner_id = (SELECT c.owner_id FROM contacts c"
                    " WHERE c.id = deals.contact_id),"
                    " account_id = (SELECT c.account_id FROM contacts c"
                    " WHERE c.id = deals.contact_id)"
                )
            )
        refreshed = finish(crm)
        crm.segments.create(SEGMENT, "contact", FILTERS)
    finally:
        crm.close()
    return {"seconds": round(time.perf_counter() - started), "snapshot": refreshed}


def finish(crm: crmkit.CRM) -> int:
    """Statistics, the insight snapshot, statistics again; the snapshot's customers."""
    from crmkit_insights import service

    postgres = crm.engine.dialect.name == "postgresql"
    with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in ("accounts", "contacts", "deals"):
            connection.exec_driver_sql(f"VACUUM ANALYZE {table}" if postgres else "ANALYZE")
    refreshed = int(service.refresh(crm)["customers"])
    with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("ANALYZE insight_customer_measures" if postgres else "ANALYZE")
    return refreshed


# -- the two contestants -------------------------------------------------------------------


def year_start() -> dt.datetime:
    today = crmkit.utcnow()
    return dt.datetime(today.year, 1, 1, tzinfo=dt.UTC)


def hand_written(postgres: bool, scoped: bool) -> str:
    """The consultant's query: ``SELECT c.id ...`` (ordered by id) of the segment's members;
    for a rep, the rep's contacts whose account and won deal are the rep's too."""
    vip = "c.custom ->> 'vip_level'" if postgres else "json_extract(c.custom, '$.vip_level')"
    rep = " AND {alias}.owner_id = :rep" if scoped else ""
    return (
        "SELECT c.id FROM contacts c"
        " JOIN accounts a ON a.id = c.account_id"
        " JOIN insight_customer_measures m ON m.contact_id = c.id"
        " WHERE c.deleted_at IS NULL AND a.deleted_at IS NULL AND a.city = '上海'"
        f" AND m.rfm_segment = 'champions' AND {vip} IN ('gold', 'silver')"
        " AND c.id IN (SELECT d.contact_id FROM deals d JOIN stages s ON s.id = d.stage_id"
        "   WHERE d.deleted_at IS NULL AND s.kind = 'won' AND d.closed_at >= :since"
        f"{rep.format(alias='d')})"
        f"{rep.format(alias='c')}{rep.format(alias='a')}"
    )


def raw_queries(engine: Any, scoped: bool) -> dict[str, Any]:
    import sqlalchemy as sa

    postgres = engine.dialect.name == "postgresql"
    members = hand_written(postgres, scoped)
    return {
        "count": sa.text(f"SELECT count(*) FROM ({members}) AS members"),
        "page": sa.text(
            f"SELECT contacts.id, contacts.* FROM contacts WHERE id IN ({members})"
            f" ORDER BY id LIMIT {PAGE}"
        ),
        "ids": sa.text(f"{members} ORDER BY c.id"),
    }


def run_round(crm: crmkit.CRM, number: int, rep_name: str) -> list[str]:
    """One round: for the admin and the rep, count / page / ids, both sides, checked."""
    lines = []
    since = year_start()
    if crm.engine.dialect.name == "sqlite":
        since_value: Any = since.strftime("%Y-%m-%d %H:%M:%S.%f")
    else:
        since_value = since
    for who in ("admin", rep_name):
        actor = crm.users.get("boss" if who == "admin" else who)
        rep_id = actor.id
        queries = raw_queries(crm.engine, who != "admin")
        params = {"since": since_value, "rep": rep_id}

        def ours(kind: str, actor: Any = actor) -> Any:
            if kind == "count":
                return crm.segments.count(SEGMENT, actor=actor)
            if kind == "page":
                page = crm.segments.members(SEGMENT, limit=PAGE, actor=actor)
                return [record.id for record in page.items]
            with crm.transaction(actor, write=False) as op:
                query = crm.segments.member_ids(op, SEGMENT)
                return sorted(op.session.scalars(query))

        def theirs(kind: str, queries: Any = queries, params: Any = params) -> Any:
            with crm.engine.connect() as connection:
                result = connection.execute(queries[kind], params)
                if kind == "count":
                    return result.scalar()
                rows = result.all()
                return [row[0] for row in rows]

        for kind in ("count", "page", "ids"):
            sides: list[tuple[str, Callable[[str], Any]]] = [("crmkit", ours), ("sql", theirs)]
            if number % 2 == 0:
                sides.reverse()
            answers = {}
            seconds = {}
            for side, function in sides:
                started = time.perf_counter()
                answers[side] = function(kind)
                seconds[side] = time.perf_counter() - started
            same = answers["crmkit"] == answers["sql"]
            size = answers["sql"] if kind == "count" else len(answers["sql"])
            line = (
                f"round {number} {who} {kind}: crmkit {seconds['crmkit'] * 1000:.1f} ms,"
                f" sql {seconds['sql'] * 1000:.1f} ms, ratio"
                f" {seconds['crmkit'] / seconds['sql']:.2f}, result {size},"
                f" {'equal' if same else 'DIFFERENT'}  load {os.getloadavg()[0]:.1f}"
            )
            print(line, flush=True)
            lines.append(line)
            if not same:
                raise SystemExit(f"results differ: {answers['crmkit']!r} vs {answers['sql']!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--url", help="with --build: the insight benchmark's database")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--on", metavar="URL", help="run the rounds on this database")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-round", type=int, default=1)
    parser.add_argument("--rep", default="rep1")
    parser.add_argument("--explain", action="store_true", help="print crmkit's SQL and plan")
    arguments = parser.parse_args(argv)
    if arguments.build:
        print(build(arguments.url, arguments.accounts, arguments.reps))
        return 0
    from machine import machine_info

    print(f"machine: {machine_info()}  load: {os.getloadavg()}", flush=True)
    started = time.perf_counter()
    crm = open_crm(arguments.on)
    print(f"opened in {time.perf_counter() - started:.2f} s", flush=True)
    try:
        if arguments.explain:
            explain(crm, arguments.rep)
        for number in range(arguments.first_round, arguments.first_round + arguments.rounds):
            run_round(crm, number, arguments.rep)
    finally:
        crm.close()
    return 0


def explain(crm: crmkit.CRM, rep_name: str) -> None:
    """crmkit's count statement and its plan, for the admin and the rep."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def keep(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(crm.engine, "before_cursor_execute", keep)
    postgres = crm.engine.dialect.name == "postgresql"
    try:
        for who in ("boss", rep_name):
            crm.segments.count(SEGMENT, actor=crm.users.get(who))
            statement, parameters = seen[-1]
            print(f"-- {who}:\n{statement}\n{parameters}", flush=True)
            with crm.engine.connect() as connection:
                cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.execute(
                    ("EXPLAIN ANALYZE " if postgres else "EXPLAIN QUERY PLAN ") + statement,
                    parameters,
                )
                for row in cursor.fetchall():
                    print("   ", row[0] if postgres else row[-1], flush=True)
    finally:
        event.remove(crm.engine, "before_cursor_execute", keep)


if __name__ == "__main__":
    raise SystemExit(main())
