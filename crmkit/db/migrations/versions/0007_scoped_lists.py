"""scoped lists: contacts indexed by owner and team, then id or full name

Revision ID: 0007_scoped_lists
Revises: 0006_access_stamp
Create Date: 2026-11-23

A scoped page of contacts is read as one top-N per team of the actor's scope and one of
their own records, each from an index on (team_id | owner_id, sort, id, deleted_at) that
holds all the branch reads. The owner and team indexes become (owner_id, id, deleted_at)
and (team_id, id, deleted_at), a superset of the single-column ones, and two indexes serve
the name order. See docs/decisions.md ("A narrow scope reads one top-N per team").
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_scoped_lists"
down_revision: str | Sequence[str] | None = "0006_access_stamp"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for lead in ("owner_id", "team_id"):
        op.drop_index(f"ix_contacts_{lead}", table_name="contacts")
        op.create_index(f"ix_contacts_{lead}", "contacts", [lead, "id", "deleted_at"])
        op.create_index(
            f"ix_contacts_{lead}_full_name", "contacts", [lead, "full_name", "id", "deleted_at"]
        )


def downgrade() -> None:
    for lead in ("owner_id", "team_id"):
        op.drop_index(f"ix_contacts_{lead}_full_name", table_name="contacts")
        op.drop_index(f"ix_contacts_{lead}", table_name="contacts")
        op.create_index(f"ix_contacts_{lead}", "contacts", [lead])
