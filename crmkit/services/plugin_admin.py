"""Enabling, disabling and describing plugins: the state lives in the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crmkit.assignment.models import AssignmentRule
from crmkit.db import migrate
from crmkit.db.base import utcnow
from crmkit.entities.system import PluginState
from crmkit.errors import CRMError, PluginError
from crmkit.plugins import InstalledPlugin, plugin_table
from crmkit.services.roles import seed_builtin_roles

if TYPE_CHECKING:
    from crmkit.app import CRM


def installed_plugin(crm: CRM, name: str) -> InstalledPlugin:
    """The installed, loaded plugin ``name``; a ``PluginError`` saying how to get it."""
    return _installed(crm, name)


def _installed(crm: CRM, name: str) -> InstalledPlugin:
    plugin = crm.installed.get(name)
    if plugin is None:
        known = ", ".join(sorted(crm.installed)) or "none"
        raise PluginError(
            name,
            f"plugin {name!r} is not installed (installed: {known}); install the distribution"
            " that provides it, e.g. pip install crmkit-" + name,
        )
    if not plugin.loaded:
        raise PluginError(name, f"plugin {name!r} failed to load: {plugin.load_error}")
    return plugin


def list_plugins(crm: CRM) -> list[dict[str, Any]]:
    """Every installed plugin with version, enabled state, requirements and load error."""
    return plugin_table(crm.installed, crm.enabled_plugin_names())


def enable_plugin(crm: CRM, name: str) -> list[str]:
    """Enable ``name``: check its requirements, run its migrations and setup hook, record
    the state. Returns the migration branches run. Enabling an enabled plugin is a no-op."""
    crm.require_schema()
    plugin = _installed(crm, name)
    enabled = set(crm.enabled_plugin_names())
    if name in enabled:
        return []
    for required in plugin.requires:
        if required not in crm.installed:
            raise PluginError(
                name,
                f"plugin {name!r} requires {required!r}, which is not installed:"
                f" pip install crmkit-{required}",
            )
        if required not in enabled:
            raise PluginError(
                name,
                f"plugin {name!r} requires {required!r}, which is not enabled:"
                f" crmkit plugins enable {required}",
            )
    config = migrate.alembic_config(
        crm.engine.url.render_as_string(hide_password=False), crm.migration_locations()
    )
    branches = [name] if name in migrate.branch_heads(config) else []
    if branches:
        try:
            migrate.upgrade(crm.engine, config, branches)
        except Exception as error:
            raise PluginError(name, f"migrations of plugin {name!r} failed: {error}") from error
    crm.reload_plugins(also=[name])  # its entities and fields, for its setup hook
    try:
        with crm.transaction() as op:
            state = op.session.get(PluginState, name)
            if state is None:
                state = PluginState(name=name)
                op.session.add(state)
            state.enabled = True
            state.version = plugin.version
            state.changed_at = utcnow()
            op.emit("plugin.enabled", {"name": name, "version": plugin.version})
            seed_builtin_roles(op)  # the admin role gets the plugin's permissions
            plugin.call_own("crmkit_setup", crm=crm, op=op)
    except Exception as error:
        crm.reload_plugins()
        raise PluginError(name, f"setup of plugin {name!r} failed, not enabled: {error}") from error
    # It is enabled now: start it as if this process had opened the CRM with it enabled.
    try:
        plugin.call_own("crmkit_startup", crm=crm)
    except Exception as error:
        raise PluginError(
            name, f"plugin {name!r} is enabled, but its crmkit_startup failed: {error}"
        ) from error
    return branches


def disable_plugin(crm: CRM, name: str) -> None:
    """Disable ``name``: its hooks stop, its data and tables stay. Refused while another
    enabled plugin requires it."""
    crm.require_schema()
    if name not in crm.installed:
        _installed(crm, name)
    if name in crm.embedded:
        raise PluginError(
            name, f"plugin {name!r} is embedded by the application; it cannot be disabled"
        )
    enabled = set(crm.enabled_plugin_names())
    if name not in enabled:
        return
    dependants = sorted(other for other in enabled if name in crm.installed[other].requires)
    if dependants:
        raise PluginError(
            name,
            f"plugin {name!r} is required by {', '.join(dependants)}: disable"
            f" {'them' if len(dependants) > 1 else 'it'} first",
        )
    using = _rules_using_strategies_of(crm, name)
    if using:
        raise PluginError(
            name,
            f"plugin {name!r} provides the assignment strategy of the rules"
            f" {', '.join(using)}; every create of their entity would fail without it:"
            " remove the rules first (crmkit rules remove ENTITY NAME)",
        )
    _set_enabled(crm, name, False)
    crm.reload_plugins()


def _rules_using_strategies_of(crm: CRM, name: str) -> list[str]:
    """``entity/rule`` of every assignment rule (config file and database) whose strategy
    plugin ``name`` provides."""
    provided = {
        strategy.name
        for strategy in crm.installed[name].call_own("crmkit_assignment_strategies") or []
    }
    if not provided:
        return []
    found = [
        f"{spec.entity}/{spec.name} (config file)"
        for spec in crm.settings.assignment.rules
        if spec.strategy in provided
    ]
    with crm.transaction(write=False) as op:
        rows = op.session.execute(
            select(AssignmentRule.entity, AssignmentRule.name).where(
                AssignmentRule.strategy.in_(provided)
            )
        )
        found += [f"{entity}/{rule}" for entity, rule in rows]
    return sorted(found)


def _set_enabled(crm: CRM, name: str, enabled: bool) -> None:
    with crm.transaction() as op:
        state = op.session.get(PluginState, name)
        if state is None:
            return
        state.enabled = enabled
        state.changed_at = utcnow()
        op.emit("plugin.enabled" if enabled else "plugin.disabled", {"name": name})


def plugin_info(crm: CRM, name: str) -> dict[str, Any]:
    """What a plugin is and adds: hooks, entities, custom fields, permissions, settings,
    CLI commands and migrations."""
    plugin = crm.installed.get(name)
    if plugin is None:
        _installed(crm, name)
        raise CRMError(f"unknown plugin {name!r}")  # pragma: no cover - _installed raised
    info: dict[str, Any] = {
        "name": plugin.name,
        "version": plugin.version,
        "distribution": plugin.distribution,
        "module": plugin.module_name,
        "description": plugin.description,
        "requires": list(plugin.requires),
        "enabled": name in crm.enabled_plugin_names(),
        "error": plugin.load_error,
        "hooks": plugin.hook_names(),
    }
    if plugin.loaded:
        info["entities"] = [e.name for e in plugin.call_own("crmkit_entities") or []]
        info["custom_fields"] = [
            f"{f.entity}.{f.name} ({f.type})" for f in plugin.call_own("crmkit_custom_fields") or []
        ]
        info["permissions"] = list(plugin.call_own("crmkit_permissions") or [])
        info["settings"] = [
            {
                "name": s.name,
                "type": s.type.__name__,
                "default": s.default,
                "description": s.description,
            }
            for s in plugin.call_own("crmkit_settings") or []
        ]
        info["commands"] = [c.name for c in plugin.call_own("crmkit_cli_commands") or []]
        info["migrations"] = plugin.call_own("crmkit_migrations")
    return info
