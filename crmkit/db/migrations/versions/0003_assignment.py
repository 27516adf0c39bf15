"""assignment: rules, members, cursors, availability, pool policies, claims, ownership history

Revision ID: 0003_assignment
Revises: 0002_permissions
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_assignment"
down_revision: str | Sequence[str] | None = "0002_permissions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "assignment_cursors",
        sa.Column("rule_key", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("rule_key", name=op.f("pk_assignment_cursors")),
    )
    op.create_table(
        "assignment_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(length=64), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment_rules")),
        sa.UniqueConstraint("entity", "name", name=op.f("uq_assignment_rules_entity")),
    )
    with op.batch_alter_table("assignment_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignment_rules_entity"), ["entity"], unique=False)

    op.create_table(
        "ownership_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("previous_owner_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("batch", sa.String(length=36), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ownership_history")),
    )
    with op.batch_alter_table("ownership_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ownership_history_batch"), ["batch"], unique=False)
        batch_op.create_index(
            "ix_ownership_history_record", ["entity", "record_id", "changed_at"], unique=False
        )

    op.create_table(
        "pool_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_policies")),
        sa.UniqueConstraint("entity", "name", name=op.f("uq_pool_policies_entity")),
    )
    with op.batch_alter_table("pool_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pool_policies_entity"), ["entity"], unique=False)

    op.create_table(
        "assignment_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("territory", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["assignment_rules.id"],
            name=op.f("fk_assignment_members_rule_id_assignment_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_assignment_members_team_id_teams")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assignment_members_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment_members")),
    )
    with op.batch_alter_table("assignment_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assignment_members_rule_id"), ["rule_id"], unique=False
        )

    op.create_table(
        "pool_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_pool_claims_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_claims")),
    )
    with op.batch_alter_table("pool_claims", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pool_claims_user_time", ["user_id", "entity", "claimed_at"], unique=False
        )

    op.create_table(
        "user_availability",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("away_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("away_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_availability_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_availability")),
    )

    _grant_pool_claim()


#: Existing built-in roles get the new permissions they hold in a fresh install (admin gets
#: every permission when the roles are seeded after the migration).
_NEW_GRANTS = {"manager": ("pool:claim",), "sales_rep": ("pool:claim",)}


def _grant_pool_claim() -> None:
    roles = sa.table("roles", sa.column("id", sa.Integer()), sa.column("name", sa.String()))
    grants = sa.table(
        "role_grants",
        sa.column("role_id", sa.Integer()),
        sa.column("permission", sa.String()),
        sa.column("scope", sa.String()),
    )
    connection = op.get_bind()
    for name, permissions in _NEW_GRANTS.items():
        role_id = connection.execute(sa.select(roles.c.id).where(roles.c.name == name)).scalar()
        if role_id is None:
            continue
        held = set(
            connection.execute(
                sa.select(grants.c.permission).where(grants.c.role_id == role_id)
            ).scalars()
        )
        for permission in permissions:
            if permission not in held:
                connection.execute(
                    grants.insert().values(role_id=role_id, permission=permission, scope="all")
                )


def downgrade() -> None:

    op.drop_table("user_availability")
    with op.batch_alter_table("pool_claims", schema=None) as batch_op:
        batch_op.drop_index("ix_pool_claims_user_time")

    op.drop_table("pool_claims")
    with op.batch_alter_table("assignment_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignment_members_rule_id"))

    op.drop_table("assignment_members")
    with op.batch_alter_table("pool_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pool_policies_entity"))

    op.drop_table("pool_policies")
    with op.batch_alter_table("ownership_history", schema=None) as batch_op:
        batch_op.drop_index("ix_ownership_history_record")
        batch_op.drop_index(batch_op.f("ix_ownership_history_batch"))

    op.drop_table("ownership_history")
    with op.batch_alter_table("assignment_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignment_rules_entity"))

    op.drop_table("assignment_rules")
    op.drop_table("assignment_cursors")
