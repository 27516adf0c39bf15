"""create the referrals table

Revision ID: referrals_0001
Revises:
Depends on: 0001_core (the core revision that creates contacts, users and teams)

The first revision of the plugin's own branch: ``branch_labels`` names the branch after the
plugin, ``down_revision = None`` starts it, and ``depends_on`` makes Alembic create the core
tables it points at first. Written by hand; the plugin's tests check it against the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "referrals_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("referrals",)
depends_on: str | Sequence[str] | None = "0001_core"

TABLE = "referrals"
INDEXED = ("referrer_contact_id", "referred_contact_id", "owner_id", "team_id")


def upgrade() -> None:
    """Create the referrals table with every column ``crmkit.RecordMixin`` carries."""
    op.create_table(
        TABLE,
        # The plugin's own columns.
        sa.Column("referrer_contact_id", sa.Integer(), nullable=False),
        sa.Column("referred_contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("reward_points", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        # crmkit.RecordMixin: identity, timestamps, optimistic version, soft delete, custom
        # field values, owner and team (permissions, assignment) and the writing actors.
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        # Names follow crmkit's naming convention (crmkit.Model.metadata.naming_convention).
        sa.ForeignKeyConstraint(
            ["referrer_contact_id"],
            ["contacts.id"],
            name=op.f("fk_referrals_referrer_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["referred_contact_id"],
            ["contacts.id"],
            name=op.f("fk_referrals_referred_contact_id_contacts"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_referrals_owner_id_users")
        ),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_referrals_team_id_teams")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_referrals_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_referrals_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    for column in INDEXED:
        op.create_index(op.f(f"ix_{TABLE}_{column}"), TABLE, [column], unique=False)


def downgrade() -> None:
    """Drop the table (and with it every referral)."""
    for column in INDEXED:
        op.drop_index(op.f(f"ix_{TABLE}_{column}"), table_name=TABLE)
    op.drop_table(TABLE)
