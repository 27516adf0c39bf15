"""access stamp: a counter every permission-relevant change bumps

Revision ID: 0006_access_stamp
Revises: 0005_merges
Create Date: 2026-11-23

One row, ``access_stamp.version``, bumped by database triggers whenever a row of
``user_roles``, ``role_grants``, ``field_rules`` or ``teams`` changes, and whenever a user's
team, active or admin flag or username changes (or a user is deleted), in the same
transaction as the change. A process that caches what a user may do (``Access``) reads the
stamp and reloads when it moved, so a change made by any process, through crmkit or plain
SQL, is seen by the next operation everywhere (see docs/decisions.md).

On PostgreSQL the triggers are deferred constraint triggers: the counter row is locked only
while the changing transaction commits, so two concurrent permission changes cannot
deadlock over it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_access_stamp"
down_revision: str | Sequence[str] | None = "0005_merges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table -> the changes that bump the stamp (UPDATE OF ... names the relevant columns)
WATCHED: dict[str, tuple[str, ...]] = {
    "user_roles": ("INSERT", "UPDATE", "DELETE"),
    "role_grants": ("INSERT", "UPDATE", "DELETE"),
    "field_rules": ("INSERT", "UPDATE", "DELETE"),
    "teams": ("INSERT", "UPDATE OF parent_id", "DELETE"),
    "users": ("UPDATE OF team_id, is_active, is_admin, username", "DELETE"),
}
BUMP = "UPDATE access_stamp SET version = version + 1"


def _name(table: str, event: str) -> str:
    return f"access_stamp_{table}_{event.split()[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "access_stamp",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_access_stamp_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_stamp")),
    )
    op.execute("INSERT INTO access_stamp (id, version) VALUES (1, 0)")
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION crmkit_bump_access_stamp() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table, events in WATCHED.items():
            for event in events:
                op.execute(
                    f"CREATE CONSTRAINT TRIGGER {_name(table, event)} AFTER {event} ON {table}"
                    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
                    " EXECUTE FUNCTION crmkit_bump_access_stamp()"
                )
    else:
        for table, events in WATCHED.items():
            for event in events:
                op.execute(
                    f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table}"
                    f" BEGIN {BUMP}; END"
                )


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    for table, events in WATCHED.items():
        for event in events:
            on = f" ON {table}" if postgresql else ""
            op.execute(f"DROP TRIGGER {_name(table, event)}{on}")
    if postgresql:
        op.execute("DROP FUNCTION crmkit_bump_access_stamp()")
    op.drop_table("access_stamp")
