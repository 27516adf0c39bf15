"""The floor under ``crmkit contacts list --limit 1``: what SQLAlchemy and the models cost alone.

``python bench/startup_floor.py MODE`` (run in a demo CRM's folder, by startup_bench.py):

* ``orm``: ``import sqlalchemy.orm`` and nothing else;
* ``core``: the core's models (``crmkit.entities``), an engine on ``crmkit.db`` and the query
  ``contacts list --limit 1`` runs (the first live contacts by id, one more than the page to
  know whether there is a next one), its rows printed: no settings, plugins or services;
* ``all``: ``core`` plus the enabled plugins' packages (every model the CRM maps when it
  opens, and the hooks in the same modules);
* ``all-paused-gc``: ``all`` with the cyclic garbage collector off while it runs and every
  object frozen before it exits, as the ``crmkit`` console script does
  (``crmkit.cli.collector``).

Whatever ``contacts list`` pays beyond ``all`` is crmkit's own start-up; below ``all`` no
change to crmkit's start-up can go without touching SQLAlchemy or the models.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sqlite3
import sys


def enabled_plugin_modules() -> list[str]:
    """The modules of the plugins enabled in ``crmkit.db`` (from their entry points)."""
    with sqlite3.connect("crmkit.db") as connection:
        query = "SELECT name FROM plugin_states WHERE enabled"
        enabled = {row[0] for row in connection.execute(query)}
    group = importlib.metadata.entry_points(group="crmkit.plugins")
    return [point.module for point in group if point.name in enabled]


def main(mode: str) -> None:
    if mode.endswith("-paused-gc"):
        import atexit
        import gc

        gc.disable()
        atexit.register(gc.freeze)
        mode = mode.removesuffix("-paused-gc")
    import sqlalchemy.orm

    if mode == "orm":
        return
    from sqlalchemy import create_engine, select

    from crmkit.entities import Contact

    if mode == "all":
        for module in enabled_plugin_modules():
            importlib.import_module(module)
    engine = create_engine("sqlite:///crmkit.db")
    with sqlalchemy.orm.Session(engine) as session:
        query = select(Contact).where(Contact.deleted_at.is_(None)).order_by(Contact.id).limit(2)
        for contact in session.scalars(query):
            print(contact.id, contact.full_name, contact.title, contact.phone, contact.email)


if __name__ == "__main__":
    main(sys.argv[1])
