"""The customer measures snapshot segments filter on.

RFM scores and Pareto tiers rank each customer against all the others: not something a
segment can compute per record in an indexed look-up. So ``refresh`` computes every
customer's measures in one ``INSERT ... SELECT`` over each customer's order totals (RFM,
churn ratio, lifecycle stage: the same SQL as ``crmkit insight rfm``, ``churn`` and
``lifecycle``) and one ``UPDATE ... FROM`` of the tiers (``tiers --entity contact``) for the
whole business, as the system, and the segment measures (:func:`segment_measures`, through
the core's ``crmkit_segment_measures``) read that table by contact id. Filtering on them needs
``insight:read``; those made of amounts hide with ``deal.amount``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, delete, func, insert, literal, null, select, update

import crmkit
from crmkit_insights import customers
from crmkit_insights.models import CUSTOMER_MEASURES
from crmkit_insights.settings import settings_of
from crmkit_insights.sources import moment

LIFECYCLE_STAGES = ("first_purchase", "repeat_buyer", "advocate", "churned")


def refresh(
    crm: crmkit.CRM, *, as_of: dt.datetime | None = None, actor: crmkit.User | None = None
) -> int:
    """Recompute the snapshot (needs ``insight:write``); returns how many customers it
    holds. One transaction: readers see the old snapshot or the new one."""
    as_of = as_of or crmkit.utcnow()
    options = settings_of(crm)
    with crm.transaction(actor, write=False) as op:
        op.access.require("insight:write")
    with crm.transaction() as op:  # as the system: the snapshot is the whole business's
        # RFM, churn and lifecycle are all made of each customer's order totals: one pass
        rfm = customers.rfm_table(op, as_of=as_of, since=None)
        totals = {"orders": rfm.c.frequency, "last_at": rfm.c.last_at}
        _, _, ratio = customers.churn_ratio(op, as_of=as_of, first_at=rfm.c.first_at, **totals)
        stage = customers.lifecycle_stage(
            op,
            as_of=as_of,
            advocate_min_orders=options.advocate_min_orders,
            advocate_within_days=options.advocate_within_days,
            churned_after_days=options.churned_after_days,
            **totals,
        )
        rows = select(
            rfm.c.contact_id,
            moment(as_of),
            rfm.c.recency_days,
            rfm.c.frequency,
            rfm.c.monetary,
            rfm.c.r,
            rfm.c.f,
            rfm.c.m,
            rfm.c.segment,
            literal(options.tier_names[2]),
            case((rfm.c.frequency >= max(2, options.churn_min_orders), ratio), else_=null()),
            stage,
        )
        op.session.execute(delete(CUSTOMER_MEASURES))
        op.session.execute(
            insert(CUSTOMER_MEASURES).from_select(
                [
                    "contact_id",
                    "computed_at",
                    "recency_days",
                    "frequency",
                    "monetary",
                    "r_score",
                    "f_score",
                    "m_score",
                    "rfm_segment",
                    "pareto_tier",
                    "churn_risk",
                    "lifecycle_by_rules",
                ],
                rows,
            )
        )
        # the tiers (over their own window) by the table's key, not joined row by row: an
        # outer join to the tiers' window made SQLite scan them for every customer
        window = options.tier_window_days
        tiers = customers.tier_table(
            op,
            entity="contact",
            as_of=as_of,
            since=as_of - dt.timedelta(days=window) if window else None,
            cuts=options.tier_cuts,
            names=options.tier_names,
        )
        op.session.execute(
            update(CUSTOMER_MEASURES)
            .values(pareto_tier=tiers.c.tier)
            .where(
                CUSTOMER_MEASURES.c.contact_id == tiers.c.id,
                tiers.c.tier != options.tier_names[2],
            )
        )
        count = op.session.scalar(select(func.count()).select_from(CUSTOMER_MEASURES))
    return int(count or 0)


def _column(name: str) -> Any:
    def expression(context: crmkit.MeasureContext) -> Any:
        return (
            select(CUSTOMER_MEASURES.c[name])
            .where(CUSTOMER_MEASURES.c.contact_id == context.model.id)
            .scalar_subquery()
        )

    return expression


def segment_measures(crm: crmkit.CRM) -> list[crmkit.SegmentMeasure]:
    """The contact measures segments may filter on, from the snapshot."""
    names = settings_of(crm).tier_names
    money = ("deal.amount",)
    number = crmkit.FieldType.NUMBER
    choice = crmkit.FieldType.CHOICE

    def measure(name: str, kind: Any, label: str, **more: Any) -> crmkit.SegmentMeasure:
        return crmkit.SegmentMeasure(
            "contact",
            name,
            _column(name),
            type=kind,
            label=label,
            description=f"{label}, as of the last 'crmkit insight refresh'",
            permission="insight:read",
            **more,
        )

    return [
        measure(
            "rfm_segment", choice, "RFM segment", choices=customers.SEGMENTS, hidden_with=money
        ),
        measure("r_score", number, "Recency score (1-5)"),
        measure("f_score", number, "Frequency score (1-5)"),
        measure("m_score", number, "Monetary score (1-5)", hidden_with=money),
        measure(
            "pareto_tier", choice, "Value tier by the Pareto cut", choices=names, hidden_with=money
        ),
        measure(
            "churn_risk",
            crmkit.FieldType.DECIMAL,
            "Days since the last order over the usual interval",
        ),
        measure(
            "lifecycle_by_rules", choice, "Lifecycle stage by the rules", choices=LIFECYCLE_STAGES
        ),
    ]
