"""create the loyalty tables: programs, cards, purchases, lots, ledger, operations, rewards,
coupons

Revision ID: loyalty_0001
Revises:
Depends on: 0001_core (contacts, users)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "loyalty_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("loyalty",)
depends_on: str | Sequence[str] | None = "0001_core"

MONEY = sa.Numeric(18, 2)
TIME = sa.DateTime(timezone=True)
LIVE = sa.text("remaining > 0")


def upgrade() -> None:
    """Create the tables with their indexes."""
    op.create_table(
        "loyalty_programs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_programs")),
        sa.UniqueConstraint("name", name=op.f("uq_loyalty_programs_name")),
    )
    op.create_table(
        "loyalty_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=True),
        sa.Column("tier_since", TIME, nullable=True),
        sa.Column("tier_grace_until", TIME, nullable=True),
        sa.Column("issued_at", TIME, nullable=False),
        sa.Column("blocked_at", TIME, nullable=True),
        sa.Column("block_reason", sa.String(length=200), nullable=True),
        sa.Column("replaced_by_id", sa.Integer(), nullable=True),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["loyalty_programs.id"],
            name=op.f("fk_loyalty_cards_program_id_loyalty_programs"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_loyalty_cards_contact_id_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_cards")),
        sa.UniqueConstraint("number", name=op.f("uq_loyalty_cards_number")),
    )
    op.create_index("ix_loyalty_cards_contact", "loyalty_cards", ["contact_id", "program_id"])
    op.create_table(
        "loyalty_purchases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.String(length=100), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("store", sa.String(length=100), nullable=True),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("refunded_amount", MONEY, nullable=False),
        sa.Column("refunded_points", sa.Integer(), nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["loyalty_programs.id"],
            name=op.f("fk_loyalty_purchases_program_id_loyalty_programs"),
        ),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["loyalty_cards.id"],
            name=op.f("fk_loyalty_purchases_card_id_loyalty_cards"),
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_loyalty_purchases_contact_id_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_purchases")),
        sa.UniqueConstraint("program_id", "receipt_id", name="uq_loyalty_purchases_receipt"),
    )
    op.create_index("ix_loyalty_purchases_card", "loyalty_purchases", ["card_id", "occurred_at"])
    op.create_index(
        "ix_loyalty_purchases_contact", "loyalty_purchases", ["contact_id", "occurred_at"]
    )
    op.create_table(
        "loyalty_lots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("earned_at", TIME, nullable=False),
        sa.Column("available_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("notified_at", TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["card_id"], ["loyalty_cards.id"], name=op.f("fk_loyalty_lots_card_id_loyalty_cards")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_lots")),
    )
    op.create_index(op.f("ix_loyalty_lots_purchase_id"), "loyalty_lots", ["purchase_id"])
    op.create_index(
        "ix_loyalty_lots_live",
        "loyalty_lots",
        ["card_id", "expires_at"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_index(
        "ix_loyalty_lots_expiry",
        "loyalty_lots",
        ["expires_at"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_table(
        "loyalty_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("lot_id", sa.Integer(), nullable=True),
        sa.Column("coupon_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["card_id"], ["loyalty_cards.id"], name=op.f("fk_loyalty_ledger_card_id_loyalty_cards")
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_loyalty_ledger_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_ledger")),
    )
    op.create_index("ix_loyalty_ledger_card", "loyalty_ledger", ["card_id", "id"])
    op.create_table(
        "loyalty_operations",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_loyalty_operations")),
    )
    op.create_table(
        "loyalty_rewards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", MONEY, nullable=False),
        sa.Column("cost_points", sa.Integer(), nullable=False),
        sa.Column("valid_days", sa.Integer(), nullable=False),
        sa.Column("per_customer_limit", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["loyalty_programs.id"],
            name=op.f("fk_loyalty_rewards_program_id_loyalty_programs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_rewards")),
        sa.UniqueConstraint("program_id", "name", name="uq_loyalty_rewards_name"),
    )
    op.create_table(
        "loyalty_coupons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("redeemed_at", TIME, nullable=True),
        sa.Column("redeemed_receipt", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["reward_id"],
            ["loyalty_rewards.id"],
            name=op.f("fk_loyalty_coupons_reward_id_loyalty_rewards"),
        ),
        sa.ForeignKeyConstraint(
            ["card_id"], ["loyalty_cards.id"], name=op.f("fk_loyalty_coupons_card_id_loyalty_cards")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_loyalty_coupons_contact_id_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loyalty_coupons")),
        sa.UniqueConstraint("code", name=op.f("uq_loyalty_coupons_code")),
    )
    op.create_index("ix_loyalty_coupons_card", "loyalty_coupons", ["card_id", "reward_id"])


def downgrade() -> None:
    """Drop every loyalty table (their data goes with them)."""
    for table in (
        "loyalty_coupons",
        "loyalty_rewards",
        "loyalty_operations",
        "loyalty_ledger",
        "loyalty_lots",
        "loyalty_purchases",
        "loyalty_cards",
        "loyalty_programs",
    ):
        op.drop_table(table)
