"""The enabled plugins' commands as ``crmkit --help`` lists them, found without opening the
CRM or importing a plugin.

A plugin declares the commands it adds in its metadata, ``crmkit_plugin =
crmkit.PluginSpec(commands={"dedupe": "Find and merge duplicate records."})``. The help
reads that declaration from the plugin module's source (never running it, so none of the
plugin's libraries load), and which plugins are enabled from the ``plugin_states`` table
(SQLite through the standard library; another database through a bare SQLAlchemy engine).
A plugin that does not declare its commands this way makes the help fall back to opening
the CRM, as every command that runs does.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import sqlite3
from collections.abc import Mapping
from pathlib import Path

#: The entry-point group plugins are registered in (as ``crmkit.plugins.ENTRY_POINT_GROUP``,
#: not imported from there: that module loads pluggy and the hook specifications).
ENTRY_POINT_GROUP = "crmkit.plugins"
SQLITE_PREFIX = "sqlite:///"


def declared_commands(module_name: str) -> dict[str, str] | None:
    """The ``commands`` a plugin module declares in its ``crmkit_plugin = PluginSpec(...)``
    (command name -> short help), read from its source; None when it declares none there,
    or the module cannot be found or read."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(spec.origin).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if not any(isinstance(t, ast.Name) and t.id == "crmkit_plugin" for t in targets):
            continue
        if not isinstance(node.value, ast.Call):
            return None
        for keyword in node.value.keywords:
            if keyword.arg == "commands":
                try:
                    value = ast.literal_eval(keyword.value)
                except ValueError:
                    return None
                if isinstance(value, Mapping) and all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    return dict(value)
                return None
    return None


def installed_plugin_modules() -> dict[str, str]:
    """Installed plugins (entry points of ``crmkit.plugins``): name -> module name."""
    return {
        entry_point.name: entry_point.value.partition(":")[0]
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    }


def stored_enabled_plugins(database_url: str) -> set[str] | None:
    """The plugins enabled in the database at ``database_url`` (``plugin_states``); empty
    before ``crmkit init``; None when the database cannot be read this way."""
    if database_url.startswith(SQLITE_PREFIX):
        return _sqlite_enabled(database_url[len(SQLITE_PREFIX) :].split("?", 1)[0])
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as connection:
                if not sa.inspect(connection).has_table("plugin_states"):
                    return set()
                rows = connection.execute(sa.text("SELECT name FROM plugin_states WHERE enabled"))
                return {str(row[0]) for row in rows}
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - the help then opens the CRM, which names the problem
        return None


def _sqlite_enabled(path: str) -> set[str] | None:
    if not path or path == ":memory:":
        return None
    if not Path(path).exists():
        return set()  # no CRM there yet: no plugin is enabled
    try:
        connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        found = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'plugin_states'"
        ).fetchone()
        if found is None:
            return set()
        rows = connection.execute("SELECT name FROM plugin_states WHERE enabled")
        return {str(row[0]) for row in rows}
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def enabled_plugin_commands(database_url: str) -> dict[str, str] | None:
    """The commands of the plugins enabled at ``database_url``, as they declare them (name
    -> short help); None when an enabled plugin is not an installed entry point or declares
    none in its metadata, or the database cannot be read this way (then the CRM must be
    opened). A name two plugins declare goes to the first, in plugin name order."""
    enabled = stored_enabled_plugins(database_url)
    if enabled is None:
        return None
    modules = installed_plugin_modules()
    if enabled - set(modules):
        return None  # enabled but not installed as an entry point: the CRM knows what it is
    found: dict[str, str] = {}
    for name in sorted(enabled):
        declared = declared_commands(modules[name])
        if declared is None:
            return None
        for command, short_help in declared.items():
            found.setdefault(command, short_help)
    return found


__all__ = [
    "declared_commands",
    "enabled_plugin_commands",
    "installed_plugin_modules",
    "stored_enabled_plugins",
]
