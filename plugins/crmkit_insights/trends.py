"""Purchase trends over a period: orders and revenue by month, by product category (the
loyalty purchases' items) or by region (the customer's region, else their account's, else
their city)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Numeric, cast, func, literal, select

import crmkit
from crmkit_insights.periods import Period
from crmkit_insights.sources import (
    ACCOUNTS,
    CONTACTS,
    PURCHASES,
    dialect_of,
    has_purchases,
    moment,
    month_of,
    orders,
    readable,
)

#: What a trend may be split by.
TREND_DIMENSIONS = ("month", "category", "region")
UNKNOWN = "(unknown)"


def compute_trend(op: crmkit.Operation, *, by: str, period: Period) -> list[dict[str, Any]]:
    """``[{"key", "orders", "revenue"}]`` for the period, by month (in order) or by category
    or region (largest revenue first)."""
    if by not in TREND_DIMENSIONS:
        raise crmkit.ValidationError(
            [crmkit.FieldError("by", f"{by[:40]!r} is not one of {', '.join(TREND_DIMENSIONS)}")]
        )
    if by == "category":
        return _by_category(op, period)
    source = orders(op, until=period.end, since=period.start)
    if by == "month":
        key: Any = month_of(op, source.c.at)
        query = select(key.label("key"), func.count(), func.sum(source.c.amount)).group_by(key)
        query = query.order_by(key)
    else:
        key = func.coalesce(CONTACTS.c.region, ACCOUNTS.c.region, CONTACTS.c.city, UNKNOWN)
        query = (
            select(key.label("key"), func.count(), func.sum(source.c.amount))
            .select_from(source)
            .join(CONTACTS, CONTACTS.c.id == source.c.contact_id)
            .outerjoin(ACCOUNTS, ACCOUNTS.c.id == CONTACTS.c.account_id)
            .group_by(key)
            .order_by(func.sum(source.c.amount).desc(), key)
        )
    return [
        {"key": str(k), "orders": int(n), "revenue": float(amount or 0)}
        for k, n, amount in op.session.execute(query)
    ]


def _by_category(op: crmkit.Operation, period: Period) -> list[dict[str, Any]]:
    """Item lines of the loyalty purchases, by their category (only purchases have items)."""
    if not has_purchases(op):
        raise crmkit.ValidationError(
            [
                crmkit.FieldError(
                    "by",
                    "trends by category read the loyalty plugin's purchases:"
                    " enable it with 'crmkit plugins enable loyalty'",
                )
            ]
        )
    if dialect_of(op) == "sqlite":
        lines: Any = func.json_each(PURCHASES.c["items"]).table_valued("value")
        category: Any = func.json_extract(lines.c.value, "$.category")
        amount: Any = func.json_extract(lines.c.value, "$.amount")
    else:
        lines = func.json_array_elements(PURCHASES.c["items"]).table_valued("value")
        category = lines.c.value.op("->>")(literal("category"))
        amount = lines.c.value.op("->>")(literal("amount"))
    key = func.coalesce(category, UNKNOWN)
    revenue = func.sum(cast(amount, Numeric(18, 2)))
    query = (
        select(key.label("key"), func.count(func.distinct(PURCHASES.c.id)), revenue)
        .select_from(PURCHASES)
        .join(lines, literal(True))
        .where(
            PURCHASES.c.occurred_at >= moment(period.start),
            PURCHASES.c.occurred_at < moment(period.end),
            PURCHASES.c.contact_id.in_(readable(op, "contact")),
        )
        .group_by(key)
        .order_by(revenue.desc(), key)
    )
    return [
        {"key": str(k), "orders": int(n), "revenue": float(total or 0)}
        for k, n, total in op.session.execute(query)
    ]
