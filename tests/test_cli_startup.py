"""The CLI starts fast: the root group lists the core commands from a table without
importing them, and that table says what each command's own help says."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from crmkit.cli.plugin_commands import declared_commands, installed_plugin_modules
from crmkit.cli.root import CORE_COMMANDS, cli, load_core_command

CRMKIT = str(Path(sys.executable).parent / "crmkit")
PLUGIN_MODULES = (
    "crmkit_dedupe",
    "crmkit_loyalty",
    "crmkit_cardscan",
    "crmkit_reminders",
    "crmkit_brokers",
    "crmkit_referrals",
    "crmkit_insights",
    "crmkit_campaigns",
    "crmkit_tickets",
)


@pytest.mark.parametrize("name", sorted(CORE_COMMANDS))
def test_the_table_short_help_is_the_commands_own(name: str) -> None:
    command = load_core_command(name)
    assert command.name == name
    listed = click.Command(name, help=CORE_COMMANDS[name][2])
    assert listed.get_short_help_str(200) == command.get_short_help_str(200)


#: What a help or --version must not import: the database and web layers, and the bundled
#: plugins (with their OCR, numpy, OpenCC, ...).
HEAVY = (
    "sqlalchemy",
    "alembic",
    "litestar",
    "crmkit.app",
    "crmkit.services.records",
    "numpy",
    "rapidfuzz",
    "opencc",
    "matplotlib",
    *PLUGIN_MODULES,
)


def _loaded_after(
    *argv: str, cwd: Path | None = None, watched: tuple[str, ...] = HEAVY
) -> set[str]:
    """Which of the ``watched`` modules a command imported (run in a fresh process)."""
    probe = (
        "import sys\n"
        "from crmkit.cli import cli\n"
        f"try:\n    cli.main({list(argv)!r}, prog_name='crmkit')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = {watched!r}\n"
        "print(','.join(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd
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


@pytest.fixture
def crm_folder(tmp_path: Path) -> Path:
    """A folder with a CRM in it (crmkit.toml and its SQLite database), every bundled plugin
    and the example plugin enabled."""
    command = [CRMKIT]
    subprocess.run([*command, "init"], cwd=tmp_path, check=True, capture_output=True)
    for name in (
        "referrals",
        "dedupe",
        "cardscan",
        "reminders",
        "loyalty",
        "brokers",
        "insights",
        "campaigns",
    ):
        subprocess.run(
            [*command, "plugins", "enable", name], cwd=tmp_path, check=True, capture_output=True
        )
    return tmp_path


def test_root_help_in_a_crm_folder_lists_plugin_commands_without_loading_them(
    crm_folder: Path,
) -> None:
    assert _loaded_after("--help", cwd=crm_folder) == set()
    result = subprocess.run(
        [CRMKIT, "--help"],
        cwd=crm_folder,
        capture_output=True,
        text=True,
        check=True,
    )
    plugin_section = result.stdout.split("Plugin commands:")[1]
    listed = [line.split()[0] for line in plugin_section.strip().splitlines()]
    assert listed == [
        "brokers",
        "campaigns",
        "cards",
        "dedupe",
        "insight",
        "loyalty",
        "referrals",
        "reminders",
    ]
    assert "Duplicate detection and merge" in plugin_section


def test_a_disabled_plugins_commands_are_not_listed(crm_folder: Path) -> None:
    command = [CRMKIT]
    subprocess.run([*command, "plugins", "disable", "dedupe"], cwd=crm_folder, check=True)
    result = subprocess.run(
        [*command, "--help"], cwd=crm_folder, capture_output=True, text=True, check=True
    )
    assert "  dedupe " not in result.stdout
    assert "  cards " in result.stdout


#: The plugins of this repository that declare their commands (a third-party plugin may
#: not: the help then opens the CRM, tests/test_cli.py).
DECLARING = [
    "brokers",
    "campaigns",
    "cardscan",
    "dedupe",
    "insights",
    "loyalty",
    "referrals",
    "reminders",
]


@pytest.mark.parametrize("plugin", DECLARING)
def test_a_plugins_declared_commands_are_its_commands(plugin: str) -> None:
    """What a plugin's metadata declares for the help is what its hook adds."""
    import importlib

    module = importlib.import_module(installed_plugin_modules()[plugin])
    commands = module.crmkit_cli_commands()
    declared = declared_commands(installed_plugin_modules()[plugin])
    assert declared == {c.name: c.get_short_help_str(200) for c in commands}
    assert dict(module.crmkit_plugin.commands) == declared


# -- a command that opens the CRM loads what the CRM has enabled, nothing more ------------------


def test_a_command_that_opens_the_crm_imports_only_the_enabled_plugins(crm_folder: Path) -> None:
    subprocess.run([CRMKIT, "plugins", "disable", "brokers"], cwd=crm_folder, check=True)
    loaded = _loaded_after("contacts", "list", "--limit", "1", cwd=crm_folder)
    assert "crmkit_brokers" not in loaded  # installed, disabled: never imported
    assert "crmkit_tickets" not in loaded  # installed, never enabled
    assert {"crmkit_dedupe", "crmkit_loyalty", "crmkit_referrals"} <= loaded
    # the dedupe plugin checks its rules at open; its engine (numpy, rapidfuzz) waits for
    # the first record it checks
    assert not {"numpy", "rapidfuzz"} & loaded


#: The write path's modules (and their tables): a command that only reads loads none of them.
WRITE_PATH = (
    "crmkit.services.assignment",
    "crmkit.services.leads",
    "crmkit.services.deals",
    "crmkit.assignment.models",
    "crmkit.assignment.rules",
    "crmkit.permissions.audit",
    "crmkit.messages.outbox",
    "crmkit.messages.models",
    "crmkit.events.outbox",
    "crmkit.events.subscriptions",
    "alembic",
    "litestar",
)


def test_listing_contacts_imports_none_of_the_write_path(crm_folder: Path) -> None:
    loaded = _loaded_after(
        "contacts", "list", "--limit", "1", cwd=crm_folder, watched=(*WRITE_PATH, "crmkit.app")
    )
    assert loaded == {"crmkit.app"}  # the CRM did open


def test_a_write_loads_the_write_path_when_it_needs_it(crm_folder: Path) -> None:
    loaded = _loaded_after(
        "contacts", "create", "full_name=张伟", cwd=crm_folder, watched=WRITE_PATH
    )
    assert {"crmkit.services.assignment", "crmkit.events.outbox"} <= loaded
    result = subprocess.run(
        [CRMKIT, "contacts", "list", "--json"],
        cwd=crm_folder,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [item["full_name"] for item in json.loads(result.stdout)["items"]] == ["张伟"]


def test_every_core_table_is_in_the_metadata_for_work_that_needs_them_all(
    crm_folder: Path,
) -> None:
    """A merge re-points every foreign key to a record, so it imports every model module
    first, those a read-only start-up left out included."""
    probe = (
        "import crmkit\n"
        "from crmkit.db.base import Base\n"
        "crm = crmkit.open(config='crmkit.toml')\n"
        "before = set(Base.metadata.tables)\n"
        "crm.import_installed_plugins()\n"
        "print(sorted(set(Base.metadata.tables) - before))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=crm_folder, capture_output=True, text=True, check=True
    )
    added = result.stdout
    for table in (
        "event_outbox",
        "webhook_subscriptions",
        "assignment_rules",
        "message_deliveries",
    ):
        assert table in added


GC_PROBE = """
import atexit, gc, sys
def report():
    full_collections = gc.get_stats()[2]["collections"]
    print(gc.isenabled(), gc.get_freeze_count() > 0, full_collections, file=sys.stderr)
atexit.register(report)
sys.argv = ["crmkit", *sys.argv[1:]]
from crmkit.cli import main
main()
"""


def test_the_console_script_pauses_the_collector_until_the_crm_is_open(crm_folder: Path) -> None:
    opened = subprocess.run(
        [sys.executable, "-c", GC_PROBE, "contacts", "list", "--limit", "1"],
        cwd=crm_folder,
        capture_output=True,
        text=True,
        check=True,
    )
    # on again once the CRM is open (collecting what the command does), what start-up made
    # frozen, and no full collection walked it while it loaded (there is one without the
    # pause)
    assert opened.stderr.split() == ["True", "True", "0"]
    assert "More: add --cursor" in opened.stdout or "No contacts found." in opened.stdout


def test_the_collector_is_on_again_at_exit_when_no_crm_was_opened() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GC_PROBE, "--version"], capture_output=True, text=True, check=True
    )
    assert result.stderr.split()[:2] == ["True", "True"]


def test_commands_run_in_process_leave_the_collector_alone() -> None:
    """Only the console script pauses it: the test kit, an application that imports crmkit's
    CLI, keep theirs as it is."""
    import gc

    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_plugins_list_still_imports_every_plugin_to_describe_it(crm_folder: Path) -> None:
    subprocess.run([CRMKIT, "plugins", "disable", "brokers"], cwd=crm_folder, check=True)
    result = subprocess.run(
        [CRMKIT, "plugins", "list", "--json"],
        cwd=crm_folder,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["brokers"]["enabled"] is False
    assert rows["brokers"]["description"]  # read from the module, imported to list it
    assert rows["dedupe"]["enabled"] is True


MAKE_A_REFERRAL = """
import crmkit
crm = crmkit.open(config="crmkit.toml")
ids = [crm.contacts.create({"full_name": name}).id for name in ("张伟", "张伟 (2)", "李娜")]
crm.records("referral").create({"referrer_contact_id": ids[1], "referred_contact_id": ids[2]})
print(*ids)
"""

MERGE = """
import sys
import crmkit
crm = crmkit.open(config="crmkit.toml")
assert "crmkit_referrals" not in sys.modules, "a disabled plugin was imported at open"
crm.merges.merge("contact", int(sys.argv[1]), int(sys.argv[2]))
"""


def test_a_merge_repoints_the_tables_of_a_plugin_that_is_disabled(crm_folder: Path) -> None:
    """Disabled plugins are not imported when the CRM opens, yet their data stays: a merge
    still re-points the foreign keys in their tables."""
    made = subprocess.run(
        [sys.executable, "-c", MAKE_A_REFERRAL],
        cwd=crm_folder,
        capture_output=True,
        text=True,
        check=True,
    )
    survivor, merged, referred = made.stdout.split()
    subprocess.run([CRMKIT, "plugins", "disable", "referrals"], cwd=crm_folder, check=True)
    subprocess.run(
        [sys.executable, "-c", MERGE, survivor, merged], cwd=crm_folder, check=True, text=True
    )
    with sqlite3.connect(crm_folder / "crmkit.db") as connection:
        rows = connection.execute(
            "SELECT referrer_contact_id, referred_contact_id FROM referrals"
        ).fetchall()
    assert rows == [(int(survivor), int(referred))]
