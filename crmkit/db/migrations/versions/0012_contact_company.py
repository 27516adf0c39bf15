"""contacts keep the company as written

Revision ID: 0012_contact_company
Revises: 0011_segments
Create Date: 2026-12-04

``contacts.company_name``: the company a source names for the person (a business card, a web
form, another CRM's export), as leads already keep it, before or without a link to an account
(``account_id``). Duplicate detection weighs it: the same name at the same company is the
evidence that pairs records sharing no phone or e-mail (docs/decisions.md, "A contact keeps
the company as written").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_contact_company"
down_revision: str | Sequence[str] | None = "0011_segments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("company_name", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("company_name")
