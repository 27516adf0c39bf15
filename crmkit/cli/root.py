"""The ``crmkit`` command: its options, its core commands, the commands enabled plugins add,
and how errors reach the user (one line, never a traceback)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from crmkit.cli import context
from crmkit.cli.collector import freeze_at_exit, pause_during_start_up
from crmkit.cli.context import cli_state, missing_sqlite_file
from crmkit.cli.terminal import safe_output, terminal_safe
from crmkit.errors import CRMError

if TYPE_CHECKING:
    from sqlalchemy.exc import OperationalError, ProgrammingError, StatementError

#: The core commands, imported only when one is run or its own help is asked for (``crmkit
#: --help`` and ``--version`` import none of them): name -> (module, attribute, short help).
#: The attribute is the command, or a function returning several (the record groups).
#: tests/test_cli_startup.py checks each short help against the command's own help.
CORE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "accounts": (
        "crmkit.cli.records",
        "record_groups",
        "Accounts: list, show, create, update and delete.",
    ),
    "activities": (
        "crmkit.cli.records",
        "record_groups",
        "Activities: list, show, create, update and delete.",
    ),
    "assign": ("crmkit.cli.assignment", "assign_group", "Assign records with the rules."),
    "audit": (
        "crmkit.cli.security",
        "audit_command",
        "Search the audit log: who changed what, when, field by field (newest first).",
    ),
    "contacts": (
        "crmkit.cli.records",
        "record_groups",
        "Contacts: list, show, create, update and delete.",
    ),
    "db": ("crmkit.cli.database", "db_group", "Database schema: upgrade it, see where it stands."),
    "deals": (
        "crmkit.cli.records",
        "record_groups",
        "Deals: list, show, create, update and delete.",
    ),
    "demo": ("crmkit.cli.demo", "demo_command", "Load sample data to try crmkit on."),
    "events": (
        "crmkit.cli.events",
        "events_group",
        "Events: watch the outbox, and list and retry dead deliveries.",
    ),
    "export": ("crmkit.cli.transfer", "export_command", "Export records to CSV."),
    "forms": (
        "crmkit.cli.api",
        "forms_group",
        "Lead-capture forms: web sites post to /forms/KEY without a token; each submission"
        " becomes a lead.",
    ),
    "import": (
        "crmkit.cli.transfer",
        "import_command",
        "Import records from a CSV file, one record per row.",
    ),
    "inbox": (
        "crmkit.cli.security",
        "inbox_command",
        "Show in-app notifications: sensitive operations reach every active admin here.",
    ),
    "init": (
        "crmkit.cli.database",
        "init_command",
        "Create a new CRM: a config file and a database.",
    ),
    "leads": (
        "crmkit.cli.records",
        "record_groups",
        "Leads: list, show, create, update and delete.",
    ),
    "messages": (
        "crmkit.cli.messages",
        "messages_group",
        "Messages: channels (in-app, e-mail, webhook, plugins'), the delivery log, retries and"
        " the per-channel do-not-contact list.",
    ),
    "pipelines": (
        "crmkit.cli.organisation",
        "pipelines_group",
        "Pipelines: the ordered stages deals move through.",
    ),
    "plugins": (
        "crmkit.cli.plugins",
        "plugins_group",
        "Plugins: list what is installed, enable, disable, describe.",
    ),
    "pool": (
        "crmkit.cli.assignment",
        "pool_group",
        "The shared pool (公海): records without an owner.",
    ),
    "roles": (
        "crmkit.cli.security",
        "roles_group",
        "Roles: permissions with record scopes, and field rules, held by users.",
    ),
    "rules": (
        "crmkit.cli.assignment",
        "rules_group",
        "Assignment rules: who gets new leads, contacts, accounts and deals.",
    ),
    "segments": (
        "crmkit.cli.segments",
        "segments_group",
        "Segments: saved, named filters over contacts, accounts, deals or any entity, counted"
        " and listed live for whoever looks.",
    ),
    "serve": ("crmkit.cli.api", "serve_command", "Serve the REST API (uvicorn) until Ctrl-C."),
    "tasks": (
        "crmkit.cli.records",
        "record_groups",
        "Tasks: list, show, create, update and delete.",
    ),
    "teams": (
        "crmkit.cli.organisation",
        "teams_group",
        "Teams: a tree of departments and sub-teams.",
    ),
    "tokens": (
        "crmkit.cli.security",
        "tokens_group",
        "API tokens: bearer tokens for the REST API and scripts, stored only as hashes.",
    ),
    "users": (
        "crmkit.cli.organisation",
        "users_group",
        "Users: the people who sign in and own records.",
    ),
    "worker": (
        "crmkit.cli.events",
        "worker_command",
        "Deliver outbox events to webhooks and plugin sinks, and run the scheduler: queued"
        " messages (e-mail, webhook, plugin channels), shared-pool release (every"
        " [crmkit.pool] release_interval_seconds) and the jobs enabled plugins schedule.",
    ),
}


def load_core_command(name: str) -> click.Command:
    """Import the core command ``name`` (a key of ``CORE_COMMANDS``)."""
    module_name, attribute, _ = CORE_COMMANDS[name]
    found: object = getattr(importlib.import_module(module_name), attribute)
    if isinstance(found, click.Command):
        return found
    assert callable(found)
    by_name: dict[str | None, click.Command] = {command.name: command for command in found()}
    return by_name[name]


#: Set to 1 to see the full traceback of an error instead of its one-line message.
DEBUG_VARIABLE = "CRMKIT_DEBUG"
INTERRUPTED_EXIT_CODE = 130


def _one_line(text: str) -> str:
    return terminal_safe(" ".join(text.split()))


def _database_errors() -> tuple[type[OperationalError], type[ProgrammingError]]:
    """The database errors that become one line (imported only once something failed)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    return (OperationalError, ProgrammingError)


def _database_error_message(error: Exception) -> str | None:
    """The one line a database error becomes, or None for any other error. SQLAlchemy is
    looked at only if something imported it (help and --version never do)."""
    if "sqlalchemy.exc" not in sys.modules:
        return None
    from sqlalchemy.exc import OperationalError, ProgrammingError, StatementError

    if isinstance(error, OperationalError | ProgrammingError):
        return _database_error(error)
    if isinstance(error, StatementError):  # a value the database refused: no SQL shown
        return _statement_error(error)
    return None


def _database_error(error: OperationalError | ProgrammingError) -> str:
    text = str(error.orig if error.orig is not None else error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    hint = ""
    if "no such table" in first or "does not exist" in first or "no such column" in first:
        hint = " (is the schema up to date? run: crmkit db upgrade)"
    return f"database error: {first}{hint}"


def _statement_error(error: StatementError) -> str:
    text = str(error.orig if error.orig is not None else error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return f"the database refused a value: {first} (set {DEBUG_VARIABLE}=1 for the details)"


def all_core_commands() -> dict[str, click.Command]:
    """Every core command, imported (for the docs, the tests and name clash checks)."""
    return {name: load_core_command(name) for name in sorted(CORE_COMMANDS)}


def _file_error(error: OSError) -> str:
    name = str(error.filename) if error.filename is not None else ""
    if len(name) > 80:
        name = name[:77] + "..."
    reason = error.strerror or type(error).__name__
    return f"{name}: {reason}" if name else f"{reason} (set {DEBUG_VARIABLE}=1 for the details)"


class RootGroup(click.Group):
    """The root group: core commands first, then the enabled plugins' commands (looked up
    only when needed); every ``CRMError`` and database connection failure becomes one line
    on stderr and exit status 1, Ctrl-C exit status 130."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        core = sorted(set(self.commands) | set(CORE_COMMANDS))
        declared = self.declared_plugin_commands(ctx)
        if declared is not None:
            return core + sorted(declared)
        return core + sorted(self.plugin_commands(ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        if cmd_name in CORE_COMMANDS:
            command = load_core_command(cmd_name)
            self.add_command(command, cmd_name)
            return command
        command = self.plugin_commands(ctx).get(cmd_name)
        problem = cli_state(ctx).plugin_commands_error
        if command is None and problem is not None and not ctx.resilient_parsing:
            # Not "No such command": the command may well be a plugin's that could not load.
            raise click.ClickException(
                f"{problem} (the commands of enabled plugins, such as {cmd_name!r} may be,"
                " are unavailable until this is fixed)"
            )
        if command is None and problem is None and not ctx.resilient_parsing:
            broken = self._broken_plugin_of(ctx, cmd_name)
            if broken is not None:
                raise click.ClickException(
                    f"{cmd_name!r} is a command of plugin {broken[0]!r}, which failed to load:"
                    f" {_one_line(broken[1])}"
                )
        return command

    def _broken_plugin_of(self, ctx: click.Context, cmd_name: str) -> tuple[str, str] | None:
        """The plugin that declares ``cmd_name`` in its metadata but failed to load, and
        why (looked up only for a command nobody answers)."""
        from crmkit.cli.plugin_commands import declared_commands

        try:
            crm = cli_state(ctx).crm()
        except CRMError:
            return None
        for name, plugin in sorted(crm.installed.items()):
            declared = declared_commands(plugin.module_name.partition(":")[0])
            if declared and cmd_name in declared and plugin.load_error is not None:
                return name, plugin.load_error
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``crmkit --help``: the core commands' short help comes from
        ``CORE_COMMANDS``, so listing them imports none of them; the enabled plugins'
        commands are listed after them, from the plugins' metadata when they declare their
        commands there (see :mod:`crmkit.cli.plugin_commands`; no plugin is imported and
        the CRM is not opened), else from the opened CRM."""
        declared = self.declared_plugin_commands(ctx)
        if declared is not None:
            plugin_commands = {
                name: click.Command(name, help=short_help) for name, short_help in declared.items()
            }
        else:
            plugin_commands = self.plugin_commands(ctx)
        names = [*self.commands, *CORE_COMMANDS, *plugin_commands]
        limit = formatter.width - 6 - max(len(name) for name in names)
        core_rows = []
        for name in sorted(set(self.commands) | set(CORE_COMMANDS)):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=CORE_COMMANDS[name][2])
            if not command.hidden:
                core_rows.append((name, command.get_short_help_str(limit)))
        plugin_rows = [
            (name, command.get_short_help_str(limit))
            for name, command in sorted(plugin_commands.items())
            if not command.hidden
        ]
        for title, rows in (("Commands", core_rows), ("Plugin commands", plugin_rows)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def declared_plugin_commands(self, ctx: click.Context) -> dict[str, str] | None:
        """The enabled plugins' commands (name -> short help) as their metadata declares
        them, found without opening the CRM; None when that cannot be known so (a plugin
        declares none, the database cannot be read directly, the test kit handed commands
        its own CRM, or the CRM is open already)."""
        state = cli_state(ctx)
        if state.plugin_commands is not None or not context.opens_the_configured_crm():
            return None
        from crmkit.cli.plugin_commands import enabled_plugin_commands
        from crmkit.config_file import configured_database_url

        url = configured_database_url(state.config, state.database_url)
        if url is None:
            return None
        declared = enabled_plugin_commands(url)
        if declared is None:
            return None
        return {
            name: short_help
            for name, short_help in declared.items()
            if name not in self.commands and name not in CORE_COMMANDS
        }

    def plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """The commands enabled plugins add (``crmkit_cli_commands``), by name; none when
        the CRM cannot be opened. A name that clashes with a core command is dropped with a
        warning."""
        state = cli_state(ctx)
        if state.plugin_commands is None:
            state.plugin_commands = self._collect_plugin_commands(ctx)
        return state.plugin_commands

    def _collect_plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        state = cli_state(ctx)
        try:
            if missing_sqlite_file(state.settings()) is not None:
                return {}
            crm = state.crm()
        except CRMError as error:
            state.plugin_commands_error = _one_line(str(error))
            return {}  # a core command that needs the CRM will say what is wrong too
        except _database_errors() as error:
            state.plugin_commands_error = _one_line(_database_error(error))
            return {}
        found: dict[str, click.Command] = {}
        for plugin_name in crm.host.names:
            plugin = crm.installed[plugin_name]
            try:
                commands = plugin.call_own("crmkit_cli_commands") or []
            except Exception as error:  # noqa: BLE001 - a broken plugin must not break the CLI
                click.echo(
                    f"Warning: plugin {plugin_name!r} failed to add its commands: {error}",
                    err=True,
                )
                continue
            for command in commands:
                name = command.name or ""
                if name in self.commands:
                    click.echo(
                        f"Warning: plugin {plugin_name!r} adds a command {name!r}, which is a"
                        " core command; the core one is used",
                        err=True,
                    )
                elif name in found:
                    click.echo(
                        f"Warning: plugin {plugin_name!r} adds a command {name!r}, which"
                        " another plugin added first; the first one is used",
                        err=True,
                    )
                else:
                    found[name] = command
        return found

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # every line a command prints, its error and usage messages included, is shown
        # safe for a terminal (crmkit.cli.terminal)
        with safe_output():
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CRMError as error:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            raise click.ClickException(_one_line(str(error))) from None
        except Exception as error:
            message = _database_error_message(error)
            if message is None and isinstance(error, OSError):  # a file a command met
                message = _file_error(error)
            if message is None or os.environ.get(DEBUG_VARIABLE):
                raise
            raise click.ClickException(_one_line(message)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(INTERRUPTED_EXIT_CODE) from None


@click.group(
    cls=RootGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="CRMKIT_CONFIG",
    show_envvar=True,
    is_eager=True,  # read before --help, which lists the enabled plugins' commands
    metavar="PATH",
    help="The config file (default: ./crmkit.toml).",
)
@click.option(
    "--database-url",
    envvar="CRMKIT_DATABASE_URL",
    show_envvar=True,
    is_eager=True,
    metavar="URL",
    help="The database, overriding the config file's: sqlite:///crm.db or"
    " postgresql+psycopg://user@host/db.",
)
@click.version_option(package_name="crmkit", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, config: str | None, database_url: str | None) -> None:
    """crmkit: a CRM you tailor with plugins, run from the command line.

    Start with 'crmkit init' (a config file and a database), then 'crmkit demo' for sample
    data. Enabled plugins add their own commands below the core ones. Errors print one
    line and exit with status 1; set CRMKIT_DEBUG=1 to see the traceback.

    Example:

    \b
        crmkit init
        crmkit demo
        crmkit contacts list --filter city=上海
    """
    cli_state(ctx)


def main() -> None:
    """The ``crmkit`` console script (with the garbage collector paused while the command
    starts: :mod:`crmkit.cli.collector`)."""
    pause_during_start_up()
    try:
        cli.main(prog_name="crmkit")
    finally:
        freeze_at_exit()


__all__ = ["CORE_COMMANDS", "RootGroup", "all_core_commands", "cli", "load_core_command", "main"]
