"""Use cases behind the CLI commands and the API routes: cards, purchases, redemptions,
refunds, lost cards and programs.

Each function is one transaction and checks the actor's permissions once, here:
``loyalty:issue`` (cards), ``loyalty:earn`` (purchases), ``loyalty:redeem`` (points and
coupons), ``loyalty:refund``, ``loyalty:manage`` (programs and the periodic jobs); and every
card is reached through its contact, within the actor's ``contact:read`` scope, so a card of
a contact they may not see is "not found" like an unknown one.

Every write takes an optional idempotency ``key``: the same key again returns the first
answer and changes nothing (:func:`run_once`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

import crmkit
from crmkit_loyalty import ledger
from crmkit_loyalty.cards import clean_number, new_number
from crmkit_loyalty.ledger import CARDS, CONTACTS, OPERATIONS, PURCHASES, LockedCard
from crmkit_loyalty.models import LoyaltyCoupon
from crmkit_loyalty.programs import EarnRule, Program, PurchaseFacts, parse_decimal
from crmkit_loyalty.registry import (
    EARN_HOOK,
    PLUGIN_NAME,
    cache_of,
    define_program,
    program_by_name,
)
from crmkit_loyalty.writes import Writes

ITEM_KEYS = ("sku", "name", "category", "quantity", "amount")
MAX_AMOUNT = decimal.Decimal("1e15")
CENT = decimal.Decimal("0.01")
#: The largest id and points value the integer columns hold on every engine.
MAX_INT = 2**31 - 1
#: A purchase may be dated this far ahead of the server's clock (tills drift).
CLOCK_SKEW = dt.timedelta(minutes=5)


def _invalid(field: str, message: str, entity: str = "purchase") -> crmkit.ValidationError:
    return crmkit.ValidationError([crmkit.FieldError(field, message)], entity)


# -- idempotency -------------------------------------------------------------------------


def _earlier(crm: crmkit.CRM, key: str) -> tuple[str, dict[str, Any]] | None:
    with crm.transaction(write=False) as op:
        row = (
            op.session.connection()
            .execute(select(OPERATIONS.c.kind, OPERATIONS.c.result).where(OPERATIONS.c.key == key))
            .first()
        )
    return None if row is None else (str(row.kind), dict(row.result))


def _same_kind(key: str, kind: str, earlier: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    if earlier[0] != kind:
        raise crmkit.ConflictError(
            f"idempotency key {key!r} was already used for a {earlier[0]}, not a {kind}"
        )
    return {**earlier[1], "repeated": True}


def run_once(
    crm: crmkit.CRM,
    actor: crmkit.User | None,
    kind: str,
    key: str | None,
    work: Callable[[crmkit.Operation], dict[str, Any]],
    on_conflict: Callable[[], crmkit.CRMError] | None = None,
) -> dict[str, Any]:
    """Run ``work`` in one transaction. With a ``key`` the answer is stored with it; when a
    concurrent operation with the same key committed first, its answer is returned instead
    (the unique key refuses the second write, and its transaction rolls back whole).
    Another unique conflict is reported by ``on_conflict``."""
    if key is not None and (not key.strip() or len(key) > 100):
        raise _invalid("key", "an idempotency key is 1 to 100 characters", kind)
    try:
        with crm.transaction(actor) as op:
            return work(op)
    except IntegrityError:
        if key is not None:
            earlier = _earlier(crm, key)
            if earlier is not None:
                return _same_kind(key, kind, earlier)
        if on_conflict is not None:
            raise on_conflict() from None
        raise crmkit.ConflictError(
            f"the {kind} conflicted with a concurrent change; nothing was written, try again"
        ) from None


def _repeat(card: LockedCard, key: str | None, kind: str) -> dict[str, Any] | None:
    if key is not None and card.earlier is not None:
        return _same_kind(key, kind, card.earlier)
    return None


# -- programs ----------------------------------------------------------------------------


def add_program(
    crm: crmkit.CRM, definition: Mapping[str, Any], *, actor: crmkit.User | None = None
) -> dict[str, Any]:
    """Create or replace a program from its definition (see docs/loyalty.md)."""
    with crm.transaction(actor) as op:
        op.access.require("loyalty:manage")
        program_id, program = define_program(op, definition)
        return {"id": program_id, **program.describe()}


def sync_programs(crm: crmkit.CRM, *, actor: crmkit.User | None = None) -> list[str]:
    """Write the programs of ``[plugins.loyalty] programs`` in the config to the database
    (run on ``plugins enable loyalty`` and by ``crmkit loyalty programs sync``)."""
    definitions = crm.plugin_settings(PLUGIN_NAME).get("programs") or []
    with crm.transaction(actor) as op:
        op.access.require("loyalty:manage")
        return [define_program(op, definition)[1].name for definition in definitions]


def list_programs(crm: crmkit.CRM, *, actor: crmkit.User | None = None) -> list[dict[str, Any]]:
    """Every program with its definition and its number of active cards."""
    from crmkit_loyalty.models import LoyaltyProgram

    with crm.transaction(actor, write=False) as op:
        op.access.require("contact:read")
        counts: dict[int, int] = {
            int(program_id): int(count)
            for program_id, count in op.session.execute(
                select(CARDS.c.program_id, func.count())
                .where(CARDS.c.status == "active")
                .group_by(CARDS.c.program_id)
            )
        }
        return [
            {"id": row.id, "version": row.version, "cards": counts.get(row.id, 0), **row.definition}
            for row in op.session.scalars(select(LoyaltyProgram).order_by(LoyaltyProgram.name))
        ]


# -- cards -------------------------------------------------------------------------------


def _visible_contact(op: crmkit.Operation, contact_id: int, *, lock: bool = False) -> Any:
    if not isinstance(contact_id, int) or not 1 <= contact_id <= MAX_INT:
        raise crmkit.NotFoundError("contact", contact_id)
    access = op.access
    condition = access.condition(crmkit.Contact, access.require("contact:read"))
    query = select(CONTACTS.c.id, CONTACTS.c.full_name).where(
        CONTACTS.c.id == contact_id, CONTACTS.c.deleted_at.is_(None)
    )
    if condition is not None:
        query = query.where(condition)
    if lock:
        query = query.with_for_update()
    row = op.session.connection().execute(query).first()
    if row is None:
        raise crmkit.NotFoundError("contact", contact_id)
    return row


def _insert_card(
    op: crmkit.Operation, program_id: int, program: Program, contact_id: int, **values: Any
) -> tuple[int, str]:
    connection = op.session.connection()
    for _ in range(5):  # a random number already taken: draw again
        number = new_number(program.card_prefix)
        if connection.execute(select(CARDS.c.id).where(CARDS.c.number == number)).first():
            continue
        card_id = connection.execute(
            insert(CARDS).returning(CARDS.c.id),
            {
                "number": number,
                "program_id": program_id,
                "contact_id": contact_id,
                "status": "active",
                "balance": 0,
                "pending": 0,
                "issued_at": crmkit.utcnow(),
                **values,
            },
        ).scalar_one()
        return card_id, number
    raise crmkit.CRMError("could not draw a free card number; widen the card_prefix space")


def issue_card(
    crm: crmkit.CRM,
    contact_id: int,
    *,
    program: str | None = None,
    key: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Give a contact a card of ``program``; one active card per contact and program."""

    def work(op: crmkit.Operation) -> dict[str, Any]:
        op.access.require("loyalty:issue")
        if key is not None and (earlier := _earlier_in(op, key)) is not None:
            return _same_kind(key, "card", earlier)
        program_id, parsed = program_by_name(op, program)
        _visible_contact(op, contact_id, lock=True)
        existing = (
            op.session.connection()
            .execute(
                select(CARDS.c.number).where(
                    CARDS.c.contact_id == contact_id,
                    CARDS.c.program_id == program_id,
                    CARDS.c.status == "active",
                )
            )
            .scalar()
        )
        if existing:
            raise crmkit.ConflictError(
                f"contact {contact_id} already has card {existing} in program {parsed.name!r}"
            )
        _, number = _insert_card(op, program_id, parsed, contact_id)
        result = {
            "card": number,
            "program": parsed.name,
            "contact_id": contact_id,
            "status": "active",
            "balance": 0,
            "pending": 0,
            "tier": None,
        }
        op.emit("card.issued", result, record_type="contact", record_id=contact_id)
        ledger.remember(op, key, "card", result)
        return result

    return run_once(crm, actor, "card", key, work)


def _earlier_in(op: crmkit.Operation, key: str) -> tuple[str, dict[str, Any]] | None:
    row = (
        op.session.connection()
        .execute(select(OPERATIONS.c.kind, OPERATIONS.c.result).where(OPERATIONS.c.key == key))
        .first()
    )
    return None if row is None else (str(row.kind), dict(row.result))


def block_card(
    crm: crmkit.CRM,
    number: str,
    *,
    reason: str = "lost",
    replace: bool = True,
    key: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Block a card (lost, stolen, stopped). With ``replace`` (the default) a new card is
    issued to the same contact and the old card's points, pending points, tier, unused
    coupons and purchase history move to it; the old card's ledger stays and the new
    card's statement continues from it."""
    number = clean_number(number)
    reason = (reason or "lost").strip()[:200]

    def work(op: crmkit.Operation) -> dict[str, Any]:
        op.access.require("loyalty:issue")
        now = crmkit.utcnow()
        card = ledger.lock_card(op, number=number, key=key, now=now)
        if (repeated := _repeat(card, key, "block")) is not None:
            return repeated
        ledger.require_active(op, card)
        connection = op.session.connection()
        connection.execute(
            update(CARDS)
            .where(CARDS.c.id == card.id)
            .values(status="blocked", blocked_at=now, block_reason=reason)
        )
        result: dict[str, Any] = {"card": number, "status": "blocked", "reason": reason}
        if replace:
            new_id, new_number_ = _insert_card(
                op,
                card.program_id,
                card.program,
                card.contact_id,
                previous_id=card.id,
                tier=card.tier,
                tier_since=card.tier_since,
                tier_grace_until=card.tier_grace_until,
            )
            connection.execute(
                update(CARDS).where(CARDS.c.id == card.id).values(replaced_by_id=new_id)
            )
            target = ledger.lock_card(op, card_id=new_id, now=now)
            moved = ledger.move_points(op, card, target, note=f"card {number} {reason}")
            connection.execute(
                update(LoyaltyCoupon)
                .where(LoyaltyCoupon.card_id == card.id, LoyaltyCoupon.redeemed_at.is_(None))
                .values(card_id=new_id)
            )
            ledger.save_card(op, card)
            ledger.save_card(op, target)
            result.update(
                replaced_by=new_number_,
                balance=target.balance,
                pending=target.pending,
                moved_purchases=len(moved["purchases"]),
            )
        op.emit("card.blocked", result, record_type="contact", record_id=card.contact_id)
        ledger.remember(op, key, "block", result)
        return result

    return run_once(crm, actor, "block", key, work)


# -- purchases ---------------------------------------------------------------------------


def parse_amount(
    value: object, field: str = "amount", *, allow_zero: bool = False
) -> decimal.Decimal:
    """A money amount: a number (or its text) above zero with at most two decimals."""
    if value is None or value == "":
        raise _invalid(field, "is required")
    try:
        amount = parse_decimal(value, field)
    except crmkit.ValidationError:
        raise _invalid(field, f"must be a number, not {value!r}") from None
    if amount < 0 or (amount == 0 and not allow_zero):
        raise _invalid(field, f"must be above zero, not {value}")
    if amount >= MAX_AMOUNT:
        raise _invalid(field, f"{value} is too large")
    cents = amount.quantize(CENT)
    if amount != cents:
        raise _invalid(field, f"{value} has more than two decimals")
    return cents


def parse_items(
    items: Sequence[Mapping[str, Any]] | None, amount: decimal.Decimal
) -> list[dict[str, Any]]:
    """The purchase's items as stored: known keys only, amounts checked; they must add up
    to the purchase's amount."""
    if not items:
        return []
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise _invalid("items", "must be a list of items")
    parsed = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, Mapping):
            raise _invalid(where, "must be a table with an amount")
        unknown = sorted(set(item) - set(ITEM_KEYS))
        if unknown:
            raise _invalid(f"{where}.{unknown[0]}", f"unknown key; known: {', '.join(ITEM_KEYS)}")
        entry: dict[str, Any] = {
            "amount": str(parse_amount(item.get("amount"), f"{where}.amount", allow_zero=True))
        }
        for name in ("sku", "name", "category"):
            if item.get(name) is not None:
                text = str(item[name]).strip()
                if len(text) > 100:
                    raise _invalid(f"{where}.{name}", "is longer than 100 characters")
                entry[name] = text
        if item.get("quantity") is not None:
            entry["quantity"] = str(parse_amount(item["quantity"], f"{where}.quantity"))
        parsed.append(entry)
    total = sum(decimal.Decimal(entry["amount"]) for entry in parsed)
    if total != amount:
        raise _invalid("items", f"the items add up to {total}, the purchase is {amount}")
    return parsed


def parse_time(value: dt.datetime | str | None, program: Program, now: dt.datetime) -> dt.datetime:
    """A purchase time: aware, or local to the program's time zone when naive; not in the
    future."""
    if value is None or value == "":
        return now
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _invalid("occurred_at", f"{value!r} is not an ISO date-time") from None
    if not isinstance(value, dt.datetime):
        raise _invalid("occurred_at", f"must be a date-time, not {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=program.zone)
    value = value.astimezone(dt.UTC)
    if value > now + CLOCK_SKEW:
        raise _invalid("occurred_at", f"{value.isoformat()} is in the future")
    return value


def earn_points(
    op: crmkit.Operation, card: LockedCard, facts: PurchaseFacts, *, hooked: bool | None = None
) -> tuple[int, list[str]]:
    """The points a purchase earns on ``card``: the program's rules, then the plugins' earn
    rules (``crmkit_loyalty_earn_rules``); also the names of the plugin rules applied.
    ``hooked``: whether a plugin implements that hook, when the caller (a batch) knows."""
    extra: list[EarnRule] = []
    if op.crm.hook_implemented(EARN_HOOK) if hooked is None else hooked:
        for answer in op.crm.call_hook(EARN_HOOK, op=op, program=card.program, purchase=facts):
            extra.extend(answer or ())
        for rule in extra:
            if not isinstance(rule, EarnRule):
                raise crmkit.CRMError(
                    f"{EARN_HOOK} must return crmkit_loyalty.EarnRule objects, not {rule!r}"
                )
    return card.program.points_for(facts, extra), [rule.name for rule in extra]


def record_purchase(
    crm: crmkit.CRM,
    number: str,
    amount: object,
    *,
    currency: str = "CNY",
    receipt_id: str | None = None,
    items: Sequence[Mapping[str, Any]] | None = None,
    store: str | None = None,
    occurred_at: dt.datetime | str | None = None,
    key: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Record a purchase on a card and earn its points (pending through the program's
    return window); an upgrade to a higher tier happens at once. One transaction."""
    number = clean_number(number)
    value = parse_amount(amount)
    parsed_items = parse_items(items, value)
    receipt = (receipt_id or "").strip() or f"R{uuid.uuid4().hex[:20]}"
    if len(receipt) > 100:
        raise _invalid("receipt_id", "is longer than 100 characters")
    store_name = (store or "").strip() or None
    if store_name is not None and len(store_name) > 100:
        raise _invalid("store", "is longer than 100 characters")
    if not isinstance(currency, str) or not currency.strip():
        raise _invalid("currency", "is required")

    def work(op: crmkit.Operation) -> dict[str, Any]:
        op.access.require("loyalty:earn")
        now = crmkit.utcnow()
        card = ledger.lock_card(
            op, number=number, key=key, now=now, with_qualifying=True, with_purchase_id=True
        )
        if (repeated := _repeat(card, key, "purchase")) is not None:
            return repeated
        ledger.require_active(op, card)
        program = card.program
        code = program.check_currency(currency)
        when = parse_time(occurred_at, program, now)
        ledger.release_due(op, card, now)
        facts = PurchaseFacts(
            program=program.name,
            card_number=number,
            contact_id=card.contact_id,
            amount=value,
            currency=code,
            occurred_at=when,
            store=store_name,
            items=tuple(parsed_items),
            tier=card.tier,
            birthday=card.birthday,
        )
        points, rules = earn_points(op, card, facts)
        purchase_id = card.next_purchase_id
        # the purchase, its lot and ledger entry, the card and the answer to the key go
        # together (one statement on PostgreSQL): see crmkit_loyalty.writes
        writes = Writes()
        writes.add(
            "purchase",
            {
                "id": purchase_id,
                "program_id": card.program_id,
                "card_id": card.id,
                "contact_id": card.contact_id,
                "receipt_id": receipt,
                "amount": value,
                "currency": code,
                "store": store_name,
                "occurred_at": when,
                "items": parsed_items,
                "points": points,
                "refunded_amount": decimal.Decimal(0),
                "refunded_points": 0,
                "recorded_at": now,
            },
        )
        pending = program.available(when) > now
        ledger.credit(
            op,
            card,
            points,
            kind="earn",
            now=now,
            earned_at=when,
            purchase_id=purchase_id,
            pending=pending,
            expires_at=program.expiry(when),
            note=", ".join(rules)[:200] or None,
            writes=writes,
        )
        changed = upgrade_tier(op, card, now, (when, value, points))
        ledger.save_card(op, card, writes)
        result = {
            "card": number,
            "receipt_id": receipt,
            "purchase_id": purchase_id,
            "points": points,
            "pending": pending,
            "balance": card.balance,
            "pending_total": card.pending,
            "tier": card.tier,
            "tier_changed": changed,
        }
        if points:
            op.emit(
                "points.earned",
                {**result, "program": program.name, "rules": rules},
                record_type="contact",
                record_id=card.contact_id,
            )
        ledger.remember(op, key, "purchase", result, writes)
        writes.send(op)
        return result

    def conflict() -> crmkit.CRMError:
        return crmkit.ConflictError(
            f"receipt {receipt!r} was already recorded in this program; nothing was written"
        )

    return run_once(crm, actor, "purchase", key, work, conflict)


def change_tier(
    op: crmkit.Operation, card: LockedCard, tier: str | None, now: dt.datetime, reason: str
) -> None:
    """Set the card's tier and emit ``tier.changed``."""
    before = card.tier
    card.tier, card.tier_since, card.tier_grace_until = tier, now, None
    op.emit(
        "tier.changed",
        {
            "card": card.number,
            "program": card.program.name,
            "from": before,
            "to": tier,
            "reason": reason,
        },
        record_type="contact",
        record_id=card.contact_id,
    )


def upgrade_tier(
    op: crmkit.Operation,
    card: LockedCard,
    now: dt.datetime,
    recorded: tuple[dt.datetime, decimal.Decimal, int] | None = None,
) -> bool:
    """Upgrade at once when the rolling qualifying value reached a higher tier."""
    program = card.program
    if not program.tiers:
        return False
    reached = program.tier_for(ledger.qualifying(op, card, now, recorded))
    if program.tier_rank(reached) > program.tier_rank(card.tier):
        change_tier(op, card, reached, now, "upgrade")
        return True
    if card.tier_grace_until is not None and program.tier_rank(reached) >= program.tier_rank(
        card.tier
    ):
        card.tier_grace_until = None  # back above the threshold: the grace ends
    return False


# -- redemptions and refunds ---------------------------------------------------------------


def redeem(
    crm: crmkit.CRM,
    number: str,
    points: object,
    *,
    note: str | None = None,
    key: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Spend points (soonest-expiring first); more than the balance is refused."""
    number = clean_number(number)
    if isinstance(points, bool) or not isinstance(points, int | str):
        raise _invalid("points", f"must be a whole number, not {points!r}", "redemption")
    try:
        wanted = int(str(points).strip())
    except ValueError:
        raise _invalid("points", f"must be a whole number, not {points!r}", "redemption") from None
    if not 0 < wanted <= MAX_INT:
        raise _invalid(
            "points", f"must be above zero and at most {MAX_INT}, not {wanted}", "redemption"
        )
    text = (note or "").strip()[:200] or None

    def work(op: crmkit.Operation) -> dict[str, Any]:
        op.access.require("loyalty:redeem")
        now = crmkit.utcnow()
        card = ledger.lock_card(op, number=number, key=key, now=now)
        if (repeated := _repeat(card, key, "redemption")) is not None:
            return repeated
        ledger.require_active(op, card)
        ledger.release_due(op, card, now)
        writes = Writes()  # sent together: one statement on PostgreSQL
        ledger.debit(op, card, wanted, note=text, writes=writes)
        ledger.save_card(op, card, writes)
        result = {"card": number, "points": wanted, "balance": card.balance, "note": text}
        op.emit(
            "points.redeemed",
            {**result, "program": card.program.name},
            record_type="contact",
            record_id=card.contact_id,
        )
        ledger.remember(op, key, "redemption", result, writes)
        writes.send(op)
        return result

    return run_once(crm, actor, "redemption", key, work)


def refund(
    crm: crmkit.CRM,
    receipt_id: str,
    *,
    amount: object = None,
    program: str | None = None,
    key: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Refund a purchase, whole or in part (``amount``): its points are taken back, even if
    already spent (see :func:`crmkit_loyalty.ledger.reverse` for what happens then)."""
    receipt = str(receipt_id or "").strip()
    if not receipt:
        raise _invalid("receipt_id", "is required", "refund")
    part = None if amount is None or amount == "" else parse_amount(amount)

    def work(op: crmkit.Operation) -> dict[str, Any]:
        op.access.require("loyalty:refund")
        connection = op.session.connection()
        query = select(PURCHASES.c.card_id, PURCHASES.c.program_id).where(
            PURCHASES.c.receipt_id == receipt
        )
        if program is not None:
            query = query.where(PURCHASES.c.program_id == program_by_name(op, program)[0])
        found = list(connection.execute(query))
        if not found:
            raise crmkit.NotFoundError("purchase", f"with receipt {receipt!r}")
        if len(found) > 1:
            raise _invalid(
                "program", f"receipt {receipt!r} is in several programs: name one", "refund"
            )
        now = crmkit.utcnow()
        try:
            card = ledger.lock_card(op, card_id=found[0].card_id, key=key, now=now)
        except crmkit.NotFoundError:
            raise crmkit.NotFoundError("purchase", f"with receipt {receipt!r}") from None
        if (repeated := _repeat(card, key, "refund")) is not None:
            return repeated
        purchase = connection.execute(
            select(PURCHASES).where(
                PURCHASES.c.receipt_id == receipt, PURCHASES.c.program_id == found[0].program_id
            )
        ).one()
        left = purchase.amount - purchase.refunded_amount
        if left <= 0:
            raise crmkit.ConflictError(f"receipt {receipt!r} was already refunded in full")
        money = left if part is None else part
        if money > left:
            raise _invalid(
                "amount",
                f"{money} is more than is left to refund of {receipt!r} ({left})",
                "refund",
            )
        points_left = purchase.points - purchase.refunded_points
        points = (
            points_left
            if money == left
            else min(points_left, int(purchase.points * money / purchase.amount))
        )
        ledger.release_due(op, card, now)
        outcome = ledger.reverse(op, card, purchase.id, points, f"refund of {receipt}")
        connection.execute(
            update(PURCHASES)
            .where(PURCHASES.c.id == purchase.id)
            .values(
                refunded_amount=purchase.refunded_amount + money,
                refunded_points=purchase.refunded_points + points,
            )
        )
        ledger.save_card(op, card)
        result: dict[str, Any] = {
            "card": card.number,
            "receipt_id": receipt,
            "refunded_amount": str(money),
            "points": points,
            **outcome,
            "balance": card.balance,
            "pending_total": card.pending,
        }
        if outcome["below_zero"]:
            result["message"] = (
                f"{outcome['below_zero']} of the points were already spent: the balance is now"
                f" {card.balance} (program {card.program.name!r} allows a negative balance)"
            )
        elif outcome["unrecovered"]:
            result["message"] = (
                f"{outcome['unrecovered']} of the points were already spent and could not be"
                f" taken back (program {card.program.name!r} keeps balances at zero or above)"
            )
        op.emit(
            "points.reversed",
            {**result, "program": card.program.name},
            record_type="contact",
            record_id=card.contact_id,
        )
        ledger.remember(op, key, "refund", result)
        return result

    return run_once(crm, actor, "refund", key, work)


def settings_of(crm: crmkit.CRM) -> dict[str, Any]:
    """The plugin's settings (``[plugins.loyalty]``)."""
    cache_of(crm)
    return crm.plugin_settings(PLUGIN_NAME)
