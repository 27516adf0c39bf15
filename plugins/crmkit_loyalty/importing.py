"""Batch import of purchase history (a year of receipts from a till system, say).

Rows are checked first, all of them: a bad row is reported with its line and field
(``crmkit.RowError``) and, unless ``skip_bad`` is set, nothing is imported at all
(``crmkit.BulkRejected``). The good rows then go in batches of ``batch_size``, each batch one
transaction that locks its cards (in id order), computes every row's points with the same
rules as a single purchase (the plugins' earn rules included), writes the purchases with one
bulk insert (``crmkit.bulk_insert``: ``COPY`` on PostgreSQL), has the database derive their
lots and ledger entries from them (``batch_credits``) and saves the cards with one
statement. A receipt already recorded is skipped and reported, so an interrupted import can
simply be run again.

Points of imported purchases are credited as they would have been at the time: pending only
while the return window is still open, expiring from the purchase time (the expiry job
expires what is already past). One ``purchases.imported`` event per batch, not one
``points.earned`` per row: reminders should not greet a customer for last year's receipt.
Tiers are upgraded once per batch on the rolling window, as a purchase would.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from attrs import define, field
from sqlalchemy import bindparam, func, select, update
from sqlalchemy import text as sql_text

import crmkit
from crmkit_loyalty import ledger
from crmkit_loyalty.batch_credits import Credit, write_credits
from crmkit_loyalty.cards import clean_number
from crmkit_loyalty.ledger import CARDS, CONTACTS, PROGRAMS, PURCHASES, LockedCard
from crmkit_loyalty.programs import Program, PurchaseFacts
from crmkit_loyalty.registry import EARN_HOOK, program_by_id
from crmkit_loyalty.service import CLOCK_SKEW, earn_points, parse_amount, parse_items
from crmkit_loyalty.writes import STEPS

COLUMNS = ("card", "receipt_id", "amount", "currency", "occurred_at", "store", "items", "category")


@define
class ImportResult:
    """What an import did: purchases recorded, points earned, receipts skipped as already
    recorded, and every bad row."""

    imported: int = 0
    points: int = 0
    skipped: list[str] = field(factory=list)
    errors: list[crmkit.RowError] = field(factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "imported": self.imported,
            "points": self.points,
            "skipped": list(self.skipped),
            "errors": [str(error) for error in self.errors],
        }


class _Row(NamedTuple):
    """A checked row: plain values only, so that the garbage collector stops going through
    the rows waiting for their batch (a year of history is a million of them). A row with
    one category for its whole amount gets its item when it is written."""

    line: int
    card: str
    receipt: str
    amount: decimal.Decimal
    currency: str
    occurred_at: dt.datetime | None
    naive: dt.datetime | None
    store: str | None
    category: str | None
    items: list[dict[str, Any]] | None

    def item_tuple(self) -> tuple[dict[str, Any], ...]:
        """The items as stored."""
        if self.items is not None:
            return tuple(self.items)
        if self.category is None:
            return ()
        return ({"amount": str(self.amount), "category": self.category},)


def _time(value: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(aware, naive): a naive time is read in the card's program's zone later."""
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value or "").strip()
        if not text:
            raise ValueError("is required")
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO date-time") from None
    if moment.tzinfo is None:
        return None, moment
    return moment.astimezone(dt.UTC), None


def parse_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[list[_Row], list[crmkit.RowError]]:
    """Check every row; the good ones and a ``RowError`` per bad one (line 2 is the first row
    of a CSV file after its header)."""
    good: list[_Row] = []
    errors: list[crmkit.RowError] = []
    seen: set[str] = set()
    numbers: dict[str, str] = {}  # as written -> cleaned (a member has many receipts)
    amounts: dict[str, decimal.Decimal] = {}  # as written -> checked (prices repeat)
    currencies: dict[str, str] = {}  # as written -> upper case
    for line, raw in enumerate(rows, start=2):
        written = str(raw.get("card") or "")
        card = numbers.get(written, "")
        if not card:
            try:
                card = numbers[written] = clean_number(written)
            except crmkit.ValidationError:
                errors.append(crmkit.RowError(line, "card", f"{written!r} is not a card number"))
                continue
        receipt = str(raw.get("receipt_id") or "").strip()
        if not receipt or len(receipt) > 100:
            errors.append(crmkit.RowError(line, "receipt_id", "is required (up to 100 characters)"))
            continue
        if receipt in seen:
            errors.append(crmkit.RowError(line, "receipt_id", f"{receipt!r} appears twice"))
            continue
        try:
            written_amount = raw.get("amount")
            if type(written_amount) is str:  # parse_amount is a pure function of the text
                known = amounts.get(written_amount)
                if known is None:
                    known = amounts[written_amount] = parse_amount(written_amount)
                amount = known
            else:
                amount = parse_amount(written_amount)
            items_value = raw.get("items")
            category: str | None = None
            items: list[dict[str, Any]] | None = None
            if isinstance(items_value, str) and items_value.strip():
                items = parse_items(json.loads(items_value), amount)
            elif not items_value and raw.get("category"):
                category = str(raw["category"]).strip()
                if len(category) > 100:
                    raise crmkit.ValidationError(
                        [crmkit.FieldError("category", "is longer than 100 characters")]
                    )
            elif items_value:
                items = parse_items(items_value, amount)
            aware, naive = _time(raw.get("occurred_at"))
        except crmkit.ValidationError as error:
            problem = error.errors[0]
            errors.append(crmkit.RowError(line, problem.field, problem.message))
            continue
        except ValueError as error:
            errors.append(crmkit.RowError(line, "occurred_at", str(error)))
            continue
        store = str(raw.get("store") or "").strip() or None
        if store is not None and len(store) > 100:
            errors.append(crmkit.RowError(line, "store", "is longer than 100 characters"))
            continue
        seen.add(receipt)
        written_currency = raw.get("currency") or "CNY"
        if type(written_currency) is str:
            currency = currencies.get(written_currency) or currencies.setdefault(
                written_currency, written_currency.strip().upper()
            )
        else:
            currency = str(written_currency).strip().upper()
        good.append(  # _Row(...) without its Python-level __new__
            _new_row(
                _Row, (line, card, receipt, amount, currency, aware, naive, store, category, items)
            )
        )
    return good, errors


_new_row = tuple.__new__


def import_purchases(
    crm: crmkit.CRM,
    rows: Iterable[Mapping[str, Any]],
    *,
    batch_size: int = 2000,
    skip_bad: bool = False,
    actor: crmkit.User | None = None,
) -> ImportResult:
    """Import purchases (columns: card, receipt_id, amount, currency, occurred_at, store,
    and items as a JSON list or one category for the whole amount).

    Python's cyclic garbage collector is paused while it runs
    (:func:`crmkit.collector_paused`): an import makes several objects per row and no
    reference cycles, and the collector's walks over every object alive took a sixth of
    its time."""
    with crmkit.collector_paused():
        return _import(crm, rows, batch_size=batch_size, skip_bad=skip_bad, actor=actor)


def _import(
    crm: crmkit.CRM,
    rows: Iterable[Mapping[str, Any]],
    *,
    batch_size: int,
    skip_bad: bool,
    actor: crmkit.User | None,
) -> ImportResult:
    good, errors = parse_rows(rows)
    with crm.transaction(actor, write=False) as op:
        op.access.require("loyalty:earn")
        errors += _check_cards(op, good)
    result = ImportResult(errors=sorted(errors, key=lambda error: error.line))
    if result.errors and not skip_bad:
        raise crmkit.BulkRejected(result.errors)
    bad = {error.line for error in result.errors}
    good = [row for row in good if row.line not in bad]
    expiries = _Expiries()
    earnings = _Earnings()
    for start in range(0, len(good), max(1, batch_size)):
        batch = good[start : start + batch_size]
        with crm.transaction(actor) as op:
            op.access.require("loyalty:earn")
            _import_batch(op, batch, result, skip_bad, expiries, earnings)
    if result.errors and not skip_bad:
        raise crmkit.BulkRejected(result.errors)
    return result


def _save_balances(connection: Any, rows: list[tuple[int, int, int]]) -> None:
    """``UPDATE loyalty_cards SET balance, pending`` for many cards: one ``executemany`` of
    plain integer tuples, compiled once per dialect (SQLAlchemy's per-row parameter
    handling cost more than the statements themselves)."""
    dialect = connection.dialect
    statement = _BALANCE_UPDATES.get(dialect.name)
    if statement is None:
        compiled = (
            update(CARDS)
            .where(CARDS.c.id == bindparam("b_id"))
            .values(balance=bindparam("b_balance"), pending=bindparam("b_pending"))
            .compile(dialect=dialect)
        )
        order = list(compiled.positiontup or ())
        statement = _BALANCE_UPDATES[dialect.name] = (compiled.string, order)
    text, order = statement
    if order:
        position = {"b_balance": 0, "b_pending": 1, "b_id": 2}
        connection.exec_driver_sql(
            text, [tuple(row[position[name]] for name in order) for row in rows]
        )
    else:
        connection.exec_driver_sql(
            text, [{"b_balance": b, "b_pending": p, "b_id": i} for b, p, i in rows]
        )


_BALANCE_UPDATES: dict[str, tuple[str, list[str]]] = {}


def _check_cards(op: crmkit.Operation, rows: list[_Row]) -> list[crmkit.RowError]:
    """Every row's card must exist, be visible, be active and take the row's currency:
    checked before anything is written, so a bad card stops the import whole."""
    access = op.access
    condition = access.condition(crmkit.Contact, access.require("contact:read"))
    numbers = sorted({row.card for row in rows})
    found: dict[str, Any] = {}
    for start in range(0, len(numbers), 1000):
        query = (
            select(CARDS.c.number, CARDS.c.status, CARDS.c.program_id, PROGRAMS.c.version)
            .join(CONTACTS, CONTACTS.c.id == CARDS.c.contact_id)
            .join(PROGRAMS, PROGRAMS.c.id == CARDS.c.program_id)
            .where(
                CARDS.c.number.in_(numbers[start : start + 1000]), CONTACTS.c.deleted_at.is_(None)
            )
        )
        if condition is not None:
            query = query.where(condition)
        for hit in op.session.connection().execute(query):
            found[hit.number] = hit
    errors = []
    programs: dict[tuple[int, int], Program] = {}
    # per card number: its program, or what is wrong with the card (checked once per card:
    # a member has many receipts)
    checked: dict[str, Program | str] = {}
    for row in rows:
        program = checked.get(row.card)
        if program is None:
            card = found.get(row.card)
            if card is None:
                program = checked[row.card] = f"card {row.card} not found"
            elif card.status != "active":
                program = checked[row.card] = f"card {row.card} is {card.status}"
            else:
                key = (card.program_id, card.version)
                program = programs.get(key) or programs.setdefault(key, program_by_id(op, *key))
                checked[row.card] = program
        if isinstance(program, str):
            errors.append(crmkit.RowError(row.line, "card", program))
        elif row.currency not in program.rates:
            errors.append(
                crmkit.RowError(
                    row.line, "currency", f"program {program.name!r} does not take {row.currency!r}"
                )
            )
    return errors


def _lock_cards(
    op: crmkit.Operation, numbers: list[str], now: dt.datetime
) -> dict[str, LockedCard]:
    access = op.access
    condition = access.condition(crmkit.Contact, access.require("contact:read"))
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
            PROGRAMS.c.version,
        )
        .join(CONTACTS, CONTACTS.c.id == CARDS.c.contact_id)
        .join(PROGRAMS, PROGRAMS.c.id == CARDS.c.program_id)
        .where(CARDS.c.number.in_(numbers), CONTACTS.c.deleted_at.is_(None))
        .order_by(CARDS.c.id)
        .with_for_update(of=CARDS)
    )
    if condition is not None:
        query = query.where(condition)
    cards = {}
    programs: dict[tuple[int, int], Program] = {}
    # each row as a plain tuple: a Row's attributes cost about a microsecond each, thirteen
    # per card, which was most of this function's time
    for (
        card_id,
        number,
        program_id,
        contact_id,
        status,
        balance,
        pending,
        tier,
        tier_since,
        tier_grace_until,
        replaced_by_id,
        birthday,
        version,
    ) in op.session.connection().execute(query):
        program = programs.get((program_id, version))
        if program is None:
            program = programs[program_id, version] = program_by_id(op, program_id, version)
        cards[number] = LockedCard(
            id=card_id,
            number=number,
            program_id=program_id,
            contact_id=contact_id,
            status=status,
            balance=balance,
            pending=pending,
            tier=tier,
            tier_since=tier_since,
            tier_grace_until=tier_grace_until,
            replaced_by_id=replaced_by_id,
            birthday=birthday,
            due=0,
            program=program,
        )
    return cards


#: Which of a batch's (program, receipt) pairs are recorded, one unique-index probe per pair,
#: driven from the pairs. PostgreSQL: LATERAL ... LIMIT 1 leaves the planner no other plan,
#: whatever the table's statistics say: with ``program_id IN (...) AND receipt_id IN (...)`` a
#: table never analysed was scanned for the program alone, every earlier purchase read by
#: every batch. SQLite: a program's receipts as one JSON parameter (``CROSS JOIN`` keeps them
#: the outer loop), instead of a statement with 2 000 parameters, which took longer to build
#: and bind than to run.
_RECORDED = {
    "postgresql": """
SELECT k.program_id, k.receipt_id
FROM unnest(CAST(:programs AS bigint[]), CAST(:receipts AS text[])) AS k(program_id, receipt_id)
CROSS JOIN LATERAL (
    SELECT 1 FROM {table} AS p
    WHERE p.program_id = k.program_id AND p.receipt_id = k.receipt_id
    LIMIT 1
) AS found
""",
    "sqlite": """
SELECT p.program_id, p.receipt_id
FROM json_each(:receipts) AS k
CROSS JOIN {table} AS p
WHERE p.program_id = :program AND p.receipt_id = k.value
""",
}


def _recorded_receipts(
    connection: Any, cards: Mapping[str, LockedCard], batch: list[_Row]
) -> set[tuple[int, str]]:
    """The (program, receipt) pairs of ``batch`` already recorded."""
    pairs = {
        (card.program_id, row.receipt) for row in batch if (card := cards.get(row.card)) is not None
    }
    if not pairs:
        return set()
    dialect = connection.dialect.name
    statement = sql_text(_RECORDED[dialect].format(table=PURCHASES.name))
    if dialect == "postgresql":
        programs, receipts = zip(*sorted(pairs), strict=True)
        rows = connection.execute(
            statement, {"programs": list(programs), "receipts": list(receipts)}
        )
        return {(int(r.program_id), str(r.receipt_id)) for r in rows}
    by_program: dict[int, list[str]] = defaultdict(list)
    for program, receipt in pairs:
        by_program[program].append(receipt)
    return {
        (int(r.program_id), str(r.receipt_id))
        for program, receipts in by_program.items()
        for r in connection.execute(
            statement, {"program": program, "receipts": json.dumps(receipts)}
        )
    }


def _import_batch(
    op: crmkit.Operation,
    batch: list[_Row],
    result: ImportResult,
    skip_bad: bool,
    expiries: _Expiries,
    earnings: _Earnings,
) -> None:
    now = crmkit.utcnow()
    connection = op.session.connection()
    cards = _lock_cards(op, sorted({row.card for row in batch}), now)
    taken = _recorded_receipts(connection, cards, batch)
    # per purchase: program, expiry, card, row, time, items (and as stored), points, ledger
    # note (plain values, see _Row; the purchase row is built once its id is known)
    accepted: list[_Accepted] = []
    hooked = op.crm.hook_implemented(EARN_HOOK)  # once per batch, not per row
    memos = {} if hooked else earnings.memos(cards.values())
    latest = now + CLOCK_SKEW
    for row in batch:
        card = cards.get(row.card)
        if card is None:
            result.errors.append(crmkit.RowError(row.line, "card", f"card {row.card} not found"))
            continue
        if card.status != "active":
            result.errors.append(
                crmkit.RowError(row.line, "card", f"card {row.card} is {card.status}")
            )
            continue
        program = card.program
        if row.currency not in program.rates:
            result.errors.append(
                crmkit.RowError(
                    row.line, "currency", f"program {program.name!r} does not take {row.currency!r}"
                )
            )
            continue
        when = row.occurred_at or row.naive.replace(tzinfo=program.zone).astimezone(dt.UTC)  # type: ignore[union-attr]
        if when > latest:
            result.errors.append(crmkit.RowError(row.line, "occurred_at", "is in the future"))
            continue
        if (card.program_id, row.receipt) in taken:
            result.skipped.append(row.receipt)
            continue
        taken.add((card.program_id, row.receipt))
        note = None
        if not hooked:
            if row.items is None:  # the usual row: one lookup (_Earnings)
                memo = memos[card.program_id]
                known = memo.get((row.amount, row.category, row.currency, row.store, card.tier))
                if known is None:
                    known = earnings.first(connection, memo, program, card, row, when)
                items, stored, points = known
            else:  # a row with its own item list: its points computed below
                items = stored = row.item_tuple()
                points = -1
            if points < 0:  # not remembered: the rules look at more than the key, or items
                points = program.points_of(
                    row.amount,
                    row.currency,
                    items,
                    occurred_at=when,
                    store=row.store,
                    tier=card.tier,
                    birthday=card.birthday,
                )
        else:
            items = stored = row.item_tuple()
            facts = PurchaseFacts(
                program=program.name,
                card_number=card.number,
                contact_id=card.contact_id,
                amount=row.amount,
                currency=row.currency,
                occurred_at=when,
                store=row.store,
                items=items,
                tier=card.tier,
                birthday=card.birthday,
            )
            points, rules = earn_points(op, card, facts, hooked=True)
            note = ", ".join(rules)[:200] or None
        expires_at = expiries.of(card, when)
        accepted.append(
            (card.program_id, expires_at or _NEVER, card, row, when, items, stored, points, note)
        )
    if result.errors and not skip_bad:
        return  # the caller raises; this transaction rolls back with nothing written
    if not accepted:
        return
    # a program's purchases with one expiry side by side (in file order among them): the
    # database then writes their lots per run of ids (batch_credits)
    accepted.sort(key=_CREDIT_ORDER)
    ids = crmkit.allocate_ids(connection, PURCHASES, len(accepted))
    if ids is None:  # no safe way to pick ids here: insert one by one with RETURNING
        ids = [
            connection.execute(
                PURCHASES.insert().returning(PURCHASES.c.id),
                dict(zip(_PURCHASE_COLUMNS, row[1:], strict=True)),
            ).scalar_one()
            for row in _purchase_rows([None] * len(accepted), accepted, now, bound=False)
        ]
    else:
        crmkit.bulk_insert(
            connection,
            PURCHASES,
            _purchase_rows(ids, accepted, now, bound=True),
            columns=("id", *_PURCHASE_COLUMNS),
        )
    credits = [  # Credit(...) without its Python-level __new__, as _Row
        _new_row(
            Credit,
            (
                purchase_id,
                card.id,
                when,
                points,
                None if expires_at is _NEVER else expires_at,
                note,
            ),
        )
        for (_, expires_at, card, _, when, _, _, points, note), purchase_id in zip(
            accepted, ids, strict=True
        )
    ]
    touched = write_credits(op, credits, {card.id: card for card in cards.values()}, now)
    # no purchase earns fewer than 0 points (Program.points_of), so this is also the sum of
    # the positive ones, which the result counted
    points = sum(map(_POINTS, credits))
    result.points += points
    _upgrade_tiers(op, touched, now)
    upgraded = [card for card in touched if card.tier_since == now]
    if upgraded:  # their tier too, in one executemany
        connection.execute(
            STEPS["card"],
            [
                {
                    "card__id": card.id,
                    "card__balance": card.balance,
                    "card__pending": card.pending,
                    "card__tier": card.tier,
                    "card__tier_since": card.tier_since,
                    "card__tier_grace_until": card.tier_grace_until,
                }
                for card in upgraded
            ],
        )
    others = [card for card in touched if card.tier_since != now]
    if others:
        _save_balances(connection, [(card.balance, card.pending, card.id) for card in others])
    result.imported += len(credits)
    op.emit(
        "purchases.imported",
        {"purchases": len(credits), "points": points},
    )


_NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)

#: A purchase of a batch before it is written: program id, expiry (``_NEVER``: none), card,
#: checked row, time (UTC), items, the items as stored (``crmkit.bind_value``), points,
#: ledger note.
_Accepted = tuple[
    int, dt.datetime, LockedCard, _Row, dt.datetime, tuple[Any, ...], Any, int, str | None
]

_NOTHING = decimal.Decimal(0)  # one object: the bulk insert converts it once


def _purchase_rows(
    ids: Sequence[int | None], accepted: Sequence[_Accepted], now: dt.datetime, *, bound: bool
) -> list[tuple[Any, ...]]:
    """The purchase rows of ``accepted`` in ``("id", *_PURCHASE_COLUMNS)`` order, with their
    ``ids``; the items as stored for ``crmkit.bulk_insert`` when ``bound``, else as they are
    (for a plain ``INSERT``, which binds them itself)."""
    return [
        (
            purchase_id,
            program_id,
            card.id,
            card.contact_id,
            row.receipt,
            row.amount,
            row.currency,
            row.store,
            when,
            stored if bound else items,
            points,
            _NOTHING,
            0,
            now,
        )
        for purchase_id, (program_id, _, card, row, when, items, stored, points, _) in zip(
            ids, accepted, strict=True
        )
    ]


#: The purchase row's columns after ``id``, in the order the batch builds them.
_PURCHASE_COLUMNS = (
    "program_id",
    "card_id",
    "contact_id",
    "receipt_id",
    "amount",
    "currency",
    "store",
    "occurred_at",
    "items",
    "points",
    "refunded_amount",
    "refunded_points",
    "recorded_at",
)


#: The order a batch's purchases are written in: by program, then expiry (a C-level key:
#: a Python function was called once per purchase).
_CREDIT_ORDER = operator.itemgetter(0, 1)

_POINTS = operator.itemgetter(Credit._fields.index("points"))


#: What :class:`_Earnings` remembers of a row: its items, their value for the purchases'
#: ``items`` column and its points (``-1``: computed per row, the program's rules look at more
#: than the key).
_Earned = tuple[tuple[Any, ...], Any, int]


class _Earnings:
    """The items, their JSON and the points of an import's rows without an item list of
    their own (one category for the whole amount, or none), for batches where no plugin has
    earn rules: remembered per program and (amount, category, currency, store, tier), one
    dict lookup per row instead of a JSON conversion and the program's rules (a year of
    history repeats a few thousand prices).

    * The items are shared by every row with the same amount and category, their JSON made
      once (``crmkit.bind_value``): no plugin rule sees them, so none can change one row's
      item through another's. Every amount is a whole number of cents (``parse_amount``),
      so equal amounts have the same text.
    * The points are ``program.points_of`` of those values, a pure function of them when
      the program's multipliers are only of the tier, category and store kinds; a program
      with a campaign or birthday multiplier (they look at the time and the contact) gets
      ``-1``, and the batch computes each of its rows.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[decimal.Decimal, str | None], tuple[tuple[Any, ...], Any]] = {}
        self._programs: dict[int, tuple[Program, bool, dict[tuple[Any, ...], _Earned]]] = {}

    def memos(self, cards: Iterable[LockedCard]) -> dict[int, dict[tuple[Any, ...], _Earned]]:
        """Per program id of ``cards``: its table (started again for a new version of the
        program)."""
        tables: dict[int, dict[tuple[Any, ...], _Earned]] = {}
        for card in cards:
            if card.program_id in tables:
                continue
            known = self._programs.get(card.program_id)
            if known is None or known[0] is not card.program:
                program = card.program
                plain = all(m.kind in ("tier", "category", "store") for m in program.multipliers)
                known = self._programs[card.program_id] = (program, plain, {})
            tables[card.program_id] = known[2]
        return tables

    def first(
        self,
        connection: Any,
        memo: dict[tuple[Any, ...], _Earned],
        program: Program,
        card: LockedCard,
        row: _Row,
        when: dt.datetime,
    ) -> _Earned:
        """The entry of ``row`` (not yet in ``memo``, its program's table): made and kept."""
        key = (row.amount, row.category)
        shared = self._items.get(key)
        if shared is None:
            items = row.item_tuple()
            stored = (
                items
                if row.category is None
                else crmkit.bind_value(connection, PURCHASES.c["items"], items)
            )
            shared = self._items[key] = (items, stored)
        items, stored = shared
        points = -1
        if self._programs[card.program_id][1]:
            points = program.points_of(
                row.amount,
                row.currency,
                items,
                occurred_at=when,
                store=row.store,
                tier=card.tier,
                birthday=card.birthday,
            )
        earned = memo[row.amount, row.category, row.currency, row.store, card.tier] = (
            items,
            stored,
            points,
        )
        return earned


class _Expiries:
    """``program.expiry(when)`` per program, computed once per local day when the program
    rounds to whole days (a year of history has 365 days and a million receipts); kept for
    the whole import."""

    def __init__(self) -> None:
        self._days: dict[int, tuple[Program, dict[dt.date, dt.datetime | None]]] = {}

    def of(self, card: LockedCard, when: dt.datetime) -> dt.datetime | None:
        program = card.program
        if program.round_to == "none":
            return program.expiry(when)
        known = self._days.get(card.program_id)
        if known is None or known[0] is not program:  # a new version of the program
            known = self._days[card.program_id] = (program, {})
        days = known[1]
        day = when.astimezone(program.zone).date()
        if day not in days:
            days[day] = program.expiry(when)
        return days[day]


def _upgrade_tiers(op: crmkit.Operation, cards: list[LockedCard], now: dt.datetime) -> None:
    """One qualifying query per program (with tiers) for the batch's cards."""
    from crmkit_loyalty.service import change_tier

    by_program: dict[int, list[LockedCard]] = defaultdict(list)
    for card in cards:
        if card.program.tiers:
            by_program[card.program_id].append(card)
    for group in by_program.values():
        program = group[0].program
        value: Any = (
            PURCHASES.c.amount - PURCHASES.c.refunded_amount
            if program.tier_basis == "spend"
            else PURCHASES.c.points - PURCHASES.c.refunded_points
        )
        totals = dict(
            op.session.connection()
            .execute(
                select(PURCHASES.c.card_id, func.sum(value))
                .where(
                    PURCHASES.c.card_id.in_([card.id for card in group]),
                    PURCHASES.c.occurred_at >= program.window_start(now),
                    PURCHASES.c.occurred_at <= now,
                )
                .group_by(PURCHASES.c.card_id)
            )
            .all()
        )
        for card in group:
            reached = program.tier_for(decimal.Decimal(str(totals.get(card.id) or 0)))
            if program.tier_rank(reached) > program.tier_rank(card.tier):
                change_tier(op, card, reached, now, "upgrade")


__all__ = ["COLUMNS", "ImportResult", "import_purchases", "ledger"]
