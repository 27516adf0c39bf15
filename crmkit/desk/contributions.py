"""Collecting what enabled plugins add to the desk (the ``crmkit_desk_*`` hooks).

Each plugin is called on its own so that what it returns is known to be its own (a page's
address carries the plugin's name) and so that one plugin failing costs only its own part:
the failure is logged and, on a record page, shown as a panel naming the plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from crmkit.app import CRM
from crmkit.desk.extensions import DeskPanel

log = logging.getLogger(__name__)

#: What a record page shows in place of a plugin's panels when its hook failed (the error
#: itself goes to the server log only: it may hold details the user may not see).
PANEL_FAILED = "this plugin's panel failed to load; the error is in the server log"


class Contribution:
    """What one plugin returned from one hook, or the error it raised."""

    def __init__(self, plugin: str, items: list[Any], error: str | None = None) -> None:
        self.plugin = plugin
        self.items = items
        self.error = error


def contributions(crm: CRM, hook: str, **kwargs: Any) -> Iterator[Contribution]:
    """Call ``hook`` of each enabled plugin that implements it, one at a time."""
    for name in crm.host.names:
        plugin = crm.installed.get(name)
        if plugin is None or hook not in plugin.hook_names():
            continue
        try:
            result = plugin.call_own(hook, crm=crm, **kwargs)
        except Exception as error:
            log.exception("plugin %r failed in %s", name, hook)
            yield Contribution(name, [], f"{type(error).__name__}: {error}")
            continue
        if result is None:
            continue
        items = list(result) if isinstance(result, list | tuple) else [result]
        yield Contribution(name, items)


def collected(crm: CRM, hook: str, kind: type, **kwargs: Any) -> list[tuple[str, Any]]:
    """``(plugin, item)`` for every item of type ``kind`` the plugins return from ``hook``;
    failures and items of the wrong type are logged and left out."""
    found: list[tuple[str, Any]] = []
    for part in contributions(crm, hook, **kwargs):
        for item in part.items:
            if isinstance(item, kind):
                found.append((part.plugin, item))
            else:
                log.warning(
                    "plugin %r returned a %s from %s, not a %s",
                    part.plugin,
                    type(item).__name__,
                    hook,
                    kind.__name__,
                )
    return found


def panels(crm: CRM, hook: str, **kwargs: Any) -> list[tuple[str, DeskPanel]]:
    """Panels from ``hook``; a plugin that failed gets a panel saying so."""
    found: list[tuple[str, DeskPanel]] = []
    for part in contributions(crm, hook, **kwargs):
        if part.error is not None:
            found.append((part.plugin, DeskPanel(title=part.plugin, text=PANEL_FAILED)))
        found += [(part.plugin, item) for item in part.items if isinstance(item, DeskPanel)]
    return found
