"""The periodic work: pending points released, expiry notices, expiry, tier review.

Each runs card by card in chunks, every chunk one transaction that locks its cards first
(in id order, so two workers never deadlock): run twice, or on two workers at once, every
lot expires once and every notice goes out once, because the second run finds the lots
already at zero (or already notified) once it holds the locks.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import select, update

import crmkit
from crmkit_loyalty import ledger
from crmkit_loyalty.ledger import CARDS, LOTS, LockedCard
from crmkit_loyalty.registry import PLUGIN_NAME

CHUNK = 200


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[start : start + CHUNK] for start in range(0, len(ids), CHUNK)]


def _lock(op: crmkit.Operation, card_ids: list[int], now: dt.datetime) -> list[LockedCard]:
    """Lock the cards in id order (the cards of deleted contacts are left alone)."""
    locked = []
    for card_id in sorted(card_ids):
        try:
            locked.append(ledger.lock_card(op, card_id=card_id, now=now))
        except crmkit.NotFoundError:
            continue
    return locked


def expire_points(
    crm: crmkit.CRM, *, now: dt.datetime | None = None, actor: crmkit.User | None = None
) -> dict[str, int]:
    """Release pending points whose return window passed, send ``points.expiring`` notices,
    and expire the lots whose time has come (``points.expired``, one per card). Returns the
    counts: ``released``, ``notified``, ``expired`` (points) and ``cards``."""
    now = now or crmkit.utcnow()
    days = int(crm.plugin_settings(PLUGIN_NAME)["expiring_notice_days"])
    with crm.transaction(actor, write=False) as op:
        op.access.require("loyalty:manage")
        connection = op.session.connection()
        due = set(
            connection.execute(
                select(LOTS.c.card_id).where(
                    LOTS.c.remaining > 0, LOTS.c.pending.is_(True), LOTS.c.available_at <= now
                )
            ).scalars()
        )
        expiring = set(
            connection.execute(
                select(LOTS.c.card_id).where(
                    LOTS.c.remaining > 0,
                    LOTS.c.expires_at.is_not(None),
                    LOTS.c.expires_at <= now + dt.timedelta(days=days),
                )
            ).scalars()
        )
    totals = {"released": 0, "notified": 0, "expired": 0, "cards": 0}
    for chunk in _chunks(sorted(due | expiring)):
        with crm.transaction(actor) as op:
            op.access.require("loyalty:manage")
            for card in _lock(op, chunk, now):
                totals["released"] += ledger.release_due(op, card, now)
                totals["notified"] += _notify(op, card, now, days)
                expired = _expire(op, card, now)
                totals["expired"] += expired
                totals["cards"] += 1 if expired else 0
                ledger.save_card(op, card)
    return totals


def _notify(op: crmkit.Operation, card: LockedCard, now: dt.datetime, days: int) -> int:
    """One ``points.expiring`` event per card and expiry time not announced yet."""
    if days <= 0 or card.status != "active":
        return 0
    rows = list(
        op.session.connection().execute(
            update(LOTS)
            .where(
                LOTS.c.card_id == card.id,
                LOTS.c.remaining > 0,
                LOTS.c.pending.is_(False),
                LOTS.c.expires_at.is_not(None),
                LOTS.c.expires_at > now,
                LOTS.c.expires_at <= now + dt.timedelta(days=days),
                LOTS.c.notified_at.is_(None),
            )
            .values(notified_at=now)
            .returning(LOTS.c.expires_at, LOTS.c.remaining)
        )
    )
    by_time: dict[dt.datetime, int] = defaultdict(int)
    for row in rows:
        by_time[row.expires_at] += row.remaining
    for expires_at, points in sorted(by_time.items()):
        local = expires_at.astimezone(card.program.zone) - dt.timedelta(microseconds=1)
        op.emit(
            "points.expiring",
            {
                "card": card.number,
                "program": card.program.name,
                "points": points,
                "expires_at": expires_at.isoformat(),
                "last_day": local.date().isoformat(),
                "balance": card.balance,
            },
            record_type="contact",
            record_id=card.contact_id,
        )
    return len(by_time)


def _expire(op: crmkit.Operation, card: LockedCard, now: dt.datetime) -> int:
    connection = op.session.connection()
    rows = list(
        connection.execute(
            select(LOTS.c.id, LOTS.c.remaining, LOTS.c.pending).where(
                LOTS.c.card_id == card.id,
                LOTS.c.remaining > 0,
                LOTS.c.expires_at.is_not(None),
                LOTS.c.expires_at <= now,
            )
        )
    )
    if not rows:
        return 0
    connection.execute(
        update(LOTS).where(LOTS.c.id.in_([row.id for row in rows])).values(remaining=0)
    )
    entries = [
        {
            "card_id": card.id,
            "kind": "expire",
            "points": 0 if row.pending else -row.remaining,
            "pending": -row.remaining if row.pending else 0,
            "lot_id": row.id,
        }
        for row in sorted(rows, key=lambda r: r.id)
    ]
    ledger.add_ledger(op, entries)
    points = sum(row.remaining for row in rows if not row.pending)
    card.balance -= points
    card.pending -= sum(row.remaining for row in rows if row.pending)
    op.emit(
        "points.expired",
        {
            "card": card.number,
            "program": card.program.name,
            "points": points,
            "balance": card.balance,
        },
        record_type="contact",
        record_id=card.contact_id,
    )
    return int(points + sum(row.remaining for row in rows if row.pending))


def review_tiers(
    crm: crmkit.CRM, *, now: dt.datetime | None = None, actor: crmkit.User | None = None
) -> dict[str, int]:
    """Review every active card's tier against its rolling qualifying value: upgrade who
    reached more, start the program's grace period (``tier_grace_days``) for who fell below
    their tier, and downgrade who is still below when their grace has ended (at once when
    the program has no grace). Returns the counts."""
    now = now or crmkit.utcnow()
    with crm.transaction(actor, write=False) as op:
        op.access.require("loyalty:manage")
        ids = list(
            op.session.connection()
            .execute(select(CARDS.c.id).where(CARDS.c.status == "active").order_by(CARDS.c.id))
            .scalars()
        )
    totals = {"reviewed": 0, "upgraded": 0, "downgraded": 0, "in_grace": 0}
    for chunk in _chunks(ids):
        with crm.transaction(actor) as op:
            op.access.require("loyalty:manage")
            for card in _lock(op, chunk, now):
                if not card.program.tiers or card.status != "active":
                    continue
                totals["reviewed"] += 1
                outcome = review_card(op, card, now)
                if outcome:
                    totals[outcome] += 1
                ledger.save_card(op, card)
    return totals


def review_card(op: crmkit.Operation, card: LockedCard, now: dt.datetime) -> str | None:
    """Review one locked card; returns ``upgraded``, ``downgraded``, ``in_grace`` or
    ``None`` (nothing changed)."""
    from crmkit_loyalty.service import change_tier

    program = card.program
    reached = program.tier_for(ledger.qualifying(op, card, now))
    have, get = program.tier_rank(card.tier), program.tier_rank(reached)
    if get > have:
        change_tier(op, card, reached, now, "upgrade")
        return "upgraded"
    if get == have:
        card.tier_grace_until = None
        return None
    grace = dt.timedelta(days=program.tier_grace_days)
    if grace and card.tier_grace_until is None:
        card.tier_grace_until = now + grace
        op.emit(
            "tier.grace_started",
            {
                "card": card.number,
                "program": program.name,
                "tier": card.tier,
                "would_be": reached,
                "grace_until": card.tier_grace_until.isoformat(),
            },
            record_type="contact",
            record_id=card.contact_id,
        )
        return "in_grace"
    if card.tier_grace_until is not None and card.tier_grace_until > now:
        return None
    change_tier(op, card, reached, now, "review")
    return "downgraded"


def expire_job(context: crmkit.JobContext) -> str:
    """The scheduled job ``loyalty.expire`` (as the system, at the pass's time)."""
    result = expire_points(context.crm, now=context.now)
    return job_summary(result) if any(result.values()) else "idle"


def review_tiers_job(context: crmkit.JobContext) -> str:
    """The scheduled job ``loyalty.review_tiers``."""
    result = review_tiers(context.crm, now=context.now)
    return job_summary(result) if result["reviewed"] else "idle"


def job_summary(result: dict[str, Any]) -> str:
    """One line for the CLI."""
    return ", ".join(f"{key} {value}" for key, value in result.items())
