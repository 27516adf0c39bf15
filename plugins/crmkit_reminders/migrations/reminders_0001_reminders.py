"""create the reminders tables: reminders and each user's reminder preferences

Revision ID: reminders_0001
Revises:
Depends on: 0008_messaging (users; messages are sent through the core channels)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "reminders_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("reminders",)
depends_on: str | Sequence[str] | None = "0008_messaging"

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the tables with their indexes."""
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("record_type", sa.String(64), nullable=True),
        sa.Column("record_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("starts_local", sa.String(32), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("rrule", sa.String(500), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("next_due_at", TIME, nullable=True),
        sa.Column("occurrence_at", TIME, nullable=True),
        sa.Column("fired_count", sa.Integer(), nullable=False),
        sa.Column("last_fired_at", TIME, nullable=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("source_key", sa.String(200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("done_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reminders"),
        sa.UniqueConstraint("source_key", name="uq_reminders_source_key"),
    )
    op.create_index(
        "ix_reminders_due",
        "reminders",
        ["next_due_at"],
        postgresql_where=sa.text("next_due_at IS NOT NULL"),
    )
    op.create_index("ix_reminders_owner", "reminders", ["owner_id", "status", "next_due_at"])
    op.create_index("ix_reminders_record", "reminders", ["record_type", "record_id"])
    op.create_table(
        "reminder_preferences",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("feed_token_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_reminder_preferences"),
        sa.UniqueConstraint("feed_token_hash", name="uq_reminder_preferences_feed_token_hash"),
    )


def downgrade() -> None:
    """Drop the tables."""
    op.drop_table("reminder_preferences")
    op.drop_index("ix_reminders_record", table_name="reminders")
    op.drop_index("ix_reminders_owner", table_name="reminders")
    op.drop_index("ix_reminders_due", table_name="reminders")
    op.drop_table("reminders")
