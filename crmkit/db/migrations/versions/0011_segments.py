"""segments: saved, named filters over one entity

Revision ID: 0011_segments
Revises: 0010_desk
Create Date: 2026-12-04

A segment is a named filter (the filter language of lists, plus relations, plugin measures
and other segments) over one entity, evaluated live in SQL for whoever looks. Names are
unique across entities so that ``segment=NAME`` needs no entity.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_segments"
down_revision: str | Sequence[str] | None = "0010_desk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )
    op.create_index(op.f("ix_segments_entity"), "segments", ["entity"])


def downgrade() -> None:
    op.drop_index(op.f("ix_segments_entity"), table_name="segments")
    op.drop_table("segments")
