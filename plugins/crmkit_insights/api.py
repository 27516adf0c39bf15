"""REST routes of the insight plugin, mounted by the core under ``/plugins/insights``.

Thin handlers over the same services as the CLI (:mod:`crmkit_insights.service`), answering
JSON (and a chart as SVG or PNG); crmkit errors become problem+json in the core's exception
handlers.
"""

from __future__ import annotations

from typing import Annotated, Any

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
    ) -> dict[str, Any]:
        """The funnel of a pipeline over a period (default: this year)."""
        return service.funnel(
            crm, pipeline=pipeline, period=period, by=by, idle_days=idle_days, actor=actor
        ).as_dict()

    @get("/idle", sync_to_thread=True, responses=READ)
    def idle(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        pipeline: Pipeline = None,
        days: Days = None,
        limit: Limit = 100,
    ) -> list[dict[str, Any]]:
        """Open deals with no stage change for ``days``, the longest idle first."""
        return service.idle_deals(crm, pipeline=pipeline, idle_days=days, limit=limit, actor=actor)

    @get("/rfm", sync_to_thread=True, responses=READ)
    def rfm(
        self, crm: CrmDependency, actor: ActorDependency, as_of: AsOf = None, since: AsOf = None
    ) -> dict[str, Any]:
        """Customers per RFM segment."""
        return service.rfm_summary(crm, as_of=as_of, since=since, actor=actor)

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
    ) -> list[dict[str, Any]]:
        """A page of customers' RFM, by contact id (``after`` the last one seen)."""
        return service.rfm_customers(
            crm, as_of=as_of, since=since, segment=segment, after=after, limit=limit, actor=actor
        )

    @get("/tiers", sync_to_thread=True, responses=READ)
    def tiers(
        self, crm: CrmDependency, actor: ActorDependency, entity: Text = None, as_of: AsOf = None
    ) -> dict[str, Any]:
        """Value tiers by the Pareto cut (nothing written)."""
        return service.tiers(crm, entity=entity, as_of=as_of, actor=actor)

    @post("/tiers/write", sync_to_thread=True, status_code=200, responses=WRITE)
    def write_tiers(
        self, crm: CrmDependency, actor: ActorDependency, entity: Text = None
    ) -> dict[str, Any]:
        """Write the value tiers to ``value_tier`` (needs ``insight:write``)."""
        return service.tiers(crm, entity=entity, write=True, actor=actor)

    @get("/churn", sync_to_thread=True, responses=READ)
    def churn(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        as_of: AsOf = None,
        factor: Annotated[float | None, QueryParameter(gt=1, le=1_000_000)] = None,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        """Customers whose gap since their last order is far beyond their usual interval."""
        return service.churn(crm, as_of=as_of, factor=factor, limit=limit, actor=actor)

    @get("/lifecycle", sync_to_thread=True, responses=READ)
    def lifecycle(
        self, crm: CrmDependency, actor: ActorDependency, as_of: AsOf = None
    ) -> dict[str, Any]:
        """The lifecycle moves the rules would make (nothing written)."""
        return service.lifecycle(crm, as_of=as_of, actor=actor)

    @post("/lifecycle/write", sync_to_thread=True, status_code=200, responses=WRITE)
    def write_lifecycle(self, crm: CrmDependency, actor: ActorDependency) -> dict[str, Any]:
        """Move the contacts' lifecycle stages by the rules (needs ``insight:write``)."""
        return service.lifecycle(crm, write=True, actor=actor)

    @get("/trend", sync_to_thread=True, responses=READ)
    def trend(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        by: Annotated[str, QueryParameter(description="month, category or region.")] = "month",
        period: PeriodText = None,
    ) -> dict[str, Any]:
        """Orders and revenue by month, category or region."""
        return service.trend(crm, by=by, period=period, actor=actor)

    @get("/measures", sync_to_thread=True, responses=READ)
    def measures(self, crm: CrmDependency) -> list[dict[str, str]]:
        """Every measure: name, entity, type, description."""
        return service.measure_list(crm)

    @get("/measures/{name:str}", sync_to_thread=True, responses=READ)
    def measure(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        name: Name,
        as_of: AsOf = None,
        after: After = 0,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        """A page of a measure's values by record id."""
        return service.measure_values(crm, name, as_of=as_of, after=after, limit=limit, actor=actor)

    @get("/charts", sync_to_thread=True, responses=READ)
    def charts(self, crm: CrmDependency) -> list[dict[str, str]]:
        """Every chart: name and description."""
        return service.chart_list(crm)

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
    ) -> Response[Any]:
        """A chart's data as JSON (labels and series, for any front end), or drawn as SVG
        or PNG (``?format=svg``)."""
        if fmt not in ("json", "svg", "png"):
            raise crmkit.ValidationError([crmkit.FieldError("format", "must be json, svg or png")])
        given = {"pipeline": pipeline, "period": period, "by": by, "as_of": as_of, "entity": entity}
        options = {key: value for key, value in given.items() if value is not None}
        data = service.chart_data(crm, name, options, actor=actor)
        if fmt == "json":
            return Response(data.as_dict())
        from crmkit_insights.render import cjk_family, render
        from crmkit_insights.settings import settings_of

        image = render(data, fmt, font=cjk_family(settings_of(crm).chart_font))
        media = "image/svg+xml" if fmt == "svg" else "image/png"
        return Response(image, media_type=media)


def routes() -> list[Any]:
    """What ``crmkit_api_routes`` returns."""
    return [InsightController]
