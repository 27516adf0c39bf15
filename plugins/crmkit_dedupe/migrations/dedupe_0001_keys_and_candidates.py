"""create the dedupe keys and candidates tables

Revision ID: dedupe_0001
Revises:
Depends on: 0001_core (users, for the deciding user)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dedupe_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("dedupe",)
depends_on: str | Sequence[str] | None = "0001_core"


def upgrade() -> None:
    """Create ``dedupe_keys`` and ``dedupe_candidates`` with their indexes."""
    op.create_table(
        "dedupe_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dedupe_keys")),
    )
    op.create_index("ix_dedupe_keys_lookup", "dedupe_keys", ["kind", "key", "entity"])
    op.create_index("ix_dedupe_keys_record", "dedupe_keys", ["entity", "record_id"])
    op.create_table(
        "dedupe_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_a", sa.String(length=32), nullable=False),
        sa.Column("id_a", sa.Integer(), nullable=False),
        sa.Column("entity_b", sa.String(length=32), nullable=False),
        sa.Column("id_b", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("merge_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["users.id"], name=op.f("fk_dedupe_candidates_decided_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dedupe_candidates")),
        sa.UniqueConstraint(
            "entity_a", "id_a", "entity_b", "id_b", name="uq_dedupe_candidates_pair"
        ),
    )
    for column in ("id_a", "id_b", "status"):
        op.create_index(op.f(f"ix_dedupe_candidates_{column}"), "dedupe_candidates", [column])


def downgrade() -> None:
    """Drop both tables (keys are rebuilt by enabling the plugin again)."""
    for column in ("id_a", "id_b", "status"):
        op.drop_index(op.f(f"ix_dedupe_candidates_{column}"), table_name="dedupe_candidates")
    op.drop_table("dedupe_candidates")
    op.drop_index("ix_dedupe_keys_record", table_name="dedupe_keys")
    op.drop_index("ix_dedupe_keys_lookup", table_name="dedupe_keys")
    op.drop_table("dedupe_keys")
