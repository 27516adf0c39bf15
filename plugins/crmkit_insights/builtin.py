"""The plugin's own measures and charts, registered like any other plugin's."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

import crmkit
from crmkit_insights import customers
from crmkit_insights.registry import Chart, ChartData, Measure
from crmkit_insights.settings import settings_of
from crmkit_insights.sources import ACCOUNTS, CONTACTS, readable, require_amounts

SEGMENT_LABELS = {
    "champions": "冠军 champions",
    "loyal": "忠诚 loyal",
    "potential_loyalists": "潜力 potential",
    "new_customers": "新客 new",
    "promising": "有望 promising",
    "need_attention": "需关注 attention",
    "about_to_sleep": "将沉睡 sleepy",
    "cant_lose": "不能失去 can't lose",
    "at_risk": "流失风险 at risk",
    "hibernating": "沉睡 hibernating",
    "lost": "流失 lost",
}


def _rfm_column(column: str) -> Any:
    def query(op: crmkit.Operation, as_of: dt.datetime) -> Any:
        require_amounts(op, "RFM")
        rfm = customers.rfm_table(op, as_of=as_of, since=None)
        return select(rfm.c.contact_id, rfm.c[column])

    return query


def builtin_measures(crm: crmkit.CRM) -> list[Measure]:
    """rfm_segment, r_score, f_score, m_score, pareto_tier, churn_risk, lifecycle_by_rules."""
    options = settings_of(crm)

    def value_tier(op: crmkit.Operation, as_of: dt.datetime) -> Any:
        require_amounts(op, "value tiers")
        window = options.tier_window_days
        tiers = customers.tier_table(
            op,
            entity=options.tier_entity,
            as_of=as_of,
            since=as_of - dt.timedelta(days=window) if window else None,
            cuts=options.tier_cuts,
            names=options.tier_names,
        )
        table = ACCOUNTS if options.tier_entity == "account" else CONTACTS
        return (
            select(table.c.id, func.coalesce(tiers.c.tier, options.tier_names[2]))
            .outerjoin(tiers, tiers.c.id == table.c.id)
            .where(table.c.id.in_(readable(op, options.tier_entity)))
        )

    def churn_risk(op: crmkit.Operation, as_of: dt.datetime) -> Any:
        churn = customers.churn_table(op, as_of=as_of, min_orders=options.churn_min_orders)
        return select(churn.c.contact_id, churn.c.ratio).where(churn.c.ratio.is_not(None))

    def lifecycle_stage(op: crmkit.Operation, as_of: dt.datetime) -> Any:
        table = customers.lifecycle_table(
            op,
            as_of=as_of,
            advocate_min_orders=options.advocate_min_orders,
            advocate_within_days=options.advocate_within_days,
            churned_after_days=options.churned_after_days,
        )
        return select(table.c.contact_id, table.c.stage)

    return [
        Measure(
            "rfm_segment",
            "contact",
            "text",
            "The named RFM segment (champions ... lost)",
            _rfm_column("segment"),
        ),
        Measure(
            "r_score", "contact", "integer", "Recency quintile, 5 = most recent", _rfm_column("r")
        ),
        Measure(
            "f_score", "contact", "integer", "Frequency quintile, 5 = most orders", _rfm_column("f")
        ),
        Measure(
            "m_score", "contact", "integer", "Monetary quintile, 5 = most revenue", _rfm_column("m")
        ),
        Measure(
            "pareto_tier",
            options.tier_entity,
            "text",
            "The Pareto value tier by revenue (A: the customers making the first 80 %)",
            value_tier,
        ),
        Measure(
            "churn_risk",
            "contact",
            "number",
            "Days since the last order over the customer's usual interval (3 = three"
            " times overdue)",
            churn_risk,
        ),
        Measure(
            "lifecycle_by_rules",
            "contact",
            "text",
            "The lifecycle stage the rules give (first_purchase ... advocate, churned)",
            lifecycle_stage,
        ),
    ]


def _funnel_chart(
    crm: crmkit.CRM, actor: crmkit.User | None, options: Mapping[str, str]
) -> ChartData:
    from crmkit_insights import service

    funnel = service.funnel(
        crm, pipeline=options.get("pipeline"), period=options.get("period"), actor=actor
    )
    stages = [s for s in next(iter(funnel.groups.values())) if s.kind != "lost"]
    return ChartData(
        title=f"{funnel.pipeline} · {funnel.period.label}",
        kind="funnel",
        labels=[s.stage for s in stages],
        series=[("reached", [s.reached for s in stages])],
        x_label="deals",
    )


def _rfm_chart(crm: crmkit.CRM, actor: crmkit.User | None, options: Mapping[str, str]) -> ChartData:
    from crmkit_insights import service

    summary = service.rfm_summary(crm, as_of=options.get("as_of"), actor=actor)
    rows = summary["segments"]
    return ChartData(
        title="RFM 客户分群",
        kind="barh",
        labels=[SEGMENT_LABELS[row["segment"]] for row in rows],
        series=[("customers", [row["customers"] for row in rows])],
        x_label="customers",
    )


def _trend_chart(
    crm: crmkit.CRM, actor: crmkit.User | None, options: Mapping[str, str]
) -> ChartData:
    from crmkit_insights import service

    by = options.get("by", "month")
    result = service.trend(crm, by=by, period=options.get("period"), actor=actor)
    rows = result["rows"]
    return ChartData(
        title=f"销售趋势 revenue by {by} · {result['period']['label']}",
        kind="line" if by == "month" else "bar",
        labels=[row["key"] for row in rows],
        series=[("revenue", [row["revenue"] for row in rows])],
        y_label="revenue",
    )


def _tiers_chart(
    crm: crmkit.CRM, actor: crmkit.User | None, options: Mapping[str, str]
) -> ChartData:
    from crmkit_insights import service

    result = service.tiers(crm, entity=options.get("entity"), actor=actor)
    return ChartData(
        title=f"价值分层 value tiers ({result['entity']})",
        kind="bar",
        labels=[row["tier"] for row in result["tiers"]],
        series=[
            ("revenue", [row["revenue"] for row in result["tiers"]]),
        ],
        y_label="revenue",
    )


def builtin_charts() -> list[Chart]:
    """funnel, rfm, trend, tiers."""
    return [
        Chart("funnel", "Deals reaching each stage (options: pipeline, period)", _funnel_chart),
        Chart("rfm", "Customers per RFM segment (options: as_of)", _rfm_chart),
        Chart("trend", "Revenue by month, category or region (options: by, period)", _trend_chart),
        Chart("tiers", "Revenue per value tier (options: entity)", _tiers_chart),
    ]
