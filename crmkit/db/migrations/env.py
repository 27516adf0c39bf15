"""Alembic environment: crmkit passes an open connection in ``config.attributes``."""

from __future__ import annotations

from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

from crmkit.db.base import Base, UTCDateTime
from crmkit.db.models import import_core_models

import_core_models()

config = context.config


def render_item(kind: str, obj: object, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write crmkit's column types as plain SQLAlchemy types in generated revisions, so a
    plugin's revision imports nothing from crmkit's private modules."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # `crmkit plugins migration` limits autogenerate to one plugin's tables.
    include_object=config.attributes.get("include_object"),
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
