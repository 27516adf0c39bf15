"""candidate indexes a scan does not have to keep up

Revision ID: dedupe_0003
Revises: dedupe_0002

A scan writes hundreds of thousands of open candidates, and every index on the table is
updated for each. Two of them did nothing for the queries:

- ``ix_dedupe_candidates_id_a``: every lookup by ``id_a`` also names ``entity_a``, and
  ``uq_dedupe_candidates_pair`` (``entity_a, id_a, entity_b, id_b``) answers it.
- ``ix_dedupe_candidates_status`` indexed every row's status, nearly all ``open``: a list of
  open candidates reads most of the table anyway. Its use is finding the few decided ones
  (the review's dismissed and merged lists, a scan keeping dismissed pairs dismissed), so
  it becomes ``ix_dedupe_candidates_decided``, partial: only rows whose status is not
  ``open``, none of which a scan writes.

At 231 000 candidates the PostgreSQL ``COPY`` went from 1.66 s to 1.38 s.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dedupe_0003"
down_revision: str | Sequence[str] | None = "dedupe_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECIDED = sa.text("status <> 'open'")


def upgrade() -> None:
    """Drop ``ix_dedupe_candidates_id_a``; make the status index partial."""
    op.drop_index("ix_dedupe_candidates_id_a", table_name="dedupe_candidates")
    op.drop_index("ix_dedupe_candidates_status", table_name="dedupe_candidates")
    op.create_index(
        "ix_dedupe_candidates_decided",
        "dedupe_candidates",
        ["status"],
        postgresql_where=DECIDED,
        sqlite_where=DECIDED,
    )


def downgrade() -> None:
    """Back to full indexes on ``id_a`` and ``status``."""
    op.drop_index("ix_dedupe_candidates_decided", table_name="dedupe_candidates")
    op.create_index("ix_dedupe_candidates_status", "dedupe_candidates", ["status"])
    op.create_index("ix_dedupe_candidates_id_a", "dedupe_candidates", ["id_a"])
