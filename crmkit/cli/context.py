"""The CRM a running ``crmkit`` command works on: opened on first use, closed at exit.

The root group's ``--config`` and ``--database-url`` say which; every command (a plugin's
too, through ``crmkit.cli_crm()``) gets the same instance from :func:`current_crm`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from attrs import define, field

from crmkit.cli.collector import resume_after_start_up
from crmkit.errors import ConfigError, CRMError

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.settings import Settings


def open_crm(settings: Settings) -> CRM:
    """Open the CRM a command works on. The application (SQLAlchemy, Alembic, plugins) is
    imported here, when a command first needs it, not when the CLI starts; the test kit
    replaces this function to hand commands the test's CRM."""
    from crmkit.app import open_crm as open_application

    return open_application(settings=settings)


_CONFIGURED_OPENER = open_crm


def opens_the_configured_crm() -> bool:
    """Whether commands open the CRM the options and config name (false when the test kit
    handed them its own, whose embedded plugins no config or database lists)."""
    return open_crm is _CONFIGURED_OPENER


@define
class CLIState:
    """What the root group's options chose, and the CRM once it is open."""

    config: str | None = None
    database_url: str | None = None
    #: The commands enabled plugins add, once looked up (see ``RootGroup``).
    plugin_commands: dict[str, click.Command] | None = field(default=None, init=False)
    #: Why the enabled plugins' commands could not be looked up (the CRM did not open).
    plugin_commands_error: str | None = field(default=None, init=False)
    _crm: CRM | None = field(default=None, init=False)

    def settings(self) -> Settings:
        """The settings from the config file (if any), the options and the environment."""
        from crmkit.settings import Settings  # with the entity models: only when needed

        return Settings.load(self.config, database_url=self.database_url)

    def config_path(self) -> Path:
        """Where the config file is, or would be written by ``crmkit init``."""
        from crmkit.config_file import DEFAULT_CONFIG_NAME

        return Path(self.config or DEFAULT_CONFIG_NAME)

    def crm(self, *, create: bool = False) -> CRM:
        """The open CRM (opened now if it is not yet).

        A SQLite database file that does not exist is an error naming ``crmkit init``, unless
        ``create`` is true (``init`` and ``db upgrade`` create it).
        """
        if self._crm is None:
            settings = self.settings()
            missing = missing_sqlite_file(settings)
            if missing is not None and not create:
                raise ConfigError(
                    f"the database {missing} does not exist: create it with 'crmkit init'"
                    + (
                        ", or point --config or --database-url at your CRM"
                        if not self.config
                        else ""
                    )
                )
            self._crm = open_crm(settings=settings)
            resume_after_start_up()  # what opening made lives until the end: never rescan it
        return self._crm

    def close(self) -> None:
        """Close the CRM if it was opened (plugins' shutdown hooks run)."""
        crm, self._crm = self._crm, None
        if crm is None:
            return
        try:
            crm.close()
        except CRMError as error:
            click.echo(f"Warning: while closing the CRM: {error}", err=True)


def missing_sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file ``settings`` name, if it does not exist yet."""
    prefix = "sqlite:///"
    url = settings.database_url
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return None
    path = Path(url[len(prefix) :].split("?", 1)[0])
    return None if path.exists() else path


def cli_state(ctx: click.Context | None = None) -> CLIState:
    """The state of the running command line (created from the root's options on first use,
    closed when the root context closes)."""
    if ctx is None:
        ctx = click.get_current_context(silent=True)
        if ctx is None:
            raise CRMError("there is no running crmkit command: call this from a CLI command")
    root = ctx.find_root()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState(
            config=root.params.get("config"), database_url=root.params.get("database_url")
        )
        root.call_on_close(root.obj.close)
    return root.obj


def current_crm() -> CRM:
    """The CRM the running ``crmkit`` command opened (opening it now if needed).

    Plugin commands reach it through ``crmkit.cli_crm()``.
    """
    return cli_state().crm()


__all__ = [
    "CLIState",
    "cli_state",
    "current_crm",
    "missing_sqlite_file",
    "opens_the_configured_crm",
]
