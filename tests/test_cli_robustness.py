"""The command line against hostile data and odd arguments (issue 16, findings 12, 13, 17-20):
stored control characters never reach the terminal raw; CSV cells a spreadsheet would run are
neutralised (with an opt-out) and import back unchanged; bad files and huge ids give one line,
never a traceback; export never replaces a FIFO, device or link; an unwritable --errors path
stops the import before anything is written; an import without a terminal reports progress.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest
from cli_support import Run, failed, ok

import crmkit
import crmkit.cli.transfer as transfer_cli
from crmkit.cli.terminal import terminal_safe

ESCAPES = "\x1b[2J\x1b]0;pwned\x07\r\x9b31m\u202egnp.exe"


def test_terminal_safe_shows_control_characters_and_keeps_text() -> None:
    assert terminal_safe("张伟\tok\n") == "张伟\tok\n"
    shown = terminal_safe(ESCAPES)
    assert not any(ord(c) < 0x20 and c not in "\t\n" for c in shown)
    assert "\\x1b[2J" in shown
    assert "\\u202e" in shown


def test_stored_escape_sequences_are_shown_not_obeyed(cli_run: Run, database_url: str) -> None:
    crm = crmkit.open_crm(database_url, discover=False)
    lead = crm.leads.create({"full_name": "Evil" + ESCAPES, "company_name": "x\x1b[1A"})
    for args in (("leads", "list"), ("leads", "show", str(lead.id)), ("leads", "list", "--json")):
        result = cli_run(*args)
        output = ok(result)
        assert "\x1b" not in output
        assert "\x07" not in output
        assert "\x9b" not in output
        assert "\r" not in output
        assert "\u202e" not in output
        assert "Evil" in output


def test_an_error_message_with_stored_text_is_made_safe(cli_run: Run) -> None:
    line = failed(cli_run("contacts", "list", "--filter", "full_name__bogus=\x1b[2J"))
    assert "\x1b" not in line


@pytest.mark.parametrize(
    "cell", ['=HYPERLINK("http://x")', "+1+cmd|' /C calc'!A0", "@SUM(A1)", "-2+3"]
)
def test_export_neutralises_formulas_and_import_takes_them_back(
    cli_run: Run, database_url: str, tmp_path: Path, cell: str
) -> None:
    crm = crmkit.open_crm(database_url, discover=False)
    crm.contacts.create({"full_name": "x", "notes": cell, "phone": "+86 138 1234 5678"})
    out = tmp_path / "contacts.csv"
    ok(cli_run("export", "contacts", "-o", str(out), "--fields", "full_name,notes,phone"))
    [row] = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["notes"] == "'" + cell
    assert row["phone"] == "+8613812345678"  # a plain number is no formula
    kept = tmp_path / "kept.csv"
    ok(cli_run("export", "contacts", "-o", str(kept), "--fields", "notes", "--keep-formulas"))
    [raw] = list(csv.DictReader(kept.open(encoding="utf-8")))
    assert raw["notes"] == cell
    ok(cli_run("import", str(out), "-e", "contacts"))
    assert sorted(c.notes for c in crm.contacts.list().items) == [cell, cell]


def test_export_writes_into_a_fifo_and_follows_a_link(
    cli_run: Run, database_url: str, tmp_path: Path
) -> None:
    crm = crmkit.open_crm(database_url, discover=False)
    crm.contacts.create({"full_name": "张伟"})
    real = tmp_path / "real.csv"
    real.write_text("old", encoding="utf-8")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    ok(cli_run("export", "contacts", "-o", str(link), "--fields", "full_name"))
    assert link.is_symlink()
    assert "张伟" in real.read_text(encoding="utf-8")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        ok(cli_run("export", "contacts", "-o", str(fifo), "--fields", "full_name"))
        assert "张伟" in os.read(reader, 10_000).decode()
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_binary_config_file_is_one_line(cli_run: Run, tmp_path: Path) -> None:
    config = tmp_path / "bin.toml"
    config.write_bytes(bytes(range(256)) * 8)
    line = failed(cli_run("--config", str(config), "contacts", "list"))
    assert "not a config file" in line


def test_a_binary_database_file_is_one_line(cli_run: Run, tmp_path: Path) -> None:
    data = tmp_path / "bin.db"
    data.write_bytes(bytes(range(256)) * 16)
    line = failed(cli_run("--database-url", f"sqlite:///{data}", "contacts", "list"))
    assert "not a database" in line


@pytest.mark.parametrize(
    "args",
    [
        ("contacts", "show", "99999999999999999999"),
        ("accounts", "update", "99999999999999999999", "name=x"),
        ("tokens", "revoke", "99999999999999999999"),
        ("contacts", "delete", "-9223372036854775809"),
    ],
)
def test_an_id_beyond_any_integer_is_one_line(cli_run: Run, args: tuple[str, ...]) -> None:
    result = cli_run(*args)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) >= 1


def test_an_unwritable_errors_path_stops_the_import_first(
    cli_run: Run, database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "contacts.csv"
    source.write_text("full_name\n张伟\n", encoding="utf-8")
    line = failed(
        cli_run("import", str(source), "--errors", str(tmp_path / "missing" / "report.csv"))
    )
    assert "nothing was imported" in line
    assert crmkit.open_crm(database_url, discover=False).contacts.count() == 0


def test_an_import_without_a_terminal_prints_progress_lines(
    cli_run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer_cli, "PROGRESS_EVERY_ROWS", 1000)
    source = tmp_path / "contacts.csv"
    source.write_text("full_name\n" + "".join(f"n{n}\n" for n in range(2500)), encoding="utf-8")
    result = cli_run("import", str(source))
    assert result.exit_code == 0, result.output
    assert "... 1000 rows read" in result.stderr
    assert "... 2000 rows read" in result.stderr
