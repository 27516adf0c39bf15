"""Benchmark: assignment.

(a) Leads created per second, one ``crm.leads.create`` per transaction, on a CRM with a
    round-robin rule over five reps (assignment on) against a CRM without rules (off): both
    in the same process on fresh databases of the same engine, calls alternating.
(b) The release scan over many accounts on PostgreSQL with a 30-day policy: the accounts
    (and one recent activity for 95 % of them) are written with ``COPY``, not through the
    service; then ``crm.pool.due()`` (the set-based scan alone) and ``crm.pool.release()``
    (scan, history rows, the UPDATE, events and notices, one transaction) are timed.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import time
from collections.abc import Callable, Sequence

import psycopg
from attrs import frozen
from dbs import Databases, libpq_url

import crmkit

REPS = 5


@frozen
class CreateResult:
    """Creates per second with and without assignment on one engine."""

    backend: str
    creates: int
    on_per_second: float
    off_per_second: float


@frozen
class ReleaseResult:
    """Seconds of the scan and of the whole release over ``accounts`` accounts."""

    accounts: int
    due: int
    scan_seconds: float
    release_seconds: float


def _crm(url: str, *, rules: bool) -> crmkit.CRM:
    crm = crmkit.open(url, discover=False)
    names = [f"rep{i}" for i in range(REPS)]
    for name in names:
        crm.users.create(name)
    if rules:
        crm.assignment.add_rule("lead", "all", "round_robin", names)
    return crm


def run_creates(
    backends: Sequence[str], *, creates: int, log: Callable[[str], None]
) -> list[CreateResult]:
    results = []
    for backend in backends:
        with Databases(backend) as databases:
            on = _crm(databases.fresh(), rules=True)
            off = _crm(databases.fresh(), rules=False)
            spent = {"on": 0.0, "off": 0.0}
            for i in range(20):  # warm up both
                on.leads.create({"full_name": f"w{i}"})
                off.leads.create({"full_name": f"w{i}"})
            gc.collect()
            for i in range(creates):
                for key, crm in (("on", on), ("off", off)) if i % 2 else (("off", off), ("on", on)):
                    began = time.perf_counter()
                    crm.leads.create({"full_name": f"客户{i}", "source_channel": "web"})
                    spent[key] += time.perf_counter() - began
            on.close()
            off.close()
        result = CreateResult(backend, creates, creates / spent["on"], creates / spent["off"])
        log(
            f"assign creates {backend}: on {result.on_per_second:.0f}/s,"
            f" off {result.off_per_second:.0f}/s"
        )
        results.append(result)
    return results


def run_release(*, accounts: int, log: Callable[[str], None]) -> ReleaseResult:
    with Databases("postgresql") as databases:
        url = databases.fresh()
        crm = crmkit.open(url, discover=False)
        owners = [crm.users.create(f"rep{i}").id for i in range(50)]
        crm.pool.add_policy("account", "30 days", 30)
        old = crmkit.utcnow() - dt.timedelta(days=400)
        recent = crmkit.utcnow() - dt.timedelta(days=3)
        began = time.perf_counter()
        with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
            buffer = io.StringIO()
            for i in range(1, accounts + 1):
                buffer.write(
                    f"{i}\t公司{i}\t{owners[i % len(owners)]}\t{old.isoformat()}\t"
                    f"{old.isoformat()}\t1\t{{}}\tprospect\n"
                )
            buffer.seek(0)
            with cursor.copy(
                "COPY accounts (id, name, owner_id, created_at, updated_at,"
                " version, custom, lifecycle_stage) FROM STDIN"
            ) as copy:
                copy.write(buffer.read())
            buffer = io.StringIO()
            for i in range(1, accounts + 1):
                if i % 20:  # 95 % followed up recently; every 20th is due
                    buffer.write(
                        f"{i}\tcall\t回访\t{i}\t{recent.isoformat()}\t{recent.isoformat()}"
                        f"\t{recent.isoformat()}\t1\t{{}}\n"
                    )
            buffer.seek(0)
            with cursor.copy(
                "COPY activities (id, kind, subject, account_id, occurred_at,"
                " created_at, updated_at, version, custom) FROM STDIN"
            ) as copy:
                copy.write(buffer.read())
            cursor.execute("SELECT setval('accounts_id_seq', %s)", (accounts,))
            cursor.execute("SELECT setval('activities_id_seq', %s)", (accounts,))
            connection.commit()
            connection.autocommit = True
            cursor.execute("ANALYZE")
        log(f"release: {accounts} accounts generated in {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        due = crm.pool.due("account")["account:30 days"]
        scan = time.perf_counter() - began
        began = time.perf_counter()
        [released] = crm.pool.release("account")
        release = time.perf_counter() - began
        assert released.records == due, (released.records, due)
        crm.close()
    log(f"release: scan {scan:.2f} s, release of {due} in {release:.2f} s")
    return ReleaseResult(accounts, due, scan, release)


def as_markdown(creates: Sequence[CreateResult], release: ReleaseResult | None) -> list[str]:
    lines = [
        "### Assignment",
        "",
        "Leads created one per transaction (`crm.leads.create`), with a round-robin rule over"
        f" {REPS} reps (assignment on: rule lookup, turn counter `UPDATE ... RETURNING`,"
        " ownership history row, `lead.assigned` event) against no rules (off), same process,"
        " calls alternating:",
        "",
        "| engine | creates | on (leads/s) | off (leads/s) | on / off |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in creates:
        lines.append(
            f"| {r.backend} | {r.creates} | {r.on_per_second:.0f} |"
            f" {r.off_per_second:.0f} | {r.on_per_second / r.off_per_second:.2f} |"
        )
    if release is not None:
        lines += [
            "",
            f"Release scan on PostgreSQL over {release.accounts:,} accounts with a 30-day"
            " policy (rows written with `COPY`; 95 % have an activity 3 days old, every 20th"
            " account is due):",
            "",
            "| accounts | due | scan (`pool.due`, s) | release (`pool.release`, s) |",
            "|---:|---:|---:|---:|",
            f"| {release.accounts:,} | {release.due:,} | {release.scan_seconds:.2f} |"
            f" {release.release_seconds:.2f} |",
        ]
    lines.append("")
    return lines
