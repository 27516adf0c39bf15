"""docs/plugin-tutorial.md works as written: its commands run and its files are written in
order. Commands run in-process (the CLI through click's runner, the plugin's tests through
pytest.main); a block that follows an edit of the plugin's code runs in one fresh process,
as the reader's next command would (an imported model cannot be re-imported in place)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tutorial_support import run_line, write_file

from crmkit.testing import isolate_command_line

PAGE = Path(__file__).resolve().parent.parent / "docs" / "plugin-tutorial.md"
BLOCK = re.compile(
    r'^```(?P<lang>\w+)(?: title="(?P<title>[^"]+)")?\n(?P<body>.*?)^```$', re.M | re.S
)
NOT_RUN = "Publishing (not run by the tests)"


def blocks() -> list[tuple[str, str | None, str]]:
    text = PAGE.read_text(encoding="utf-8")
    return [(m["lang"], m["title"], m["body"]) for m in BLOCK.finditer(text)]


def run_fresh(steps: list[list[str]]) -> None:
    """Run ``steps`` in a new interpreter in the current folder."""
    tests = str(Path(__file__).resolve().parent)
    result = subprocess.run(
        [sys.executable, str(Path(tests) / "tutorial_support.py")],
        input=json.dumps(steps),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": tests, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_tutorial_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_command_line(monkeypatch, tmp_path)
    monkeypatch.setattr("crmkit.app.discover_plugins", dict)  # only the tutorial's plugin
    runner = CliRunner()
    ran: list[str] = []
    later: list[list[str]] = []  # once a module imported here is edited: in a new process
    for lang, title, body in blocks():
        if lang == "python":
            assert title, f"a python block without a file title:\n{body}"
            package = title.split("/")[0]
            if later or package in sys.modules:
                later.append(["file", title, body])
            else:
                write_file(title, body)
            continue
        if lang != "console" or title == NOT_RUN:
            continue
        for line in body.splitlines():
            ran.append(line)
            if later:
                later.append(["run", line])
            else:
                run_line(line, runner, monkeypatch.setattr, monkeypatch.chdir)
    run_fresh(later)

    assert ran[0] == "crmkit plugins new visits"
    assert ran[-1] == "pytest"
    migration = Path.cwd() / "crmkit_visits" / "migrations" / "visits_0002_add_outcome.py"
    assert "add_column" in migration.read_text(encoding="utf-8")
