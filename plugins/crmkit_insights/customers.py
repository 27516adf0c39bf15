"""Customer measures in SQL: RFM with quintile scores and named segments, value tiers from
the Pareto cut, churn risk against each customer's own rhythm, and lifecycle stages by rule.

A customer is a contact; its orders are :func:`crmkit_insights.sources.orders` (won deals
naming it, and loyalty purchases when the loyalty plugin is enabled). Every statement reads
only what the actor may read; scores are quintiles of the rank
(``1 + 5 * (RANK() - 1) / customers``, window functions), so equal values share a score.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.sql.selectable import CTE

import crmkit
from crmkit_insights.sources import (
    ACCOUNTS,
    CONTACTS,
    days_between,
    moment,
    order_totals,
    orders,
    readable,
)

#: The named RFM segments, from the usual R×F grid (R and F quintile scores, 5 = best).
SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "cant_lose",
    "at_risk",
    "hibernating",
    "lost",
)
#: Which entities value tiers can be computed for.
TIER_ENTITIES = ("account", "contact")


def segment_of(r: int, f: int) -> str:
    """The named segment of R and F scores 1-5 (the usual R×F grid; every pair has one)."""
    rules = (
        ("champions", r == 5 and f >= 4),
        ("loyal", r in (3, 4) and f >= 4),
        ("potential_loyalists", r >= 4 and f in (2, 3)),
        ("new_customers", r == 5 and f == 1),
        ("promising", r == 4 and f == 1),
        ("need_attention", r == 3 and f == 3),
        ("about_to_sleep", r == 3 and f <= 2),
        ("cant_lose", r <= 2 and f == 5),
        ("at_risk", r <= 2 and f >= 3),
        ("lost", r == 1 and f == 1),
    )
    return next((name for name, matches in rules if matches), "hibernating")


def _segment(r: Any, f: Any) -> Any:
    """The named segment of R and F scores in SQL: one lookup of ``10 * r + f`` in the 25
    cells of the grid (a simple ``CASE``, so the scores are computed once per row)."""
    cells = {
        10 * r_score + f_score: segment_of(r_score, f_score)
        for r_score in range(1, 6)
        for f_score in range(1, 6)
    }
    return case(cells, value=10 * r + f, else_="hibernating")


def _quintile_bounds(column: Any, customers: CTE, name: str) -> Any:
    """One row ``b2, b3, b4, b5``: the smallest ``column`` value a customer must exceed to
    score at least 2, 3, 4, 5 (the value at 1-based position ``ceil((k - 1) * n / 5)`` of
    the ``n`` values in order). Read off the column's histogram: how many customers hold
    each value, counted up in value order; the value at a position is the first whose
    running count reaches it. Grouping sorts only the distinct values, where numbering
    every customer's row sorted and numbered all of them (docs/decisions.md)."""
    histogram = (
        select(column.label("value"), func.count().label("holders"))
        .group_by(column)
        .subquery(f"{name}_histogram")
    )
    running = select(
        histogram.c.value,
        func.sum(histogram.c.holders).over(order_by=histogram.c.value).label("upto"),
    ).subquery(f"{name}_running")
    count = customers.c.customers

    def bound(score: int) -> Any:
        position = ((score - 1) * count + 4) // 5
        return func.min(case((running.c.upto >= position, running.c.value))).label(f"b{score}")

    # MATERIALIZED: computed once; inlined, PostgreSQL may rerun it for every customer row
    return (
        select(*(bound(score) for score in (2, 3, 4, 5)))
        .select_from(running)
        .join(customers, true())
        .cte(name)
        .prefix_with("MATERIALIZED")
    )


def _quintile(column: Any, bounds: Any) -> Any:
    """1-5: one more for each bound ``column`` exceeds, which is
    ``1 + 5 * (RANK() OVER (ORDER BY column) - 1) / COUNT(*) OVER ()`` (integer division:
    the largest fifth scores 5 and ties share their lowest score) without ranking every
    row (docs/decisions.md, "RFM totals each source first and scores from four bounds")."""
    exceeded = [case((column > bounds.c[f"b{score}"], 1), else_=0) for score in (2, 3, 4, 5)]
    return 1 + functools.reduce(operator.add, exceeded)


def rfm_table(op: crmkit.Operation, *, as_of: dt.datetime, since: dt.datetime | None) -> CTE:
    """Per customer with at least one order: ``contact_id, last_at, first_at, frequency,
    monetary, recency_days, r, f, m, segment``."""
    per = order_totals(op, until=as_of, since=since, name="per_customer")
    customers = select(func.count().label("customers")).select_from(per).cte("customers")
    recent = _quintile_bounds(per.c.last_at, customers, "r_bounds")
    often = _quintile_bounds(per.c.orders, customers, "f_bounds")
    spent = _quintile_bounds(per.c.amount, customers, "m_bounds")
    scored = (
        select(
            per.c.contact_id,
            per.c.last_at,
            per.c.first_at,
            per.c.orders.label("frequency"),
            per.c.amount.label("monetary"),
            days_between(op, moment(as_of), per.c.last_at).label("recency_days"),
            _quintile(per.c.last_at, recent).label("r"),
            _quintile(per.c.orders, often).label("f"),
            _quintile(per.c.amount, spent).label("m"),
        )
        .select_from(per)
        .join(recent, true())
        .join(often, true())
        .join(spent, true())
        .cte("scored")
    )
    return select(scored, _segment(scored.c.r, scored.c.f).label("segment")).cte("rfm")


def rfm_rows(
    op: crmkit.Operation,
    *,
    as_of: dt.datetime,
    since: dt.datetime | None,
    segment: str | None = None,
    after: int = 0,
    limit: int | None = None,
) -> Any:
    """The customers' RFM rows ordered by contact id (from ``after``, at most ``limit``),
    streamed: ``contact_id, recency_days, frequency, monetary, r, f, m, segment``, as the
    driver gives them (``monetary`` a float).

    Run on the session's connection, not through the session: every value is a plain
    number or text, so the ORM's row loading and the ``Numeric`` column's conversion of each
    amount to a ``Decimal`` are skipped (2.4 s of 10 s at 843 k customers on SQLite,
    docs/benchmarks.md)."""
    rfm = rfm_table(op, as_of=as_of, since=since)
    query = select(
        rfm.c.contact_id,
        rfm.c.recency_days,
        rfm.c.frequency,
        type_coerce(rfm.c.monetary, Float).label("monetary"),
        rfm.c.r,
        rfm.c.f,
        rfm.c.m,
        rfm.c.segment,
    ).where(rfm.c.contact_id > after)
    if segment is not None:
        query = query.where(rfm.c.segment == segment)
    query = query.order_by(rfm.c.contact_id)
    if limit is not None:
        query = query.limit(limit)
    connection = op.session.connection()
    return connection.execution_options(stream_results=True, max_row_buffer=10_000).execute(query)


def rfm_summary(
    op: crmkit.Operation, *, as_of: dt.datetime, since: dt.datetime | None
) -> list[dict[str, Any]]:
    """Per named segment: customers, their share, revenue, mean recency and frequency."""
    rfm = rfm_table(op, as_of=as_of, since=since)
    rows = op.session.execute(
        select(
            rfm.c.segment,
            func.count(),
            func.sum(rfm.c.monetary),
            func.avg(rfm.c.recency_days),
            func.avg(cast(rfm.c.frequency, Float)),
        ).group_by(rfm.c.segment)
    ).all()
    total = sum(int(row[1]) for row in rows) or 1
    found = {row[0]: row for row in rows}
    summary = []
    for name in SEGMENTS:
        row = found.get(name)
        summary.append(
            {
                "segment": name,
                "customers": int(row[1]) if row else 0,
                "share": round(int(row[1]) / total, 4) if row else 0.0,
                "monetary": float(row[2] or 0) if row else 0.0,
                "mean_recency_days": round(float(row[3]), 1)
                if row and row[3] is not None
                else None,
                "mean_frequency": round(float(row[4]), 2) if row and row[4] is not None else None,
            }
        )
    return summary


def tier_table(
    op: crmkit.Operation,
    *,
    entity: str,
    as_of: dt.datetime,
    since: dt.datetime | None,
    cuts: tuple[float, float],
    names: tuple[str, str, str],
) -> CTE:
    """Per ``entity`` record with revenue: ``id, revenue, cumulative_share, tier``. The first
    tier holds the records that make the first ``cuts[0]`` of revenue (the largest first: a
    record is in it when the revenue before it is under the cut), the second those up to
    ``cuts[1]``, the third the rest."""
    source = orders(
        op, until=as_of, since=since, with_account=entity == "account", name="tier_orders"
    )
    key = source.c.account_id if entity == "account" else source.c.contact_id
    revenue = (
        select(key.label("id"), func.sum(source.c.amount).label("revenue"))
        .where(key.is_not(None), key.in_(readable(op, entity)))
        .group_by(key)
        .having(func.sum(source.c.amount) > 0)
        .cte("revenue")
    )
    running = func.sum(revenue.c.revenue).over(order_by=(revenue.c.revenue.desc(), revenue.c.id))
    total = func.sum(revenue.c.revenue).over()
    ranked = select(
        revenue.c.id,
        revenue.c.revenue,
        (running - revenue.c.revenue).label("before"),
        running.label("running"),
        total.label("total"),
    ).cte("ranked")
    return select(
        ranked.c.id,
        ranked.c.revenue,
        (cast(ranked.c.running, Float) / cast(ranked.c.total, Float)).label("cumulative_share"),
        case(
            (ranked.c.before < ranked.c.total * cuts[0], names[0]),
            (ranked.c.before < ranked.c.total * cuts[1], names[1]),
            else_=names[2],
        ).label("tier"),
    ).cte("tiers")


def tier_changes(
    op: crmkit.Operation,
    *,
    entity: str,
    as_of: dt.datetime,
    since: dt.datetime | None,
    cuts: tuple[float, float],
    names: tuple[str, str, str],
) -> list[tuple[int, str | None, str]]:
    """``(id, current value_tier, computed tier)`` of every readable ``entity`` record whose
    tier would change (records without revenue get the last tier)."""
    tiers = tier_table(op, entity=entity, as_of=as_of, since=since, cuts=cuts, names=names)
    table = ACCOUNTS if entity == "account" else CONTACTS
    computed = func.coalesce(tiers.c.tier, names[2])
    query = (
        select(table.c.id, table.c.value_tier, computed)
        .outerjoin(tiers, tiers.c.id == table.c.id)
        .where(table.c.id.in_(readable(op, entity)))
        .where(or_(table.c.value_tier.is_(None), table.c.value_tier != computed))
        .order_by(table.c.id)
    )
    return [(int(i), current, str(tier)) for i, current, tier in op.session.execute(query)]


def churn_ratio(
    op: crmkit.Operation, *, as_of: dt.datetime, orders: Any, first_at: Any, last_at: Any
) -> tuple[Any, Any, Any]:
    """``(usual_days, gap_days, ratio)`` of a customer's totals: the mean gap between their
    orders, the days since the last one, and gap / usual (null when all orders fell on one
    moment, or with fewer than two orders)."""
    usual = days_between(op, last_at, first_at) / case((orders > 1, orders - 1), else_=null())
    gap = days_between(op, moment(as_of), last_at)
    return usual, gap, case((usual > 0, gap / usual), else_=null())


def churn_table(op: crmkit.Operation, *, as_of: dt.datetime, min_orders: int) -> CTE:
    """Per customer with at least ``min_orders`` orders: ``contact_id, orders, last_at,
    usual_days`` (the mean gap between their orders), ``gap_days`` (since the last one) and
    ``ratio`` (gap / usual; null when all orders fell on one moment)."""
    per = order_totals(op, until=as_of, name="rhythm")
    usual, gap, ratio = churn_ratio(
        op, as_of=as_of, orders=per.c.orders, first_at=per.c.first_at, last_at=per.c.last_at
    )
    return (
        select(
            per.c.contact_id,
            per.c.orders,
            per.c.last_at,
            usual.label("usual_days"),
            gap.label("gap_days"),
            ratio.label("ratio"),
        )
        .where(per.c.orders >= max(2, min_orders))
        .cte("churn")
    )


def lifecycle_stage(
    op: crmkit.Operation,
    *,
    as_of: dt.datetime,
    orders: Any,
    last_at: Any,
    advocate_min_orders: int,
    advocate_within_days: int,
    churned_after_days: int,
) -> Any:
    """The lifecycle stage of a customer's totals by the rules (first match wins): no order
    for ``churned_after_days`` → churned; at least ``advocate_min_orders`` orders and one
    within ``advocate_within_days`` → advocate; two or more → repeat_buyer; one →
    first_purchase."""
    recency = days_between(op, moment(as_of), last_at)
    return case(
        (recency > churned_after_days, literal("churned")),
        (
            and_(orders >= advocate_min_orders, recency <= advocate_within_days),
            literal("advocate"),
        ),
        (orders >= 2, literal("repeat_buyer")),
        else_=literal("first_purchase"),
    )


def lifecycle_table(
    op: crmkit.Operation,
    *,
    as_of: dt.datetime,
    advocate_min_orders: int,
    advocate_within_days: int,
    churned_after_days: int,
) -> CTE:
    """Per customer with an order: ``contact_id, stage`` by :func:`lifecycle_stage`.
    Customers without orders are not listed (they stay as they are)."""
    per = order_totals(op, until=as_of, name="bought")
    stage = lifecycle_stage(
        op,
        as_of=as_of,
        orders=per.c.orders,
        last_at=per.c.last_at,
        advocate_min_orders=advocate_min_orders,
        advocate_within_days=advocate_within_days,
        churned_after_days=churned_after_days,
    )
    return select(per.c.contact_id, stage.label("stage")).cte("lifecycle")


def lifecycle_changes(op: crmkit.Operation, lifecycle: CTE) -> list[tuple[int, str, str]]:
    """``(contact id, current stage, stage by the rules)`` where they differ."""
    query = (
        select(CONTACTS.c.id, CONTACTS.c.lifecycle_stage, lifecycle.c.stage)
        .join(lifecycle, lifecycle.c.contact_id == CONTACTS.c.id)
        .where(CONTACTS.c.lifecycle_stage != lifecycle.c.stage)
        .order_by(CONTACTS.c.id)
    )
    return [(int(i), str(now), str(new)) for i, now, new in op.session.execute(query)]
