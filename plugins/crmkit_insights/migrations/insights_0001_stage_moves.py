"""create the deal stage history table

Revision ID: insights_0001
Revises:
Depends on: 0001_core (deals)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "insights_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("insights",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    """Create ``insight_stage_moves`` with its index by deal and time."""
    op.create_table(
        "insight_stage_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_insight_stage_moves_deal_id_deals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_stage_moves")),
    )
    op.create_index("ix_insight_stage_moves_deal", "insight_stage_moves", ["deal_id", "entered_at"])


def downgrade() -> None:
    """Drop the table."""
    op.drop_index("ix_insight_stage_moves_deal", table_name="insight_stage_moves")
    op.drop_table("insight_stage_moves")
