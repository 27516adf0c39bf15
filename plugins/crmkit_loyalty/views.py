"""What a sales rep or a cashier reads: a card, a member's cards with points expiring soon
and purchase history, a card's statement (as rows or CSV)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from sqlalchemy import func, select

import crmkit
from crmkit_loyalty.cards import clean_number
from crmkit_loyalty.ledger import CARDS, CONTACTS, LEDGER, LOTS, PROGRAMS, PURCHASES
from crmkit_loyalty.registry import PLUGIN_NAME

STATEMENT_COLUMNS = ("at", "card", "kind", "points", "pending", "balance", "receipt_id", "note")


def _scope(op: crmkit.Operation) -> Any:
    access = op.access
    return access.condition(crmkit.Contact, access.require("contact:read"))


def _cards_query(op: crmkit.Operation) -> Any:
    query = (
        select(
            CARDS.c.id,
            CARDS.c.number,
            CARDS.c.contact_id,
            CARDS.c.status,
            CARDS.c.balance,
            CARDS.c.pending,
            CARDS.c.tier,
            CARDS.c.tier_grace_until,
            CARDS.c.issued_at,
            CARDS.c.previous_id,
            CARDS.c.replaced_by_id,
            PROGRAMS.c.name.label("program"),
            CONTACTS.c.full_name,
        )
        .join(CONTACTS, CONTACTS.c.id == CARDS.c.contact_id)
        .join(PROGRAMS, PROGRAMS.c.id == CARDS.c.program_id)
        .where(CONTACTS.c.deleted_at.is_(None))
    )
    condition = _scope(op)
    return query if condition is None else query.where(condition)


def _card_dict(row: Any, op: crmkit.Operation) -> dict[str, Any]:
    # The contact's name follows the actor's field rules like every other read of it.
    name_hidden = "full_name" in op.access.hidden_fields("contact")
    return {
        "card": row.number,
        "program": row.program,
        "contact_id": row.contact_id,
        "contact": None if name_hidden else row.full_name,
        "status": row.status,
        "balance": row.balance,
        "pending": row.pending,
        "tier": row.tier,
        "tier_grace_until": row.tier_grace_until.isoformat() if row.tier_grace_until else None,
        "issued_at": row.issued_at.isoformat(),
    }


def _expiring(op: crmkit.Operation, card_ids: list[int], days: int) -> list[dict[str, Any]]:
    now = crmkit.utcnow()
    rows = op.session.connection().execute(
        select(LOTS.c.card_id, LOTS.c.expires_at, func.sum(LOTS.c.remaining))
        .where(
            LOTS.c.card_id.in_(card_ids),
            LOTS.c.remaining > 0,
            LOTS.c.pending.is_(False),
            LOTS.c.expires_at.is_not(None),
            LOTS.c.expires_at <= now + dt.timedelta(days=days),
        )
        .group_by(LOTS.c.card_id, LOTS.c.expires_at)
        .order_by(LOTS.c.expires_at)
    )
    return [{"card_id": r[0], "expires_at": r[1].isoformat(), "points": int(r[2])} for r in rows]


def card(crm: crmkit.CRM, number: str, *, actor: crmkit.User | None = None) -> dict[str, Any]:
    """A card: holder, status, balance, pending points, tier, points expiring soon."""
    number = clean_number(number)
    days = int(crm.plugin_settings(PLUGIN_NAME)["expiring_notice_days"])
    with crm.transaction(actor, write=False) as op:
        row = (
            op.session.connection()
            .execute(_cards_query(op).where(CARDS.c.number == number))
            .first()
        )
        if row is None:
            raise crmkit.NotFoundError("card", number)
        result = _card_dict(row, op)
        if row.replaced_by_id:
            result["replaced_by"] = (
                op.session.connection()
                .execute(select(CARDS.c.number).where(CARDS.c.id == row.replaced_by_id))
                .scalar()
            )
        result["expiring"] = [
            {k: v for k, v in e.items() if k != "card_id"} for e in _expiring(op, [row.id], days)
        ]
        return result


def member(
    crm: crmkit.CRM, contact_id: int, *, purchases: int = 20, actor: crmkit.User | None = None
) -> dict[str, Any]:
    """A contact's loyalty: every card (balance, tier, points expiring soon) and the latest
    ``purchases``."""
    days = int(crm.plugin_settings(PLUGIN_NAME)["expiring_notice_days"])
    if not 1 <= contact_id <= 2**31 - 1:
        raise crmkit.NotFoundError("contact", contact_id)
    with crm.transaction(actor, write=False) as op:
        condition = _scope(op)
        query = select(CONTACTS.c.id).where(
            CONTACTS.c.id == contact_id, CONTACTS.c.deleted_at.is_(None)
        )
        if condition is not None:
            query = query.where(condition)
        if op.session.connection().execute(query).first() is None:
            raise crmkit.NotFoundError("contact", contact_id)
        rows = list(
            op.session.connection().execute(
                _cards_query(op).where(CARDS.c.contact_id == contact_id).order_by(CARDS.c.id)
            )
        )
        cards = [_card_dict(row, op) for row in rows]
        expiring = _expiring(op, [row.id for row in rows if row.status == "active"], days)
        numbers = {row.id: row.number for row in rows}
        history = op.session.connection().execute(
            select(PURCHASES, PROGRAMS.c.name.label("program"))
            .join(PROGRAMS, PROGRAMS.c.id == PURCHASES.c.program_id)
            .where(PURCHASES.c.contact_id == contact_id)
            .order_by(PURCHASES.c.occurred_at.desc(), PURCHASES.c.id.desc())
            .limit(max(0, purchases))
        )
        return {
            "contact_id": contact_id,
            "cards": cards,
            "expiring": [
                {
                    "card": numbers[e["card_id"]],
                    "expires_at": e["expires_at"],
                    "points": e["points"],
                }
                for e in expiring
            ],
            "purchases": [purchase_dict(row, numbers.get(row.card_id)) for row in history],
        }


def purchase_dict(row: Any, number: str | None) -> dict[str, Any]:
    """A purchase row as JSON-ready values."""
    return {
        "receipt_id": row.receipt_id,
        "program": row.program,
        "card": number,
        "occurred_at": row.occurred_at.isoformat(),
        "amount": str(row.amount),
        "currency": row.currency,
        "store": row.store,
        "items": list(row.items or []),
        "points": row.points,
        "refunded_amount": str(row.refunded_amount),
        "refunded_points": row.refunded_points,
    }


def statement(
    crm: crmkit.CRM, number: str, *, actor: crmkit.User | None = None
) -> list[dict[str, Any]]:
    """Every ledger entry of a card and of the cards it replaced, oldest first, with the
    running balance (spendable points) after each."""
    number = clean_number(number)
    with crm.transaction(actor, write=False) as op:
        connection = op.session.connection()
        row = connection.execute(_cards_query(op).where(CARDS.c.number == number)).first()
        if row is None:
            raise crmkit.NotFoundError("card", number)
        chain = {row.id: row.number}
        previous = row.previous_id
        while previous is not None and previous not in chain:
            found = connection.execute(
                select(CARDS.c.id, CARDS.c.number, CARDS.c.previous_id).where(
                    CARDS.c.id == previous
                )
            ).first()
            if found is None:
                break
            chain[found.id] = found.number
            previous = found.previous_id
        entries = connection.execute(
            select(LEDGER, PURCHASES.c.receipt_id)
            .outerjoin(PURCHASES, PURCHASES.c.id == LEDGER.c.purchase_id)
            .where(LEDGER.c.card_id.in_(list(chain)))
            .order_by(LEDGER.c.id)
        )
        balance = 0
        rows = []
        for entry in entries:
            balance += entry.points
            rows.append(
                {
                    "at": entry.at.isoformat(),
                    "card": chain[entry.card_id],
                    "kind": entry.kind,
                    "points": entry.points,
                    "pending": entry.pending,
                    "balance": balance,
                    "receipt_id": entry.receipt_id,
                    "note": entry.note,
                }
            )
        return rows


def statement_csv(rows: list[dict[str, Any]]) -> str:
    """A statement as CSV text (a header line, then one line per entry)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=STATEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in STATEMENT_COLUMNS})
    return out.getvalue()


def desk_panels(
    crm: crmkit.CRM, contact_id: int, actor: crmkit.User, locale: str = "en"
) -> list[crmkit.DeskPanel]:
    """The contact page's loyalty panels (nothing for a contact without a card), in the
    user's ``locale``."""
    try:
        data = member(crm, contact_id, purchases=10, actor=actor)
    except (crmkit.NotFoundError, crmkit.PermissionDenied):
        return []
    if not data["cards"]:
        return []
    _ = crmkit.desk_gettext(__name__, locale)
    rows = []
    for found in data["cards"]:
        state = [_(found["status"]), _("%(balance)s points") % {"balance": found["balance"]}]
        if found["pending"]:
            state.append(_("+%(pending)s pending") % {"pending": found["pending"]})
        if found["tier"]:
            state.append(found["tier"])
        # the separator too: Chinese text takes the full-width comma
        rows.append((f"{found['program']} {found['card']}", _(", ").join(state)))
    for soon in data["expiring"]:
        rows.append(
            (
                _("expiring %(date)s") % {"date": soon["expires_at"][:10]},
                _("%(balance)s points") % {"balance": soon["points"]},
            )
        )
    # DeskPanel's fields convert with ``tuple``, whose generic __init__ mypy cannot match
    # against a list argument: build the panels through an untyped name
    panel: Any = crmkit.DeskPanel
    panels: list[crmkit.DeskPanel] = [panel(title=_("Loyalty"), rows=rows)]
    if data["purchases"]:
        panels.append(
            panel(
                title=_("Purchases"),
                columns=(_("When"), _("Receipt"), _("Store"), _("Amount"), _("Points")),
                cells=[
                    (
                        p["occurred_at"][:16].replace("T", " "),
                        p["receipt_id"],
                        p["store"] or "",
                        f"{p['amount']} {p['currency']}",
                        str(p["points"]),
                    )
                    for p in data["purchases"]
                ],
            )
        )
    return panels
