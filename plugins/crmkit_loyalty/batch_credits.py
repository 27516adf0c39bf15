"""The points of an import batch: its lots and their earn entries.

An import batch (``importing``) has written its purchases, ids ascending in the order of
``purchases``; each purchase that earned points gets a lot and an earn entry, exactly as
:func:`ledger.credit_rows` builds them for a single purchase. Two ways, one result
(``tests/test_loyalty_import_paths.py`` checks that they write the same rows):

* **by the database** (the usual case): the batch's purchases are ordered so that those of
  one program with the same expiry sit side by side; per run of consecutive ids, one
  ``INSERT INTO loyalty_lots ... SELECT ... FROM loyalty_purchases`` with the run's expiry
  as a parameter writes their lots (earned when bought, available after the program's
  return window, pending while that is still ahead), and one ``INSERT ... SELECT`` writes
  every lot's earn entry. Python only adds up each card's new balance and pending points.
  A year of history has one run per program and expiry day (or month, with
  ``round_to = "month"``), not one per purchase: the per-row work in Python (a lot row
  built, its three timestamps converted and bound) was a fifth of an import's time
  (docs/benchmarks.md, loyalty, issue 14 second pass).
* **from Python** (:func:`ledger.credit_lot` per purchase) when a card of the batch owes
  points (a negative balance: a lot's ``remaining`` then pays the debt off first) or a
  plugin's earn rule left a note for the ledger entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, case, insert, literal, select
from sqlalchemy import text as sql_text

import crmkit
from crmkit_loyalty import ledger
from crmkit_loyalty.ledger import LEDGER, LOTS, PURCHASES, LockedCard


class Credit(NamedTuple):
    """A purchase of the batch as its points are credited: its id, card, time, points,
    expiry and the ledger note of the plugin rules applied (plain values: a batch holds
    thousands, which the garbage collector then need not go through)."""

    purchase_id: int
    card_id: int
    earned_at: dt.datetime
    points: int
    expires_at: dt.datetime | None
    note: str | None


def write_credits(
    op: crmkit.Operation,
    credits: Sequence[Credit],
    cards: Mapping[int, LockedCard],
    now: dt.datetime,
) -> list[LockedCard]:
    """Write the lots and earn entries of ``credits`` (ids ascending; ``cards`` by id),
    update their cards' ``balance`` and ``pending`` in memory (the caller saves them) and
    return the cards credited."""
    earning = [credit for credit in credits if credit.points > 0]
    if not earning:
        return []
    connection = op.session.connection()
    touched: dict[int, LockedCard] = {}
    noted = any(credit.note for credit in earning)
    lots: list[dict[str, Any]] = []
    spans: list[tuple[int, int]]  # the purchase ids whose lots get their earn entries
    if not _by_database(earning, cards):
        for credit in earning:
            card = cards[credit.card_id]
            lots.append(
                ledger.credit_lot(
                    card,
                    credit.points,
                    now=now,
                    earned_at=credit.earned_at,
                    purchase_id=credit.purchase_id,
                    pending=True,  # pending only while the return window is still open
                    expires_at=credit.expires_at,
                )
            )
            touched[card.id] = card
        crmkit.bulk_insert(connection, LOTS, lots)
        spans = _spans([credit.purchase_id for credit in earning])
    else:
        runs = _credit_cards(earning, cards, now, touched)
        connection.execute(_lots_statement(connection.dialect.name), runs)
        spans = _spans_of_runs(runs)
    if noted:
        entries = [
            ledger.entry_of_lot(lot, kind="earn", note=credit.note, at=now, actor_id=op.actor_id)
            for lot, credit in zip(lots, earning, strict=True)
        ]
        crmkit.bulk_insert(connection, LEDGER, entries)
    else:
        connection.execute(
            _LEDGER_FROM_LOTS,
            [
                {"first": first, "last": last, "at": now, "actor_id": op.actor_id}
                for first, last in spans
            ],
        )
    return list(touched.values())


def _by_database(credits: Sequence[Credit], cards: Mapping[int, LockedCard]) -> bool:
    """Whether the database can write these credits' lots and entries: no ledger note from
    a plugin's rule, no card that owes points."""
    return not any(credit.note or cards[credit.card_id].balance < 0 for credit in credits)


def _credit_cards(
    credits: Sequence[Credit],
    cards: Mapping[int, LockedCard],
    now: dt.datetime,
    touched: dict[int, LockedCard],
) -> list[dict[str, Any]]:
    """Add ``credits``' points to their cards' ``balance`` or ``pending`` (in memory), put
    the cards in ``touched``, and return the parameters of the lots' statement: one set per
    run of consecutive purchase ids of one program and one expiry. One pass over the
    credits (it was two, and a third for the entries' spans)."""
    runs: list[dict[str, Any]] = []
    last_id, last_key = -1, None
    # as ledger.credit_lot: pending while program.available(earned_at) > now, that is
    # while earned_at + pending_days > now (now - pending_days once per program)
    pending_after: dict[int, dt.datetime] = {}
    for credit in credits:
        card = cards[credit.card_id]
        program = card.program
        after = pending_after.get(id(program))
        if after is None:
            after = pending_after[id(program)] = now - dt.timedelta(days=program.pending_days)
        if credit.earned_at > after:
            card.pending += credit.points
        else:
            card.balance += credit.points
        touched[card.id] = card
        key = (card.program_id, program.pending_days, credit.expires_at)
        if credit.purchase_id == last_id + 1 and key == last_key:
            runs[-1]["last"] = credit.purchase_id
        else:
            runs.append(
                {
                    "first": credit.purchase_id,
                    "last": credit.purchase_id,
                    "expires_at": credit.expires_at,
                    "days": program.pending_days,
                    "now": now,
                }
            )
        last_id, last_key = credit.purchase_id, key
    return runs


def _spans_of_runs(runs: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """The runs' purchase ids (ascending, run after run) as :func:`_spans` gives them:
    adjacent runs joined (one span per batch, usually, instead of a pass over every id)."""
    spans: list[tuple[int, int]] = []
    for run in runs:
        if spans and spans[-1][1] == run["first"] - 1:
            spans[-1] = (spans[-1][0], run["last"])
        else:
            spans.append((run["first"], run["last"]))
    return spans


def _spans(ids: Sequence[int]) -> list[tuple[int, int]]:
    """``ids`` (ascending) as runs of consecutive values, first and last of each: on
    PostgreSQL a batch's ids come from the sequence and another session may have drawn some
    in between; a range of ids that are all this batch's holds no one else's rows."""
    spans: list[tuple[int, int]] = []
    for value in ids:
        if spans and spans[-1][1] == value - 1:
            spans[-1] = (spans[-1][0], value)
        else:
            spans.append((value, value))
    return spans


#: When a purchase's points become spendable: its time plus the program's return window
#: (``days``), as ``Program.available`` computes it. SQLite keeps times as text
#: ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC); the whole seconds go through ``datetime()`` (which
#: would round the fraction to milliseconds) and the fraction is put back as it was.
_AVAILABLE = {
    "postgresql": "p.occurred_at + make_interval(days => :days)",
    "sqlite": (
        "CASE WHEN :days = 0 THEN p.occurred_at ELSE"
        " datetime(substr(p.occurred_at, 1, 19), '+' || :days || ' days')"
        " || substr(p.occurred_at, 20) END"
    ),
}

_LOTS_FROM_PURCHASES = """
INSERT INTO {lots} (card_id, purchase_id, points, remaining, pending, earned_at, available_at,
                    expires_at, notified_at)
SELECT p.card_id, p.id, p.points, p.points, {available} > :now, p.occurred_at, {available},
       {expires}, NULL
FROM {purchases} AS p
WHERE p.id BETWEEN :first AND :last AND p.points > 0
ORDER BY p.id
"""

_LOTS_STATEMENTS: dict[str, Any] = {}


def _lots_statement(dialect: str) -> Any:
    """The lots of a run of purchases (``first`` to ``last``), as :func:`ledger.credit_lot`
    builds one with ``pending=True`` on a card that owes nothing."""
    statement = _LOTS_STATEMENTS.get(dialect)
    if statement is None:
        if dialect not in _AVAILABLE:
            raise crmkit.CRMError(f"the loyalty import does not know the {dialect} dialect")
        expires = ":expires_at" if dialect == "sqlite" else "CAST(:expires_at AS timestamptz)"
        sql = _LOTS_FROM_PURCHASES.format(
            lots=LOTS.name, purchases=PURCHASES.name, available=_AVAILABLE[dialect], expires=expires
        )
        statement = _LOTS_STATEMENTS[dialect] = sql_text(sql).bindparams(
            bindparam("expires_at", type_=LOTS.c.expires_at.type),
            bindparam("now", type_=LOTS.c.available_at.type),
        )
    return statement


#: The earn entries of the lots of purchases ``first`` to ``last`` (all of one batch),
#: written by the database: the entry of a credit is the lot's points, as pending or
#: spendable (``ledger.entry_of_lot`` builds the same entry for a single purchase). In the
#: lots' order, by their purchase: a batch writes one lot per purchase, in ascending
#: purchase order (both ways above), so that is the order of the lots' ids too, and the
#: purchase-id index gives it without sorting (``ORDER BY`` the lot id made SQLite sort each
#: batch's 2 000 entries in a temporary tree: a fifth of this statement's time).
_LEDGER_FROM_LOTS = insert(LEDGER).from_select(
    ["card_id", "kind", "points", "pending", "purchase_id", "at", "actor_id"],
    select(
        LOTS.c.card_id,
        literal("earn", LEDGER.c.kind.type),
        case((LOTS.c.pending, 0), else_=LOTS.c.points),
        case((LOTS.c.pending, LOTS.c.points), else_=0),
        LOTS.c.purchase_id,
        bindparam("at", type_=LEDGER.c.at.type),
        bindparam("actor_id", type_=LEDGER.c.actor_id.type),
    )
    .where(LOTS.c.purchase_id.between(bindparam("first"), bindparam("last")))
    .order_by(LOTS.c.purchase_id),
)
