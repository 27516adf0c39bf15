"""``crmkit plugins``: what is installed, what is enabled, and switching plugins on and off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from crmkit.cli.context import cli_state, missing_sqlite_file
from crmkit.cli.display import echo_details, echo_json, echo_table
from crmkit.plugins import discover_plugins, plugin_table

JSON_HELP = "Print JSON instead of a table."


@click.group("plugins")
def plugins_group() -> None:
    """Plugins: list what is installed, enable, disable, describe.

    Installed is not enabled: the enabled set is stored in the database.

    Example:

    \b
        crmkit plugins list
        crmkit plugins enable referrals
    """


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_command(as_json: bool) -> None:
    """List installed plugins: version, enabled or not, requirements, load error.

    A plugin that fails to import is listed with its error; the others work. Without an
    initialised database every plugin shows as disabled.

    Example:

    \b
        crmkit plugins list --json
    """
    state = cli_state()
    missing = missing_sqlite_file(state.settings())
    note = None
    if missing is not None:
        rows = plugin_table(discover_plugins(), [])
        note = (
            f"The database {missing} is not initialised (it does not exist yet: crmkit init"
            " creates it); all plugins are shown disabled."
        )
    else:
        crm = state.crm()
        from crmkit.services.plugin_admin import list_plugins

        rows = list_plugins(crm)
        if not crm.initialised:
            note = (
                "The database is not initialised (crmkit db upgrade creates the schema); all"
                " plugins are shown disabled."
            )
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No plugins installed. A plugin is a distribution registering the")
        click.echo("entry point group crmkit.plugins, e.g. pip install crmkit-referrals.")
    else:
        echo_table(
            ("name", "version", "enabled", "requires", "error"),
            [
                (
                    row["name"],
                    row["version"],
                    "yes" if row["enabled"] else "no",
                    ", ".join(row["requires"]),
                    row["error"] or "",
                )
                for row in rows
            ],
        )
    if note:
        click.echo(note, err=True)


@plugins_group.command("enable")
@click.argument("name")
def enable_command(name: str) -> None:
    """Enable a plugin: run its migrations and its setup, then its hooks run.

    Its required plugins must be enabled first.

    Example:

    \b
        crmkit plugins enable referrals
    """
    crm = cli_state().crm()
    if name in crm.enabled_plugin_names():
        click.echo(f"{name} is already enabled")
        return
    from crmkit.services.plugin_admin import enable_plugin

    branches = enable_plugin(crm, name)
    migrated = f" (migrated: {', '.join(branches)})" if branches else ""
    click.echo(f"Enabled {name}{migrated}")


@plugins_group.command("disable")
@click.argument("name")
def disable_command(name: str) -> None:
    """Disable a plugin: its hooks stop running; its data and tables stay.

    Refused while another enabled plugin requires it.

    Example:

    \b
        crmkit plugins disable referrals
    """
    crm = cli_state().crm()
    was_enabled = name in crm.enabled_plugin_names()
    from crmkit.services.plugin_admin import disable_plugin

    disable_plugin(crm, name)
    if was_enabled:
        click.echo(f"Disabled {name}; its data stays (crmkit plugins enable {name} to resume)")
    else:
        click.echo(f"{name} is not enabled")


@plugins_group.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def info_command(name: str, as_json: bool) -> None:
    """Describe a plugin: what it is, and the hooks, entities, fields, permissions, settings,
    commands and migrations it adds.

    Example:

    \b
        crmkit plugins info referrals
    """
    from crmkit.services.plugin_admin import plugin_info

    info = plugin_info(cli_state().crm(), name)
    if as_json:
        echo_json(info)
        return
    echo_details({key: _readable(key, value) for key, value in info.items()})


def _readable(key: str, value: Any) -> object:
    if key == "settings" and isinstance(value, list):
        return "; ".join(
            f"{s['name']} ({s['type']}, default {s['default']!r})"
            + (f": {s['description']}" if s["description"] else "")
            for s in value
        )
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


__all__ = ["plugins_group"]


@plugins_group.command("migration")
@click.argument("name")
@click.option("-m", "--message", required=True, help="What the revision does, in a few words.")
def migration_command(name: str, message: str) -> None:
    """Write a plugin's next migration: autogenerated from its models against this database.

    The database must be up to date (crmkit db upgrade; the plugin enabled once it has
    revisions). The revision goes into the plugin's migrations folder as
    NAME_0001_<message>.py, NAME_0002_..., the first one starting the plugin's own Alembic
    branch. Read it before you commit it: autogenerate does not see renames.

    Example:

    \b
        crmkit plugins migration referrals -m "add reward tier"
    """
    from crmkit.services.plugin_migrations import make_plugin_migration

    path = make_plugin_migration(cli_state().crm(), name, message)
    click.echo(f"Wrote {path}")


@plugins_group.command("new")
@click.argument("name")
@click.option(
    "--directory",
    default=".",
    show_default=True,
    help="Where to write the distribution folder crmkit-NAME.",
)
@click.option(
    "--entity",
    default=None,
    help="The name of the plugin's entity (default: NAME_item); its table is the plural.",
)
def new_command(name: str, directory: str, entity: str | None) -> None:
    """Write a new plugin distribution, crmkit-NAME, whose tests pass at once.

    It holds the pyproject with the entry point, the hooks module, an entity with its first
    migration, a CLI group, an API route, a setting, a docs page, tests on crmkit's test
    kit (crmkit.testing) and a noxfile. No database is needed.

    Example:

    \b
        crmkit plugins new visits && cd crmkit-visits && pip install -e ".[test]" && pytest
        crmkit plugins new tickets --entity ticket
    """
    from crmkit.scaffold import write_plugin

    root = click.get_current_context().find_root().command
    from crmkit.cli.root import CORE_COMMANDS

    reserved = set(CORE_COMMANDS)
    if isinstance(root, click.Group):
        reserved |= set(root.commands)
    target = write_plugin(name, Path(directory), reserved=reserved, entity=entity)
    click.echo(f"Wrote {target}: cd {target} && pip install -e '.[test]' && pytest")
