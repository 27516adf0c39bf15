"""The CLI starts fast: the root group lists the core commands from a table without
importing them, and that table says what each command's own help says."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from crmkit.cli.root import CORE_COMMANDS, cli, load_core_command


@pytest.mark.parametrize("name", sorted(CORE_COMMANDS))
def test_the_table_short_help_is_the_commands_own(name: str) -> None:
    command = load_core_command(name)
    assert command.name == name
    listed = click.Command(name, help=CORE_COMMANDS[name][2])
    assert listed.get_short_help_str(200) == command.get_short_help_str(200)


def _loaded_after(*argv: str) -> set[str]:
    probe = (
        "import sys\n"
        "from crmkit.cli import cli\n"
        f"try:\n    cli.main({list(argv)!r}, prog_name='crmkit')\n"
        "except SystemExit:\n    pass\n"
        "heavy = ('sqlalchemy', 'alembic', 'litestar', 'crmkit.app', 'crmkit.services.records')\n"
        "print(','.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    return {name for name in last.split(",") if name}


def test_version_imports_no_database_or_web_layer() -> None:
    assert _loaded_after("--version") == set()


def test_a_groups_help_imports_no_database_or_web_layer() -> None:
    assert _loaded_after("contacts", "--help") == set()
    assert _loaded_after("plugins", "--help") == set()


def test_root_help_lists_every_core_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name, (_, _, short_help) in CORE_COMMANDS.items():
        assert f"  {name} " in result.output
        assert short_help.split()[0] in result.output
