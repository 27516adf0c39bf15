"""The SQL the measures are made of: who the actor may see, the orders (won deals and, when
the loyalty plugin's table exists, its purchases), and the few expressions whose spelling
differs between SQLite and PostgreSQL (days between two times, the month of a time).

Everything is SQLAlchemy Core on the public models; the loyalty table is read as a plain
table (its columns are documented in docs/loyalty.md), never through the loyalty plugin.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    cast,
    func,
    inspect,
    literal,
    literal_column,
    select,
)
from sqlalchemy.sql.selectable import CTE

import crmkit

DEALS: Any = crmkit.Deal.__table__
STAGES: Any = crmkit.Stage.__table__
CONTACTS: Any = crmkit.Contact.__table__
ACCOUNTS: Any = crmkit.Account.__table__

#: The loyalty plugin's purchases, as docs/loyalty.md documents them (only the columns read).
_LOYALTY = MetaData()
PURCHASES = Table(
    "loyalty_purchases",
    _LOYALTY,
    Column("id", Integer, primary_key=True),
    Column("contact_id", Integer),
    Column("amount", Numeric(18, 2)),
    Column("refunded_amount", Numeric(18, 2)),
    Column("occurred_at", crmkit.UTCDateTime()),
    Column("store", String(200)),
    Column("items", JSON),
)


def dialect_of(op: crmkit.Operation) -> str:
    """``sqlite`` or ``postgresql``."""
    return str(op.session.get_bind().dialect.name)


def has_purchases(op: crmkit.Operation) -> bool:
    """Whether the loyalty plugin's purchases are there to read: its table exists and the
    plugin is enabled (a disabled plugin's rows are left alone)."""
    if "loyalty" not in op.crm.enabled_plugin_names():
        return False
    return bool(inspect(op.session.connection()).has_table("loyalty_purchases"))


def moment(value: dt.datetime) -> ColumnElement[Any]:
    """A bound UTC time, stored the way the engine stores times."""
    return literal(value, crmkit.UTCDateTime())


def days_between(op: crmkit.Operation, later: Any, earlier: Any) -> ColumnElement[Any]:
    """``later - earlier`` in days (fractional), on either engine."""
    if dialect_of(op) == "sqlite":
        return func.julianday(later) - func.julianday(earlier)
    return func.extract("epoch", later - earlier) / 86400.0


def month_of(op: crmkit.Operation, column: Any) -> ColumnElement[str]:
    """``YYYY-MM`` of a time (UTC)."""
    if dialect_of(op) == "sqlite":
        return func.strftime("%Y-%m", column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM")


def readable(op: crmkit.Operation, entity: str) -> Any:
    """``SELECT id`` of the live records of ``entity`` the actor may read."""
    return crmkit.readable_ids_query(op, entity)


def amounts_hidden(op: crmkit.Operation) -> bool:
    """Whether a field rule hides deal amounts from the actor."""
    return "amount" in op.access.hidden_fields("deal")


def require_amounts(op: crmkit.Operation, what: str) -> None:
    """Refuse a measure made of amounts the actor may not see."""
    if amounts_hidden(op):
        raise crmkit.PermissionDenied(
            f"{what} needs deal amounts, which a field rule hides from you"
        )


def orders(
    op: crmkit.Operation,
    *,
    until: dt.datetime,
    since: dt.datetime | None = None,
    with_account: bool = False,
    name: str = "orders",
) -> CTE:
    """Every order of a customer the actor may read, as ``(contact_id, account_id, amount,
    at, source)``: won deals naming a contact (``closed_at``, the deal's amount) and, with
    the loyalty plugin, purchases (``occurred_at``, net of refunds). Deals the actor may not
    read are left out. With ``with_account``, ``account_id`` is the deal's account or the
    contact's (otherwise null: reading it costs a join)."""
    contacts = readable(op, "contact")
    no_account = literal(None, Integer)
    won = (
        select(
            DEALS.c.contact_id.label("contact_id"),
            (
                func.coalesce(DEALS.c.account_id, CONTACTS.c.account_id)
                if with_account
                else no_account
            ).label("account_id"),
            cast(func.coalesce(DEALS.c.amount, 0), Numeric(18, 2)).label("amount"),
            DEALS.c.closed_at.label("at"),
            literal_column("'deal'").label("source"),
        )
        .join(STAGES, STAGES.c.id == DEALS.c.stage_id)
        .where(
            STAGES.c.kind == "won",
            DEALS.c.deleted_at.is_(None),
            DEALS.c.closed_at.is_not(None),
            DEALS.c.closed_at < moment(until),
            DEALS.c.id.in_(readable(op, "deal")),
            DEALS.c.contact_id.in_(contacts),
        )
    )
    if with_account:
        won = won.join(CONTACTS, CONTACTS.c.id == DEALS.c.contact_id)
    if since is not None:
        won = won.where(DEALS.c.closed_at >= moment(since))
    parts: list[Any] = [won]
    if has_purchases(op):
        bought = select(
            PURCHASES.c.contact_id.label("contact_id"),
            (CONTACTS.c.account_id if with_account else no_account).label("account_id"),
            cast(
                PURCHASES.c.amount - func.coalesce(PURCHASES.c.refunded_amount, 0),
                Numeric(18, 2),
            ).label("amount"),
            PURCHASES.c.occurred_at.label("at"),
            literal_column("'purchase'").label("source"),
        ).where(
            PURCHASES.c.occurred_at < moment(until),
            PURCHASES.c.contact_id.in_(contacts),
        )
        if with_account:
            bought = bought.join(CONTACTS, CONTACTS.c.id == PURCHASES.c.contact_id)
        if since is not None:
            bought = bought.where(PURCHASES.c.occurred_at >= moment(since))
        parts.append(bought)
    if len(parts) == 1:
        return won.cte(name)
    combined: CTE = won.union_all(*parts[1:]).cte(name)
    return combined


def order_totals(
    op: crmkit.Operation,
    *,
    until: dt.datetime,
    since: dt.datetime | None = None,
    name: str = "order_totals",
) -> CTE:
    """Per customer the actor may read with at least one order: ``contact_id, last_at,
    first_at, orders, amount`` over the same orders as :func:`orders`.

    Each source is totalled on its own first (the purchases straight off the loyalty
    plugin's ``(contact_id, occurred_at)`` index, in its order, with no sort), then the few
    rows per customer are combined and the customers the actor may not read dropped: the
    same figures as totalling :func:`orders`, without sorting every order (docs/decisions.md,
    "RFM totals each source first and scores from four bounds")."""
    contacts = readable(op, "contact")
    won = select(
        DEALS.c.contact_id.label("contact_id"),
        func.max(DEALS.c.closed_at).label("last_at"),
        func.min(DEALS.c.closed_at).label("first_at"),
        func.count().label("orders"),
        func.sum(func.coalesce(DEALS.c.amount, 0)).label("amount"),
    ).join(STAGES, STAGES.c.id == DEALS.c.stage_id)
    won = won.where(
        STAGES.c.kind == "won",
        DEALS.c.deleted_at.is_(None),
        DEALS.c.contact_id.is_not(None),
        DEALS.c.closed_at.is_not(None),
        DEALS.c.closed_at < moment(until),
        DEALS.c.id.in_(readable(op, "deal")),
    )
    if since is not None:
        won = won.where(DEALS.c.closed_at >= moment(since))
    parts: list[Any] = [won.group_by(DEALS.c.contact_id)]
    if has_purchases(op):
        bought = select(
            PURCHASES.c.contact_id.label("contact_id"),
            func.max(PURCHASES.c.occurred_at).label("last_at"),
            func.min(PURCHASES.c.occurred_at).label("first_at"),
            func.count().label("orders"),
            func.sum(PURCHASES.c.amount - func.coalesce(PURCHASES.c.refunded_amount, 0)).label(
                "amount"
            ),
        ).where(PURCHASES.c.occurred_at < moment(until), PURCHASES.c.contact_id.is_not(None))
        if since is not None:
            bought = bought.where(PURCHASES.c.occurred_at >= moment(since))
        parts.append(bought.group_by(PURCHASES.c.contact_id))
    per_source = (parts[0] if len(parts) == 1 else parts[0].union_all(*parts[1:])).subquery(
        f"{name}_per_source"
    )
    return (
        select(
            per_source.c.contact_id,
            func.max(per_source.c.last_at).label("last_at"),
            func.min(per_source.c.first_at).label("first_at"),
            cast(func.sum(per_source.c.orders), Integer).label("orders"),
            cast(func.sum(per_source.c.amount), Numeric(18, 2)).label("amount"),
        )
        .where(per_source.c.contact_id.in_(contacts))
        .group_by(per_source.c.contact_id)
        .cte(name)
    )
