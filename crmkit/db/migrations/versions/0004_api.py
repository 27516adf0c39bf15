"""api: lead-capture forms and webhook subscriptions

Revision ID: 0004_api
Revises: 0002_permissions
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_api"
down_revision: str | Sequence[str] | None = "0003_assignment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lead_forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("source_channel", sa.String(length=64), nullable=False),
        sa.Column("honeypot", sa.String(length=64), nullable=False),
        sa.Column("success_message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_lead_forms_owner_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_forms")),
        sa.UniqueConstraint("key", name=op.f("uq_lead_forms_key")),
        sa.UniqueConstraint("name", name=op.f("uq_lead_forms_name")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("webhook_subscriptions")
    op.drop_table("lead_forms")
