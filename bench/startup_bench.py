"""CLI start-up: ``python bench/startup_bench.py [--rounds N] [--plugins a,b]``.

Times whole processes, as an admin's shell script meets them: ``crmkit --version``,
``crmkit --help``, ``crmkit contacts --help`` and ``crmkit contacts list --limit 1`` on a
demo CRM (with the plugins the nox demo enables, or ``--plugins``), next to ``python -c
pass`` and ``python -c "import click"`` (the floor any click CLI pays) in the same run. The
commands are interleaved round by round, so a load change on a shared machine hits them all
alike; every round's times are printed, then medians and the difference from ``import
click``.

``--baseline DIR`` also runs every ``crmkit`` command on the code of another checkout (say
``main``'s, from ``git archive``), through ``PYTHONPATH``, in the same rounds: an A/B on
one venv. The floor's rows (``bench/startup_floor.py``) time SQLAlchemy and the models
alone: what no change to crmkit's own start-up can go below.
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


FLOOR = Path(__file__).with_name("startup_floor.py")


def baseline_path(checkout: Path) -> str:
    """``PYTHONPATH`` that makes the venv import crmkit and its bundled plugins from
    ``checkout`` instead of the editable installs (which point at this worktree)."""
    folders = [checkout, checkout / "plugins", *sorted((checkout / "examples").glob("crmkit-*"))]
    return os.pathsep.join(str(folder) for folder in folders)


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env or CHILD_ENV,
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
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout whose code also runs every crmkit command (A/B in the same rounds)",
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
            "floor: import sqlalchemy.orm": [sys.executable, str(FLOOR), "orm"],
            "floor: core models + query": [sys.executable, str(FLOOR), "core"],
            "floor: + enabled plugins": [sys.executable, str(FLOOR), "all"],
            "floor: + enabled plugins, gc paused": [sys.executable, str(FLOOR), "all-paused-gc"],
        }
        envs: dict[str, dict[str, str]] = dict.fromkeys(cases, CHILD_ENV)
        if arguments.baseline is not None:
            baseline_env = {**CHILD_ENV, "PYTHONPATH": baseline_path(arguments.baseline)}
            for name, argv in list(cases.items()):
                if name.startswith("crmkit "):
                    cases[f"baseline: {name}"] = argv
                    envs[f"baseline: {name}"] = baseline_env
        # a first round writes the bytecode caches; it is printed apart, not in the medians
        warm_up = {name: timed(argv, cwd, envs[name]) for name, argv in cases.items()}
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(arguments.rounds):
            for name, argv in cases.items():
                times[name].append(timed(argv, cwd, envs[name]))
    print(f"# CLI start-up, {arguments.rounds} interleaved rounds; {machine_info()}")
    print(f"# demo CRM with plugins: {arguments.plugins or 'none'}")
    print(f"# load average at the end: {os.getloadavg()}")
    floor = statistics.median(times['python -c "import click"'])
    print(
        "# warm-up round (writes the bytecode caches): "
        + ", ".join(f"{name} {value:.3f}" for name, value in warm_up.items())
    )
    if arguments.baseline is not None:
        print(f"# baseline: {arguments.baseline} (PYTHONPATH={baseline_path(arguments.baseline)})")
    print(f"{'command':44} {'median s':>9} {'- click':>8}  every round (s)")
    for name, values in times.items():
        median = statistics.median(values)
        rounds = " ".join(f"{value:.3f}" for value in values)
        print(f"{name:44} {median:9.3f} {median - floor:+8.3f}  {rounds}")
    if arguments.baseline is not None:
        for name in cases:
            if name.startswith("crmkit "):
                baseline = statistics.median(times[f"baseline: {name}"])
                ratio = statistics.median(times[name]) / baseline
                print(f"# {name}: this checkout / baseline = {ratio:.2f}")


if __name__ == "__main__":
    main()
