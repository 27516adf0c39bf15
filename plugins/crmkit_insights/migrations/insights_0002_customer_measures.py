"""create the customer measures snapshot

Revision ID: insights_0002
Revises: insights_0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "insights_0002"
down_revision: str | Sequence[str] | None = "insights_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``insight_customer_measures`` (one row per customer, keyed by contact)."""
    op.create_table(
        "insight_customer_measures",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recency_days", sa.Float(), nullable=False),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("r_score", sa.Integer(), nullable=False),
        sa.Column("f_score", sa.Integer(), nullable=False),
        sa.Column("m_score", sa.Integer(), nullable=False),
        sa.Column("rfm_segment", sa.String(length=32), nullable=False),
        sa.Column("pareto_tier", sa.String(length=32), nullable=True),
        sa.Column("churn_risk", sa.Float(), nullable=True),
        sa.Column("lifecycle_by_rules", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_insight_customer_measures_contact_id_contacts"),
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_insight_customer_measures")),
    )


def downgrade() -> None:
    """Drop the snapshot."""
    op.drop_table("insight_customer_measures")
