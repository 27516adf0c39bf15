"""``crmkit plugins new`` and ``crmkit plugins migration`` (skipped by the generic CLI fuzz,
which must not scaffold files) given hostile values: status 1 with one line on stderr or 2
(click's usage error), never a traceback, and nothing written for a refused name."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Run

HOSTILE = [
    "99999999999999999999",
    "²",
    "\x1b[2J\x1b]0;x\x07\u202e",
    "张" * 3000,
    "../../../../etc/passwd",
    '=HYPERLINK("http://x")',
    "",
    "a",
    "import",
]


def assert_clean_failure(result: object) -> None:
    exit_code = result.exit_code  # type: ignore[attr-defined]
    output = result.output  # type: ignore[attr-defined]
    assert exit_code in (1, 2), output
    assert "Traceback" not in output
    if exit_code == 1:
        assert len(result.stderr.splitlines()) == 1, result.stderr  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", HOSTILE)
def test_new_refuses_a_hostile_name_and_writes_nothing(
    cli_run: Run, tmp_path: Path, value: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert_clean_failure(cli_run("plugins", "new", value, "--directory", str(out)))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("value", ["/proc/version", "\x00bad", "/proc/no-such/folder"])
def test_new_into_a_hostile_folder_fails_in_one_line(cli_run: Run, value: str) -> None:
    assert_clean_failure(cli_run("plugins", "new", "visits", "--directory", value))


@pytest.mark.parametrize("value", HOSTILE)
def test_migration_of_a_hostile_plugin_name_fails_in_one_line(cli_run: Run, value: str) -> None:
    assert_clean_failure(cli_run("plugins", "migration", value, "-m", value or "x"))


@pytest.mark.parametrize("value", [v for v in HOSTILE if v != "import"] + ["contact", "Ticket"])
def test_new_refuses_a_hostile_entity_name_and_writes_nothing(
    cli_run: Run, tmp_path: Path, value: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = cli_run("plugins", "new", "visits", "--entity", value, "--directory", str(out))
    assert_clean_failure(result)
    assert list(out.iterdir()) == []
