"""Plugin discovery, metadata and hook calling.

Installed distributions register plugins in the entry-point group ``crmkit.plugins``.
Installed is not enabled: the enabled set lives in the database (``plugin_states``) and is
changed with ``crmkit plugins enable|disable``. Only enabled plugins are registered with the
pluggy manager, so a disabled plugin's hooks never run.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import pluggy
from attrs import define, field, frozen

from crmkit import hookspecs
from crmkit.errors import CRMError, PluginError, PluginVeto

ENTRY_POINT_GROUP = "crmkit.plugins"
hookimpl = pluggy.HookimplMarker("crmkit")
log = logging.getLogger(__name__)
#: Held while a plugin imports, so that two threads asking for it import it once.
_LOADING = threading.RLock()


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _command_pairs(
    values: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    items = values.items() if isinstance(values, Mapping) else values
    return tuple((str(name), str(short_help)) for name, short_help in items)


@frozen
class PluginSpec:
    """Metadata a plugin module declares as a module attribute named ``crmkit_plugin``::

        crmkit_plugin = crmkit.PluginSpec(
            description="Referral tracking", requires=("reminders",))

    Name and version come from the entry point and the installed distribution.

    ``commands`` names the command groups the plugin's ``crmkit_cli_commands`` adds, with
    their short help: ``commands={"referrals": "Referrals: who brought whom."}``. Written
    as a literal, it lets ``crmkit --help`` list them without importing the plugin (the
    help reads it from the source); tests/test_cli_startup.py checks it against the
    commands themselves.
    """

    description: str = ""
    requires: tuple[str, ...] = field(default=(), converter=_names)
    commands: tuple[tuple[str, str], ...] = field(default=(), converter=_command_pairs)


@define
class InstalledPlugin:
    """A plugin found on this machine, loaded or not.

    Its module is imported on first need (its hooks registered, its metadata, hooks or load
    error read), not when it is found: opening a CRM imports the plugins it has enabled and
    leaves the others, with their libraries, alone (``crmkit plugins list`` imports them
    all, to show each one's description or error).
    """

    name: str
    version: str
    distribution: str | None
    module_name: str
    _description: str = ""
    _requires: tuple[str, ...] = ()
    _module: object | None = None
    _load_error: str | None = None
    #: Where the module comes from, until it is imported (None once it was, or for a plugin
    #: made from an object already in memory).
    _entry_point: importlib.metadata.EntryPoint | None = field(default=None, repr=False)

    def load(self) -> None:
        """Import the plugin's module now if it is not yet; a failure is kept as
        ``load_error`` (and logged at debug level), never raised."""
        with _LOADING:
            entry_point, self._entry_point = self._entry_point, None
            if entry_point is None:
                return
            try:
                module = entry_point.load()
            except Exception as error:  # noqa: BLE001 - any import failure is reported, not raised
                self._load_error = f"{type(error).__name__}: {error}"
                # Said where it helps (`plugins list`/`info`, and on opening a CRM that has it
                # enabled), not on every command of every installation without its extra.
                log.debug("plugin %r failed to load: %s", self.name, self._load_error)
            else:
                self._module = module
                self._description, self._requires = _describe(module, self.name)

    @property
    def module(self) -> object | None:
        """The plugin's module (imported now if it is not yet), or None if it failed to."""
        self.load()
        return self._module

    @property
    def load_error(self) -> str | None:
        """Why the module failed to import (imported now if it is not yet), or None."""
        self.load()
        return self._load_error

    @property
    def description(self) -> str:
        """The plugin's ``PluginSpec`` description, else its docstring's first line."""
        self.load()
        return self._description

    @property
    def requires(self) -> tuple[str, ...]:
        """The plugins it requires (its ``PluginSpec``)."""
        self.load()
        return self._requires

    @property
    def loaded(self) -> bool:
        """Whether its module imported without error."""
        return self.module is not None

    def hook_names(self) -> list[str]:
        """The hooks the plugin implements, sorted by name."""
        if self.module is None:
            return []
        return sorted(
            name
            for name, value in inspect.getmembers(self.module)
            if name.startswith("crmkit_") and hasattr(value, "crmkit_impl")
        )

    def call_own(self, hook: str, **kwargs: Any) -> Any:
        """Call this plugin's implementation of ``hook`` directly (enabled or not); used to
        describe a plugin (``plugins info``) and to run its setup on enable."""
        function = getattr(self.module, hook, None)
        if function is None or not hasattr(function, "crmkit_impl"):
            return None
        wanted = inspect.signature(function).parameters
        return function(**{key: value for key, value in kwargs.items() if key in wanted})


def _describe(module: object, name: str) -> tuple[str, tuple[str, ...]]:
    spec = getattr(module, "crmkit_plugin", None)
    if isinstance(spec, PluginSpec):
        return spec.description, spec.requires
    doc = inspect.getdoc(module) or ""
    return (doc.splitlines()[0] if doc else ""), ()


def discover_plugins() -> dict[str, InstalledPlugin]:
    """Every plugin registered under ``crmkit.plugins``, not imported yet: each imports on
    first need (:meth:`InstalledPlugin.load`); one that fails to is kept with its
    ``load_error`` and the others still load."""
    found: dict[str, InstalledPlugin] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry_point.dist
        found[entry_point.name] = InstalledPlugin(
            name=entry_point.name,
            version=dist.version if dist else "unknown",
            distribution=dist.name if dist else None,
            module_name=entry_point.value,
            entry_point=entry_point,
        )
    return found


def in_memory_plugin(name: str, module: object) -> InstalledPlugin:
    """Wrap an object or module with hook implementations as a plugin (for embedding and
    tests: it is always enabled)."""
    description, requires = _describe(module, name)
    version = getattr(module, "__version__", "0")
    return InstalledPlugin(
        name=name,
        version=str(version),
        distribution=None,
        module_name=getattr(module, "__name__", type(module).__name__),
        description=description,
        requires=requires,
        module=module,
    )


class PluginHost:
    """The pluggy manager of one CRM, holding the enabled plugins' hooks."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("crmkit")
        self.manager.add_hookspecs(hookspecs)
        self._owner_by_code: dict[object, str] = {}
        self._core: set[str] = set()

    def register(self, plugin: InstalledPlugin) -> None:
        """Start calling ``plugin``'s hooks."""
        if plugin.module is None or self.manager.has_plugin(plugin.name):
            return
        self.manager.register(plugin.module, name=plugin.name)
        for impls in self._all_impls():
            if impls.plugin_name == plugin.name:
                self._owner_by_code[impls.function.__code__] = plugin.name

    def register_core(self, implementation: object, name: str) -> None:
        """Register hook implementations of the core itself (always on, never listed as a
        plugin): the fallback duplicate check, say."""
        if not self.manager.has_plugin(name):
            self.manager.register(implementation, name=name)
            self._core.add(name)

    def unregister(self, name: str) -> None:
        """Stop calling a plugin's hooks."""
        if self.manager.has_plugin(name):
            self.manager.unregister(name=name)

    @property
    def names(self) -> list[str]:
        """Names of the registered (enabled) plugins."""
        return sorted(name for name, _ in self.manager.list_name_plugin() if name not in self._core)

    def _all_impls(self) -> Iterable[pluggy.HookImpl]:
        for caller in self.manager.hook.__dict__.values():
            if isinstance(caller, pluggy.HookCaller):
                yield from caller.get_hookimpls()

    def implemented(self, hook: str) -> bool:
        """Whether any registered plugin implements ``hook`` (lets hot paths skip the call)."""
        caller: pluggy.HookCaller = getattr(self.manager.hook, hook)
        return bool(caller.get_hookimpls())

    def call(self, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` with ``kwargs``; an exception a plugin raises becomes a
        ``PluginError`` that names the plugin (a ``PluginVeto`` keeps its message)."""
        caller: Callable[..., Any] = getattr(self.manager.hook, hook)
        try:
            return caller(**kwargs)
        except CRMError as error:
            plugin = self._culprit(error.__traceback__)
            if plugin is None or (isinstance(error, PluginError) and error.plugin == plugin):
                raise
            if isinstance(error, PluginVeto):
                raise PluginError(plugin, f"refused by plugin {plugin!r}: {error}") from error
            raise PluginError(plugin, f"plugin {plugin!r} failed in {hook}: {error}") from error
        except Exception as error:
            plugin = self._culprit(error.__traceback__) or "unknown"
            # the text of an unexpected error can hold SQL, its parameters or file paths: it
            # goes to the log, the caller gets the plugin, the hook and the error's kind
            log.exception("plugin %r failed in %s", plugin, hook)
            raise PluginError(
                plugin,
                f"plugin {plugin!r} failed in {hook}: {type(error).__name__} (the details are"
                " in the server log)",
            ) from error

    def call_each_safely(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of ``hook``; log (and survive) each one's exception.

        Used for after-commit subscribers, where one plugin's failure must not stop others.
        """
        caller: pluggy.HookCaller = getattr(self.manager.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception:
                log.exception("plugin %r failed in %s", impl.plugin_name, hook)

    def _culprit(self, tb: TracebackType | None) -> str | None:
        for frame, _ in traceback.walk_tb(tb):
            owner = self._owner_by_code.get(frame.f_code)
            if owner is not None:
                return owner
        return None


def plugin_table(
    plugins: Mapping[str, InstalledPlugin], enabled: Iterable[str]
) -> list[dict[str, Any]]:
    """Rows describing plugins, as ``crmkit plugins list --json`` prints them."""
    on = set(enabled)
    return [
        {
            "name": plugin.name,
            "version": plugin.version,
            "enabled": plugin.name in on,
            "requires": list(plugin.requires),
            "description": plugin.description,
            "distribution": plugin.distribution,
            "error": plugin.load_error,
        }
        for plugin in sorted(plugins.values(), key=lambda p: p.name)
    ]


__all__ = [
    "ENTRY_POINT_GROUP",
    "InstalledPlugin",
    "PluginHost",
    "PluginSpec",
    "discover_plugins",
    "hookimpl",
    "in_memory_plugin",
    "plugin_table",
]
