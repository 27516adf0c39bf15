"""The writes of one operation on one locked card, sent together.

An earn writes a purchase, its lot, its ledger entry, the card's new balance and tier and,
with an idempotency key, the answer; a redemption spends lots, writes its ledger entry, the
card and the answer. On PostgreSQL they go to the server as one statement (data-modifying
``WITH`` clauses, all of them in one snapshot), with the operation's events for the outbox
(``Operation.outbox_rows``): one round trip instead of five or six while the card's row
lock is held. SQLite has no such clauses and no round trips (it runs in the
process): there they are the same statements one after the other.

Each step is a statement prepared once, its parameters named ``<step>__<column>`` (a
parameter named like a column of an ``UPDATE``'s table would join its ``SET`` clause); an
operation adds each step at most once. Measured in docs/benchmarks.md (loyalty: earn and
redeem latency).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, bindparam, case, func, insert, literal_column, select
from sqlalchemy import update as update_
from sqlalchemy.sql import Executable

import crmkit
from crmkit_loyalty.models import (
    LoyaltyCard,
    LoyaltyLedgerEntry,
    LoyaltyLot,
    LoyaltyOperation,
    LoyaltyPurchase,
)

CARDS: Table = LoyaltyCard.__table__  # type: ignore[assignment]
LOTS: Table = LoyaltyLot.__table__  # type: ignore[assignment]
LEDGER: Table = LoyaltyLedgerEntry.__table__  # type: ignore[assignment]
PURCHASES: Table = LoyaltyPurchase.__table__  # type: ignore[assignment]
OPERATIONS: Table = LoyaltyOperation.__table__  # type: ignore[assignment]


def _insert(step: str, table: Table, *, with_id: bool) -> Executable:
    """``INSERT`` of every column of ``table`` (its ``id`` only ``with_id``)."""
    return insert(table).values(
        {
            column.name: bindparam(f"{step}__{column.name}", type_=column.type)
            for column in table.c
            if with_id or column.name != "id"
        }
    )


def _spend() -> Executable:
    """Spend ``spend_points`` from card ``spend_card_id``'s live lots, soonest-expiring
    first (never-expiring last, then by id): every lot whose points before it in that order
    are fewer than the points asked gives what is asked of it. ``UPDATE ... FROM`` with a
    window function, as PostgreSQL and SQLite (3.33+) both run it. Only for points the live
    lots hold (at most the balance)."""
    points = bindparam("spend__points", type_=LOTS.c.remaining.type)
    never = case((LOTS.c.expires_at.is_(None), literal_column("1")), else_=literal_column("0"))
    ordered = (
        select(
            LOTS.c.id,
            LOTS.c.remaining,
            func.sum(LOTS.c.remaining)
            .over(order_by=(never, LOTS.c.expires_at, LOTS.c.id))
            .label("running"),
        )
        .where(
            LOTS.c.card_id == bindparam("spend__card_id", type_=LOTS.c.card_id.type),
            LOTS.c.remaining > literal_column("0"),
            LOTS.c.pending.is_(False),
        )
        .subquery("ordered")
    )
    return (
        update_(LOTS)
        .where(LOTS.c.id == ordered.c.id, ordered.c.running - ordered.c.remaining < points)
        .values(
            remaining=case(
                (ordered.c.running <= points, literal_column("0")),
                else_=ordered.c.running - points,
            )
        )
    )


def _card() -> Executable:
    """The card's balance, pending points and tier written back."""
    return (
        update_(CARDS)
        .where(CARDS.c.id == bindparam("card__id", type_=CARDS.c.id.type))
        .values(
            {
                name: bindparam(f"card__{name}", type_=CARDS.c[name].type)
                for name in ("balance", "pending", "tier", "tier_since", "tier_grace_until")
            }
        )
    )


#: Every step an operation may send, by name.
STEPS: dict[str, Executable] = {
    "purchase": _insert("purchase", PURCHASES, with_id=True),
    "lot": _insert("lot", LOTS, with_id=False),
    "entry": _insert("entry", LEDGER, with_id=False),
    "spend": _spend(),
    "card": _card(),
    "remember": _insert("remember", OPERATIONS, with_id=True),
}


OUTBOX: Table = crmkit.OutboxEvent.__table__  # type: ignore[assignment]


@functools.lru_cache(maxsize=64)
def _together(steps: tuple[str, ...], events: int) -> Executable:
    """The steps and ``events`` outbox rows as one PostgreSQL statement: each a
    data-modifying ``WITH`` clause."""
    clauses = [STEPS[step].cte(f"{step}_step") for step in steps]  # type: ignore[attr-defined]
    for index in range(events):  # one single-row INSERT each: a multi-row VALUES with
        # bound parameters would not be cached by SQLAlchemy, and compiling this statement
        # anew each time costs more than the round trip it saves
        outbox = _insert(f"outbox{index}", OUTBOX, with_id=False)
        clauses.append(outbox.cte(f"outbox{index}_step"))  # type: ignore[attr-defined]
    return select(literal_column("1")).add_cte(*clauses)


class Writes:
    """The steps of one operation, in order; :meth:`send` writes them."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Mapping[str, Any]]] = []

    def add(self, step: str, values: Mapping[str, Any]) -> None:
        """Add ``step`` (a name in :data:`STEPS`) with its values by column name."""
        if step not in STEPS or any(name == step for name, _ in self._steps):
            raise ValueError(f"step {step!r} is unknown or already added")
        self._steps.append((step, values))

    def send(self, op: crmkit.Operation) -> None:
        """Write the steps added so far: one statement on PostgreSQL, with the events the
        operation emitted so far (``op.outbox_rows()``: emit them first), one each
        elsewhere (the events then reach the outbox at the commit, as usual)."""
        if not self._steps:
            return
        connection = op.session.connection()
        if connection.dialect.name == "postgresql":
            params = {
                f"{step}__{name}": value
                for step, values in self._steps
                for name, value in values.items()
            }
            events = op.outbox_rows()
            for index, row in enumerate(events):
                params.update({f"outbox{index}__{name}": value for name, value in row.items()})
            steps = tuple(step for step, _ in self._steps)
            connection.execute(_together(steps, len(events)), params)
        else:
            for step, values in self._steps:
                connection.execute(
                    STEPS[step], {f"{step}__{name}": value for name, value in values.items()}
                )
        self._steps.clear()
