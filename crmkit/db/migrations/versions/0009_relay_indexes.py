"""relay indexes hold only open work; webhook subscriptions can be disabled

Revision ID: 0009_relay_indexes
Revises: 0008_messaging
Create Date: 2026-12-04

The relay reads the outbox's undispatched rows and the open (pending or in-flight)
deliveries, nothing else; its indexes become partial over exactly those rows. A row that
leaves them (dispatched, delivered, dead) then adds no index entry: the server's share of a
relayed event fell from 35 to 25-28 us of CPU (docs/decisions.md, "The relay's indexes hold
only open work"). Webhook subscriptions gain ``disabled_at`` and ``disabled_reason``: the
relay disables one whose receiver answers 410 Gone; and ``batch_size`` (events per request).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_relay_indexes"
down_revision: str | Sequence[str] | None = "0008_messaging"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = "status IN ('pending', 'in_flight')"


def _partial(table: str, name: str, columns: list[str], condition: str) -> None:
    """Create index ``name`` on ``columns`` of ``table`` over the rows meeting ``condition``."""
    op.create_index(
        name,
        table,
        columns,
        postgresql_where=sa.text(condition),
        sqlite_where=sa.text(condition),
    )


def upgrade() -> None:
    op.drop_index("ix_event_outbox_undispatched", table_name="event_outbox")
    _partial("event_outbox", "ix_event_outbox_undispatched", ["id"], "dispatched_at IS NULL")
    op.drop_index("ix_event_deliveries_order", table_name="event_deliveries")
    _partial("event_deliveries", "ix_event_deliveries_order", ["sink", "record_key", "id"], OPEN)
    op.drop_index("ix_event_deliveries_due", table_name="event_deliveries")
    _partial("event_deliveries", "ix_event_deliveries_due", ["status", "next_attempt_at"], OPEN)
    with op.batch_alter_table("webhook_subscriptions") as table:
        table.add_column(sa.Column("batch_size", sa.Integer(), nullable=False, server_default="1"))
        table.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(sa.Column("disabled_reason", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_subscriptions") as table:
        table.drop_column("disabled_reason")
        table.drop_column("disabled_at")
        table.drop_column("batch_size")
    op.drop_index("ix_event_deliveries_due", table_name="event_deliveries")
    op.create_index("ix_event_deliveries_due", "event_deliveries", ["status", "next_attempt_at"])
    op.drop_index("ix_event_deliveries_order", table_name="event_deliveries")
    op.create_index("ix_event_deliveries_order", "event_deliveries", ["sink", "record_key", "id"])
    op.drop_index("ix_event_outbox_undispatched", table_name="event_outbox")
    op.create_index("ix_event_outbox_undispatched", "event_outbox", ["dispatched_at", "id"])
