"""The points work on one locked card: credit, debit, release, reverse, move.

Every function here runs inside an operation that has locked the card row first
(:func:`lock_card`, ``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write transactions
hold the database lock): so two operations on one card never interleave, and the card's
``balance`` and ``pending`` stay the sums of its ledger. The invariants (tested by property
tests):

* ``balance == sum(ledger.points)`` and ``pending == sum(ledger.pending)`` per card;
* the live (non-pending) lots hold ``max(balance, 0)`` points, the pending lots ``pending``;
* spending and expiry take the soonest-expiring lots first (never-expiring ones last);
* the balance goes below zero only by a refund of spent points in a program with
  ``allow_negative``; later credits pay that debt off first.

Statements are SQLAlchemy Core on the operation's connection: an earn or a redemption is a
handful of short statements in one transaction (docs/benchmarks.md, loyalty).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
from collections.abc import Sequence
from typing import Any

from attrs import define
from sqlalchemy import Table, and_, bindparam, func, insert, literal, select, update

import crmkit
from crmkit_loyalty.models import LoyaltyProgram
from crmkit_loyalty.programs import Program
from crmkit_loyalty.registry import program_by_id
from crmkit_loyalty.writes import CARDS as CARDS
from crmkit_loyalty.writes import LEDGER as LEDGER
from crmkit_loyalty.writes import LOTS as LOTS
from crmkit_loyalty.writes import OPERATIONS as OPERATIONS
from crmkit_loyalty.writes import PURCHASES as PURCHASES
from crmkit_loyalty.writes import Writes

PROGRAMS: Table = LoyaltyProgram.__table__  # type: ignore[assignment]
CONTACTS: Table = crmkit.Contact.__table__  # type: ignore[assignment]


@define
class LockedCard:
    """A card row read under its lock, with what the operations on it need."""

    id: int
    number: str
    program_id: int
    contact_id: int
    status: str
    balance: int
    pending: int
    tier: str | None
    tier_since: dt.datetime | None
    tier_grace_until: dt.datetime | None
    replaced_by_id: int | None
    birthday: dt.date | None
    due: int
    program: Program
    #: an earlier answer to the same idempotency key: (kind, result)
    earlier: tuple[str, dict[str, Any]] | None = None
    #: the qualifying spend and points over the default window, when the lock read them
    #: (with the window's start)
    window: tuple[dt.datetime, decimal.Decimal, decimal.Decimal] | None = None
    #: the id the operation's new purchase takes, when the lock drew it
    next_purchase_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The card's state as JSON-ready values."""
        return {
            "card": self.number,
            "program": self.program.name,
            "contact_id": self.contact_id,
            "status": self.status,
            "balance": self.balance,
            "pending": self.pending,
            "tier": self.tier,
        }


#: The rolling tier window most programs use (12 months in the default time zone): the card
#: lock reads the qualifying values over it in the same statement (one round trip less per
#: purchase); a program with another window reads them in a statement of its own.
DEFAULT_WINDOW = (12, "Asia/Shanghai")


def _card_query(
    op: crmkit.Operation, by: str, with_qualifying: bool, with_purchase_id: bool
) -> Any:
    """The card lock's statement; built once per shape for an actor who sees every contact
    (building it is a good part of a short operation's time in Python)."""
    access = op.access
    condition = access.condition(crmkit.Contact, access.require("contact:read"))
    dialect = op.session.connection().dialect.name
    if condition is not None:
        return _build_card_query(dialect, by, with_qualifying, with_purchase_id, condition)
    return _cached_card_query(dialect, by, with_qualifying, with_purchase_id)


@functools.lru_cache(maxsize=16)
def _cached_card_query(dialect: str, by: str, with_qualifying: bool, with_purchase_id: bool) -> Any:
    return _build_card_query(dialect, by, with_qualifying, with_purchase_id, None)


def _next_id(dialect: str) -> Any:
    """The id the next purchase takes, drawn in the lock's statement: PostgreSQL's sequence
    of the column (as its default would draw it), or on SQLite the largest id plus one, which
    is SQLite's own choice while the write transaction holds the database lock."""
    if dialect == "postgresql":
        return func.nextval(func.pg_get_serial_sequence(PURCHASES.name, "id"))
    return select(func.coalesce(func.max(PURCHASES.c.id), 0) + 1).scalar_subquery()


def _build_card_query(
    dialect: str, by: str, with_qualifying: bool, with_purchase_id: bool, condition: Any
) -> Any:
    earlier_kind = (
        select(OPERATIONS.c.kind).where(OPERATIONS.c.key == bindparam("key")).scalar_subquery()
    )
    earlier_result = (
        select(OPERATIONS.c.result).where(OPERATIONS.c.key == bindparam("key")).scalar_subquery()
    )
    due = (
        select(func.coalesce(func.sum(LOTS.c.remaining), 0))
        .where(
            LOTS.c.card_id == CARDS.c.id,
            LOTS.c.pending.is_(True),
            LOTS.c.remaining > 0,
            LOTS.c.available_at <= bindparam("now"),
        )
        .scalar_subquery()
    )
    extra: list[Any] = []
    if with_qualifying:
        window = (
            PURCHASES.c.card_id == CARDS.c.id,
            PURCHASES.c.occurred_at
            >= bindparam("window_start", type_=PURCHASES.c.occurred_at.type),
        )
        extra = [
            select(func.coalesce(func.sum(PURCHASES.c.amount - PURCHASES.c.refunded_amount), 0))
            .where(*window)
            .scalar_subquery()
            .label("spend"),
            select(func.coalesce(func.sum(PURCHASES.c.points - PURCHASES.c.refunded_points), 0))
            .where(*window)
            .scalar_subquery()
            .label("earned"),
        ]
    if with_purchase_id:
        extra.append(_next_id(dialect).label("next_purchase_id"))
    query = (
        select(
            CARDS.c.id,
            CARDS.c.number,
            CARDS.c.program_id,
            CARDS.c.contact_id,
            CARDS.c.status,
            CARDS.c.balance,
            CARDS.c.pending,
            CARDS.c.tier,
            CARDS.c.tier_since,
            CARDS.c.tier_grace_until,
            CARDS.c.replaced_by_id,
            CONTACTS.c.birthday,
            due.label("due"),
            PROGRAMS.c.version,
            earlier_kind.label("earlier_kind"),
            earlier_result.label("earlier_result"),
            *extra,
        )
        .join(CONTACTS, CONTACTS.c.id == CARDS.c.contact_id)
        .join(PROGRAMS, PROGRAMS.c.id == CARDS.c.program_id)
        .where(CONTACTS.c.deleted_at.is_(None))
    )
    if condition is not None:
        query = query.where(condition)
    if by == "number":
        query = query.where(CARDS.c.number == bindparam("number"))
    else:
        query = query.where(CARDS.c.id == bindparam("card_id"))
    return query.with_for_update(of=CARDS)


def lock_card(
    op: crmkit.Operation,
    *,
    number: str | None = None,
    card_id: int | None = None,
    key: str | None = None,
    now: dt.datetime,
    with_qualifying: bool = False,
    with_purchase_id: bool = False,
) -> LockedCard:
    """Lock and read a card the actor may see (its contact within their ``contact:read``
    scope); ``NotFoundError`` for an unknown card or one outside the scope (the same
    answer, so the error reveals nothing). ``with_qualifying`` reads the tier window's
    values too, ``with_purchase_id`` the id a new purchase takes (in write transactions)."""
    query = _card_query(
        op, "number" if number is not None else "id", with_qualifying, with_purchase_id
    )
    window_start = default_window_start(now)
    params = {
        "number": number,
        "card_id": card_id,
        "key": key,
        "now": now,
        "window_start": window_start,
    }
    row = op.session.connection().execute(query, params).first()
    if row is None:
        raise crmkit.NotFoundError("card", number if number is not None else card_id)
    program = program_by_id(op, row.program_id, row.version)
    earlier = None
    if row.earlier_kind is not None:
        result = row.earlier_result
        if isinstance(result, str):  # a JSON column read through a subquery on SQLite
            import json

            result = json.loads(result)
        earlier = (str(row.earlier_kind), dict(result))
    return LockedCard(
        id=row.id,
        number=row.number,
        program_id=row.program_id,
        contact_id=row.contact_id,
        status=row.status,
        balance=row.balance,
        pending=row.pending,
        tier=row.tier,
        tier_since=row.tier_since,
        tier_grace_until=row.tier_grace_until,
        replaced_by_id=row.replaced_by_id,
        birthday=row.birthday,
        due=int(row.due or 0),
        program=program,
        earlier=earlier,
        window=(
            (window_start, decimal.Decimal(str(row.spend)), decimal.Decimal(str(row.earned)))
            if with_qualifying
            else None
        ),
        next_purchase_id=int(row.next_purchase_id) if with_purchase_id else None,
    )


def default_window_start(now: dt.datetime) -> dt.datetime:
    """The start of the default rolling window (:data:`DEFAULT_WINDOW`) ending at ``now``."""
    from crmkit_loyalty.programs import Program

    months, zone = DEFAULT_WINDOW
    probe = Program(name="", rates={}, tier_window_months=months, timezone=zone)
    return probe.window_start(now)


def require_active(op: crmkit.Operation, card: LockedCard) -> None:
    """Refuse an operation on a blocked or merged card, naming its successor."""
    if card.status == "active":
        return
    successor = ""
    if card.replaced_by_id is not None:
        number = (
            op.session.connection()
            .execute(select(CARDS.c.number).where(CARDS.c.id == card.replaced_by_id))
            .scalar()
        )
        successor = f"; use its replacement {number}" if number else ""
    raise crmkit.ConflictError(f"card {card.number} is {card.status}{successor}")


def ledger_row(row: dict[str, Any], *, at: dt.datetime, actor_id: int | None) -> dict[str, Any]:
    """A full ``loyalty_ledger`` row from ``row`` (card_id, kind, and the optional points,
    pending, purchase_id, lot_id, coupon_id, note, at)."""
    return {
        "card_id": row["card_id"],
        "kind": row["kind"],
        "points": row.get("points", 0),
        "pending": row.get("pending", 0),
        "purchase_id": row.get("purchase_id"),
        "lot_id": row.get("lot_id"),
        "coupon_id": row.get("coupon_id"),
        "note": row.get("note"),
        "at": row.get("at", at),
        "actor_id": actor_id,
    }


def add_ledger(op: crmkit.Operation, rows: Sequence[dict[str, Any]]) -> None:
    """Append ledger rows (each: card_id, kind, points, pending and optional references)."""
    if not rows:
        return
    now = crmkit.utcnow()
    full = [ledger_row(row, at=now, actor_id=op.actor_id) for row in rows]
    op.session.connection().execute(insert(LEDGER), full)


def save_card(op: crmkit.Operation, card: LockedCard, writes: Writes | None = None) -> None:
    """Write the card's balance, pending points and tier back (with ``writes``: add it to
    them, to be sent with the operation's other writes)."""
    _send(
        op,
        writes,
        "card",
        {
            "id": card.id,
            "balance": card.balance,
            "pending": card.pending,
            "tier": card.tier,
            "tier_since": card.tier_since,
            "tier_grace_until": card.tier_grace_until,
        },
    )


def remember(
    op: crmkit.Operation,
    key: str | None,
    kind: str,
    result: dict[str, Any],
    writes: Writes | None = None,
) -> None:
    """Store the answer to an idempotency key (a second use of the key gets it back)."""
    if key is not None:
        _send(
            op,
            writes,
            "remember",
            {"key": key, "kind": kind, "result": result, "at": crmkit.utcnow()},
        )


def _send(op: crmkit.Operation, writes: Writes | None, step: str, values: dict[str, Any]) -> None:
    """Add a step to ``writes``, or write it now when there are none."""
    if writes is not None:
        writes.add(step, values)
    else:
        now = Writes()
        now.add(step, values)
        now.send(op)


def _pay_debt(op: crmkit.Operation, card: LockedCard, lots: list[tuple[int, int]]) -> None:
    """The balance is negative and ``lots`` (id, remaining) just became live: their points
    pay the debt first, soonest listed first."""
    debt = -card.balance
    changes = []
    for lot_id, remaining in lots:
        if debt <= 0:
            break
        taken = min(debt, remaining)
        debt -= taken
        changes.append({"b_id": lot_id, "b_remaining": remaining - taken})
    if changes:
        op.session.connection().execute(
            update(LOTS)
            .where(LOTS.c.id == bindparam("b_id"))
            .values(remaining=bindparam("b_remaining")),
            changes,
        )


def release_due(op: crmkit.Operation, card: LockedCard, now: dt.datetime) -> int:
    """Pending lots whose return window has passed become spendable; returns the points."""
    if card.due <= 0:
        return 0
    rows = list(
        op.session.connection().execute(
            update(LOTS)
            .where(
                LOTS.c.card_id == card.id,
                LOTS.c.pending.is_(True),
                LOTS.c.remaining > 0,
                LOTS.c.available_at <= now,
            )
            .values(pending=False)
            .returning(LOTS.c.id, LOTS.c.remaining, LOTS.c.expires_at)
        )
    )
    released = int(sum(row.remaining for row in rows))
    if not released:
        return 0
    if card.balance < 0:
        ordered = sorted(rows, key=lambda r: (r.expires_at is None, r.expires_at, r.id))
        _pay_debt(op, card, [(r.id, r.remaining) for r in ordered])
    add_ledger(
        op, [{"card_id": card.id, "kind": "release", "points": released, "pending": -released}]
    )
    card.balance += released
    card.pending -= released
    return released


@define
class Credited:
    """The rows a credit writes: its lot and its ledger entry (``purchase_id`` as given,
    so a batch can put a placeholder there and the real id later)."""

    lot: dict[str, Any]
    entry: dict[str, Any]


def credit_lot(
    card: LockedCard,
    points: int,
    *,
    now: dt.datetime,
    earned_at: dt.datetime | None = None,
    purchase_id: int | None = None,
    pending: bool = False,
    expires_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The lot row that adds ``points`` to ``card``, and the card's balance or pending
    points updated to match (the caller writes the lot, its entry and the card). With
    ``pending``, the points stay pending until the program's return window after
    ``earned_at`` ends (when that is still ahead of ``now``); a negative balance is paid off
    from live points first. :func:`credit` (one purchase) and the batch import both build
    their lots here."""
    earned = earned_at or now
    available = card.program.available(earned) if pending else earned
    pending = pending and available > now
    remaining = points
    if not pending and card.balance < 0:
        remaining -= min(points, -card.balance)
    if pending:
        card.pending += points
    else:
        card.balance += points
    return {
        "card_id": card.id,
        "purchase_id": purchase_id,
        "points": points,
        "remaining": remaining,
        "pending": pending,
        "earned_at": earned,
        "available_at": available,
        "expires_at": expires_at,
        "notified_at": None,
    }


def entry_of_lot(
    lot: dict[str, Any], *, kind: str, note: str | None, at: dt.datetime, actor_id: int | None
) -> dict[str, Any]:
    """The ledger entry of a credit's ``lot``: its points, as pending or spendable. (The
    batch import has the database build the same entries from the inserted lots,
    ``batch_credits._LEDGER_FROM_LOTS``; the two must stay alike.)"""
    pending = lot["pending"]
    return ledger_row(
        {
            "card_id": lot["card_id"],
            "kind": kind,
            "points": 0 if pending else lot["points"],
            "pending": lot["points"] if pending else 0,
            "purchase_id": lot["purchase_id"],
            "note": note,
        },
        at=at,
        actor_id=actor_id,
    )


def credit_rows(
    card: LockedCard,
    points: int,
    *,
    kind: str,
    now: dt.datetime,
    actor_id: int | None,
    earned_at: dt.datetime | None = None,
    purchase_id: int | None = None,
    pending: bool = False,
    expires_at: dt.datetime | None = None,
    note: str | None = None,
) -> Credited:
    """:func:`credit_lot` and its :func:`entry_of_lot`."""
    lot = credit_lot(
        card,
        points,
        now=now,
        earned_at=earned_at,
        purchase_id=purchase_id,
        pending=pending,
        expires_at=expires_at,
    )
    return Credited(lot, entry_of_lot(lot, kind=kind, note=note, at=now, actor_id=actor_id))


def credit(
    op: crmkit.Operation,
    card: LockedCard,
    points: int,
    *,
    kind: str,
    now: dt.datetime,
    earned_at: dt.datetime | None = None,
    purchase_id: int | None = None,
    pending: bool = False,
    expires_at: dt.datetime | None = None,
    note: str | None = None,
    writes: Writes | None = None,
) -> None:
    """Add ``points`` as a new lot (see :func:`credit_rows`) and its ledger entry (with
    ``writes``: to them)."""
    if points <= 0:
        return
    rows = credit_rows(
        card,
        points,
        kind=kind,
        now=now,
        actor_id=op.actor_id,
        earned_at=earned_at,
        purchase_id=purchase_id,
        pending=pending,
        expires_at=expires_at,
        note=note,
    )
    _send(op, writes, "lot", rows.lot)
    _send(op, writes, "entry", rows.entry)


def _live_lots(op: crmkit.Operation, card_id: int) -> list[Any]:
    return list(
        op.session.connection().execute(
            select(LOTS.c.id, LOTS.c.remaining)
            .where(LOTS.c.card_id == card_id, LOTS.c.remaining > 0, LOTS.c.pending.is_(False))
            .order_by(LOTS.c.expires_at.is_(None), LOTS.c.expires_at, LOTS.c.id)
        )
    )


def take_from_lots(
    op: crmkit.Operation,
    card: LockedCard,
    points: int,
    *,
    first: int | None = None,
    writes: Writes | None = None,
) -> int:
    """Take up to ``points`` from the live lots, lot ``first`` (if given) and then the
    soonest-expiring; returns how many were taken (the caller writes the ledger)."""
    if first is None and points <= card.balance:
        # the live lots hold the balance, so all of ``points`` comes from them: one UPDATE
        # with a running sum in expiry order takes them (a redemption holds the card lock
        # one round trip less than reading the lots and writing them back)
        _send(op, writes, "spend", {"card_id": card.id, "points": points})
        return points
    lots = _live_lots(op, card.id)
    if first is not None:
        lots.sort(key=lambda lot: lot.id != first)
    left = points
    changes = []
    for lot in lots:
        if left <= 0:
            break
        taken = min(left, lot.remaining)
        left -= taken
        changes.append({"b_id": lot.id, "b_remaining": lot.remaining - taken})
    if changes:
        op.session.connection().execute(
            update(LOTS)
            .where(LOTS.c.id == bindparam("b_id"))
            .values(remaining=bindparam("b_remaining")),
            changes,
        )
    return int(points - left)


def debit(
    op: crmkit.Operation,
    card: LockedCard,
    points: int,
    *,
    kind: str = "redeem",
    coupon_id: int | None = None,
    note: str | None = None,
    writes: Writes | None = None,
) -> None:
    """Spend ``points`` (soonest-expiring first); more than the balance is refused, naming
    the balance. With ``writes``, the lots and the ledger entry are written with them."""
    if points > card.balance:
        raise crmkit.ValidationError(
            [
                crmkit.FieldError(
                    "points",
                    f"card {card.number} has {max(card.balance, 0)} points; cannot redeem {points}",
                )
            ],
            "redemption",
        )
    taken = take_from_lots(op, card, points, writes=writes)
    assert taken == points, "the live lots hold the balance"
    entry = {"card_id": card.id, "kind": kind, "points": -points, "coupon_id": coupon_id}
    _send(
        op,
        writes,
        "entry",
        ledger_row({**entry, "note": note}, at=crmkit.utcnow(), actor_id=op.actor_id),
    )
    card.balance -= points


def reverse(
    op: crmkit.Operation, card: LockedCard, purchase_id: int, points: int, note: str | None
) -> dict[str, int]:
    """Take back ``points`` a purchase earned (a refund): from the purchase's own lot while
    pending or unspent, then from the soonest-expiring others; what is already spent takes
    the balance below zero when the program allows it, else it stays with the member and is
    reported as ``unrecovered``."""
    connection = op.session.connection()
    lot = connection.execute(
        select(LOTS.c.id, LOTS.c.remaining, LOTS.c.pending).where(
            LOTS.c.purchase_id == purchase_id, LOTS.c.card_id == card.id
        )
    ).first()
    from_pending = from_balance = 0
    left = points
    if lot is not None and lot.pending:
        from_pending = min(left, lot.remaining)
        connection.execute(
            update(LOTS).where(LOTS.c.id == lot.id).values(remaining=lot.remaining - from_pending)
        )
        left -= from_pending
    if left > 0 and card.balance > 0:
        from_balance = take_from_lots(
            op, card, min(left, card.balance), first=lot.id if lot is not None else None
        )
        left -= from_balance
    negative = left if left > 0 and card.program.allow_negative else 0
    unrecovered = left - negative
    taken = from_balance + negative
    add_ledger(
        op,
        [
            {
                "card_id": card.id,
                "kind": "refund",
                "points": -taken,
                "pending": -from_pending,
                "purchase_id": purchase_id,
                "note": note,
            }
        ],
    )
    card.balance -= taken
    card.pending -= from_pending
    return {
        "reversed": from_pending + taken,
        "from_pending": from_pending,
        "below_zero": negative,
        "unrecovered": unrecovered,
    }


def move_points(
    op: crmkit.Operation, source: LockedCard, target: LockedCard, note: str
) -> dict[str, Any]:
    """Move every live and pending lot, the balance and the purchase history of ``source``
    to ``target`` (a lost card replaced, two members' cards merged). A negative balance
    moves as a debt. Returns what moved, for an undo."""
    connection = op.session.connection()
    lot_rows = list(
        connection.execute(
            update(LOTS)
            .where(LOTS.c.card_id == source.id, LOTS.c.remaining > 0)
            .values(card_id=target.id)
            .returning(LOTS.c.id, LOTS.c.remaining, LOTS.c.pending)
        )
    )
    purchase_ids = [
        row.id
        for row in connection.execute(
            update(PURCHASES)
            .where(PURCHASES.c.card_id == source.id)
            .values(card_id=target.id)
            .returning(PURCHASES.c.id)
        )
    ]
    points, pending = source.balance, source.pending
    if target.balance < 0 and points > 0:
        live = sorted((r.id, r.remaining) for r in lot_rows if not r.pending)
        _pay_debt(op, target, live)
    elif points < 0 and target.balance > 0:
        # the source's debt is paid from the target's soonest-expiring points
        take_from_lots(op, target, min(-points, target.balance))
    add_ledger(
        op,
        [
            {
                "card_id": source.id,
                "kind": "move_out",
                "points": -points,
                "pending": -pending,
                "note": note,
            },
            {
                "card_id": target.id,
                "kind": "move_in",
                "points": points,
                "pending": pending,
                "note": note,
            },
        ],
    )
    source.balance, source.pending = 0, 0
    target.balance += points
    target.pending += pending
    return {
        "lots": [row.id for row in lot_rows],
        "purchases": purchase_ids,
        "points": points,
        "pending": pending,
    }


def qualifying(
    op: crmkit.Operation,
    card: LockedCard,
    now: dt.datetime,
    recorded: tuple[dt.datetime, decimal.Decimal, int] | None = None,
) -> decimal.Decimal:
    """The card's qualifying value over the program's rolling window: spend (amount less
    refunds) or points earned (less those refunded). ``recorded`` is the purchase this
    operation is about to write (time, amount, points), not in the database yet."""
    program = card.program
    start = program.window_start(now)
    added = decimal.Decimal(0)
    if recorded is not None and start <= recorded[0] <= now:
        added = decimal.Decimal(recorded[1] if program.tier_basis == "spend" else recorded[2])
    if card.window is not None and card.window[0] == start:
        # read with the lock. Under concurrent purchases on one card PostgreSQL may show
        # that subquery the rows as of before the lock wait: that can only delay an upgrade
        # to the next purchase or review
        known = card.window[1] if program.tier_basis == "spend" else card.window[2]
        return known + added
    if program.tier_basis == "spend":
        value: Any = PURCHASES.c.amount - PURCHASES.c.refunded_amount
    else:
        value = PURCHASES.c.points - PURCHASES.c.refunded_points
    total = (
        op.session.connection()
        .execute(
            select(func.coalesce(func.sum(value), literal(0))).where(
                and_(
                    PURCHASES.c.card_id == card.id,
                    PURCHASES.c.occurred_at >= program.window_start(now),
                    PURCHASES.c.occurred_at <= now,
                )
            )
        )
        .scalar()
    )
    return decimal.Decimal(str(total or 0)) + added
