"""What the CLI tests of the admin commands share: a ``cli_run`` fixture that runs ``crmkit``
against this test's database with no plugins and no crmkit variables from the environment,
and ``ok`` / ``failed`` to read a result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crmkit.cli import cli
from crmkit.testing import isolate_command_line

Run = Callable[..., Result]


@pytest.fixture
def cli_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Run:
    """Run ``crmkit --database-url <this test's database> ARGS...`` with no plugins and no
    crmkit variables from the environment."""
    isolate_command_line(monkeypatch, tmp_path)
    monkeypatch.setattr("crmkit.app.discover_plugins", dict)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--database-url", database_url, *args], input=input)

    return invoke


def ok(result: Result) -> str:
    """The standard output of a command that succeeded (exit status 0)."""
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def failed(result: Result) -> str:
    """The one line a failed command printed on stderr (exit status 1)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    return line
