"""Two contacts merged (the dedupe plugin, or ``crm.merges``): their cards follow.

The core re-points every foreign key to the merged contact (cards, purchases, coupons)
before the ``crmkit_merge_references`` hook runs, so the survivor may hold two active cards
of one program. The earlier-issued one stays; the other's live and pending lots, balance,
purchases and unused coupons move to it (``move_out`` / ``move_in`` in the ledgers) and it
is closed as ``merged``. An undo moves back what is still there: points spent since stay
spent.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Table, select, update

import crmkit
from crmkit_loyalty import ledger
from crmkit_loyalty.ledger import CARDS, LEDGER, LOTS, PURCHASES
from crmkit_loyalty.models import LoyaltyCoupon
from crmkit_loyalty.registry import PLUGIN_NAME

COUPONS: Table = LoyaltyCoupon.__table__  # type: ignore[assignment]


def merge_cards(op: crmkit.Operation, survivor_id: int) -> dict[str, Any] | None:
    """Fold each program's later active cards of ``survivor_id`` into its first."""
    connection = op.session.connection()
    rows = connection.execute(
        select(CARDS.c.id, CARDS.c.program_id)
        .where(CARDS.c.contact_id == survivor_id, CARDS.c.status == "active")
        .order_by(CARDS.c.id)
    )
    by_program: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_program[row.program_id].append(row.id)
    merges = []
    now = crmkit.utcnow()
    with op.elevated():  # the merge itself was authorised by the core (contact:merge)
        for card_ids in by_program.values():
            if len(card_ids) < 2:
                continue
            kept = ledger.lock_card(op, card_id=card_ids[0], now=now)
            for other_id in card_ids[1:]:
                source = ledger.lock_card(op, card_id=other_id, now=now)
                moved = ledger.move_points(
                    op, source, kept, note=f"contacts merged into {survivor_id}"
                )
                coupons = [
                    row.id
                    for row in connection.execute(
                        update(COUPONS)
                        .where(COUPONS.c.card_id == source.id, COUPONS.c.redeemed_at.is_(None))
                        .values(card_id=kept.id)
                        .returning(COUPONS.c.id)
                    )
                ]
                connection.execute(
                    update(CARDS)
                    .where(CARDS.c.id == source.id)
                    .values(status="merged", blocked_at=now, replaced_by_id=kept.id)
                )
                ledger.save_card(op, source)
                op.emit(
                    "card.merged",
                    {"card": source.number, "into": kept.number, "points": moved["points"]},
                    record_type="contact",
                    record_id=survivor_id,
                )
                merges.append({"from": source.id, "to": kept.id, "coupons": coupons, **moved})
            ledger.save_card(op, kept)
    return {PLUGIN_NAME: {"merges": merges}} if merges else None


def unmerge_cards(op: crmkit.Operation, moved: dict[str, Any]) -> None:
    """Undo :func:`merge_cards`: reopen each folded card and move back its lots still
    holding points, its purchases and its unused coupons."""
    connection = op.session.connection()
    now = crmkit.utcnow()
    with op.elevated():
        for record in reversed(moved.get("merges") or []):
            first, second = sorted((record["from"], record["to"]))
            locked = {
                card.id: card
                for card in (
                    ledger.lock_card(op, card_id=first, now=now),
                    ledger.lock_card(op, card_id=second, now=now),
                )
            }
            source, target = locked[record["from"]], locked[record["to"]]
            lots = list(
                connection.execute(
                    update(LOTS)
                    .where(
                        LOTS.c.id.in_(record["lots"] or [-1]),
                        LOTS.c.card_id == target.id,
                        LOTS.c.remaining > 0,
                    )
                    .values(card_id=source.id)
                    .returning(LOTS.c.remaining, LOTS.c.pending)
                )
            )
            live = min(sum(r.remaining for r in lots if not r.pending), max(target.balance, 0))
            pending = sum(r.remaining for r in lots if r.pending)
            connection.execute(
                update(PURCHASES)
                .where(PURCHASES.c.id.in_(record["purchases"] or [-1]))
                .values(card_id=source.id)
            )
            connection.execute(
                update(COUPONS)
                .where(COUPONS.c.id.in_(record["coupons"] or [-1]), COUPONS.c.redeemed_at.is_(None))
                .values(card_id=source.id)
            )
            ledger.add_ledger(
                op,
                [
                    {
                        "card_id": target.id,
                        "kind": "move_out",
                        "points": -live,
                        "pending": -pending,
                        "note": "merge undone",
                    },
                    {
                        "card_id": source.id,
                        "kind": "move_in",
                        "points": live,
                        "pending": pending,
                        "note": "merge undone",
                    },
                ],
            )
            target.balance -= live
            target.pending -= pending
            source.balance += live
            source.pending += pending
            ledger.save_card(op, target)
            ledger.save_card(op, source)
            connection.execute(
                update(CARDS)
                .where(CARDS.c.id == source.id)
                .values(status="active", blocked_at=None, replaced_by_id=None)
            )


__all__ = ["LEDGER", "merge_cards", "unmerge_cards"]
