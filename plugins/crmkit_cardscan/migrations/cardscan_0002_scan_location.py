"""card scans keep where the card was collected

Revision ID: cardscan_0002
Revises: cardscan_0001

``crmkit cards scan --where`` was only used when a card was saved at once: a card put up
for review lost it unless ``confirm --where`` repeated it. The scan keeps it now.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cardscan_0002"
down_revision: str | Sequence[str] | None = "cardscan_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``card_scans.location``."""
    with op.batch_alter_table("card_scans") as batch:
        batch.add_column(sa.Column("location", sa.String(length=300), nullable=True))


def downgrade() -> None:
    """Drop ``card_scans.location``."""
    with op.batch_alter_table("card_scans") as batch:
        batch.drop_column("location")
