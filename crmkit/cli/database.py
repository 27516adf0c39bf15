"""``crmkit init`` and ``crmkit db``: creating a CRM and keeping its schema up to date."""

from __future__ import annotations

import click
import phonenumbers
from alembic.script import ScriptDirectory

from crmkit.app import open_crm
from crmkit.cli.context import cli_state
from crmkit.cli.display import echo_table
from crmkit.config_file import DEFAULT_DATABASE_URL
from crmkit.db import migrate
from crmkit.errors import ConfigError
from crmkit.settings import Settings, write_config


def _region(ctx: click.Context, param: click.Parameter, value: str) -> str:
    region = value.strip().upper()
    if not phonenumbers.country_code_for_region(region):
        raise click.BadParameter(f"{value!r} is not a region code such as CN, HK, TW or US")
    return region


@click.command("init")
@click.option(
    "--database-url",
    metavar="URL",
    help="Database to create or use, e.g. postgresql+psycopg://crm@db.example/crm"
    " (default: sqlite:///crmkit.db, a file next to the config file).",
)
@click.option(
    "--region",
    default="CN",
    show_default=True,
    callback=_region,
    help="Default phone region: numbers without a country code are read as this region's.",
)
def init_command(database_url: str | None, region: str) -> None:
    """Create a new CRM: a config file and a database.

    The config file goes where --config says (default: $CRMKIT_CONFIG, else ./crmkit.toml);
    an existing one is never overwritten. The database gets the core schema (and that of
    any plugin enabled in it already); an existing crmkit database is brought up to date.

    Example:

    \b
        crmkit init
        crmkit --config crm/crmkit.toml init --region HK \\
            --database-url postgresql+psycopg://crm@127.0.0.1/crm
    """
    state = cli_state()
    path = state.config_path()
    if path.exists():
        raise ConfigError(
            f"{path} already exists: edit it, or choose another path with"
            f" 'crmkit --config OTHER.toml init'"
        )
    url = database_url or state.database_url or DEFAULT_DATABASE_URL
    settings = Settings.from_mapping(
        {"crmkit": {"database_url": url, "default_region": region}}, config_path=path
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_crm(settings=settings) as crm:
        branches = crm.upgrade()
        shown_url = crm.engine.url.render_as_string(hide_password=True)
    write_config(path, url, region)
    click.echo(f"Wrote {path}")
    click.echo(f"Database {shown_url} is ready (schema: {', '.join(branches)})")
    config = f"--config {path} " if state.config else ""
    click.echo(f"Next: crmkit {config}demo   (load sample data), or crmkit {config}--help")


@click.group("db")
def db_group() -> None:
    """Database schema: upgrade it, see where it stands.

    Example:

    \b
        crmkit db upgrade
    """


@db_group.command("upgrade")
def upgrade_command() -> None:
    """Bring the schema of the core and of every enabled plugin to the latest revision.

    Run it after upgrading crmkit or a plugin. Creates a SQLite database file that does not
    exist yet.

    Example:

    \b
        crmkit db upgrade
    """
    crm = cli_state().crm(create=True)
    before = migrate.current_heads(crm.engine)
    branches = crm.upgrade()
    after = migrate.current_heads(crm.engine)
    if set(before) == set(after):
        click.echo(f"Already up to date: {', '.join(branches)}")
    else:
        click.echo(f"Upgraded: {', '.join(branches)} (now at {', '.join(sorted(after))})")


@db_group.command("current")
def current_command() -> None:
    """Show the revision the database is at and the latest one, per migration branch.

    One branch for the core (crmkit) and one per installed plugin that has migrations.

    Example:

    \b
        crmkit db current
    """
    crm = cli_state().crm()
    config = migrate.alembic_config(
        crm.engine.url.render_as_string(hide_password=False), crm.migration_locations()
    )
    script = ScriptDirectory.from_config(config)
    current = migrate.current_heads(crm.engine)
    applied = {rev for head in current for rev in _lineage(script, head)}
    enabled = set(crm.enabled_plugin_names())
    rows = []
    for branch, head in sorted(migrate.branch_heads(config).items()):
        # A plugin branch that depends on a core revision keeps only its own head in the
        # version table, so each branch's revision is found through the applied lineage.
        at = next((rev for rev in _lineage(script, head, branch) if rev in applied), None)
        if at == head:
            status = "up to date"
        elif at is not None:
            status = "behind: run crmkit db upgrade"
        elif branch == migrate.CORE_BRANCH or branch in enabled:
            status = "not applied: run crmkit db upgrade"
        else:
            status = "not applied (plugin not enabled)"
        rows.append((branch, at or "-", head, status))
    echo_table(("branch", "current", "head", "status"), rows)
    if not current:
        click.echo("The database is not initialised: run crmkit db upgrade (or crmkit init).")


def _lineage(script: ScriptDirectory, revision: str, branch: str | None = None) -> list[str]:
    """``revision`` and the revisions below it (dependencies included), newest first; only
    those of ``branch`` if given."""
    return [
        found.revision
        for found in script.iterate_revisions(revision, "base")
        if found is not None and (branch is None or branch in found.branch_labels)
    ]


__all__ = ["db_group", "init_command"]
