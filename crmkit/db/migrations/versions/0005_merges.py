"""merges

Revision ID: 0005_merges
Revises: 0002_permissions
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_merges"
down_revision: str | Sequence[str] | None = "0004_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("survivor_id", sa.Integer(), nullable=False),
        sa.Column("merged_id", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("survivor_before", sa.JSON(), nullable=False),
        sa.Column("merged_before", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("survivor_version", sa.Integer(), nullable=False),
        sa.Column("merged_version", sa.Integer(), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("plugin_moves", sa.JSON(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["actor_id"], ["users.id"], name=op.f("fk_merges_actor_id_users")),
        sa.ForeignKeyConstraint(
            ["undone_by_id"], ["users.id"], name=op.f("fk_merges_undone_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merges")),
    )
    op.create_index("ix_merges_records", "merges", ["entity", "survivor_id", "merged_id"])


def downgrade() -> None:
    op.drop_index("ix_merges_records", table_name="merges")
    op.drop_table("merges")
