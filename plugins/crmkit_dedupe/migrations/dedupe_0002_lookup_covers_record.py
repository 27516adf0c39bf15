"""the key lookup index also covers record_id

Revision ID: dedupe_0002
Revises: dedupe_0001

The online check reads one key's records newest first (``ORDER BY record_id DESC LIMIT n``).
With ``(kind, key, entity)`` alone, SQLite without planner statistics walked
``ix_dedupe_keys_record`` in record order instead (to skip the sort): a scan of the whole
index per lookup. ``(kind, key, entity, record_id)`` answers the lookup and its order from
one index, without touching the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "dedupe_0002"
down_revision: str | Sequence[str] | None = "dedupe_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Rebuild ``ix_dedupe_keys_lookup`` with ``record_id`` as its last column."""
    op.drop_index("ix_dedupe_keys_lookup", table_name="dedupe_keys")
    op.create_index("ix_dedupe_keys_lookup", "dedupe_keys", ["kind", "key", "entity", "record_id"])


def downgrade() -> None:
    """Back to ``(kind, key, entity)``."""
    op.drop_index("ix_dedupe_keys_lookup", table_name="dedupe_keys")
    op.create_index("ix_dedupe_keys_lookup", "dedupe_keys", ["kind", "key", "entity"])
