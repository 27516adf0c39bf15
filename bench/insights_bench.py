"""Insight benchmark: RFM for every customer and the funnel of a year, crmkit's SQL next to
what a consultant would otherwise write (pandas reading the same tables with ``read_sql`` and
computing the same), on SQLite and PostgreSQL, results checked equal.

The data is made with bulk SQL (``crmkit.bulk_insert``: ``COPY`` on PostgreSQL), not through
the services: ``--contacts`` contacts, one loyalty card each, about ``--purchases``
purchases per contact over two years, one deal per ``--deal-every`` contacts created in the
year with its stage history (a quarter won, a tenth lost). Purchase and deal times fall on
whole days (UTC midnight), so recency in days is exact on both sides.

Each measurement runs in a fresh process (its peak memory is its ``ru_maxrss``, imports
included); crmkit (A) and pandas (B) alternate, round by round, and every round is reported.
The database server's own memory (PostgreSQL) is not in either figure.

    .nox/bench/bin/python bench/insights_bench.py --contacts 100000 --rounds 3
    .nox/bench/bin/python bench/insights_bench.py --contacts 1000000 --backend sqlite

Or build once and time the rounds apart (one quiet call per round):

    .nox/bench/bin/python bench/insights_bench.py --build --url sqlite:///big.db \\
        --contacts 1000000 --purchases 5.5
    .nox/bench/bin/python bench/insights_bench.py --on sqlite:///big.db --rounds 1 --first-round 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

AS_OF = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
YEAR = "2026"
IDLE_DAYS = 30
HERE = Path(__file__).resolve()


# -- data ----------------------------------------------------------------------------------


def _open(url: str, *, upgrade: bool = True) -> Any:
    import crmkit_insights
    import crmkit_loyalty

    import crmkit

    plugins = {"loyalty": crmkit_loyalty, "insights": crmkit_insights}
    return crmkit.open(url, plugins=plugins, discover=False, upgrade=upgrade)


def build(url: str, contacts: int, purchases: float, deal_every: int, seed: int) -> dict[str, int]:
    """Fill an empty database; returns the row counts."""
    import crmkit_insights
    import crmkit_loyalty

    import crmkit

    rng = random.Random(seed)
    crm = _open(url)
    counts = {"contacts": contacts, "purchases": 0, "deals": 0, "stage_moves": 0}
    try:
        crm.pipelines.create("Sales")
        with crm.transaction() as op:
            connection = op.session.connection()
            pipeline = connection.exec_driver_sql("SELECT id FROM pipelines").scalar()
            stages = [
                (row[0], row[1])
                for row in connection.exec_driver_sql(
                    "SELECT id, kind FROM stages ORDER BY position, id"
                )
            ]
            connection.exec_driver_sql(
                "INSERT INTO loyalty_programs (name, definition, version, created_at, updated_at)"
                " VALUES ('bench', '{}', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
            program = connection.exec_driver_sql("SELECT id FROM loyalty_programs").scalar()
        open_stages = [sid for sid, kind in stages if kind == "open"]
        won = next(sid for sid, kind in stages if kind == "won")
        lost = next(sid for sid, kind in stages if kind == "lost")
        start = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
        chunk = 50_000
        for first in range(1, contacts + 1, chunk):
            ids = range(first, min(first + chunk, contacts + 1))
            now = crmkit.utcnow()
            with crm.transaction() as op:
                connection = op.session.connection()
                crmkit.bulk_insert(
                    connection,
                    crmkit.Contact.__table__,  # type: ignore[arg-type]
                    [
                        {
                            "id": i,
                            "full_name": f"客户{i}",
                            "lifecycle_stage": "prospect",
                            "extra_emails": [],
                            "extra_phones": [],
                            "social": {},
                            "custom": {},
                            "version": 1,
                            "created_at": now,
                            "updated_at": now,
                            "region": rng.choice(("上海", "北京", "广东", "浙江")),
                        }
                        for i in ids
                    ],
                )
                crmkit.bulk_insert(
                    connection,
                    crmkit_loyalty.LoyaltyCard.__table__,  # type: ignore[arg-type]
                    [
                        {
                            "id": i,
                            "number": f"88{i:012d}",
                            "program_id": program,
                            "contact_id": i,
                            "status": "active",
                            "balance": 0,
                            "pending": 0,
                            "issued_at": now,
                        }
                        for i in ids
                    ],
                )
                rows: list[dict[str, Any]] = []
                for i in ids:
                    for _ in range(int(rng.expovariate(1 / purchases)) if purchases else 0):
                        day = AS_OF - dt.timedelta(days=rng.randint(1, 730))
                        amount = rng.choice((38, 68, 88, 128, 168, 288, 388, 588, 988))
                        rows.append(
                            {
                                "program_id": program,
                                "card_id": i,
                                "contact_id": i,
                                "receipt_id": f"R{i}-{len(rows)}",
                                "amount": amount,
                                "currency": "CNY",
                                "occurred_at": day,
                                "items": [],
                                "points": amount,
                                "refunded_amount": 0,
                                "refunded_points": 0,
                                "recorded_at": now,
                            }
                        )
                crmkit.bulk_insert(
                    connection,
                    crmkit_loyalty.LoyaltyPurchase.__table__,  # type: ignore[arg-type]
                    rows,
                )
                counts["purchases"] += len(rows)
                deals: list[dict[str, Any]] = []
                moves: list[dict[str, Any]] = []
                for i in ids:
                    if i % deal_every:
                        continue
                    created = start + dt.timedelta(days=rng.randint(0, 360))
                    reach = rng.randint(0, len(open_stages) - 1)
                    path = open_stages[: reach + 1]
                    fate = rng.random()
                    if fate < 0.25:
                        path = [*path, won]
                    elif fate < 0.35:
                        path = [*path, lost]
                    moment = created
                    for stage in path:
                        moves.append(
                            {
                                "deal_id": i,
                                "pipeline_id": pipeline,
                                "stage_id": stage,
                                "entered_at": moment,
                            }
                        )
                        last = moment
                        moment = moment + dt.timedelta(days=rng.randint(1, 40))
                    closed = path[-1] in (won, lost)
                    deals.append(
                        {
                            "id": i,
                            "name": f"商机{i}",
                            "contact_id": i,
                            "pipeline_id": pipeline,
                            "stage_id": path[-1],
                            "amount": rng.randint(1, 500) * 100,
                            "currency": "CNY",
                            "stage_changed_at": last,
                            "closed_at": last if closed else None,
                            "custom": {},
                            "version": 1,
                            "created_at": created,
                            "updated_at": last,
                        }
                    )
                crmkit.bulk_insert(connection, crmkit.Deal.__table__, deals)  # type: ignore[arg-type]
                crmkit.bulk_insert(connection, crmkit_insights.InsightStageMove.__table__, moves)  # type: ignore[arg-type]
                counts["deals"] += len(deals)
                counts["stage_moves"] += len(moves)
        if crm.engine.dialect.name == "postgresql":
            with crm.engine.connect() as connection:
                connection.exec_driver_sql("COMMIT")
                for table in ("contacts", "deals", "loyalty_purchases", "insight_stage_moves"):
                    connection.exec_driver_sql(f"ANALYZE {table}")
        else:
            with crm.engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
    finally:
        crm.close()
    return counts


# -- the two contestants -------------------------------------------------------------------


def _digest_rfm(rows: Any) -> tuple[str, int]:
    digest = hashlib.sha256()
    count = 0
    for contact_id, recency, frequency, monetary, r, f, m, segment in rows:
        digest.update(
            f"{contact_id}|{recency:.2f}|{frequency}|{monetary:.2f}|{r}{f}{m}|{segment}\n".encode()
        )
        count += 1
    return digest.hexdigest()[:16], count


def _digest_funnel(stages: list[dict[str, Any]]) -> str:
    keys = (
        "stage",
        "current",
        "current_amount",
        "reached",
        "reached_amount",
        "median_days",
        "idle",
    )
    text = json.dumps(
        [[s[k] if not isinstance(s[k], float) else round(s[k], 2) for k in keys] for s in stages]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_crmkit(url: str) -> dict[str, Any]:
    """RFM of every customer (streamed) and the year's funnel through the plugin."""
    from crmkit_insights import service

    started = time.perf_counter()
    crm = _open(url, upgrade=False)
    try:
        rows = (
            (
                r["contact_id"],
                r["recency_days"],
                r["frequency"],
                r["monetary"],
                r["r"],
                r["f"],
                r["m"],
                r["segment"],
            )
            for r in service.iter_rfm(crm, as_of=AS_OF)
        )
        rfm_digest, customers = _digest_rfm(rows)
        rfm_seconds = time.perf_counter() - started
        funnel = service.funnel(crm, period=YEAR, idle_days=IDLE_DAYS)
        stages = funnel.as_dict()["groups"][0]["stages"]
    finally:
        crm.close()
    return {
        "rfm_digest": rfm_digest,
        "customers": customers,
        "funnel_digest": _digest_funnel(stages),
        "rfm_seconds": rfm_seconds,
    }


SEGMENT_RULES = [  # (segment, r condition, f condition): the plugin's grid, in its order
    ("champions", lambda r: r == 5, lambda f: f >= 4),
    ("loyal", lambda r: (r == 3) | (r == 4), lambda f: f >= 4),
    ("potential_loyalists", lambda r: r >= 4, lambda f: (f == 2) | (f == 3)),
    ("new_customers", lambda r: r == 5, lambda f: f == 1),
    ("promising", lambda r: r == 4, lambda f: f == 1),
    ("need_attention", lambda r: r == 3, lambda f: f == 3),
    ("about_to_sleep", lambda r: r == 3, lambda f: f <= 2),
    ("cant_lose", lambda r: r <= 2, lambda f: f == 5),
    ("at_risk", lambda r: r <= 2, lambda f: f >= 3),
    ("lost", lambda r: r == 1, lambda f: f == 1),
]


def run_pandas(url: str) -> dict[str, Any]:
    """The same with ``pandas.read_sql`` of the tables and pandas/numpy."""
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    started = time.perf_counter()
    engine = sa.create_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    as_of = AS_OF.replace(tzinfo=None) if sqlite else AS_OF
    with engine.connect() as connection:
        contacts = pd.read_sql("SELECT id FROM contacts WHERE deleted_at IS NULL", connection)
        won = pd.read_sql(
            "SELECT d.contact_id, d.amount, d.closed_at AS at FROM deals d"
            " JOIN stages s ON s.id = d.stage_id"
            " WHERE s.kind = 'won' AND d.deleted_at IS NULL AND d.contact_id IS NOT NULL"
            " AND d.closed_at IS NOT NULL",
            connection,
            parse_dates=["at"],
        )
        bought = pd.read_sql(
            "SELECT contact_id, amount - refunded_amount AS amount, occurred_at AS at"
            " FROM loyalty_purchases",
            connection,
            parse_dates=["at"],
        )
    orders = pd.concat([won, bought], ignore_index=True)
    del won, bought
    if not sqlite:
        orders["at"] = pd.to_datetime(orders["at"], utc=True)
    cutoff = pd.Timestamp(as_of)
    orders = orders[(orders["at"] < cutoff) & orders["contact_id"].isin(contacts["id"])]
    orders["amount"] = orders["amount"].astype(float)
    per = orders.groupby("contact_id").agg(
        last_at=("at", "max"), frequency=("at", "size"), monetary=("amount", "sum")
    )
    del orders
    n = len(per)
    per["recency"] = (cutoff - per["last_at"]) / pd.Timedelta(days=1)
    for column, source in (("r", "last_at"), ("f", "frequency"), ("m", "monetary")):
        rank = per[source].rank(method="min").astype("int64")
        per[column] = 1 + (5 * (rank - 1)) // n
    conditions = [rc(per["r"]) & fc(per["f"]) for _, rc, fc in SEGMENT_RULES]
    per["segment"] = np.select(conditions, [name for name, _, _ in SEGMENT_RULES], "hibernating")
    per = per.sort_index()
    rfm_digest, customers = _digest_rfm(
        zip(
            per.index,
            per["recency"].round(2),
            per["frequency"],
            per["monetary"].round(2),
            per["r"],
            per["f"],
            per["m"],
            per["segment"],
            strict=True,
        )
    )
    rfm_seconds = time.perf_counter() - started
    del per
    stages_digest = _pandas_funnel(engine, sqlite)
    engine.dispose()
    return {
        "rfm_digest": rfm_digest,
        "customers": customers,
        "funnel_digest": stages_digest,
        "rfm_seconds": rfm_seconds,
    }


def _pandas_funnel(engine: Any, sqlite: bool) -> str:
    import pandas as pd

    start = "2026-01-01 00:00:00" if sqlite else "2026-01-01T00:00:00+00:00"
    end = "2027-01-01 00:00:00" if sqlite else "2027-01-01T00:00:00+00:00"
    with engine.connect() as connection:
        pipeline = pd.read_sql(
            "SELECT id FROM pipelines ORDER BY is_default DESC, id LIMIT 1", connection
        )["id"][0]
        stages = pd.read_sql(
            f"SELECT id, name, position, kind FROM stages WHERE pipeline_id = {int(pipeline)}"
            " ORDER BY position, id",
            connection,
        )
        deals = pd.read_sql(
            "SELECT id, stage_id, COALESCE(amount, 0) AS amount, stage_changed_at FROM deals"
            f" WHERE pipeline_id = {int(pipeline)} AND deleted_at IS NULL"
            f" AND created_at >= '{start}' AND created_at < '{end}'",
            connection,
            parse_dates=["stage_changed_at"],
        )
        moves = pd.read_sql(
            "SELECT id, deal_id, stage_id, entered_at FROM insight_stage_moves",
            connection,
            parse_dates=["entered_at"],
        )
    deals["amount"] = deals["amount"].astype(float)
    moves = moves[moves["deal_id"].isin(deals["id"])].sort_values(["deal_id", "entered_at", "id"])
    moves["left_at"] = moves.groupby("deal_id")["entered_at"].shift(-1)
    moves["days"] = (moves["left_at"] - moves["entered_at"]) / pd.Timedelta(days=1)
    medians = moves.dropna(subset=["left_at"]).groupby("stage_id")["days"].median()
    kinds = stages.set_index("id")["kind"]
    positions = stages.set_index("id")["position"]
    moves["position"] = (
        moves["stage_id"].map(positions).where(moves["stage_id"].map(kinds) == "open")
    )
    furthest = moves.groupby("deal_id")["position"].max()
    deals["furthest"] = deals["id"].map(furthest)
    deals["kind"] = deals["stage_id"].map(kinds)
    idle_before = pd.Timestamp(dt.datetime.now(dt.UTC) - dt.timedelta(days=IDLE_DAYS))
    if sqlite:
        idle_before = idle_before.tz_localize(None)
    else:
        deals["stage_changed_at"] = pd.to_datetime(deals["stage_changed_at"], utc=True)
    result = []
    for stage in stages.itertuples():
        here = deals[deals["stage_id"] == stage.id]
        if stage.kind == "open":
            reached = deals[(deals["kind"] == "won") | (deals["furthest"] >= stage.position)]
            idle = int((here["stage_changed_at"] < idle_before).sum())
        else:
            reached = deals[deals["kind"] == stage.kind]
            idle = 0
        median = medians.get(stage.id)
        result.append(
            {
                "stage": stage.name,
                "current": len(here),
                "current_amount": float(here["amount"].sum()),
                "reached": len(reached),
                "reached_amount": float(reached["amount"].sum()),
                "median_days": None
                if median is None or pd.isna(median)
                else round(float(median), 2),
                "idle": idle,
            }
        )
    return _digest_funnel(result)


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss``, which Linux carries
    over from the parent through fork and exec, it starts afresh in a new program)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, url: str) -> None:
    """Run one contestant and print its figures as JSON (one line)."""
    started = time.perf_counter()
    result = run_crmkit(url) if kind == "crmkit" else run_pandas(url)
    result["seconds"] = time.perf_counter() - started
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))


def measure(kind: str, url: str) -> dict[str, Any]:
    """One contestant in a fresh process."""
    output = subprocess.run(
        [sys.executable, str(HERE), "--child", kind, "--url", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--purchases", type=float, default=5.0, help="per contact, on average")
    parser.add_argument("--deal-every", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-round", type=int, default=1, help="the number of the first")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--child", choices=("crmkit", "pandas"))
    parser.add_argument("--url", help="with --child: the database; with --build: where to build")
    parser.add_argument("--build", action="store_true", help="only build the data at --url")
    parser.add_argument(
        "--on",
        metavar="URL",
        help="run the rounds on this database, built before with --build (nothing is built"
        " or removed: the build stays out of the timed, quiet part)",
    )
    arguments = parser.parse_args(argv)
    if arguments.child:
        child(arguments.child, arguments.url)
        return 0
    if arguments.build:
        counts = build(
            arguments.url,
            arguments.contacts,
            arguments.purchases,
            arguments.deal_every,
            arguments.seed,
        )
        print(counts)
        return 0
    from dbs import Databases
    from machine import machine_info

    print(f"machine: {machine_info()}  load: {os.getloadavg()}", flush=True)
    if arguments.on:
        backend = "sqlite" if arguments.on.startswith("sqlite") else "postgresql"
        _rounds(backend, arguments.on, arguments.rounds, arguments.first_round)
        return 0
    for backend in arguments.backend or ("sqlite", "postgresql"):
        with Databases(backend) as dbs:
            url = dbs.fresh()
            started = time.perf_counter()
            counts = build(
                url, arguments.contacts, arguments.purchases, arguments.deal_every, arguments.seed
            )
            print(f"{backend}: built {counts} in {time.perf_counter() - started:.0f} s", flush=True)
            _rounds(backend, url, arguments.rounds, arguments.first_round)
    return 0


def _rounds(backend: str, url: str, rounds: int, first: int) -> None:
    """``rounds`` rounds numbered from ``first``: crmkit first in odd rounds, pandas in even."""
    for round_number in range(first, first + rounds):
        for kind in ("crmkit", "pandas") if round_number % 2 else ("pandas", "crmkit"):
            figures = measure(kind, url)
            print(
                f"{backend} round {round_number} {kind}: total {figures['seconds']:.1f} s"
                f" (rfm {figures['rfm_seconds']:.1f} s), peak {figures['peak_mb']:.0f} MB,"
                f" customers {figures['customers']}, rfm {figures['rfm_digest']},"
                f" funnel {figures['funnel_digest']}  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    tempfile.tempdir = os.environ.get("CRMKIT_BENCH_TMP") or None
    raise SystemExit(main())
