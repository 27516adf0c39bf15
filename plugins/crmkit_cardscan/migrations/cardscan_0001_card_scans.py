"""create the card scans table

Revision ID: cardscan_0001
Revises:
Depends on: 0001_core (users, contacts, accounts, activities)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cardscan_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("cardscan",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    """Create ``card_scans``."""
    op.create_table(
        "card_scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("engine", sa.String(length=64), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("duplicates", sa.JSON(), nullable=False),
        sa.Column("hidden_matches", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("activity_id", sa.Integer(), nullable=True),
        sa.Column("scanned_by_id", sa.Integer(), nullable=True),
        sa.Column("scanned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_card_scans_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_card_scans_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["activity_id"], ["activities.id"], name=op.f("fk_card_scans_activity_id_activities")
        ),
        sa.ForeignKeyConstraint(
            ["scanned_by_id"], ["users.id"], name=op.f("fk_card_scans_scanned_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_scans")),
    )
    for column in ("status", "contact_id", "scanned_by_id"):
        op.create_index(op.f(f"ix_card_scans_{column}"), "card_scans", [column])


def downgrade() -> None:
    """Drop ``card_scans`` (the scans' images go with it)."""
    for column in ("status", "contact_id", "scanned_by_id"):
        op.drop_index(op.f(f"ix_card_scans_{column}"), table_name="card_scans")
    op.drop_table("card_scans")
