"""Benchmark 1: importing contacts.

Three ways to put the same contacts into the same (migrated, indexed) ``contacts`` table:

(a) crmkit: ``transfer.import_csv`` from a generated CSV file, the ``crmkit import`` path:
    CSV parsing, validation, normalisation (phone numbers to E.164, e-mail, NFKC names),
    one ``contact.created`` outbox event per row, one transaction;
(b) the bare driver with the rows already normalised: ``sqlite3`` ``executemany`` in one
    transaction, or PostgreSQL ``COPY`` through psycopg's ``cursor.copy()``; no events;
(c) the record-at-a-time ORM loop, ``session.add(Contact(...)); session.flush()`` per row,
    one commit at the end, with the already-normalised rows;
(d) on SQLite, the driver floor: every row one crmkit import wrote (the contacts, their
    outbox events and audit entries, exactly as stored), read back and written again with
    ``executemany`` into a fresh database, one transaction: what the driver alone needs for
    the rows crmkit writes, so (d) ÷ (b) bounds the ratio any implementation writing those
    rows can reach, whatever its Python overhead.
"""

from __future__ import annotations

import datetime as dt
import gc
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
from attrs import define, field
from data import contact_rows, write_csv
from dbs import Databases, libpq_url, sqlite_path
from profiling import ProfileSummary, profile
from profiling import as_markdown as profile_markdown
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crmkit
from crmkit.db.engine import make_engine
from crmkit.entities.customers import Contact
from crmkit.events.outbox import OutboxEvent
from crmkit.services.records import BulkResult, RecordService

#: Columns the bare baselines write: the generated fields plus every NOT NULL column that
#: crmkit (or the ORM's column defaults) fills in.
BARE_COLUMNS = (
    "full_name", "email", "phone", "city", "address", "title", "source_channel", "notes",
    "extra_emails", "extra_phones", "social", "lifecycle_stage", "created_at", "updated_at",
    "version", "custom",
)  # fmt: skip

try:  # the CSV import service (crmkit import); create_many is the fallback
    from crmkit.services.transfer import import_csv
except ImportError:  # pragma: no cover - only before transfer.py existed
    import_csv = None  # type: ignore[assignment]


@define
class Timing:
    """One measured run: rows written and seconds taken (best of ``runs``)."""

    rows: int
    seconds: float
    runs: int = 1
    all_seconds: list[float] = field(factory=list)

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds if self.seconds else 0.0


@define
class BackendResult:
    """Everything measured on one engine."""

    backend: str
    crmkit: Timing
    bare: Timing
    orm: Timing
    bare_label: str
    path_label: str
    batch_size: int
    profile: ProfileSummary | None = None
    floor: Timing | None = None
    floor_tables: dict[str, int] = field(factory=dict)

    @property
    def vs_bare(self) -> float:
        """crmkit rows/s divided by the bare driver's."""
        return self.crmkit.rate / self.bare.rate

    @property
    def vs_orm(self) -> float:
        """crmkit rows/s divided by the ORM loop's."""
        return self.crmkit.rate / self.orm.rate


# -- (a) crmkit --------------------------------------------------------------------------


def _open(url: str) -> crmkit.CRM:
    return crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)


def _import(crm: crmkit.CRM, csv_path: Path, batch_size: int) -> int:
    if import_csv is not None:
        report = import_csv(crm, "contact", csv_path, batch_size=batch_size)
        if report.errors:
            raise RuntimeError(f"the benchmark CSV has bad rows: {report.errors[:3]}")
        return report.created
    import csv

    with csv_path.open(encoding="utf-8", newline="") as handle:
        rows = (
            (line, {k: v for k, v in row.items() if v})
            for line, row in enumerate(csv.DictReader(handle), start=2)
        )
        result = crm.records("contact").create_many(rows, batch_size=batch_size)
    if result.errors:
        raise RuntimeError(f"the benchmark rows have errors: {result.errors[:3]}")
    return result.created


def _check(url: str, rows: int, *, events: bool) -> None:
    engine = make_engine(url)
    with Session(engine) as session:
        contacts = session.scalar(select(func.count()).select_from(Contact))
        # contact.created only: rows whose e-mail or phone an earlier row already has also get
        # a contact.duplicate_suspected event from the collision check (a few in 100 000).
        outbox = session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.name == "contact.created")
        )
    engine.dispose()
    expected_events = rows if events else 0
    if contacts != rows or outbox != expected_events:
        raise RuntimeError(
            f"{url}: expected {rows} contacts and {expected_events} contact.created events,"
            f" found {contacts} and {outbox}"
        )


def run_crmkit(dbs: Databases, csv_path: Path, rows: int, batch_size: int) -> float:
    """Seconds ``crmkit import`` takes for ``csv_path`` into a fresh database."""
    url = dbs.fresh()
    crm = _open(url)
    try:
        gc.collect()
        start = time.perf_counter()
        created = _import(crm, csv_path, batch_size)
        seconds = time.perf_counter() - start
    finally:
        crm.close()
    if created != rows:
        raise RuntimeError(f"imported {created} of {rows} rows")
    _check(url, rows, events=True)
    dbs.drop(url)
    return seconds


def profile_crmkit(dbs: Databases, csv_path: Path, batch_size: int) -> ProfileSummary:
    """A pyinstrument profile of one crmkit import (not the timed run)."""
    url = dbs.fresh()
    crm = _open(url)
    try:
        _, summary = profile(lambda: _import(crm, csv_path, batch_size))
    finally:
        crm.close()
    dbs.drop(url)
    return summary


# -- where the time goes, stage by stage -------------------------------------------------

STAGES = (
    ("read", "read the CSV file (import_csv's reader, rows as dicts)"),
    ("prepare", "+ validate and normalise each row (the record service's preparer, hooks check)"),
    ("events", "+ build each row's contact.created event (in memory, not written)"),
)


def _stage_create_many(stage: str) -> Callable[..., BulkResult]:
    """A stand-in for ``RecordService.create_many`` that does the work of the stages up
    to ``stage`` and writes nothing."""

    def create_many(
        self: RecordService, rows: Iterable[tuple[int, Mapping[str, object]]], **_: Any
    ) -> BulkResult:
        result = BulkResult()
        with self._operation(None) as op:
            for line, data in rows:
                if stage != "read":
                    values = self._prepare_new(op, data, check_duplicates=False)
                    if stage == "events":
                        values["id"] = line
                        op.emit(
                            f"{self.name}.created", values, record_type=self.name, record_id=line
                        )
                result.ids.append(line)
            op.events.clear()  # nothing reaches the outbox
        return result

    return create_many


def run_stage(dbs: Databases, csv_path: Path, rows: int, stage: str) -> float:
    """Seconds ``crmkit import`` takes when it stops after ``stage`` (nothing is written)."""
    url = dbs.fresh()
    crm = _open(url)
    try:
        with mock.patch.object(RecordService, "create_many", _stage_create_many(stage)):
            gc.collect()
            start = time.perf_counter()
            created = _import(crm, csv_path, 1000)
            seconds = time.perf_counter() - start
    finally:
        crm.close()
    if created != rows:
        raise RuntimeError(f"stage {stage}: {created} of {rows} rows")
    dbs.drop(url)
    return seconds


# -- the already-normalised rows ---------------------------------------------------------


def normalised_rows(count: int) -> list[dict[str, Any]]:
    """The generated rows as crmkit stores them (normalised by crmkit's own preparer)."""
    from crmkit.app import CRM

    settings = crmkit.Settings.from_mapping({}, database_url="sqlite://")
    crm = CRM(settings, discover=False)
    try:
        preparer = crm.preparer("contact")
        result = []
        for row in contact_rows(count):
            columns, _ = preparer.prepare({k: v for k, v in row.items() if v}, creating=True)
            result.append(columns)
        return result
    finally:
        crm.close()


def _bare_tuples(rows: Sequence[dict[str, Any]], *, sqlite: bool) -> list[tuple[Any, ...]]:
    now = dt.datetime.now(dt.UTC)
    stamp: Any = now.replace(tzinfo=None).isoformat(" ") if sqlite else now
    fixed = {
        "extra_emails": "[]",
        "extra_phones": "[]",
        "social": "{}",
        "lifecycle_stage": "prospect",
        "created_at": stamp,
        "updated_at": stamp,
        "version": 1,
        "custom": "{}",
    }
    return [tuple(fixed.get(c, row.get(c)) for c in BARE_COLUMNS) for row in rows]


# -- (b) bare driver ---------------------------------------------------------------------


def run_bare_sqlite(dbs: Databases, rows: Sequence[dict[str, Any]]) -> float:
    """Seconds for ``executemany`` of ``rows`` in one transaction (same PRAGMAs as crmkit)."""
    url = dbs.fresh()
    tuples = _bare_tuples(rows, sqlite=True)
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    for pragma in ("foreign_keys = ON", "journal_mode = WAL", "synchronous = NORMAL"):
        connection.execute(f"PRAGMA {pragma}")
    marks = ", ".join("?" for _ in BARE_COLUMNS)
    statement = f"INSERT INTO contacts ({', '.join(BARE_COLUMNS)}) VALUES ({marks})"
    gc.collect()
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(statement, tuples)
    connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    _check(url, len(rows), events=False)
    dbs.drop(url)
    return seconds


def run_bare_postgres(dbs: Databases, rows: Sequence[dict[str, Any]]) -> float:
    """Seconds for ``COPY contacts FROM STDIN`` of ``rows`` through psycopg, one transaction."""
    url = dbs.fresh()
    tuples = _bare_tuples(rows, sqlite=False)
    statement = f"COPY contacts ({', '.join(BARE_COLUMNS)}) FROM STDIN"
    with psycopg.connect(libpq_url(url)) as connection:
        gc.collect()
        start = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in tuples:
                copy.write_row(row)
        connection.commit()
        seconds = time.perf_counter() - start
    _check(url, len(rows), events=False)
    dbs.drop(url)
    return seconds


# -- (d) the driver floor (SQLite) ------------------------------------------------------

#: Rows one crmkit import wrote, per table: column names and the stored values.
Captured = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def _sqlite_counts(connection: sqlite3.Connection) -> dict[str, int]:
    tables = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {t: connection.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def capture_sqlite(dbs: Databases, csv_path: Path, batch_size: int) -> Captured:
    """Import ``csv_path`` once with crmkit and read back every row it added, per table."""
    url = dbs.fresh()
    connection = sqlite3.connect(sqlite_path(url))
    before = _sqlite_counts(connection)
    connection.close()
    crm = _open(url)
    try:
        _import(crm, csv_path, batch_size)
    finally:
        crm.close()
    connection = sqlite3.connect(sqlite_path(url))
    captured: Captured = {}
    for table, count in _sqlite_counts(connection).items():
        if count == before.get(table, 0):
            continue
        if before.get(table, 0):
            raise RuntimeError(f"{table} had rows before the import: the floor needs it empty")
        columns = [row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')]
        names = ", ".join(f'"{c}"' for c in columns)
        captured[table] = (
            columns,
            connection.execute(f'SELECT {names} FROM "{table}" ORDER BY rowid').fetchall(),
        )
    connection.close()
    dbs.drop(url)
    return captured


def run_floor_sqlite(dbs: Databases, captured: Captured, rows: int) -> float:
    """Seconds to write the captured rows again with ``executemany``, one transaction."""
    url = dbs.fresh()
    connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
    for pragma in ("foreign_keys = ON", "journal_mode = WAL", "synchronous = NORMAL"):
        connection.execute(f"PRAGMA {pragma}")
    statements = [
        (
            f'INSERT INTO "{table}" ({", ".join(chr(34) + c + chr(34) for c in columns)})'
            f" VALUES ({', '.join('?' for _ in columns)})",
            values,
        )
        for table, (columns, values) in captured.items()
    ]
    gc.collect()
    start = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    for statement, values in statements:
        connection.executemany(statement, values)
    connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    _check(url, rows, events=True)
    dbs.drop(url)
    return seconds


# -- (c) the ORM loop --------------------------------------------------------------------


def run_orm_loop(dbs: Databases, rows: Sequence[dict[str, Any]]) -> float:
    """Seconds for ``session.add(Contact(...)); session.flush()`` per row, one commit."""
    url = dbs.fresh()
    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(select(1))  # connect (and begin) before the clock starts
        gc.collect()
        start = time.perf_counter()
        for values in rows:
            session.add(Contact(**values))
            session.flush()
        session.commit()
        seconds = time.perf_counter() - start
    engine.dispose()
    _check(url, len(rows), events=False)
    dbs.drop(url)
    return seconds


# -- the whole benchmark -----------------------------------------------------------------


def _interleaved(plan: Mapping[str, tuple[Callable[[], float], int, int]]) -> dict[str, Timing]:
    """Run each ``name: (function, runs, rows)`` its number of times, in rounds (one run of
    each per round), so that the machine's changing load falls on all of them alike; each
    timing is the best of its runs."""
    times: dict[str, list[float]] = {name: [] for name in plan}
    for round_ in range(max(runs for _, runs, _ in plan.values())):
        for name, (function, runs, _) in plan.items():
            if round_ < runs:
                times[name].append(function())
    return {
        name: Timing(rows=rows, seconds=min(times[name]), runs=runs, all_seconds=times[name])
        for name, (_, runs, rows) in plan.items()
    }


@define
class ImportResults:
    """Everything benchmark 1 measured."""

    rows: int
    orm_rows: int
    backends: list[BackendResult]
    stages: dict[str, Timing]


def run(
    backends: Sequence[str],
    *,
    rows: int,
    orm_rows: int,
    folder: Path,
    batch_size: int = 1000,
    crmkit_runs: int = 2,
    bare_runs: int = 3,
    with_profile: bool = True,
    log: Callable[[str], None] = print,
) -> ImportResults:
    """Run (a), (b) and (c) on each backend, and the stage breakdown; return the results."""
    csv_path = write_csv(folder / "contacts.csv", rows)
    log(f"import: generated {rows} rows in {csv_path} ({csv_path.stat().st_size / 1e6:.1f} MB)")
    normalised = normalised_rows(rows)
    orm_sample = normalised[:orm_rows]
    path_label = (
        "transfer.import_csv (crmkit import)"
        if import_csv is not None
        else "RecordService.create_many (transfer.import_csv not available)"
    )
    bare_functions = {"sqlite": run_bare_sqlite, "postgresql": run_bare_postgres}
    bare_labels = {
        "sqlite": "sqlite3 executemany, one transaction",
        "postgresql": "psycopg cursor.copy() (COPY FROM STDIN), one transaction",
    }
    results = []
    stages: dict[str, Timing] = {}
    for backend in backends:
        with Databases(backend) as dbs:
            plan: dict[str, tuple[Callable[[], float], int, int]] = {
                "crmkit": (partial(run_crmkit, dbs, csv_path, rows, batch_size), crmkit_runs, rows),
                "bare": (partial(bare_functions[backend], dbs, normalised), bare_runs, rows),
                "orm": (partial(run_orm_loop, dbs, orm_sample), 1, len(orm_sample)),
            }
            captured: Captured = {}
            if backend == "sqlite":
                captured = capture_sqlite(dbs, csv_path, batch_size)
                plan["floor"] = (partial(run_floor_sqlite, dbs, captured, rows), bare_runs, rows)
            if not stages:  # the stages write nothing: measured once, with the first engine
                for stage, _ in STAGES:
                    plan[stage] = (
                        partial(run_stage, dbs, csv_path, rows, stage),
                        crmkit_runs,
                        rows,
                    )
            timings = _interleaved(plan)
            crmkit_timing, bare, orm = timings["crmkit"], timings["bare"], timings["orm"]
            log(
                f"import[{backend}] crmkit: {crmkit_timing.rate:,.0f} rows/s"
                f" (runs: {', '.join(f'{t:.2f} s' for t in crmkit_timing.all_seconds)})"
            )
            log(
                f"import[{backend}] bare: {bare.rate:,.0f} rows/s"
                f" (runs: {', '.join(f'{t:.2f} s' for t in bare.all_seconds)})"
            )
            log(f"import[{backend}] ORM loop: {orm.rate:,.0f} rows/s ({orm.seconds:.2f} s)")
            floor = timings.get("floor")
            if floor is not None:
                log(
                    f"import[{backend}] driver floor: {floor.rate:,.0f} rows/s"
                    f" ({floor.rate / bare.rate:.3f} x bare)"
                )
            if not stages:
                for stage, _ in STAGES:
                    stages[stage] = timings[stage]
                    log(f"import: stage {stage}: {stages[stage].rate:,.0f} rows/s")
            summary = None
            if with_profile:
                summary = profile_crmkit(dbs, csv_path, batch_size)
                log(f"import[{backend}]: profiled")
        results.append(
            BackendResult(
                backend=backend,
                crmkit=crmkit_timing,
                bare=bare,
                orm=orm,
                bare_label=bare_labels[backend],
                path_label=path_label,
                batch_size=batch_size,
                profile=summary,
                floor=floor,
                floor_tables={table: len(values) for table, (_, values) in captured.items()},
            )
        )
    return ImportResults(rows=rows, orm_rows=orm_rows, backends=results, stages=stages)


GOALS = {"sqlite": 0.25, "postgresql": 0.1}
ORM_GOAL = 50.0


def _mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def as_markdown(results: ImportResults) -> list[str]:
    """The results section of docs/benchmarks.md."""
    rows, orm_rows = results.rows, results.orm_rows
    lines = [
        "### 1. Importing contacts",
        "",
        f"{rows:,} generated contacts for (a) and (b); the ORM loop (c) runs on the first"
        f' {orm_rows:,} of the same rows and its rate is applied to {rows:,} rows ("scaled":'
        " rows ÷ rate). Wall-clock times; the variants run in alternation, round after round,"
        " and each figure is the best of its runs (crmkit and the stages: "
        f"{results.backends[0].crmkit.runs if results.backends else 0}, bare driver:"
        f" {results.backends[0].bare.runs if results.backends else 0}, ORM loop: 1).",
        "",
        "| Engine | (a) crmkit import | (b) bare driver | (c) ORM loop | (a) ÷ (b) | goal |"
        " (a) ÷ (c) | goal | (b) ÷ (c) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.backends:
        goal = GOALS[r.backend]
        lines.append(
            f"| {r.backend} | {r.crmkit.rate:,.0f} rows/s ({r.crmkit.seconds:.2f} s)"
            f" | {r.bare.rate:,.0f} rows/s ({r.bare.seconds:.2f} s)"
            f" | {r.orm.rate:,.0f} rows/s ({rows / r.orm.rate:.0f} s scaled)"
            f" | **{r.vs_bare:.3f} ×** | ≥ {goal} × {_mark(r.vs_bare >= goal)}"
            f" | **{r.vs_orm:.1f} ×** | > {ORM_GOAL:.0f} × {_mark(r.vs_orm > ORM_GOAL)}"
            f" | {r.bare.rate / r.orm.rate:.1f} × |"
        )
    lines.append("")
    for r in results.backends:
        lines.append(
            f"- {r.backend}: (a) {r.path_label}, batch_size={r.batch_size}; (b) {r.bare_label}."
        )
    for r in results.backends:
        if r.floor is None:
            continue
        tables = ", ".join(f"{count:,} {table}" for table, count in r.floor_tables.items())
        lines += [
            "",
            f"**(d) The driver floor on {r.backend}**: every row one crmkit import wrote"
            f" ({tables}), read back as stored and written again by the bare driver"
            " (`executemany` per table, one transaction, same settings as (b)): "
            f"{r.floor.rate:,.0f} contacts/s ({r.floor.seconds:.2f} s),"
            f" **{r.floor.rate / r.bare.rate:.3f} ×** the bare driver (b)."
            " No implementation that writes these rows can exceed this"
            f" ratio; the goal is {GOALS[r.backend]} ×.",
        ]
    if results.stages and results.backends:
        lines += [
            "",
            "**Stage by stage** (the crmkit import stopped after each stage, nothing written;"
            " the same CSV file; µs per row, cumulative):",
            "",
            "| Stage | rows/s | µs/row | this stage adds |",
            "|---|---:|---:|---:|",
        ]
        previous = 0.0
        for stage, label in STAGES:
            timing = results.stages[stage]
            per_row = timing.seconds / rows * 1e6
            lines.append(
                f"| {label} | {timing.rate:,.0f} | {per_row:.1f} | {per_row - previous:+.1f} |"
            )
            previous = per_row
        for r in results.backends:
            per_row = r.crmkit.seconds / rows * 1e6
            lines.append(
                "| + write the records, outbox events and audit entries; commit"
                f" ({r.backend}: the full import)"
                f" | {r.crmkit.rate:,.0f} | {per_row:.1f} | {per_row - previous:+.1f} |"
            )
        for r in results.backends:
            budget = r.bare.seconds / rows * 1e6 / GOALS[r.backend]
            lines.append(
                f"| *budget for {GOALS[r.backend]} × the bare driver on {r.backend}*"
                f" | {r.bare.rate * GOALS[r.backend]:,.0f} | {budget:.1f} | |"
            )
    lines.append("")
    for r in results.backends:
        if r.profile is not None:
            lines += profile_markdown(r.profile, f"Profile of the crmkit import on {r.backend}")
    return lines
