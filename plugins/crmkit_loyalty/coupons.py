"""Coupons: a program's rewards issued to a card (free or for points) and redeemed once."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Table, func, insert, select, update

import crmkit
from crmkit_loyalty import ledger
from crmkit_loyalty.cards import clean_number
from crmkit_loyalty.ledger import CARDS, CONTACTS
from crmkit_loyalty.models import LoyaltyCoupon, LoyaltyReward
from crmkit_loyalty.service import _earlier_in, _invalid, _repeat, _same_kind, run_once

COUPONS: Table = LoyaltyCoupon.__table__  # type: ignore[assignment]
REWARDS: Table = LoyaltyReward.__table__  # type: ignore[assignment]
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out at a till


def new_code() -> str:
    """A random 12-character coupon code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))


def coupon_dict(row: Any, reward: Any, number: str) -> dict[str, Any]:
    """A coupon as JSON-ready values."""
    return {
        "code": row.code,
        "card": number,
        "reward": reward.name,
        "kind": reward.kind,
        "value": str(reward.value),
        "issued_at": row.issued_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "redeemed_at": row.redeemed_at.isoformat() if row.redeemed_at else None,
        "redeemed_receipt": row.redeemed_receipt,
    }


def issue_coupon(
    crm: crmkit.CRM,
    number: str,
    reward: str,
    *,
    key: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Issue a coupon of ``reward`` to a card: its points cost is redeemed (refused when the
    balance is short), and the per-customer limit is checked."""
    number = clean_number(number)
    name = str(reward or "").strip()
    if not name:
        raise _invalid("reward", "is required", "coupon")

    def work(op: crmkit.Operation) -> dict[str, Any]:
        op.access.require("loyalty:redeem")
        now = crmkit.utcnow()
        card = ledger.lock_card(op, number=number, key=key, now=now)
        if (repeated := _repeat(card, key, "coupon")) is not None:
            return repeated
        ledger.require_active(op, card)
        connection = op.session.connection()
        row = connection.execute(
            select(REWARDS).where(
                REWARDS.c.program_id == card.program_id,
                REWARDS.c.name == name,
                REWARDS.c.active.is_(True),
            )
        ).first()
        if row is None:
            card.program.reward(name)  # raises, listing the program's rewards
            raise crmkit.NotFoundError("reward", name)
        if row.per_customer_limit is not None:
            issued = connection.execute(
                select(func.count())
                .select_from(COUPONS)
                .where(COUPONS.c.reward_id == row.id, COUPONS.c.contact_id == card.contact_id)
            ).scalar_one()
            if issued >= row.per_customer_limit:
                raise crmkit.ConflictError(
                    f"reward {name!r} is limited to {row.per_customer_limit} per customer;"
                    f" this customer has had {issued}"
                )
        code = new_code()
        coupon_id = connection.execute(
            insert(COUPONS).returning(COUPONS.c.id),
            {
                "code": code,
                "reward_id": row.id,
                "card_id": card.id,
                "contact_id": card.contact_id,
                "issued_at": now,
                "expires_at": now + dt.timedelta(days=row.valid_days),
            },
        ).scalar_one()
        ledger.release_due(op, card, now)
        if row.cost_points:
            ledger.debit(op, card, row.cost_points, coupon_id=coupon_id, note=f"coupon {name}")
            ledger.save_card(op, card)
            op.emit(
                "points.redeemed",
                {
                    "card": number,
                    "points": row.cost_points,
                    "balance": card.balance,
                    "coupon": code,
                },
                record_type="contact",
                record_id=card.contact_id,
            )
        elif card.due:
            ledger.save_card(op, card)
        coupon = connection.execute(select(COUPONS).where(COUPONS.c.id == coupon_id)).one()
        result = {
            **coupon_dict(coupon, row, number),
            "cost_points": row.cost_points,
            "balance": card.balance,
        }
        op.emit("coupon.issued", result, record_type="contact", record_id=card.contact_id)
        ledger.remember(op, key, "coupon", result)
        return result

    return run_once(crm, actor, "coupon", key, work)


def _coupon_query(op: crmkit.Operation, code: str) -> Any:
    access = op.access
    condition = access.condition(crmkit.Contact, access.require("contact:read"))
    query = (
        select(COUPONS, CARDS.c.number, CARDS.c.status)
        .join(CARDS, CARDS.c.id == COUPONS.c.card_id)
        .join(CONTACTS, CONTACTS.c.id == COUPONS.c.contact_id)
        .where(COUPONS.c.code == code, CONTACTS.c.deleted_at.is_(None))
    )
    return query if condition is None else query.where(condition)


def redeem_coupon(
    crm: crmkit.CRM,
    code: str,
    *,
    receipt_id: str | None = None,
    key: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Use a coupon (once, before it expires); returns what it is worth."""
    cleaned = str(code or "").strip().upper().replace("-", "").replace(" ", "")
    if not cleaned or len(cleaned) > 32:
        raise _invalid("code", f"{code!r} is not a coupon code", "coupon")
    receipt = (receipt_id or "").strip()[:100] or None

    def work(op: crmkit.Operation) -> dict[str, Any]:
        op.access.require("loyalty:redeem")
        if key is not None and (earlier := _earlier_in(op, key)) is not None:
            return _same_kind(key, "coupon redemption", earlier)
        connection = op.session.connection()
        row = connection.execute(_coupon_query(op, cleaned).with_for_update(of=COUPONS)).first()
        if row is None:
            raise crmkit.NotFoundError("coupon", cleaned)
        now = crmkit.utcnow()
        if row.redeemed_at is not None:
            raise crmkit.ConflictError(
                f"coupon {cleaned} was already used on {row.redeemed_at.isoformat()}"
            )
        if row.expires_at <= now:
            raise _invalid(
                "code", f"coupon {cleaned} expired on {row.expires_at.isoformat()}", "coupon"
            )
        if row.status != "active":
            raise crmkit.ConflictError(
                f"coupon {cleaned} belongs to card {row.number}, which is {row.status}"
            )
        connection.execute(
            update(COUPONS)
            .where(COUPONS.c.id == row.id)
            .values(redeemed_at=now, redeemed_receipt=receipt)
        )
        reward = connection.execute(select(REWARDS).where(REWARDS.c.id == row.reward_id)).one()
        coupon = connection.execute(select(COUPONS).where(COUPONS.c.id == row.id)).one()
        result = coupon_dict(coupon, reward, row.number)
        op.emit("coupon.redeemed", result, record_type="contact", record_id=row.contact_id)
        ledger.remember(op, key, "coupon redemption", result)
        return result

    return run_once(crm, actor, "coupon redemption", key, work)


def coupons_of(
    crm: crmkit.CRM, number: str, *, actor: crmkit.User | None = None
) -> list[dict[str, Any]]:
    """A card's coupons, newest first."""
    number = clean_number(number)
    with crm.transaction(actor, write=False) as op:
        access = op.access
        condition = access.condition(crmkit.Contact, access.require("contact:read"))
        query = (
            select(COUPONS, REWARDS.c.name, REWARDS.c.kind, REWARDS.c.value)
            .join(REWARDS, REWARDS.c.id == COUPONS.c.reward_id)
            .join(CARDS, CARDS.c.id == COUPONS.c.card_id)
            .join(CONTACTS, CONTACTS.c.id == COUPONS.c.contact_id)
            .where(CARDS.c.number == number, CONTACTS.c.deleted_at.is_(None))
            .order_by(COUPONS.c.id.desc())
        )
        if condition is not None:
            query = query.where(condition)
        return [coupon_dict(row, row, number) for row in op.session.connection().execute(query)]
