"""purchases by contact carry their amounts: the contact index covers totalling

Revision ID: loyalty_0002
Revises: loyalty_0001

``ix_loyalty_purchases_contact (contact_id, occurred_at)`` becomes
``ix_loyalty_purchases_contact_amounts (contact_id, occurred_at, amount, refunded_amount)``:
the insight plugin's RFM totals every purchase per contact, and with the amounts in the index
it reads the index alone instead of the table row of each purchase (docs/benchmarks.md,
"Insight on SQLite after the covering index, plain rows and histogram bounds"). Every
look-up the old index served, the new one serves (same leading columns), so it replaces it
rather than adding a third index to write.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "loyalty_0002"
down_revision: str | Sequence[str] | None = "loyalty_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Replace the contact index by the covering one."""
    op.create_index(
        "ix_loyalty_purchases_contact_amounts",
        "loyalty_purchases",
        ["contact_id", "occurred_at", "amount", "refunded_amount"],
    )
    op.drop_index("ix_loyalty_purchases_contact", table_name="loyalty_purchases")


def downgrade() -> None:
    """Back to the contact index without the amounts."""
    op.create_index(
        "ix_loyalty_purchases_contact", "loyalty_purchases", ["contact_id", "occurred_at"]
    )
    op.drop_index("ix_loyalty_purchases_contact_amounts", table_name="loyalty_purchases")
