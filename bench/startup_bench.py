"""CLI start-up: ``python bench/startup_bench.py [--rounds N] [--plugins a,b]``.

Times whole processes, as an admin's shell script meets them: ``crmkit --version``,
``crmkit --help``, ``crmkit contacts --help`` and ``crmkit contacts list --limit 1`` on a
demo CRM (with the plugins the nox demo enables, or ``--plugins``), next to ``python -c
pass`` and ``python -c "import click"`` (the floor any click CLI pays) in the same run. The
commands are interleaved round by round, so a load change on a shared machine hits them all
alike; every round's times are printed, then medians and the difference from ``import
click``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info


def crmkit_command() -> list[str]:
    script = Path(sys.executable).with_name("crmkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "crmkit.cli"]


#: The children run with bytecode caches, as after ``pip install`` (which compiles them):
#: an environment that sets PYTHONDONTWRITEBYTECODE (this one's did) makes every start
#: compile each module's source again, which doubled ``contacts list``.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=CHILD_ENV,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--plugins",
        default="referrals,dedupe,cardscan,reminders,loyalty,insights,campaigns",
        help="plugins to enable in the demo CRM, comma-separated (default: the nox demo's)",
    )
    arguments = parser.parse_args()
    crmkit = crmkit_command()
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        subprocess.run([*crmkit, "init"], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        for plugin in filter(None, arguments.plugins.split(",")):
            subprocess.run(
                [*crmkit, "plugins", "enable", plugin],
                cwd=cwd,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        subprocess.run([*crmkit, "demo"], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            'python -c "import click"': [sys.executable, "-c", "import click"],
            "crmkit --version": [*crmkit, "--version"],
            "crmkit --help": [*crmkit, "--help"],
            "crmkit contacts --help": [*crmkit, "contacts", "--help"],
            "crmkit contacts list --limit 1": [*crmkit, "contacts", "list", "--limit", "1"],
        }
        # a first round writes the bytecode caches; it is printed apart, not in the medians
        warm_up = {name: timed(argv, cwd) for name, argv in cases.items()}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(arguments.rounds):
            for name, argv in cases.items():
                times[name].append(timed(argv, cwd))
    print(f"# CLI start-up, {arguments.rounds} interleaved rounds; {machine_info()}")
    print(f"# demo CRM with plugins: {arguments.plugins or 'none'}")
    print(f"# load average at the end: {os.getloadavg()}")
    floor = statistics.median(times['python -c "import click"'])
    print(
        "# warm-up round (writes the bytecode caches): "
        + ", ".join(f"{name} {value:.3f}" for name, value in warm_up.items())
    )
    print(f"{'command':34} {'median s':>9} {'- click':>8}  every round (s)")
    for name, values in times.items():
        median = statistics.median(values)
        rounds = " ".join(f"{value:.3f}" for value in values)
        print(f"{name:34} {median:9.3f} {median - floor:+8.3f}  {rounds}")


if __name__ == "__main__":
    main()
