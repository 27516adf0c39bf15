"""REST routes of the insight plugin, mounted by the core under ``/plugins/insights``.

Thin handlers over the same services as the CLI (:mod:`crmkit_insights.service`), answering
JSON (and a chart as SVG or PNG); crmkit errors become problem+json in the core's exception
handlers.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, TypeVar, cast

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

import crmkit
from crmkit_insights import service

CrmDependency = NamedDependency[crmkit.CRM]
ActorDependency = NamedDependency[crmkit.User | None]
READ = crmkit.problem_responses(401, 403, 422)
WRITE = crmkit.problem_responses(401, 403, 404, 409, 422)

Text = Annotated[str | None, QueryParameter(max_length=200, description="See the docs.")]
Pipeline = Annotated[str | None, QueryParameter(max_length=200, description="Pipeline name or id.")]
PeriodText = Annotated[
    str | None,
    QueryParameter(
        max_length=60, description="2026, 2026-Q2, 2026-03, 2026-03-01..2026-05-31, last-90d."
    ),
]
AsOf = Annotated[str | None, QueryParameter(max_length=60, description="A date (2026-06-30).")]
Limit = Annotated[int, QueryParameter(ge=1, le=service.MAX_LIMIT)]
After = Annotated[int, QueryParameter(ge=0, le=2**31 - 1, description="Ids after this one.")]
Days = Annotated[int | None, QueryParameter(ge=0, le=100_000)]
Name = Annotated[str, PathParameter(max_length=100, description="The name.")]


# -- answers ------------------------------------------------------------------------------------
# The services answer JSON-ready dicts (the CLI prints the same); these types are what the
# OpenAPI document says they hold, so that a generated client gets named, typed models.

T = TypeVar("T")


def _answer(kind: type[T], value: object) -> T:
    """``value``, a service's JSON-ready answer, as the body of a route typed ``kind``."""
    return cast(T, value)


class Period(msgspec.Struct, kw_only=True):
    """A period: its label and both ends."""

    label: str
    start: dt.datetime
    end: dt.datetime


class StageFigures(msgspec.Struct, kw_only=True):
    """One stage of a funnel (amounts are null when a field rule hides deal amounts)."""

    stage: str
    kind: str
    position: int
    current: int
    current_amount: float | None
    reached: int
    reached_amount: float | None
    conversion: float | None
    median_days: float | None
    idle: int


class FunnelGroup(msgspec.Struct, kw_only=True):
    """The stages of one group (``all``, a user, a team)."""

    group: str
    stages: list[StageFigures]


class Funnel(msgspec.Struct, kw_only=True):
    """A pipeline's funnel over a period."""

    pipeline: str
    period: Period
    by: str
    idle_days: int
    deals: int
    groups: list[FunnelGroup]


class IdleDeal(msgspec.Struct, kw_only=True):
    """An open deal without a stage change for a while (hidden fields are null)."""

    id: int
    name: str | None
    stage: str
    owner: str | None
    idle_days: float
    amount: float | None


class RfmSegment(msgspec.Struct, kw_only=True):
    """Customers of one RFM segment."""

    segment: str
    customers: int
    share: float
    monetary: float
    mean_recency_days: float | None
    mean_frequency: float | None


class RfmSummary(msgspec.Struct, kw_only=True):
    """Customers per RFM segment."""

    as_of: dt.datetime
    since: dt.datetime | None
    customers: int
    segments: list[RfmSegment]


class RfmCustomer(msgspec.Struct, kw_only=True):
    """One customer's recency, frequency, monetary value, scores and segment."""

    contact_id: int
    recency_days: float
    frequency: int
    monetary: float
    r: int
    f: int
    m: int
    score: str
    segment: str


class ValueTier(msgspec.Struct, kw_only=True):
    """One value tier: its records, their revenue and its share."""

    tier: str
    records: int
    revenue: float
    share: float


class ValueTiers(msgspec.Struct, kw_only=True):
    """Value tiers by the Pareto cut; ``written`` when they were written."""

    entity: str
    as_of: dt.datetime
    since: dt.datetime | None
    tiers: list[ValueTier]
    changes: int
    written: int


class ChurnRisk(msgspec.Struct, kw_only=True):
    """A customer whose gap since the last order is far beyond their usual interval."""

    contact_id: int
    orders: int
    usual_days: float
    gap_days: float
    ratio: float


class Churn(msgspec.Struct, kw_only=True):
    """Customers at risk of churning."""

    as_of: dt.datetime
    factor: float
    at_risk: int
    customers: list[ChurnRisk]


class LifecycleMoves(msgspec.Struct, kw_only=True):
    """The lifecycle moves the rules make (``before → after``: how many)."""

    as_of: dt.datetime
    changes: int
    written: int
    moves: dict[str, int]


class TrendRow(msgspec.Struct, kw_only=True):
    """Orders and revenue of one month, category or region."""

    key: str
    orders: int
    revenue: float


class Trend(msgspec.Struct, kw_only=True):
    """Orders and revenue by month, category or region over a period."""

    by: str
    period: Period
    rows: list[TrendRow]


class MeasureInfo(msgspec.Struct, kw_only=True):
    """A measure: its name, entity, type and description."""

    name: str
    entity: str
    type: str
    description: str


class MeasureValue(msgspec.Struct, kw_only=True):
    """A measure's value for one record."""

    id: int
    value: str | int | float | None


class MeasureValues(msgspec.Struct, kw_only=True):
    """A page of a measure's values by record id."""

    measure: str
    entity: str
    as_of: dt.datetime
    values: list[MeasureValue]


class ChartInfo(msgspec.Struct, kw_only=True):
    """A chart: its name and description."""

    name: str
    description: str


class ChartSeries(msgspec.Struct, kw_only=True):
    """One series of a chart: a value per label."""

    name: str
    values: list[float]


class ChartData(msgspec.Struct, kw_only=True):
    """A chart's data, for any front end."""

    title: str
    kind: str
    labels: list[str]
    series: list[ChartSeries]
    x_label: str
    y_label: str


class Refreshed(msgspec.Struct, kw_only=True):
    """How many customers the refreshed measures snapshot holds."""

    customers: int


class InsightController(Controller):
    """Funnel, idle deals, RFM, tiers, churn, lifecycle, trends, measures, charts."""

    path = "/"
    tags = ["insights"]  # noqa: RUF012 - Litestar reads this class attribute

    @get("/funnel", sync_to_thread=True, responses=READ)
    def funnel(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        pipeline: Pipeline = None,
        period: PeriodText = None,
        by: Annotated[str, QueryParameter(description="none, owner or team.")] = "none",
        idle_days: Days = None,
    ) -> Funnel:
        """The funnel of a pipeline over a period (default: this year)."""
        found = service.funnel(
            crm, pipeline=pipeline, period=period, by=by, idle_days=idle_days, actor=actor
        )
        return _answer(Funnel, found.as_dict())

    @get("/idle", sync_to_thread=True, responses=READ)
    def idle(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        pipeline: Pipeline = None,
        days: Days = None,
        limit: Limit = 100,
    ) -> list[IdleDeal]:
        """Open deals with no stage change for ``days``, the longest idle first."""
        found = service.idle_deals(crm, pipeline=pipeline, idle_days=days, limit=limit, actor=actor)
        return _answer(list[IdleDeal], found)

    @get("/rfm", sync_to_thread=True, responses=READ)
    def rfm(
        self, crm: CrmDependency, actor: ActorDependency, as_of: AsOf = None, since: AsOf = None
    ) -> RfmSummary:
        """Customers per RFM segment."""
        return _answer(RfmSummary, service.rfm_summary(crm, as_of=as_of, since=since, actor=actor))

    @get("/rfm/customers", sync_to_thread=True, responses=READ)
    def rfm_customers(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        as_of: AsOf = None,
        since: AsOf = None,
        segment: Text = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> list[RfmCustomer]:
        """A page of customers' RFM, by contact id (``after`` the last one seen)."""
        found = service.rfm_customers(
            crm, as_of=as_of, since=since, segment=segment, after=after, limit=limit, actor=actor
        )
        return _answer(list[RfmCustomer], found)

    @get("/tiers", sync_to_thread=True, responses=READ)
    def tiers(
        self, crm: CrmDependency, actor: ActorDependency, entity: Text = None, as_of: AsOf = None
    ) -> ValueTiers:
        """Value tiers by the Pareto cut (nothing written)."""
        return _answer(ValueTiers, service.tiers(crm, entity=entity, as_of=as_of, actor=actor))

    @post("/tiers/write", sync_to_thread=True, status_code=200, responses=WRITE)
    def write_tiers(
        self, crm: CrmDependency, actor: ActorDependency, entity: Text = None
    ) -> ValueTiers:
        """Write the value tiers to ``value_tier`` (needs ``insight:write``)."""
        return _answer(ValueTiers, service.tiers(crm, entity=entity, write=True, actor=actor))

    @get("/churn", sync_to_thread=True, responses=READ)
    def churn(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        as_of: AsOf = None,
        factor: Annotated[float | None, QueryParameter(gt=1, le=1_000_000)] = None,
        limit: Limit = 100,
    ) -> Churn:
        """Customers whose gap since their last order is far beyond their usual interval."""
        found = service.churn(crm, as_of=as_of, factor=factor, limit=limit, actor=actor)
        return _answer(Churn, found)

    @get("/lifecycle", sync_to_thread=True, responses=READ)
    def lifecycle(
        self, crm: CrmDependency, actor: ActorDependency, as_of: AsOf = None
    ) -> LifecycleMoves:
        """The lifecycle moves the rules would make (nothing written)."""
        return _answer(LifecycleMoves, service.lifecycle(crm, as_of=as_of, actor=actor))

    @post("/lifecycle/write", sync_to_thread=True, status_code=200, responses=WRITE)
    def write_lifecycle(self, crm: CrmDependency, actor: ActorDependency) -> LifecycleMoves:
        """Move the contacts' lifecycle stages by the rules (needs ``insight:write``)."""
        return _answer(LifecycleMoves, service.lifecycle(crm, write=True, actor=actor))

    @post("/refresh", sync_to_thread=True, status_code=200, responses=WRITE)
    def refresh(self, crm: CrmDependency, actor: ActorDependency) -> Refreshed:
        """Recompute the customer measures segments filter on (needs ``insight:write``)."""
        return _answer(Refreshed, service.refresh(crm, actor=actor))

    @get("/trend", sync_to_thread=True, responses=READ)
    def trend(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        by: Annotated[str, QueryParameter(description="month, category or region.")] = "month",
        period: PeriodText = None,
    ) -> Trend:
        """Orders and revenue by month, category or region."""
        return _answer(Trend, service.trend(crm, by=by, period=period, actor=actor))

    @get("/measures", sync_to_thread=True, responses=READ)
    def measures(self, crm: CrmDependency) -> list[MeasureInfo]:
        """Every measure: name, entity, type, description."""
        return _answer(list[MeasureInfo], service.measure_list(crm))

    @get("/measures/{name:str}", sync_to_thread=True, responses=READ)
    def measure(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        name: Name,
        as_of: AsOf = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> MeasureValues:
        """A page of a measure's values by record id."""
        found = service.measure_values(
            crm, name, as_of=as_of, after=after, limit=limit, actor=actor
        )
        return _answer(MeasureValues, found)

    @get("/charts", sync_to_thread=True, responses=READ)
    def charts(self, crm: CrmDependency) -> list[ChartInfo]:
        """Every chart: name and description."""
        return _answer(list[ChartInfo], service.chart_list(crm))

    @get("/charts/{name:str}", sync_to_thread=True, responses=READ)
    def chart(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        name: Name,
        pipeline: Pipeline = None,
        period: PeriodText = None,
        by: Text = None,
        as_of: AsOf = None,
        entity: Text = None,
        fmt: Annotated[
            str, QueryParameter(query="format", description="json, svg or png.")
        ] = "json",
    ) -> Response[ChartData]:
        """A chart's data as JSON (labels and series, for any front end), or drawn as SVG
        or PNG (``?format=svg``)."""
        if fmt not in ("json", "svg", "png"):
            raise crmkit.ValidationError([crmkit.FieldError("format", "must be json, svg or png")])
        given = {"pipeline": pipeline, "period": period, "by": by, "as_of": as_of, "entity": entity}
        options = {key: value for key, value in given.items() if value is not None}
        data = service.chart_data(crm, name, options, actor=actor)
        if fmt == "json":
            return Response(_answer(ChartData, data.as_dict()))
        from crmkit_insights.render import cjk_family, render
        from crmkit_insights.settings import settings_of

        image = render(data, fmt, font=cjk_family(settings_of(crm).chart_font))
        media = "image/svg+xml" if fmt == "svg" else "image/png"
        return _answer(Response[ChartData], Response(image, media_type=media))


def routes() -> list[Any]:
    """What ``crmkit_api_routes`` returns."""
    return [InsightController]
