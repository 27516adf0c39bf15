"""crmkit benchmarks: ``python bench/run.py [--quick] [--only NAME] [--rows N]``.

Writes the results, with the machine they ran on, into docs/benchmarks.md between the
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers. PostgreSQL is reached through
the admin URL in ``CRMKIT_BENCH_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); every database the benchmarks
create is dropped at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # the benchmark modules sit next to this script
    sys.path.insert(0, str(HERE))

import api_bench  # noqa: E402
import assign_bench  # noqa: E402
import dedupe_bench  # noqa: E402
import dedupe_speed  # noqa: E402
import events_bench  # noqa: E402
import hooks_bench  # noqa: E402
import import_bench  # noqa: E402
import relay_bench  # noqa: E402
import report  # noqa: E402
import scope_bench  # noqa: E402
from dbs import BACKENDS  # noqa: E402
from machine import machine_info  # noqa: E402

from crmkit.settings import RelaySettings  # noqa: E402

BENCHMARKS = ("import", "hooks", "relay", "scope", "api", "assign", "dedupe", "events")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only", choices=BENCHMARKS, action="append", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--rows", type=int, help="contacts to import (default 100000; quick 5000)")
    parser.add_argument(
        "--backend", choices=BACKENDS, action="append", help="only this engine (repeatable)"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the import profile")
    parser.add_argument(
        "--dedupe-contacts",
        type=int,
        action="append",
        help="contacts for the dedupe scan and online check (repeatable; default 100000 and"
        " 1000000; quick 2000)",
    )
    parser.add_argument(
        "--dedupe-checks", type=int, help="creates timed for the online check (default 1000)"
    )
    parser.add_argument(
        "--dedupe-results",
        type=Path,
        help="keep the dedupe speed results in this JSON file and report all it holds (so a"
        " run split per --backend makes one table)",
    )
    parser.add_argument(
        "--dedupe-skip-speed",
        action="store_true",
        help="skip the dedupe speed part (report what --dedupe-results holds)",
    )
    parser.add_argument(
        "--dedupe-skip-accuracy",
        action="store_true",
        help="skip the FEBRL/mixed accuracy part (keep its table from the page)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "docs" / "benchmarks.md",
        help="the Markdown file to update (default docs/benchmarks.md)",
    )
    parser.add_argument("--no-write", action="store_true", help="print results, write nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    # Ctrl-C and kill both unwind, so every throwaway database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING)
    quick = arguments.quick
    chosen = arguments.only or list(BENCHMARKS)
    backends = arguments.backend or list(BACKENDS)
    rows = arguments.rows or (5_000 if quick else 100_000)
    orm_rows = min(rows, 1_000 if quick else 10_000)
    creates = 200 if quick else 2_000
    relay_events = 5_000 if quick else 50_000
    webhook_events = 500 if quick else 10_000
    plan_events = 2_000  # where a plan that needs fresh statistics shows (seconds, not ms)
    began = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {message}", flush=True)

    machine = machine_info()
    log("machine: " + "; ".join(f"{key}: {value}" for key, value in machine.items()))
    parts: dict[str, list[str]] = {}
    if "import" in chosen:
        with tempfile.TemporaryDirectory(prefix="crmkit-bench-csv-") as folder:
            results = import_bench.run(
                backends,
                rows=rows,
                orm_rows=orm_rows,
                folder=Path(folder),
                crmkit_runs=1 if quick else 2,
                bare_runs=2 if quick else 3,
                with_profile=not arguments.no_profile,
                log=log,
            )
        parts["import"] = import_bench.as_markdown(results)
    if "hooks" in chosen:
        hook_results = hooks_bench.run(
            backends,
            creates=creates,
            import_rows=2_000 if quick else 10_000,
            warmup=20 if quick else 100,
            log=log,
        )
        parts["hooks"] = hooks_bench.as_markdown(hook_results, creates)
    if "relay" in chosen:
        if "postgresql" in backends:
            runs, plans = relay_bench.run(
                events=relay_events,
                webhook_events=webhook_events,
                plan_events=plan_events,
                rounds=1 if quick else 2,
                log=log,
            )
            batch_size = RelaySettings().batch_size
            parts["relay"] = relay_bench.as_markdown(runs, plans, batch_size=batch_size)
        else:
            log("relay: skipped (it runs on PostgreSQL only)")
    if "events" in chosen:
        if "postgresql" in backends:
            event_runs, drills, outages, costs = events_bench.run(
                events=3_000 if quick else 10_000,
                webhook_events=1_000 if quick else 3_000,
                rounds=1 if quick else 2,
                outage_seconds=10 if quick else 60,
                log=log,
            )
            parts["events"] = events_bench.as_markdown(event_runs, drills, outages, costs)
        else:
            log("events: skipped (it runs on PostgreSQL only)")
    if "scope" in chosen:
        contacts = 100_000 if quick else 1_000_000
        parts["scope"] = scope_bench.as_markdown(
            scope_bench.run(backends, contacts=contacts, log=log)
        )
    if "api" in chosen:
        api_results = api_bench.run(
            backends,
            contacts=10_000 if quick else 100_000,
            seconds=5 if quick else 15,
            log=log,
        )
        parts["api"] = api_bench.as_markdown(api_results)
    if "assign" in chosen:
        assign_creates = assign_bench.run_creates(
            backends, creates=200 if quick else 2_000, log=log
        )
        assign_release = None
        if "postgresql" in backends:
            assign_release = assign_bench.run_release(
                accounts=100_000 if quick else 1_000_000, log=log
            )
        parts["assign"] = assign_bench.as_markdown(assign_creates, assign_release)
    if "dedupe" in chosen:
        if arguments.dedupe_skip_accuracy:
            accuracy_lines = dedupe_bench.saved_markdown(arguments.output)
        else:
            accuracy_lines = dedupe_bench.as_markdown(dedupe_bench.run(quick=quick, log=log))
        speed = []
        if not arguments.dedupe_skip_speed:
            speed = dedupe_speed.run(
                backends,
                sizes=arguments.dedupe_contacts or ([2_000] if quick else [100_000, 1_000_000]),
                checks=arguments.dedupe_checks or (100 if quick else 1_000),
                log=log,
            )
        speed = dedupe_speed.merge_saved(speed, arguments.dedupe_results)
        parts["dedupe"] = accuracy_lines + dedupe_speed.as_markdown(speed)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "bench/run.py", *given])
    text = "\n".join(line for lines in parts.values() for line in lines)
    if arguments.no_write:
        print(text)
    else:
        report.write(
            arguments.output,
            machine=machine,
            command=command,
            parts=parts,
            order=BENCHMARKS,
        )
        log(f"results written to {os.path.relpath(arguments.output)}")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
