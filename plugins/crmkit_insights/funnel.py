"""The sales funnel of one pipeline over one period, in a few SQL statements.

The deals are those created in the period (a cohort), live, readable by the actor. For each
stage: how many deals are in it now and their amount; how many reached it (an open stage is
reached by a deal that entered it or a later open stage, or won; won and lost by the deals
closed so); the conversion from each open stage to the next (the last open stage converts
to won); the median days deals spent in it (finished stays, from the stage history); and how
many open deals sit in it idle (no stage change for ``idle_days``). Optionally per owner or
per team.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import defaultdict
from typing import Any

from attrs import define, field
from sqlalchemy import Float, Integer, Numeric, and_, case, cast, func, literal, null, or_, select

import crmkit
from crmkit_insights.models import STAGE_MOVES
from crmkit_insights.periods import Period
from crmkit_insights.sources import DEALS, STAGES, amounts_hidden, days_between, moment, readable

#: How a funnel may be split.
GROUPINGS = ("none", "owner", "team")


@define
class StageFigures:
    """One stage's figures (amounts are ``None`` when a field rule hides deal amounts)."""

    stage: str
    kind: str
    position: int
    current: int = 0
    current_amount: float | None = 0.0
    reached: int = 0
    reached_amount: float | None = 0.0
    conversion: float | None = None
    median_days: float | None = None
    idle: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "stage": self.stage,
            "kind": self.kind,
            "position": self.position,
            "current": self.current,
            "current_amount": self.current_amount,
            "reached": self.reached,
            "reached_amount": self.reached_amount,
            "conversion": self.conversion,
            "median_days": self.median_days,
            "idle": self.idle,
        }


@define
class Funnel:
    """A pipeline's funnel: ``groups`` maps a group label (``"all"``, a user name, a team
    name, ``"(none)"``) to its stages in pipeline order."""

    pipeline: str
    period: Period
    by: str
    idle_days: int
    groups: dict[str, list[StageFigures]] = field(factory=dict)

    @property
    def deals(self) -> int:
        """How many deals the funnel counts."""
        return sum(s.current for stages in self.groups.values() for s in stages)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "pipeline": self.pipeline,
            "period": self.period.as_dict(),
            "by": self.by,
            "idle_days": self.idle_days,
            "deals": self.deals,
            "groups": [
                {"group": name, "stages": [s.as_dict() for s in stages]}
                for name, stages in self.groups.items()
            ],
        }


def resolve_pipeline(op: crmkit.Operation, pipeline: str | int | None) -> Any:
    """The pipeline row named (or numbered) ``pipeline``, or the default one."""
    table: Any = crmkit.Pipeline.__table__
    query = select(table.c.id, table.c.name)
    if pipeline is None or (isinstance(pipeline, str) and not pipeline.strip()):
        query = query.order_by(table.c.is_default.desc(), table.c.id).limit(1)
    elif isinstance(pipeline, int):
        query = query.where(table.c.id == pipeline)
    elif re.fullmatch(r"[0-9]{1,9}", pipeline.strip()):
        query = query.where(table.c.id == int(pipeline.strip()))
    else:
        query = query.where(table.c.name == pipeline.strip())
    row = op.session.execute(query).first()
    if row is None:
        raise crmkit.ValidationError(
            [crmkit.FieldError("pipeline", f"no pipeline {str(pipeline)[:80]!r}")]
        )
    return row


def _group_column(by: str) -> Any:
    if by == "owner":
        return DEALS.c.owner_id
    if by == "team":
        return DEALS.c.team_id
    return literal(0)


def _labels(op: crmkit.Operation, by: str, keys: set[Any]) -> dict[Any, str]:
    if by == "none":
        return dict.fromkeys(keys, "all")
    model: Any = crmkit.User if by == "owner" else crmkit.Team
    column = model.username if by == "owner" else model.name
    ids = [key for key in keys if key is not None]
    found: dict[Any, str] = dict(
        op.session.execute(select(model.id, column).where(model.id.in_(ids))).all()
    )
    return {key: found.get(key, "(none)") if key is not None else "(none)" for key in keys}


def compute_funnel(
    op: crmkit.Operation,
    *,
    pipeline: str | int | None,
    period: Period,
    by: str = "none",
    idle_days: int = 30,
    now: dt.datetime | None = None,
) -> Funnel:
    """The funnel (see the module docstring) as the actor may see it."""
    if by not in GROUPINGS:
        raise crmkit.ValidationError(
            [crmkit.FieldError("by", f"{by[:40]!r} is not one of {', '.join(GROUPINGS)}")]
        )
    if idle_days < 0:
        raise crmkit.ValidationError([crmkit.FieldError("idle_days", "must be 0 or more")])
    now = now or crmkit.utcnow()
    row = resolve_pipeline(op, pipeline)
    stages = op.session.execute(
        select(STAGES.c.id, STAGES.c.name, STAGES.c.position, STAGES.c.kind)
        .where(STAGES.c.pipeline_id == row.id)
        .order_by(STAGES.c.position, STAGES.c.id)
    ).all()
    hide = amounts_hidden(op)
    group = _group_column(by).label("grp")
    cohort = (
        select(
            DEALS.c.id,
            group,
            DEALS.c.stage_id,
            func.coalesce(DEALS.c.amount, 0).label("amount"),
            DEALS.c.stage_changed_at,
        )
        .where(
            DEALS.c.pipeline_id == row.id,
            DEALS.c.deleted_at.is_(None),
            DEALS.c.created_at >= moment(period.start),
            DEALS.c.created_at < moment(period.end),
            DEALS.c.id.in_(readable(op, "deal")),
        )
        .cte("cohort")
    )
    figures: dict[Any, dict[int, StageFigures]] = defaultdict(dict)

    def figures_of(key: Any) -> dict[int, StageFigures]:
        if key not in figures:
            for stage in stages:
                figures[key][stage.id] = StageFigures(
                    stage.name,
                    stage.kind,
                    stage.position,
                    current_amount=None if hide else 0.0,
                    reached_amount=None if hide else 0.0,
                )
        return figures[key]

    open_ids = [s.id for s in stages if s.kind == "open"]
    idle_before = moment(now - dt.timedelta(days=idle_days))
    current = select(
        literal("current").label("part"),
        cohort.c.grp,
        cohort.c.stage_id,
        func.count().label("deals"),
        func.sum(cohort.c.amount).label("amount"),
        func.sum(
            case(
                (
                    and_(
                        cohort.c.stage_id.in_(open_ids or [-1]),
                        cohort.c.stage_changed_at < idle_before,
                    ),
                    1,
                ),
                else_=0,
            )
        ).label("idle"),
        # typed: PostgreSQL reads an untyped NULL in a union's first part as text
        cast(null(), Float).label("days"),
    ).group_by(cohort.c.grp, cohort.c.stage_id)

    # how far each deal got: the furthest open stage it entered, and whether it is won/lost
    entered: Any = STAGES.alias("entered")
    now_in: Any = STAGES.alias("now_in")
    reach = (
        select(
            cohort.c.id,
            cohort.c.grp,
            cohort.c.amount,
            now_in.c.kind.label("kind"),
            func.max(case((entered.c.kind == "open", entered.c.position))).label("furthest"),
        )
        .join(now_in, now_in.c.id == cohort.c.stage_id)
        .outerjoin(STAGE_MOVES, STAGE_MOVES.c.deal_id == cohort.c.id)
        .outerjoin(entered, entered.c.id == STAGE_MOVES.c.stage_id)
        .group_by(cohort.c.id, cohort.c.grp, cohort.c.amount, now_in.c.kind)
        .cte("reach")
    )
    stage_list: Any = STAGES.alias("target")
    reached = (
        select(
            literal("reached"),
            reach.c.grp,
            stage_list.c.id,
            func.count(),
            func.sum(reach.c.amount),
            cast(null(), Integer),
            cast(null(), Float),
        )
        .join(
            reach,
            or_(
                and_(stage_list.c.kind == "open", reach.c.kind == "won"),
                and_(stage_list.c.kind == "open", reach.c.furthest >= stage_list.c.position),
                and_(stage_list.c.kind != "open", stage_list.c.kind == reach.c.kind),
            ),
        )
        .where(stage_list.c.pipeline_id == row.id)
        .group_by(stage_list.c.id, reach.c.grp)
    )
    # one statement: the cohort, with the permission filter, is selected once for the three
    parts: dict[str, list[tuple[Any, ...]]] = {"current": [], "reached": [], "median": []}
    statement = current.union_all(reached, _median_days(op, cohort))
    for part, key, stage_id, count, amount, idle, days in op.session.execute(statement):
        parts[part].append((key, stage_id, count, amount, idle, days))
    for key, stage_id, count, amount, idle, _ in parts["current"]:
        stage = figures_of(key).get(stage_id)
        if stage is None:  # a stage of another pipeline: cannot happen, but never count it
            continue
        stage.current = int(count)
        stage.current_amount = None if hide else float(amount or 0)
        stage.idle = int(idle or 0)
    for key, stage_id, count, amount, _, _ in parts["reached"]:
        stage = figures_of(key)[stage_id]
        stage.reached = int(count)
        stage.reached_amount = None if hide else float(amount or 0)
    for key, stage_id, _, _, _, days in parts["median"]:
        if days is not None:
            figures_of(key)[stage_id].median_days = round(float(days), 2)

    labels = _labels(op, by, set(figures))
    funnel = Funnel(pipeline=row.name, period=period, by=by, idle_days=idle_days)
    for key in sorted(figures, key=lambda k: (labels[k], str(k))):
        ordered = [figures[key][s.id] for s in stages]
        _conversions(ordered)
        funnel.groups[labels[key]] = ordered
    if not funnel.groups:
        funnel.groups["all" if by == "none" else "(none)"] = [
            StageFigures(
                s.name,
                s.kind,
                s.position,
                current_amount=None if hide else 0.0,
                reached_amount=None if hide else 0.0,
            )
            for s in stages
        ]
    return funnel


def _conversions(stages: list[StageFigures]) -> None:
    """Each open stage's share of deals that went on to the next open stage (the last open
    stage: to won); ``None`` where no deal reached the stage."""
    chain = [s for s in stages if s.kind == "open"] + [s for s in stages if s.kind == "won"][:1]
    for here, following in itertools.pairwise(chain):
        here.conversion = round(following.reached / here.reached, 4) if here.reached else None


def _median_days(op: crmkit.Operation, cohort: Any) -> Any:
    """``SELECT 'median', grp, stage_id, NULL, NULL, NULL, days``: the median days of the
    finished stays in each stage, per group, from the history (a stay ends when the deal
    enters its next stage). Computed with window functions: the middle one or two of the
    stays ordered by length."""
    following = func.lead(STAGE_MOVES.c.entered_at).over(
        partition_by=STAGE_MOVES.c.deal_id,
        order_by=(STAGE_MOVES.c.entered_at, STAGE_MOVES.c.id),
    )
    stays = (
        select(
            cohort.c.grp,
            STAGE_MOVES.c.stage_id,
            STAGE_MOVES.c.entered_at,
            following.label("left_at"),
        )
        .join(cohort, cohort.c.id == STAGE_MOVES.c.deal_id)
        .cte("stays")
    )
    length = days_between(op, stays.c.left_at, stays.c.entered_at)
    ranked = (
        select(
            stays.c.grp,
            stays.c.stage_id,
            length.label("days"),
            func.row_number()
            .over(partition_by=(stays.c.grp, stays.c.stage_id), order_by=length)
            .label("n"),
            func.count().over(partition_by=(stays.c.grp, stays.c.stage_id)).label("total"),
        )
        .where(stays.c.left_at.is_not(None))
        .cte("ranked")
    )
    return (
        select(
            literal("median"),
            ranked.c.grp,
            ranked.c.stage_id,
            cast(null(), Integer),
            cast(null(), Numeric(18, 2)),
            cast(null(), Integer),
            cast(func.avg(ranked.c.days), Float),
        )
        .where(
            or_(
                ranked.c.n == (ranked.c.total + 1) // 2,
                ranked.c.n == (ranked.c.total + 2) // 2,
            )
        )
        .group_by(ranked.c.grp, ranked.c.stage_id)
    )
