"""The ``crmkit`` command: its options, its core commands, the commands enabled plugins add,
and how errors reach the user (one line, never a traceback)."""

from __future__ import annotations

import os
from typing import Any

import click
from sqlalchemy.exc import OperationalError, ProgrammingError, StatementError

from crmkit.cli.api import forms_group, serve_command
from crmkit.cli.assignment import assignment_commands
from crmkit.cli.context import cli_state, missing_sqlite_file
from crmkit.cli.database import db_group, init_command
from crmkit.cli.demo import demo_command
from crmkit.cli.events import events_group, worker_command
from crmkit.cli.messages import messages_group
from crmkit.cli.organisation import pipelines_group, teams_group, users_group
from crmkit.cli.plugins import plugins_group
from crmkit.cli.records import record_groups
from crmkit.cli.security import security_commands
from crmkit.cli.terminal import safe_output, terminal_safe
from crmkit.cli.transfer import export_command, import_command
from crmkit.errors import CRMError

#: Set to 1 to see the full traceback of an error instead of its one-line message.
DEBUG_VARIABLE = "CRMKIT_DEBUG"
INTERRUPTED_EXIT_CODE = 130


def _one_line(text: str) -> str:
    return terminal_safe(" ".join(text.split()))


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


class RootGroup(click.Group):
    """The root group: core commands first, then the enabled plugins' commands (looked up
    only when needed); every ``CRMError`` and database connection failure becomes one line
    on stderr and exit status 1, Ctrl-C exit status 130."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        core = sorted(self.commands)
        return core + sorted(self.plugin_commands(ctx))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        command = self.plugin_commands(ctx).get(cmd_name)
        problem = cli_state(ctx).plugin_commands_error
        if command is None and problem is not None and not ctx.resilient_parsing:
            # Not "No such command": the command may well be a plugin's that could not load.
            raise click.ClickException(
                f"{problem} (the commands of enabled plugins, such as {cmd_name!r} may be,"
                " are unavailable until this is fixed)"
            )
        return command

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
        except (OperationalError, ProgrammingError) as error:
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
        except (OperationalError, ProgrammingError) as error:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            raise click.ClickException(_one_line(_database_error(error))) from None
        except StatementError as error:  # a value the database refused: one line, no SQL
            if os.environ.get(DEBUG_VARIABLE):
                raise
            raise click.ClickException(_one_line(_statement_error(error))) from None
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


for _command in (
    init_command,
    db_group,
    plugins_group,
    *record_groups(),
    users_group,
    teams_group,
    pipelines_group,
    import_command,
    export_command,
    demo_command,
    worker_command,
    events_group,
    messages_group,
    serve_command,
    forms_group,
    *security_commands(),
    *assignment_commands(),
):
    cli.add_command(_command)


def main() -> None:
    """The ``crmkit`` console script."""
    cli.main(prog_name="crmkit")


__all__ = ["RootGroup", "cli", "main"]
