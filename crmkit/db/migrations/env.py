"""Alembic environment: crmkit passes an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

import crmkit.assignment.models
import crmkit.entities
import crmkit.entities.forms
import crmkit.events.outbox
import crmkit.events.subscriptions
import crmkit.permissions.models
import crmkit.permissions.passwords  # noqa: F401
from crmkit.db.base import Base

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
