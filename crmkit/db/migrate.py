"""Running Alembic migrations for the core and each enabled plugin (one branch each)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect

if TYPE_CHECKING:  # Alembic is imported when migrations run, not on every `crmkit` start
    from alembic.config import Config

CORE_BRANCH = "crmkit"
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine_url: str, plugin_locations: Iterable[str] = ()) -> Config:
    """An Alembic config covering the core revisions and every given plugin folder.

    Every *installed* plugin's folder is listed (not only the enabled ones), so a database
    that once had a plugin enabled still resolves that plugin's revisions.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    locations = [str(MIGRATIONS / "versions"), *plugin_locations]
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    config.set_main_option("sqlalchemy.url", engine_url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, config: Config, branches: Sequence[str]) -> None:
    """Upgrade each branch (``crmkit`` first, then plugin names) to its head."""
    from alembic import command

    with engine.begin() as connection:
        config.attributes["connection"] = connection
        for branch in branches:
            command.upgrade(config, f"{branch}@head")


def current_heads(engine: Engine) -> tuple[str, ...]:
    """The revisions the database is at (empty for a database never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def branch_heads(config: Config) -> dict[str, str]:
    """The head revision of each branch label known to ``config``."""
    # Ask per branch ("label@head"): a plugin revision that ``depends_on`` the core's head
    # hides it from the global "heads", and walking down from a plugin's head through
    # ``depends_on`` would give that plugin the core's label too.
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    labels = {label for revision in script.walk_revisions() for label in revision.branch_labels}
    heads: dict[str, str] = {}
    for label in sorted(labels):
        revision = script.get_revision(f"{label}@head")
        if revision is not None:
            heads[label] = revision.revision
    return heads


def is_initialised(engine: Engine) -> bool:
    """Whether the core schema exists in this database."""
    return inspect(engine).has_table("plugin_states")


def revision_folders(config: Config, revisions: Iterable[str]) -> set[str]:
    """The folders holding the files of ``revisions``."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)
    folders: set[str] = set()
    for revision_id in revisions:
        revision = script.get_revision(revision_id)
        if revision is not None and revision.path:
            folders.add(str(Path(revision.path).parent))
    return folders


def autogenerate_revision(
    engine: Engine,
    locations: Sequence[str],
    *,
    branch: str,
    folder: str,
    message: str,
    revision_id: str,
    tables: frozenset[str],
    depends_on: str | None,
) -> str:
    """Write a revision of ``branch`` into ``folder``: what it takes to bring the database's
    copy of ``tables`` to the models (autogenerate, the naming conventions of
    ``crmkit.Model`` applied). The branch is created when it has no revision yet. Returns
    the file written."""
    from alembic import command

    config = alembic_config(engine.url.render_as_string(hide_password=False), locations)

    def only_these(
        obj: object, name: str | None, kind: str, reflected: bool, other: object
    ) -> bool:
        table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in tables

    starts_branch = branch not in branch_heads(config)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["include_object"] = only_these
        script = command.revision(
            config,
            message=message,
            autogenerate=True,
            head="base" if starts_branch else f"{branch}@head",
            branch_label=branch if starts_branch else None,
            depends_on=depends_on if starts_branch else None,
            version_path=folder,
            rev_id=revision_id,
        )
    if script is None or isinstance(script, list):  # pragma: no cover - one head given
        raise RuntimeError("alembic wrote no single revision")
    return str(script.path)
