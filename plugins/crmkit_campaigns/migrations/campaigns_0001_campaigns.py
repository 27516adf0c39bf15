"""create the campaigns tables: campaigns, their members and the per-domain send counters

Revision ID: campaigns_0001
Revises:
Depends on: 0008_messaging (users, contacts; mails go through the core message channels)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "campaigns_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("campaigns",)
depends_on: str | Sequence[str] | None = "0008_messaging"

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the tables with their indexes."""
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("segment", sa.String(200), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("window", sa.JSON(), nullable=False),
        sa.Column("allow_same_day", sa.Boolean(), nullable=False),
        sa.Column("audience", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("started_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_campaigns"),
        sa.UniqueConstraint("name", name="uq_campaigns_name"),
    )
    op.create_table(
        "campaign_members",
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("next_due_at", TIME, nullable=True),
        sa.Column("joined_at", TIME, nullable=False),
        sa.Column("last_sent_at", TIME, nullable=True),
        sa.Column("clicked_at", TIME, nullable=True),
        sa.Column("replied_at", TIME, nullable=True),
        sa.Column("converted_at", TIME, nullable=True),
        sa.Column("converted_by", sa.String(16), nullable=True),
        sa.Column("thanked_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "contact_id", name="pk_campaign_members"),
    )
    op.create_index(
        "ix_campaign_members_due", "campaign_members", ["campaign_id", "status", "next_due_at"]
    )
    op.create_index(
        "ix_campaign_members_contact", "campaign_members", ["contact_id", "last_sent_at"]
    )
    op.create_table(
        "campaign_domain_counters",
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("minute_start", TIME, nullable=False),
        sa.Column("minute_count", sa.Integer(), nullable=False),
        sa.Column("day_start", TIME, nullable=False),
        sa.Column("day_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("domain", name="pk_campaign_domain_counters"),
    )


def downgrade() -> None:
    """Drop the tables."""
    op.drop_table("campaign_domain_counters")
    op.drop_index("ix_campaign_members_contact", table_name="campaign_members")
    op.drop_index("ix_campaign_members_due", table_name="campaign_members")
    op.drop_table("campaign_members")
    op.drop_table("campaigns")
