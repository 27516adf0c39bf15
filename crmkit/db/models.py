"""Every module that declares the core's tables, imported on demand.

A command that opens the CRM imports only the models its path uses (``contacts list`` does
not load the assignment, message or outbox tables: about 40 ms of start-up, issue 22). Work
that must see every table the database may hold (the migrations' metadata, a merge
re-pointing every foreign key to a record) calls :func:`import_core_models` first.
"""

from __future__ import annotations

import importlib

#: The modules whose models make up the core's tables (the migrations compare these).
CORE_MODEL_MODULES = (
    "crmkit.entities",
    "crmkit.entities.forms",
    "crmkit.assignment.models",
    "crmkit.events.outbox",
    "crmkit.events.subscriptions",
    "crmkit.messages.models",
    "crmkit.permissions.models",
    "crmkit.permissions.passwords",
)


def import_core_models() -> None:
    """Import every core model module, so that all the core's tables are in the metadata."""
    for name in CORE_MODEL_MODULES:
        importlib.import_module(name)
