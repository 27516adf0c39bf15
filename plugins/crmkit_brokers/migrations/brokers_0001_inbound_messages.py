"""create the table of applied inbound messages

Revision ID: brokers_0001
Revises:
Depends on: 0001_core
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "brokers_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("brokers",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    """Create ``brokers_inbound_messages``: one row per applied idempotency key."""
    op.create_table(
        "brokers_inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brokers_inbound_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_brokers_inbound_messages_key")),
    )


def downgrade() -> None:
    """Drop ``brokers_inbound_messages``."""
    op.drop_table("brokers_inbound_messages")
