"""What users do with insight: the one path for the CLI, the API and the worker.

Reads need ``insight:read`` and see only what the actor may read (every statement filters
by the actor's read scopes); writing value tiers or lifecycle stages needs ``insight:write``
and goes through the core's record service (the actor's update rights, audit, events), all
of it in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import func, select

import crmkit
from crmkit_insights import customers, registry
from crmkit_insights.funnel import Funnel, compute_funnel, resolve_pipeline
from crmkit_insights.periods import Period, parse_moment, parse_period
from crmkit_insights.settings import settings_of
from crmkit_insights.sources import (
    DEALS,
    STAGES,
    days_between,
    moment,
    readable,
    require_amounts,
)
from crmkit_insights.trends import compute_trend

READ = "insight:read"
WRITE = "insight:write"
#: The most rows one page of customers, idle deals or a measure returns.
MAX_LIMIT = 10_000


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise crmkit.ValidationError(
            [crmkit.FieldError("limit", f"must be between 1 and {MAX_LIMIT}")]
        )
    return limit


def _as_of(as_of: dt.datetime | str | None) -> dt.datetime:
    if isinstance(as_of, str):
        as_of = parse_moment(as_of)
    if as_of is None:
        return crmkit.utcnow()
    if as_of.tzinfo is None:
        raise crmkit.ValidationError([crmkit.FieldError("as_of", "needs a time zone")])
    return as_of


def _period(period: Period | str | None) -> Period:
    return period if isinstance(period, Period) else parse_period(period)


def funnel(
    crm: crmkit.CRM,
    *,
    pipeline: str | int | None = None,
    period: Period | str | None = None,
    by: str = "none",
    idle_days: int | None = None,
    actor: crmkit.User | None = None,
) -> Funnel:
    """The funnel of a pipeline (default: the default pipeline) over a period (default: this
    year), optionally per ``owner`` or ``team``."""
    chosen = _period(period)
    days = settings_of(crm).idle_days if idle_days is None else idle_days
    with crm.transaction(actor, write=False) as op:
        op.access.require(READ)
        return compute_funnel(op, pipeline=pipeline, period=chosen, by=by, idle_days=days)


def idle_deals(
    crm: crmkit.CRM,
    *,
    pipeline: str | int | None = None,
    idle_days: int | None = None,
    limit: int = 100,
    actor: crmkit.User | None = None,
) -> list[dict[str, Any]]:
    """Open deals of a pipeline with no stage change for ``idle_days``, the longest idle
    first: id, name, stage, owner, days idle and amount (fields hidden from the actor are
    ``None``)."""
    _limit(limit)
    days = settings_of(crm).idle_days if idle_days is None else idle_days
    if days < 0:
        raise crmkit.ValidationError([crmkit.FieldError("idle_days", "must be 0 or more")])
    now = crmkit.utcnow()
    with crm.transaction(actor, write=False) as op:
        op.access.require(READ)
        row = resolve_pipeline(op, pipeline)
        hidden = op.access.hidden_fields("deal")
        users: Any = crmkit.User.__table__
        idle = days_between(op, moment(now), DEALS.c.stage_changed_at)
        query = (
            select(DEALS.c.id, DEALS.c.name, STAGES.c.name, users.c.username, idle, DEALS.c.amount)
            .join(STAGES, STAGES.c.id == DEALS.c.stage_id)
            .outerjoin(users, users.c.id == DEALS.c.owner_id)
            .where(
                DEALS.c.pipeline_id == row.id,
                STAGES.c.kind == "open",
                DEALS.c.deleted_at.is_(None),
                DEALS.c.stage_changed_at < moment(now - dt.timedelta(days=days)),
                DEALS.c.id.in_(readable(op, "deal")),
            )
            .order_by(DEALS.c.stage_changed_at, DEALS.c.id)
            .limit(limit)
        )
        return [
            {
                "id": deal_id,
                "name": None if "name" in hidden else name,
                "stage": stage,
                "owner": None if "owner_id" in hidden else owner,
                "idle_days": round(float(idle_for), 1),
                "amount": None if "amount" in hidden or amount is None else float(amount),
            }
            for deal_id, name, stage, owner, idle_for, amount in op.session.execute(query)
        ]


def _since(as_of: dt.datetime, since: dt.datetime | str | None) -> dt.datetime | None:
    if isinstance(since, str):
        since = parse_moment(since, "since")
    if since is not None and since >= as_of:
        raise crmkit.ValidationError([crmkit.FieldError("since", "must be before as_of")])
    return since


def rfm_summary(
    crm: crmkit.CRM,
    *,
    as_of: dt.datetime | str | None = None,
    since: dt.datetime | str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Customers per named RFM segment (with their revenue, mean recency and frequency)."""
    moment_ = _as_of(as_of)
    start = _since(moment_, since)
    with crm.transaction(actor, write=False) as op:
        op.access.require(READ)
        require_amounts(op, "RFM")
        rows = customers.rfm_summary(op, as_of=moment_, since=start)
    return {
        "as_of": moment_.isoformat(),
        "since": start.isoformat() if start else None,
        "customers": sum(row["customers"] for row in rows),
        "segments": rows,
    }


#: "RFM" score text of each (r, f, m).
_SCORES = {(r, f, m): f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}


def _rfm_row(row: Any) -> dict[str, Any]:
    # per customer: the statement types every value (ids, counts and scores are integers,
    # the segment text), so only the two measures the engines spell differently are converted
    contact_id, recency, frequency, monetary, r, f, m, segment = row
    return {
        "contact_id": contact_id,
        "recency_days": round(float(recency), 2),
        "frequency": frequency,
        "monetary": float(monetary or 0),
        "r": r,
        "f": f,
        "m": m,
        "score": _SCORES[r, f, m],
        "segment": segment,
    }


def rfm_customers(
    crm: crmkit.CRM,
    *,
    as_of: dt.datetime | str | None = None,
    since: dt.datetime | str | None = None,
    segment: str | None = None,
    after: int = 0,
    limit: int = 100,
    actor: crmkit.User | None = None,
) -> list[dict[str, Any]]:
    """A page of customers' RFM (by contact id, after ``after``), optionally one segment."""
    _limit(limit)
    return list(
        iter_rfm(
            crm, as_of=as_of, since=since, segment=segment, after=after, limit=limit, actor=actor
        )
    )


def iter_rfm(
    crm: crmkit.CRM,
    *,
    as_of: dt.datetime | str | None = None,
    since: dt.datetime | str | None = None,
    segment: str | None = None,
    after: int = 0,
    limit: int | None = None,
    actor: crmkit.User | None = None,
) -> Iterator[dict[str, Any]]:
    """Every customer's RFM by contact id, streamed from the database (constant memory)."""
    if segment is not None and segment not in customers.SEGMENTS:
        raise crmkit.ValidationError(
            [
                crmkit.FieldError(
                    "segment", f"{segment[:40]!r} is not one of {', '.join(customers.SEGMENTS)}"
                )
            ]
        )
    moment_ = _as_of(as_of)
    start = _since(moment_, since)
    with crm.transaction(actor, write=False) as op:
        op.access.require(READ)
        require_amounts(op, "RFM")
        rows = customers.rfm_rows(
            op, as_of=moment_, since=start, segment=segment, after=after, limit=limit
        )
        for row in rows:
            yield _rfm_row(row)


def _tier_window(crm: crmkit.CRM, as_of: dt.datetime) -> dt.datetime | None:
    days = settings_of(crm).tier_window_days
    return as_of - dt.timedelta(days=days) if days else None


def tiers(
    crm: crmkit.CRM,
    *,
    entity: str | None = None,
    write: bool = False,
    as_of: dt.datetime | str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Value tiers by the Pareto cut: per tier, how many records and their revenue, and how
    many records' ``value_tier`` would change; with ``write`` those are written (one
    transaction, through the record service: needs ``insight:write`` and the update right)."""
    options = settings_of(crm)
    target = entity or options.tier_entity
    if target not in customers.TIER_ENTITIES:
        raise crmkit.ValidationError(
            [
                crmkit.FieldError(
                    "entity", f"{target[:40]!r} is not one of {', '.join(customers.TIER_ENTITIES)}"
                )
            ]
        )
    moment_ = _as_of(as_of)
    window = _tier_window(crm, moment_)
    cuts, names = options.tier_cuts, options.tier_names
    with crm.transaction(actor, write=write) as op:
        op.access.require(WRITE if write else READ)
        require_amounts(op, "value tiers")
        table = customers.tier_table(
            op, entity=target, as_of=moment_, since=window, cuts=cuts, names=names
        )
        counted = {
            tier: (int(n), float(total or 0))
            for tier, n, total in op.session.execute(
                select(table.c.tier, func.count(), func.sum(table.c.revenue)).group_by(table.c.tier)
            )
        }
        changes = customers.tier_changes(
            op, entity=target, as_of=moment_, since=window, cuts=cuts, names=names
        )
        if write:
            service = crm.records(target, op=op)
            for record_id, _, tier in changes:
                service.update(record_id, {"value_tier": tier})
    revenue = sum(total for _, total in counted.values()) or 0.0
    return {
        "entity": target,
        "as_of": moment_.isoformat(),
        "since": window.isoformat() if window else None,
        "tiers": [
            {
                "tier": name,
                "records": counted.get(name, (0, 0.0))[0],
                "revenue": counted.get(name, (0, 0.0))[1],
                "share": round(counted.get(name, (0, 0.0))[1] / revenue, 4) if revenue else 0.0,
            }
            for name in options.tier_names
        ],
        "changes": len(changes),
        "written": len(changes) if write else 0,
    }


def churn(
    crm: crmkit.CRM,
    *,
    as_of: dt.datetime | str | None = None,
    factor: float | None = None,
    limit: int = 100,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Customers whose gap since their last order is at least ``factor`` times their usual
    interval, the most overdue first."""
    _limit(limit)
    options = settings_of(crm)
    threshold = options.churn_factor if factor is None else factor
    if not threshold > 1:
        raise crmkit.ValidationError([crmkit.FieldError("factor", "must be more than 1")])
    moment_ = _as_of(as_of)
    with crm.transaction(actor, write=False) as op:
        op.access.require(READ)
        table = customers.churn_table(op, as_of=moment_, min_orders=options.churn_min_orders)
        at_risk = table.c.ratio >= threshold
        total = op.session.scalar(select(func.count()).select_from(table).where(at_risk))
        rows = op.session.execute(
            select(
                table.c.contact_id,
                table.c.orders,
                table.c.usual_days,
                table.c.gap_days,
                table.c.ratio,
            )
            .where(at_risk)
            .order_by(table.c.ratio.desc(), table.c.contact_id)
            .limit(limit)
        ).all()
    return {
        "as_of": moment_.isoformat(),
        "factor": threshold,
        "at_risk": int(total or 0),
        "customers": [
            {
                "contact_id": int(contact_id),
                "orders": int(orders),
                "usual_days": round(float(usual), 1),
                "gap_days": round(float(gap), 1),
                "ratio": round(float(ratio), 2),
            }
            for contact_id, orders, usual, gap, ratio in rows
        ],
    }


def lifecycle(
    crm: crmkit.CRM,
    *,
    write: bool = False,
    as_of: dt.datetime | str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """The contacts whose lifecycle stage the rules would move, counted per move
    (``"prospect → first_purchase": 3``); with ``write`` the moves are made."""
    options = settings_of(crm)
    moment_ = _as_of(as_of)
    with crm.transaction(actor, write=write) as op:
        op.access.require(WRITE if write else READ)
        table = customers.lifecycle_table(
            op,
            as_of=moment_,
            advocate_min_orders=options.advocate_min_orders,
            advocate_within_days=options.advocate_within_days,
            churned_after_days=options.churned_after_days,
        )
        changes = customers.lifecycle_changes(op, table)
        if write:
            service = crm.records("contact", op=op)
            for contact_id, _, stage in changes:
                service.update(contact_id, {"lifecycle_stage": stage})
    moves: dict[str, int] = {}
    for _, before, after in changes:
        key = f"{before} → {after}"
        moves[key] = moves.get(key, 0) + 1
    return {
        "as_of": moment_.isoformat(),
        "changes": len(changes),
        "written": len(changes) if write else 0,
        "moves": dict(sorted(moves.items())),
    }


def trend(
    crm: crmkit.CRM,
    *,
    by: str = "month",
    period: Period | str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Orders and revenue over a period by month, category or region."""
    chosen = _period(period)
    with crm.transaction(actor, write=False) as op:
        op.access.require(READ)
        require_amounts(op, "trends")
        rows = compute_trend(op, by=by, period=chosen)
    return {"by": by, "period": chosen.as_dict(), "rows": rows}


def measure_list(crm: crmkit.CRM) -> list[dict[str, str]]:
    """Every measure: name, entity, type, description."""
    return [
        {"name": m.name, "entity": m.entity, "type": m.type, "description": m.description}
        for m in registry.measures(crm).values()
    ]


def measure_values(
    crm: crmkit.CRM,
    name: str,
    *,
    as_of: dt.datetime | str | None = None,
    after: int = 0,
    limit: int = 100,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """A page of a measure's values by record id (after ``after``)."""
    _limit(limit)
    found = registry.measures(crm).get(name)
    if found is None:
        raise crmkit.ValidationError(
            [
                crmkit.FieldError(
                    "measure", f"no measure {name[:60]!r} (see: crmkit insight measures)"
                )
            ]
        )
    moment_ = _as_of(as_of)
    with crm.transaction(actor, write=False) as op:
        op.access.require(READ)
        inner = found.query(op, moment_).subquery()
        key, value = inner.c[0], inner.c[1]
        rows = op.session.execute(
            select(key, value).where(key > after).order_by(key).limit(limit)
        ).all()
    return {
        "measure": found.name,
        "entity": found.entity,
        "as_of": moment_.isoformat(),
        "values": [{"id": int(i), "value": _plain(v)} for i, v in rows],
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, int | str):
        return value
    return float(value)


def chart_list(crm: crmkit.CRM) -> list[dict[str, str]]:
    """Every chart: name and description."""
    return [{"name": c.name, "description": c.description} for c in registry.charts(crm).values()]


def chart_data(
    crm: crmkit.CRM,
    name: str,
    options: Mapping[str, str] | None = None,
    *,
    actor: crmkit.User | None = None,
) -> registry.ChartData:
    """The data of chart ``name`` built with ``options``."""
    found = registry.charts(crm).get(name)
    if found is None:
        raise crmkit.ValidationError(
            [crmkit.FieldError("chart", f"no chart {name[:60]!r} (see: crmkit insight charts)")]
        )
    return found.build(crm, actor, dict(options or {}))


def refresh(crm: crmkit.CRM, *, actor: crmkit.User | None = None) -> dict[str, Any]:
    """Recompute the customer measures segments filter on (needs ``insight:write``)."""
    from crmkit_insights.snapshot import refresh as refresh_snapshot

    return {"customers": refresh_snapshot(crm, actor=actor)}


def refresh_job(context: crmkit.JobContext) -> str:
    """The scheduled job ``insight.refresh``."""
    from crmkit_insights.snapshot import refresh as refresh_snapshot

    return f"{refresh_snapshot(context.crm, as_of=context.now)} customers measured"


def tiers_job(context: crmkit.JobContext) -> str:
    """The scheduled job ``insight.tiers``: write value tiers (as the system)."""
    result = tiers(context.crm, write=True, as_of=context.now)
    return f"{result['written']} value tiers written"


def lifecycle_job(context: crmkit.JobContext) -> str:
    """The scheduled job ``insight.lifecycle``: move lifecycle stages (as the system)."""
    result = lifecycle(context.crm, write=True, as_of=context.now)
    return f"{result['written']} lifecycle stages moved"
