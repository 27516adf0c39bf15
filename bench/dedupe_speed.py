"""Duplicate detection speed: the batch scan and the online check on a database of contacts,
next to recordlinkage on the same rows, in the same run.

The contacts come from ``dedupe_bench.mixed_records(wide=True)`` (about 30 % of the people
have a duplicate with the issue's variations; the generator's true pairs give F1). They are
written by a raw bulk load (``sqlite3`` ``executemany`` / psycopg ``COPY``) in the form the
core stores (phone in E.164 and e-mail through ``crmkit.normalise_email``, as ``create``
writes them), then the plugin is enabled, which builds its key index (``Engine.rebuild``,
timed: the "index build"). Loading a million contacts through ``create_many`` would take
most of an hour on the 2-core machine and measures the import, not duplicate detection.

Each measured step runs in a child process so its peak memory (``ru_maxrss``) is its own;
recordlinkage's child has a wall-time limit and an address-space limit (``RLIMIT_AS``), and
a child stopped by either is reported as such.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import multiprocessing
import queue as queues
import resource
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from dbs import Databases, libpq_url, sqlite_path

import crmkit

#: recordlinkage's limits (its child is stopped past them and the fact is reported).
RL_SECONDS = 480
RL_MEMORY_GB = 10
#: Rounds of the scan and of recordlinkage on crmkit's blocking (alternating; the best counts).
ROUNDS = 2
#: Imported in each child before its clock starts (start-up, not work).
SCAN_IMPORTS = ("crmkit_dedupe.engine",)
RL_IMPORTS = ("pandas", "recordlinkage", "sqlalchemy", "crmkit_dedupe.normalise")


def generate(count: int) -> tuple[list[tuple[Any, ...]], set[tuple[int, int]]]:
    """``count`` contacts as ``(id, full_name, phone, email, city)`` in the form the core
    stores them, and the true duplicate pairs as id pairs (lower id first)."""
    import dedupe_bench

    records, truth = dedupe_bench.mixed_records(int(count / 1.3) + 1, wide=True)
    records = records[:count]
    ids = {record["id"]: n for n, record in enumerate(records, start=1)}
    rows = []
    for n, record in enumerate(records, start=1):
        phone = record["phone"]
        email = record["email"]
        rows.append(
            (
                n,
                record["full_name"],
                crmkit.normalise_phone(phone, "CN") if isinstance(phone, str) else None,
                crmkit.normalise_email(email) if isinstance(email, str) else None,
                record["city"],
            )
        )
    pairs = set()
    for a, b in truth:
        if a in ids and b in ids:
            x, y = ids[a], ids[b]
            pairs.add((min(x, y), max(x, y)))
    return rows, pairs


COLUMNS = (
    "id, full_name, phone, email, city, lifecycle_stage, extra_emails, extra_phones, social,"
    " custom, created_at, updated_at, version"
)


def _full(rows: list[tuple[Any, ...]], sqlite: bool) -> Iterator[tuple[Any, ...]]:
    now = "2025-01-01 00:00:00.000000" + ("" if sqlite else "+00")
    for row in rows:
        yield (*row, "prospect", "[]", "[]", "{}", "{}", now, now, 1)


def bulk_load(backend: str, url: str, rows: list[tuple[Any, ...]]) -> None:
    """Write ``rows`` into the migrated database at ``url`` in one transaction."""
    if backend == "sqlite":
        connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = OFF")  # the load only
        connection.execute("BEGIN IMMEDIATE")
        marks = ", ".join("?" * 13)
        connection.executemany(
            f"INSERT INTO contacts ({COLUMNS}) VALUES ({marks})", _full(rows, True)
        )
        connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        return
    with psycopg.connect(libpq_url(url)) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY contacts ({COLUMNS}) FROM STDIN") as copy:
                for row in _full(rows, False):
                    copy.write_row(row)
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('contacts', 'id'),"
                " (SELECT max(id) FROM contacts))"
            )
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE contacts")


def _analyse(backend: str, url: str) -> None:
    """What autovacuum does after a bulk insert (and a deployment has long had done when it
    scans): PostgreSQL ``VACUUM ANALYZE`` of the key index's table (statistics for the
    planner and the visibility map its index-only scans need), SQLite ``ANALYZE``."""
    if backend == "sqlite":
        connection = sqlite3.connect(sqlite_path(url), isolation_level=None)
        connection.execute("ANALYZE")
        connection.close()
        return
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE dedupe_keys")


def _in_child(
    target: Callable[..., dict[str, Any]],
    args: tuple[Any, ...],
    memory_gb: float | None,
    channel: Any,
    warm: tuple[str, ...] = (),
) -> None:
    if memory_gb is not None:
        limit = int(memory_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for module in warm:  # imports are the program's start-up, not the work: off the clock
        importlib.import_module(module)
    began = time.perf_counter()
    try:
        result = target(*args)
    except MemoryError:
        result = {"failed": f"ran out of memory (address space limited to {memory_gb} GB)"}
    result["seconds"] = time.perf_counter() - began
    result["peak_mb"] = _peak_mb()
    channel.put(result)


def _peak_mb() -> float:
    """This process's peak resident set: ``VmHWM``, which a new program image starts afresh
    (``ru_maxrss`` keeps, across the ``exec`` of a spawned child, what the forked copy of the
    parent held, i.e. the parent's generated rows)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(
    target: Callable[..., dict[str, Any]],
    *args: Any,
    seconds: float | None = None,
    memory_gb: float | None = None,
    warm: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``target(*args)`` in a new process (spawned, not forked: its peak resident set is its
    own, not the generator's rows it would inherit), with optional limits."""
    context = multiprocessing.get_context("spawn")
    channel: Any = context.Queue()
    process = context.Process(target=_in_child, args=(target, args, memory_gb, channel, warm))
    began = time.perf_counter()
    process.start()
    result: dict[str, Any] | None = None
    while result is None:
        try:
            result = channel.get(timeout=1)
        except queues.Empty:
            elapsed = time.perf_counter() - began
            if not process.is_alive():
                result = {"failed": f"died (exit code {process.exitcode})", "seconds": elapsed}
            elif seconds is not None and elapsed > seconds:
                process.kill()
                result = {"failed": f"stopped after {seconds:.0f} s (the limit given)"}
                result["seconds"] = elapsed
    process.join()
    if "failed" in result and "peak_mb" not in result:
        result["peak_mb"] = float("nan")
    if process.exitcode not in (0, None) and "failed" not in result:
        result["failed"] = f"exit code {process.exitcode}"
    return result


def _f1(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, float]:
    """Precision, recall and F1: ``dedupe_bench.scores`` (imported here, in the parent: the
    measured children must not load pandas with it)."""
    import dedupe_bench

    return dedupe_bench.scores(found, truth)


def _scan(url: str) -> dict[str, Any]:
    from crmkit_dedupe.engine import engine_of

    with crmkit.open(url) as crm, crm.transaction() as op:
        counts = engine_of(crm).scan(op, "contact")
    return dict(counts)


def _scan_pairs(url: str) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """The pairs the scan saved: those it declares duplicates (a rule whose action is
    ``block``: the same person) and all it saved for review (``warn`` rules too). The
    candidates are then deleted, so the next scan starts as the first one did."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    declared, review = set(), set()
    with engine.begin() as connection:
        for a, b, action in connection.execute(
            sa.text("SELECT id_a, id_b, action FROM dedupe_candidates WHERE entity_a = 'contact'")
        ):
            pair = (min(a, b), max(a, b))
            review.add(pair)
            if action == "block":
                declared.add(pair)
        connection.execute(sa.text("DELETE FROM dedupe_candidates"))
    engine.dispose()
    return declared, review


def _recordlinkage(url: str, names: bool = True) -> dict[str, Any]:
    """recordlinkage's standard setup on the same rows: read them with pandas, normalise the
    name to crmkit's order-free name key and the e-mail to its canonical form (recordlinkage
    has no pinyin or Traditional/Simplified step of its own; the phones are already E.164),
    block on name key (unless not ``names``: then on crmkit's own blocking, phone and e-mail
    only), on phone and on e-mail, compare (Jaro-Winkler name, exact phone, e-mail and city)
    and classify by a sum threshold (>= 3)."""
    import pandas as pd
    import recordlinkage
    import sqlalchemy as sa
    from crmkit_dedupe import normalise as nz

    engine = sa.create_engine(url)
    frame = pd.read_sql(
        "SELECT id, full_name, phone, email, city FROM contacts WHERE deleted_at IS NULL",
        engine,
        index_col="id",
    )
    engine.dispose()
    frame["name"] = [nz.person_name(str(v)).key for v in frame["full_name"]]
    frame["email"] = [nz.canonical_email(v) if isinstance(v, str) else None for v in frame["email"]]
    indexer = recordlinkage.Index()
    if names:
        indexer.block("name")
    indexer.block("phone")
    indexer.block("email")
    candidates = indexer.index(frame)
    compare = recordlinkage.Compare()
    compare.string("name", "name", method="jarowinkler", threshold=0.85)
    compare.exact("phone", "phone")
    compare.exact("email", "email")
    compare.exact("city", "city")
    features = compare.compute(candidates, frame)
    matched = features[features.sum(axis=1) >= 3].index
    pairs = [(min(int(a), int(b)), max(int(a), int(b))) for a, b in matched]
    return {"records": len(frame), "compared": len(candidates), "found": pairs}


def _linkage(url: str, truth: set[tuple[int, int]], *, names: bool) -> dict[str, Any]:
    """:func:`_recordlinkage` in its limited child process, with its F1 when it finished."""
    result = _child(
        _recordlinkage, url, names, seconds=RL_SECONDS, memory_gb=RL_MEMORY_GB, warm=RL_IMPORTS
    )
    if "found" in result:
        result.update(_f1(set(map(tuple, result.pop("found"))), truth))
    return result


def _online(url: str, probes: list[dict[str, Any]]) -> dict[str, Any]:
    """Creates with the plugin enabled (the core calls its check in the creating transaction
    and its hook files the new keys), the check alone, then bare creates with the plugin
    disabled (the core's fallback check only)."""
    with_check, alone, bare = [], [], []
    refused = 0
    with crmkit.open(url) as crm:
        for values in probes[:50]:  # warm-up: caches, statements, connections
            with crm.transaction(write=False) as op:
                crm.host.call(
                    "crmkit_find_duplicates", op=op, entity="contact", values=values, record_id=None
                )
        for values in probes:
            with crm.transaction(write=False) as op:
                began = time.perf_counter()
                crm.host.call(
                    "crmkit_find_duplicates", op=op, entity="contact", values=values, record_id=None
                )
                alone.append(time.perf_counter() - began)
        written = []
        for values in probes:
            began = time.perf_counter()
            try:
                crm.contacts.create(values)
            except crmkit.DuplicateError:  # refused by a block rule: nothing written
                refused += 1
                written.append(False)
            else:
                written.append(True)
            with_check.append(time.perf_counter() - began)
        crm.disable_plugin("dedupe")
        for values in probes:
            began = time.perf_counter()
            crm.contacts.create(values)
            bare.append(time.perf_counter() - began)
    # like for like: the creates written in both passes (a refused create stops early)
    with_check = [t for t, kept in zip(with_check, written, strict=True) if kept]
    bare = [t for t, kept in zip(bare, written, strict=True) if kept]

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[18]

    return {
        "check_p50": statistics.median(alone),
        "check_p95": p95(alone),
        "p50": statistics.median(with_check),
        "p95": p95(with_check),
        "bare_p50": statistics.median(bare),
        "bare_p95": p95(bare),
        "creates": len(probes),
        "written": len(with_check),
        "refused": refused,
    }


def _probes(rows: list[tuple[Any, ...]], checks: int) -> list[dict[str, Any]]:
    """New contacts: 20 % are another spelling of an existing one (its pinyin name, its
    phone in another format), the rest new people from the same generator."""
    import dedupe_bench
    from crmkit_dedupe.normalise import has_cjk

    fresh, _ = dedupe_bench.mixed_records(checks, seed=11, wide=True)
    probes = []
    for n in range(checks):
        if n % 5 == 0:
            _, name, phone, email, city = rows[(n * 7919) % len(rows)]
            spelled = name
            if has_cjk(name):
                spelled = dedupe_bench._pinyin_name(name, western=n % 2 == 0)
            local = phone[3:] if phone and phone.startswith("+86") else phone
            probes.append({"full_name": spelled, "phone": local, "email": email, "city": city})
        else:
            record = fresh[n]
            probes.append(
                {
                    "full_name": record["full_name"],
                    "phone": record["phone"],
                    "email": record["email"],
                    "city": record["city"],
                }
            )
    return probes


def run(
    backends: list[str],
    *,
    sizes: list[int],
    checks: int,
    log: Callable[[str], None],
    recordlinkage_up_to: int | None = None,
) -> list[dict[str, Any]]:
    """Per size and backend: bulk load, enable dedupe (index), scan, recordlinkage, and
    ``checks`` creates with the online check next to bare creates."""
    results = []
    for contacts in sizes:
        began = time.perf_counter()
        rows, truth = generate(contacts)
        log(f"dedupe speed: {contacts} contacts generated in {time.perf_counter() - began:.0f} s")
        probes = _probes(rows, checks)
        for backend in backends:
            with Databases(backend) as databases:
                url = databases.fresh()
                began = time.perf_counter()
                bulk_load(backend, url, rows)
                load_seconds = time.perf_counter() - began
                log(f"dedupe speed {backend}: {contacts} contacts loaded in {load_seconds:.0f} s")
                with crmkit.open(url) as crm:
                    began = time.perf_counter()
                    crm.enable_plugin("dedupe")
                    enable_seconds = time.perf_counter() - began
                began = time.perf_counter()
                _analyse(backend, url)
                analyse_seconds = time.perf_counter() - began
                index_seconds = enable_seconds + analyse_seconds
                log(f"dedupe speed {backend}: indexed in {index_seconds:.0f} s")
                # the scan and recordlinkage on crmkit's blocking, twice, alternating: the
                # better of each counts (the machine is shared; one round can be unlucky)
                scans: list[dict[str, Any]] = []
                keyed_runs: list[dict[str, Any]] = []
                for _ in range(ROUNDS):
                    scan = _child(_scan, url, warm=SCAN_IMPORTS)
                    declared, review = _scan_pairs(url)
                    scan.update(_f1(declared, truth))
                    scan["review"] = _f1(review, truth)
                    scans.append(scan)
                    log(
                        f"dedupe speed {backend}: scan {scan['seconds']:.1f} s,"
                        f" F1 {scan['f1']:.6f} (review {scan['review']['f1']:.6f})"
                    )
                    keyed = _linkage(url, truth, names=False)
                    keyed_runs.append(keyed)
                    log(
                        f"dedupe speed {backend}: recordlinkage on phone/e-mail blocks"
                        f" {keyed['seconds']:.1f} s {keyed.get('failed') or ''}"
                    )
                scan = min(scans, key=lambda r: r["seconds"])
                scan["rounds"] = [r["seconds"] for r in scans]
                keyed = min(keyed_runs, key=lambda r: r["seconds"])
                keyed["rounds"] = [r["seconds"] for r in keyed_runs]
                if recordlinkage_up_to is None or contacts <= recordlinkage_up_to:
                    linkage = _linkage(url, truth, names=True)
                    log(
                        f"dedupe speed {backend}: recordlinkage {linkage['seconds']:.0f} s"
                        f" {linkage.get('failed') or ''}"
                    )
                else:
                    linkage = {"failed": "not run at this size", "seconds": float("nan")}
                online = _child(_online, url, probes)
                log(f"dedupe speed {backend}: online p95 {online['p95'] * 1000:.1f} ms")
                results.append(
                    {
                        "backend": backend,
                        "contacts": contacts,
                        "true_pairs": len(truth),
                        "load_seconds": load_seconds,
                        "index_seconds": index_seconds,
                        "analyse_seconds": analyse_seconds,
                        "scan": scan,
                        "recordlinkage": linkage,
                        "recordlinkage_keys": keyed,
                        **online,
                        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    }
                )
    return results


def merge_saved(results: list[dict[str, Any]], path: Path | None) -> list[dict[str, Any]]:
    """With ``path``: add ``results`` to the ones saved there (a later run of the same backend
    and size replaces the earlier) and return them all, so runs split per backend make one
    table."""
    if path is None:
        return results
    saved = json.loads(path.read_text()) if path.exists() else []
    done = {(r["backend"], r["contacts"]) for r in results}
    merged = [r for r in saved if (r["backend"], r["contacts"]) not in done] + results
    merged.sort(key=lambda r: (r["contacts"], r["backend"]))
    path.write_text(json.dumps(merged, indent=1))
    return merged


def _f1_cell(scan: dict[str, Any]) -> str:
    """The scan's F1 of declared pairs / of all pairs saved for review (older saved results
    have only the latter)."""
    if "review" not in scan:
        return f"- / {scan['f1']:.6f}"
    return f"{scan['f1']:.6f} / {scan['review']['f1']:.6f}"


def _cell(value: Any, fmt: str) -> str:
    if value is None or value != value:  # NaN
        return "-"
    return format(value, fmt)


def as_markdown(results: list[dict[str, Any]]) -> list[str]:
    """The speed tables."""
    lines = [
        "### Duplicate detection: batch scan and online check (dedupe plugin)",
        "",
        "Contacts from the mixed Chinese/Latin generator, wide name pool (about 30 % of the"
        " people with a duplicate; the generator's true pairs give F1), bulk-loaded in the form"
        " the core stores, then `plugins enable dedupe` builds the key index (Index build)."
        " Scan: `Engine.scan` with the built-in contact rules (count the contacts, read those"
        " the key index shows sharing a phone or e-mail, block, score the pairs vectorised,"
        " save the candidates) in a child process. recordlinkage: read the same rows with"
        " pandas, crmkit's name key and canonical e-mail, block on name key, phone and"
        " e-mail, compare, sum >= 3, in its own"
        f" child process, limited to {RL_SECONDS} s and {RL_MEMORY_GB} GB of address space."
        " Each child imports its libraries before its clock starts. Index build: `plugins"
        " enable dedupe`, then `VACUUM ANALYZE` of the key table (PostgreSQL) or `ANALYZE`"
        " (SQLite), as autovacuum does after a bulk insert. Peak memory is each child's"
        f" maximum resident set. The scan and recordlinkage on crmkit's blocking run {ROUNDS}"
        " times, alternating, and the faster run of each is shown (every run in the notes);"
        " recordlinkage's standard setup runs once. Scan F1: the pairs the scan declares"
        " duplicates (the `contact-same-person` rule, action block) / all the pairs it saves"
        " for review (also the `contact-possible` rule's warnings); recordlinkage's F1 is"
        " that of the pairs over its threshold. F1 against the generator's true pairs.",
        "",
        "| Engine | Contacts | Load (s) | Index build (s) | Scan (s) | Scan peak (MB) |"
        " Scan F1 (declared / review) |"
        " recordlinkage (s) | recordlinkage peak (MB) | recordlinkage F1 |"
        " Time ratio (rl / crmkit) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for r in results:
        scan, rl = r["scan"], r["recordlinkage"]
        failed = rl.get("failed")
        if failed:
            notes.append(
                f"- {r['backend']}, {r['contacts']:,} contacts: recordlinkage {failed}, after"
                f" {rl['seconds']:.0f} s; no pairs, so no F1."
            )
        ratio = rl["seconds"] / scan["seconds"] if not failed else float("nan")
        lines.append(
            f"| {r['backend']} | {r['contacts']:,} | {r['load_seconds']:.1f} |"
            f" {r['index_seconds']:.1f} | {scan['seconds']:.1f} | {scan['peak_mb']:.0f} |"
            f" {_f1_cell(scan)} | {_cell(rl['seconds'], '.1f')}"
            f"{' (failed)' if failed else ''} | {_cell(rl['peak_mb'], '.0f')} |"
            f" {_cell(rl.get('f1'), '.6f')} | {_cell(ratio, '.2f')} |"
        )
    lines += ["", *notes, ""] if notes else [""]
    lines += [
        "The same recordlinkage setup without the name blocks, i.e. with crmkit's own blocking"
        " (phone and e-mail), same child limits:",
        "",
        "| Engine | Contacts | Scan (s) | Scan peak (MB) | Scan F1 (declared / review) |"
        " recordlinkage (s) |"
        " recordlinkage peak (MB) | recordlinkage F1 | Time ratio (rl / crmkit) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rounds = []
    for r in results:
        scan, rl = r["scan"], r.get("recordlinkage_keys")
        if rl is None:
            continue
        failed = rl.get("failed")
        ratio = rl["seconds"] / scan["seconds"] if not failed else float("nan")
        lines.append(
            f"| {r['backend']} | {r['contacts']:,} | {scan['seconds']:.1f} |"
            f" {scan['peak_mb']:.0f} | {_f1_cell(scan)} | {_cell(rl['seconds'], '.1f')}"
            f"{f' ({failed})' if failed else ''} | {_cell(rl['peak_mb'], '.0f')} |"
            f" {_cell(rl.get('f1'), '.6f')} | {_cell(ratio, '.2f')} |"
        )
        if "rounds" in scan and "rounds" in rl:
            rounds.append(
                f"- {r['backend']}, {r['contacts']:,} contacts, measured {r['measured']}: scan"
                f" {', '.join(f'{x:.2f}' for x in scan['rounds'])} s; recordlinkage"
                f" {', '.join(f'{x:.2f}' for x in rl['rounds'])} s; precision / recall:"
                f" scan declared {scan['precision']:.6f} / {scan['recall']:.6f}, review"
                f" {scan['review']['precision']:.6f} / {scan['review']['recall']:.6f},"
                f" recordlinkage {_cell(rl.get('precision'), '.6f')} /"
                f" {_cell(rl.get('recall'), '.6f')}."
            )
    lines += ["", *rounds, ""] if rounds else [""]
    lines += [
        "Online check: creates through `crm.contacts.create` with the plugin enabled (the core"
        " calls its check in the creating transaction; 20 % of the new contacts are another"
        " spelling of an existing one: pinyin name, phone without +86; those the"
        " `contact-same-person` rule refuses are counted, and left out of both create columns so"
        " they compare the same written creates), the check alone (the hook in a read"
        " transaction, every new contact), and bare creates of the same contacts with the plugin"
        " disabled (the core's exact e-mail/phone fallback only), in the same child process.",
        "",
        "| Engine | Contacts | Creates (refused) | Check alone p50 / p95 (ms) |"
        " Create with check p50 (ms) | Create with check p95 (ms) | Bare create p50 (ms) |"
        " Bare create p95 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['contacts']:,} | {r['creates']} ({r['refused']}) |"
            f" {r['check_p50'] * 1000:.2f} / {r['check_p95'] * 1000:.2f} |"
            f" {r['p50'] * 1000:.2f} | {r['p95'] * 1000:.2f} |"
            f" {r['bare_p50'] * 1000:.2f} | {r['bare_p95'] * 1000:.2f} |"
        )
    lines.append("")
    return lines
