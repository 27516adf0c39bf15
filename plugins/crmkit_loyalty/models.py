"""The loyalty plugin's tables.

Created by the plugin's own Alembic branch (``migrations/``), which matches these models
column for column. Two of them are read by other code and documented for it
(docs/loyalty.md, "Tables"):

* ``loyalty_purchases``: one row per recorded purchase (receipt), the purchase history later
  analysis (value tiers, RFM, churn) stands on;
* ``loyalty_ledger``: the append-only points ledger; a card's ``balance`` is the sum of its
  ``points`` column and its ``pending`` the sum of its ``pending`` column.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

import crmkit

#: How money is stored: 18 digits, 2 after the point (as the core's deal amounts).
Money = Numeric(18, 2)


class LoyaltyProgram(crmkit.Model):
    """A loyalty program: its rules (``definition``, see :mod:`crmkit_loyalty.programs`)
    kept as JSON. ``version`` goes up on every change, so processes notice a new
    definition with the card they read anyway."""

    __tablename__ = "loyalty_programs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)


class LoyaltyCard(crmkit.Model):
    """A member card of one contact in one program.

    ``status``: ``active``, ``blocked`` (lost or stopped; ``replaced_by_id`` names its
    successor) or ``merged`` (folded into another card when two contacts were merged).
    ``balance`` and ``pending`` are the sums of the card's ledger, kept on the card so a
    purchase or a redemption reads one row; ``tier`` is the current tier (``None``: none),
    ``tier_grace_until`` set while a member below their tier's threshold keeps it."""

    __tablename__ = "loyalty_cards"
    __table_args__ = (Index("ix_loyalty_cards_contact", "contact_id", "program_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programs.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    balance: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    tier: Mapped[str | None] = mapped_column(String(64), default=None)
    tier_since: Mapped[dt.datetime | None] = mapped_column(default=None)
    tier_grace_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    issued_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    blocked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    block_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    replaced_by_id: Mapped[int | None] = mapped_column(Integer, default=None)
    previous_id: Mapped[int | None] = mapped_column(Integer, default=None)


class LoyaltyPurchase(crmkit.Model):
    """One purchase (receipt) recorded on a card: the purchase history.

    ``amount`` is what the customer paid in ``currency`` (refunds do not change it;
    ``refunded_amount`` says how much of it came back). ``items`` is a JSON list of
    ``{"sku", "name", "category", "quantity", "amount"}`` (each key optional but
    ``amount``). ``points`` were earned by it (``refunded_points`` taken back since).
    ``contact_id`` is the card holder's contact at the time of recording (a contact merge
    re-points it), so analysis can read purchases per contact without the cards."""

    __tablename__ = "loyalty_purchases"
    __table_args__ = (
        UniqueConstraint("program_id", "receipt_id", name="uq_loyalty_purchases_receipt"),
        Index("ix_loyalty_purchases_card", "card_id", "occurred_at"),
        # covering: the insight plugin totals purchases per contact off the index alone
        Index(
            "ix_loyalty_purchases_contact_amounts",
            "contact_id",
            "occurred_at",
            "amount",
            "refunded_amount",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programs.id"))
    card_id: Mapped[int] = mapped_column(ForeignKey("loyalty_cards.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    receipt_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[decimal.Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    store: Mapped[str | None] = mapped_column(String(100), default=None)
    occurred_at: Mapped[dt.datetime] = mapped_column()
    items: Mapped[list[Any]] = mapped_column(JSON, default=list)
    points: Mapped[int] = mapped_column(Integer, default=0)
    refunded_amount: Mapped[decimal.Decimal] = mapped_column(Money, default=decimal.Decimal(0))
    refunded_points: Mapped[int] = mapped_column(Integer, default=0)
    recorded_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)


class LoyaltyLot(crmkit.Model):
    """Points earned together, spent and expiring together: the per-member expiry ledger.

    ``remaining`` of ``points`` are left; while ``pending`` they are not spendable (before
    ``available_at``, the end of the return window); they expire at ``expires_at`` (``None``:
    never). Spending takes the soonest-expiring lots first. ``notified_at``: when the
    ``points.expiring`` notice went out for it."""

    __tablename__ = "loyalty_lots"
    __table_args__ = (
        Index(
            "ix_loyalty_lots_live",
            "card_id",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
        Index(
            "ix_loyalty_lots_expiry",
            "expires_at",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("loyalty_cards.id"))
    purchase_id: Mapped[int | None] = mapped_column(Integer, default=None, index=True)
    points: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    pending: Mapped[bool] = mapped_column(Boolean, default=False)
    earned_at: Mapped[dt.datetime] = mapped_column()
    available_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    notified_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class LoyaltyLedgerEntry(crmkit.Model):
    """One change of a card's points; rows are only ever added.

    ``points`` changes the spendable balance, ``pending`` the pending points. ``kind``:
    ``earn``, ``release`` (pending became spendable), ``redeem``, ``expire``, ``refund``,
    ``adjust``, ``move_out`` / ``move_in`` (a lost card replaced, two cards merged)."""

    __tablename__ = "loyalty_ledger"
    __table_args__ = (Index("ix_loyalty_ledger_card", "card_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    card_id: Mapped[int] = mapped_column(ForeignKey("loyalty_cards.id"))
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    purchase_id: Mapped[int | None] = mapped_column(Integer, default=None)
    lot_id: Mapped[int | None] = mapped_column(Integer, default=None)
    coupon_id: Mapped[int | None] = mapped_column(Integer, default=None)
    note: Mapped[str | None] = mapped_column(String(200), default=None)
    at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)


class LoyaltyOperation(crmkit.Model):
    """An idempotency key: the operation it named (``kind``) and the answer it got; the
    same key again returns that answer and changes nothing."""

    __tablename__ = "loyalty_operations"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)


class LoyaltyReward(crmkit.Model):
    """A reward of a program: a coupon worth a fixed amount or a percentage off, costing
    ``cost_points`` (0: given away), valid ``valid_days`` from issue, at most
    ``per_customer_limit`` per contact (``None``: no limit)."""

    __tablename__ = "loyalty_rewards"
    __table_args__ = (UniqueConstraint("program_id", "name", name="uq_loyalty_rewards_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("loyalty_programs.id"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[decimal.Decimal] = mapped_column(Money)
    cost_points: Mapped[int] = mapped_column(Integer, default=0)
    valid_days: Mapped[int] = mapped_column(Integer, default=30)
    per_customer_limit: Mapped[int | None] = mapped_column(Integer, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LoyaltyCoupon(crmkit.Model):
    """A coupon issued to a card: one use, by ``expires_at``."""

    __tablename__ = "loyalty_coupons"
    __table_args__ = (Index("ix_loyalty_coupons_card", "card_id", "reward_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("loyalty_rewards.id"))
    card_id: Mapped[int] = mapped_column(ForeignKey("loyalty_cards.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    issued_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    redeemed_receipt: Mapped[str | None] = mapped_column(String(100), default=None)
