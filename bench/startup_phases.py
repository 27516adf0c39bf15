"""Where ``crmkit contacts list --limit 1`` spends its time, phase by phase.

``python bench/startup_phases.py [--rounds N]`` (in a demo CRM's folder, as startup_bench
makes one): each round is a fresh process that does what the command does, one step at a
time, and prints the milliseconds of each step; the medians over the rounds are printed.
The whole process (interpreter start included) is ``startup_bench.py``'s figure; this one
says which step to work on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PHASES = r"""
import json, sys, time
marks = [("start", time.perf_counter())]
def mark(name):
    marks.append((name, time.perf_counter()))
import click
mark("import click")
import crmkit.cli
mark("import crmkit.cli")
import sqlalchemy.orm
mark("import sqlalchemy.orm")
import crmkit.entities
mark("core models")
from crmkit.settings import Settings
settings = Settings.load(None)
mark("settings")
import crmkit.app
mark("import crmkit.app")
from crmkit.plugins import discover_plugins
found = discover_plugins()
crmkit.app.discover_plugins = lambda: found  # (open_crm would scan again)
mark("plugin discovery")
import sqlite3
with sqlite3.connect("crmkit.db") as connection:
    enabled = [row[0] for row in connection.execute("SELECT name FROM plugin_states WHERE enabled")]
for name in enabled:
    found[name].load()
mark("enabled plugins' imports")
crm = crmkit.app.open_crm(settings=settings)
mark("open the CRM (mappers, registry, start-up hooks)")
page = crm.records("contact").list({}, limit=1)
mark("first query")
from crmkit.cli.records import echo_record_page
columns = ["id", "full_name", "title", "phone", "email", "city", "account_id", "lifecycle_stage"]
import io, contextlib
with contextlib.redirect_stdout(io.StringIO()):
    echo_record_page(crm, "contact", page, columns, empty="none")
crm.close()
mark("table and close")
print(json.dumps([(b[0], (b[1] - a[1]) * 1000) for a, b in zip(marks, marks[1:])]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    arguments = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs: dict[str, list[float]] = {}
    for _ in range(arguments.rounds + 1):  # the first writes the bytecode caches
        output = subprocess.run(
            [sys.executable, "-c", PHASES], capture_output=True, text=True, check=True, env=env
        ).stdout
        for name, milliseconds in json.loads(output.splitlines()[-1]):
            runs.setdefault(name, []).append(milliseconds)
    total = 0.0
    for name, values in runs.items():
        median = statistics.median(values[1:])
        total += median
        print(f"{median:7.1f} ms  {name}")
    print(f"{total:7.1f} ms  sum of the medians (the interpreter's start not included)")


if __name__ == "__main__":
    main()
