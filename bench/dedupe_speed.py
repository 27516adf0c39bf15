"""Duplicate detection speed: the batch scan and the online check on a database of contacts,
next to recordlinkage on the same rows, in the same run.

Each measured step runs in a child process so its peak memory (``ru_maxrss``) is its own.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

from dbs import Databases

import crmkit


def _rows(count: int) -> list[dict[str, Any]]:
    import dedupe_bench

    frame, _ = dedupe_bench.mixed_set(int(count / 1.3) + 1)
    frame = frame.head(count)
    rows = []
    for _, row in frame.iterrows():
        rows.append(
            {
                "full_name": row["full_name"],
                "phone": row["phone"] if isinstance(row["phone"], str) else None,
                "email": row["email"] if isinstance(row["email"], str) else None,
                "city": row["city"],
            }
        )
    return rows


def _child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("fork")
    queue: Any = context.Queue()

    def run() -> None:
        began = time.perf_counter()
        result = target(*args)
        result["seconds"] = time.perf_counter() - began
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put(result)

    process = context.Process(target=run)
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def _scan(url: str) -> dict[str, Any]:
    import crmkit_dedupe
    from crmkit_dedupe.engine import engine_of

    with crmkit.open(url) as crm, crm.transaction() as op:
        counts = engine_of(crm).scan(op, "contact")
    assert crmkit_dedupe.PLUGIN_NAME == "dedupe"
    return dict(counts)


def _recordlinkage(url: str) -> dict[str, Any]:
    import pandas as pd
    import recordlinkage
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    frame = pd.read_sql(
        "SELECT id, full_name, phone, email, city FROM contacts WHERE deleted_at IS NULL",
        engine,
        index_col="id",
    )
    engine.dispose()
    indexer = recordlinkage.Index()
    indexer.block("full_name")
    indexer.block("phone")
    candidates = indexer.index(frame)
    compare = recordlinkage.Compare()
    compare.string("full_name", "full_name", method="jarowinkler", threshold=0.85)
    compare.exact("phone", "phone")
    compare.exact("email", "email")
    compare.exact("city", "city")
    features = compare.compute(candidates, frame)
    found = int((features.sum(axis=1) >= 3).sum())
    return {"records": len(frame), "compared": len(candidates), "candidates": found}


def run(
    backends: list[str], *, contacts: int, checks: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Per backend: load ``contacts``, enable dedupe (index), scan, recordlinkage, and
    ``checks`` creates with the online check."""
    rows = _rows(contacts)
    probes = _rows(checks * 2)[-checks:]
    results = []
    for backend in backends:
        with Databases(backend) as databases:
            url = databases.fresh()
            with crmkit.open(url) as crm:
                began = time.perf_counter()
                crm.contacts.create_many(enumerate(rows, start=2))
                log(
                    f"dedupe speed {backend}: {contacts} contacts in"
                    f" {time.perf_counter() - began:.0f} s"
                )
                began = time.perf_counter()
                crm.enable_plugin("dedupe")
                index_seconds = time.perf_counter() - began
                log(f"dedupe speed {backend}: indexed in {index_seconds:.0f} s")
            scan = _child(_scan, url)
            log(f"dedupe speed {backend}: scan {scan['seconds']:.0f} s")
            linkage = _child(_recordlinkage, url)
            log(f"dedupe speed {backend}: recordlinkage {linkage['seconds']:.0f} s")
            latencies = []
            checks_only = []
            bare = []
            with crmkit.open(url) as crm:
                for index, values in enumerate(probes):
                    if index % 5 == 0:
                        values = dict(rows[index * 7 % len(rows)])  # a duplicate
                    began = time.perf_counter()
                    with crm.transaction() as op:
                        checked = time.perf_counter()
                        crm.host.call(
                            "crmkit_find_duplicates",
                            op=op,
                            entity="contact",
                            values=values,
                            record_id=None,
                        )
                        checks_only.append(time.perf_counter() - checked)
                        op.records("contact").create(values)
                    latencies.append(time.perf_counter() - began)
                crm.disable_plugin("dedupe")
                for values in probes:
                    began = time.perf_counter()
                    crm.contacts.create(values)
                    bare.append(time.perf_counter() - began)
            results.append(
                {
                    "backend": backend,
                    "contacts": contacts,
                    "index_seconds": index_seconds,
                    "scan": scan,
                    "recordlinkage": linkage,
                    "p50": statistics.median(latencies),
                    "p95": statistics.quantiles(latencies, n=20)[18],
                    "bare_p95": statistics.quantiles(bare, n=20)[18],
                    "check_p50": statistics.median(checks_only),
                    "check_p95": statistics.quantiles(checks_only, n=20)[18],
                }
            )
    return results


def as_markdown(results: list[dict[str, Any]]) -> list[str]:
    """The speed tables."""
    lines = [
        "### Duplicate detection: batch scan and online check (dedupe plugin)",
        "",
        "Contacts from the mixed Chinese/Latin generator (about 30 % with a duplicate)."
        " Scan: `Engine.scan` (read every contact, multiple blocking keys and sorted"
        " neighbourhood, score, save candidates) in a child process; recordlinkage: read the"
        " same rows with pandas, block on name and on phone, compare, sum threshold, in its"
        " own child process. Peak memory is each child's maximum resident set. Online check:"
        " a create of a contact with the dedupe hook called in the same transaction (20 % of"
        " them duplicates), next to a bare create with the plugin disabled. One attempt per"
        " size; the machine was shared with other sessions.",
        "",
        "| Engine | Contacts | Index build (s) | Scan (s) | Scan peak (MB) | Candidates |"
        " recordlinkage (s) | recordlinkage peak (MB) | Ratio (rl / crmkit) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        scan, rl = r["scan"], r["recordlinkage"]
        lines.append(
            f"| {r['backend']} | {r['contacts']:,} | {r['index_seconds']:.1f} |"
            f" {scan['seconds']:.1f} | {scan['peak_mb']:.0f} | {scan['candidates']:,} |"
            f" {rl['seconds']:.1f} | {rl['peak_mb']:.0f} | {rl['seconds'] / scan['seconds']:.2f} |"
        )
    lines += [
        "",
        "| Engine | Contacts | Check alone p50 (ms) | Check alone p95 (ms) |"
        " Create + check p50 (ms) | Create + check p95 (ms) | Bare create p95 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['contacts']:,} | {r['check_p50'] * 1000:.2f} |"
            f" {r['check_p95'] * 1000:.2f} | {r['p50'] * 1000:.2f} |"
            f" {r['p95'] * 1000:.2f} | {r['bare_p95'] * 1000:.2f} |"
        )
    lines.append("")
    return lines
