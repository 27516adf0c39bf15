"""Importing contacts with the dedupe plugin enabled and disabled, both engines, in one run.

The same generated CSV (``data.write_csv``: mixed scripts, phones in every format) is
imported with ``transfer.import_csv`` (the ``crmkit import`` path, batches of 1 000) into a
fresh migrated database, once with no plugin and once with the dedupe plugin enabled (its
online check on: every row checked against the records already there and its keys filed),
alternating, ``--rounds`` times each, after an untimed import of 200 rows each way (the
start-up a running server has behind it: converters, pinyin tables, the gazetteer). With
``--per-row N`` it also imports N rows with the plugin enabled but the core asking the
one-row hook per row (what it did before the batch hook, patched in for the measurement),
next to the batch hook on the same N rows.

``python bench/dedupe_import.py [--rows 100000] [--rounds 2] [--backend sqlite|postgresql]
[--per-row 20000]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from data import write_csv  # noqa: E402
from dbs import BACKENDS, Databases  # noqa: E402

import crmkit  # noqa: E402
from crmkit.services import collisions  # noqa: E402
from crmkit.services.transfer import import_csv  # noqa: E402


@contextmanager
def _per_row() -> Iterator[None]:
    """The core's batch check as it was before ``crmkit_find_duplicates_many``: one hook
    call per row when a plugin answers the one-row hook."""

    def per_row(op: Any, entity: str, rows: Any) -> dict[int, list[Any]]:
        return {line: collisions.find_duplicates(op, entity, values, None) for line, values in rows}

    with mock.patch.object(collisions, "find_duplicates_many", per_row):
        yield


def import_once(databases: Databases, csv_path: Path, *, plugin: bool) -> float:
    """Seconds to import ``csv_path`` into a fresh database."""
    url = databases.fresh()
    if plugin:
        with crmkit.open(url) as crm:
            crm.enable_plugin("dedupe")
    with crmkit.open(url) as crm:
        began = time.perf_counter()
        report = import_csv(crm, "contact", csv_path, batch_size=1000)
        seconds = time.perf_counter() - began
    databases.drop(url)
    if report.errors:
        raise RuntimeError(f"the benchmark CSV has bad rows: {report.errors[:3]}")
    return seconds


def run(
    rows: int,
    rounds: int,
    backends: tuple[str, ...],
    per_row: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One result per backend: every run's seconds with and without the plugin."""
    out = []
    with tempfile.TemporaryDirectory() as folder:
        csv_path = write_csv(Path(folder) / "contacts.csv", rows)
        small = write_csv(Path(folder) / "small.csv", per_row) if per_row else None
        warm = write_csv(Path(folder) / "warm.csv", 200, seed=7)
        for backend in backends:
            with Databases(backend) as databases:
                # start-up, not work: the converters, pinyin tables, gazetteer and SQL caches
                # a running server has loaded once
                for mode in (False, True):
                    import_once(databases, warm, plugin=mode)
                runs: dict[str, list[float]] = {"off": [], "on": []}
                for _ in range(rounds):
                    for mode in ("off", "on"):
                        seconds = import_once(databases, csv_path, plugin=mode == "on")
                        runs[mode].append(seconds)
                        log(f"{backend} plugin {mode}: {rows / seconds:.0f} rows/s")
                result: dict[str, Any] = {"backend": backend, "rows": rows, "runs": runs}
                if small is not None:
                    batched = import_once(databases, small, plugin=True)
                    with _per_row():
                        one_by_one = import_once(databases, small, plugin=True)
                    result["per_row"] = {"rows": per_row, "batch": batched, "row": one_by_one}
                    log(
                        f"{backend} {per_row} rows: batch {batched:.1f} s,"
                        f" per row {one_by_one:.1f} s"
                    )
                out.append(result)
    return out


def as_markdown(results: list[dict[str, Any]]) -> list[str]:
    """The table: rows/s of every run, and the ratio of the best runs."""
    lines = [
        "| Engine | Rows | Plugin off (rows/s, each run) | Plugin on (rows/s, each run) |"
        " On / off (best runs) |",
        "|---|---:|---|---|---:|",
    ]
    for r in results:
        off = [r["rows"] / s for s in r["runs"]["off"]]
        on = [r["rows"] / s for s in r["runs"]["on"]]
        lines.append(
            f"| {r['backend']} | {r['rows']} | {', '.join(f'{v:.0f}' for v in off)}"
            f" | {', '.join(f'{v:.0f}' for v in on)} | {max(on) / max(off):.2f} |"
        )
    for r in results:
        if "per_row" in r:
            p = r["per_row"]
            lines.append(
                f"\n{r['backend']}, {p['rows']} rows with the plugin on: batch hook"
                f" {p['rows'] / p['batch']:.0f} rows/s, one hook call per row (before)"
                f" {p['rows'] / p['row']:.0f} rows/s."
            )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--per-row", type=int, default=0)
    args = parser.parse_args(argv)
    results = run(
        args.rows,
        args.rounds,
        tuple(args.backend or BACKENDS),
        args.per_row,
        lambda text: print(text, file=sys.stderr, flush=True),
    )
    print("\n".join(as_markdown(results)))


if __name__ == "__main__":
    main()
