"""Customer and sales insight for crmkit: funnel, RFM, value tiers, churn risk, lifecycle,
trends and charts.

A bundled plugin (``crmkit plugins enable insights``) that uses only crmkit's public API:

* the sales funnel per pipeline and period (:mod:`crmkit_insights.funnel`): deals per stage,
  reached, amounts, stage-to-stage conversion, median days in stage from the stage history
  the plugin keeps (:mod:`crmkit_insights.models`), idle deals, per owner or team;
* per customer (:mod:`crmkit_insights.customers`): RFM from won deals and, when the loyalty
  plugin is enabled, its purchases (read as a plain table), with quintile scores and named
  segments; value tiers by the Pareto cut, written to ``value_tier`` on demand or on a
  schedule; churn risk against each customer's own rhythm; lifecycle stages by rule;
* purchase trends by month, category and region (:mod:`crmkit_insights.trends`);
* measures and charts other plugins extend through the plugin's own hooks
  (:mod:`crmkit_insights.hooks`); charts drawn with matplotlib in a CJK font.

Everything is computed in SQL (aggregates and window functions on SQLite and PostgreSQL),
reading only what the actor may read. Needs the ``insights`` extra (``pip install
"crmkit[insights]"``: matplotlib); without it the plugin is listed as failed to load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

import crmkit

# The library of the extra: a missing one fails the plugin's import (``crmkit plugins list``
# shows it) without importing it here; charts load it when they draw.
crmkit.require_modules("matplotlib", install="pip install 'crmkit[insights]'")

# (the plugin's own modules after the check: a missing library fails before they load)
from crmkit_insights.hooks import InsightHooks  # noqa: E402
from crmkit_insights.models import (  # noqa: E402
    STAGE_MOVES,
    InsightCustomerMeasure,
    InsightStageMove,
)
from crmkit_insights.registry import (  # noqa: E402
    PLUGIN_NAME,
    Chart,
    ChartData,
    Measure,
    declare_hooks,
)

crmkit_plugin = crmkit.PluginSpec(
    description="Sales funnel, RFM, value tiers, churn risk, lifecycle stages, trends, charts",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={
        "insight": (
            "Sales funnel, RFM, value tiers, churn risk, lifecycle and trends (bundled "
            "plugin insights)."
        )
    },
)

__all__ = [
    "PLUGIN_NAME",
    "Chart",
    "ChartData",
    "InsightCustomerMeasure",
    "InsightHooks",
    "InsightStageMove",
    "Measure",
    "crmkit_plugin",
]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's Alembic branch (``insights``)."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_permissions() -> list[str]:
    """``insight:read`` (funnel, RFM, tiers, churn, lifecycle, trends, measures, charts: of
    the records the reader may read) and ``insight:write`` (write value tiers and lifecycle
    stages; the record's update right is needed too)."""
    return ["insight:read", "insight:write"]


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.insights]`` in ``crmkit.toml`` (see docs/insights.md)."""
    from crmkit_insights.settings import SPECS

    return list(SPECS)


@crmkit.hookimpl
def crmkit_startup(crm: crmkit.CRM) -> None:
    """Check the settings (a bad one stops here) and declare the plugin's hooks."""
    from crmkit_insights.settings import settings_of

    settings_of(crm)
    declare_hooks(crm)


@crmkit.hookimpl
def crmkit_setup(crm: crmkit.CRM, op: crmkit.Operation) -> None:
    """On enable: file every existing deal's current stage in the stage history (entered at
    ``stage_changed_at``; what happened before is not known)."""
    from sqlalchemy import func, insert, select

    deals: Any = crmkit.Deal.__table__
    known = select(STAGE_MOVES.c.deal_id)
    op.session.execute(
        insert(STAGE_MOVES).from_select(
            ["deal_id", "pipeline_id", "stage_id", "entered_at"],
            select(
                deals.c.id,
                deals.c.pipeline_id,
                deals.c.stage_id,
                func.coalesce(deals.c.stage_changed_at, deals.c.created_at),
            ).where(deals.c.id.not_in(known)),
        )
    )


@crmkit.hookimpl
def crmkit_after_create_many(
    op: crmkit.Operation, entity: str, records: Sequence[tuple[int, Mapping[str, Any]]]
) -> None:
    """A new deal enters its first stage: one history row each, one insert per batch."""
    if entity != "deal" or not records:
        return
    now = crmkit.utcnow()
    crmkit.bulk_insert(
        op.session.connection(),
        STAGE_MOVES,
        [
            {
                "deal_id": record_id,
                "pipeline_id": values["pipeline_id"],
                "stage_id": values["stage_id"],
                "entered_at": values.get("stage_changed_at") or now,
            }
            for record_id, values in records
        ],
    )


@crmkit.hookimpl
def crmkit_after_update(
    op: crmkit.Operation,
    entity: str,
    record_id: int,
    changes: Mapping[str, Any],
    previous: Mapping[str, Any],
) -> None:
    """A deal moved to another stage: one history row."""
    if entity != "deal" or "stage_id" not in changes:
        return
    from sqlalchemy import insert, select

    deals: Any = crmkit.Deal.__table__
    op.session.execute(
        insert(STAGE_MOVES).from_select(
            ["deal_id", "pipeline_id", "stage_id", "entered_at"],
            select(
                deals.c.id,
                deals.c.pipeline_id,
                deals.c.stage_id,
                _moment(changes.get("stage_changed_at")),
            ).where(deals.c.id == record_id),
        )
    )


def _moment(value: Any) -> Any:
    """A bound time (now when the change carries none)."""
    from sqlalchemy import literal

    return literal(value or crmkit.utcnow(), crmkit.UTCDateTime())


@crmkit.hookimpl
def crmkit_scheduled_jobs(crm: crmkit.CRM) -> list[crmkit.ScheduledJob]:
    """``insight.refresh`` (the customer measures segments filter on; every 24 hours by
    default), ``insight.tiers`` (write value tiers) and ``insight.lifecycle`` (move
    lifecycle stages), each when its ``*_every_hours`` setting is above 0."""
    from crmkit_insights.service import lifecycle_job, refresh_job, tiers_job
    from crmkit_insights.settings import settings_of

    options = settings_of(crm)
    jobs = []
    if options.refresh_every_hours:
        jobs.append(
            crmkit.ScheduledJob(
                "insight.refresh",
                refresh_job,
                every_seconds=options.refresh_every_hours * 3600,
                description="Recompute the customer measures segments filter on",
            )
        )
    if options.tiers_every_hours:
        jobs.append(
            crmkit.ScheduledJob(
                "insight.tiers",
                tiers_job,
                every_seconds=options.tiers_every_hours * 3600,
                description="Write value tiers by the Pareto cut",
            )
        )
    if options.lifecycle_every_hours:
        jobs.append(
            crmkit.ScheduledJob(
                "insight.lifecycle",
                lifecycle_job,
                every_seconds=options.lifecycle_every_hours * 3600,
                description="Move lifecycle stages by the rules",
            )
        )
    return jobs


@crmkit.hookimpl
def crmkit_segment_measures(crm: crmkit.CRM) -> list[crmkit.SegmentMeasure]:
    """Contacts' ``rfm_segment``, ``r_score``, ``f_score``, ``m_score``, ``pareto_tier``,
    ``churn_risk`` and ``lifecycle_by_rules`` for segments, read from the snapshot that
    ``crmkit insight refresh`` (or the ``insight.refresh`` job) computes."""
    from crmkit_insights.snapshot import segment_measures

    return segment_measures(crm)


@crmkit.hookimpl
def crmkit_demo_data(crm: crmkit.CRM) -> None:
    """``crmkit demo``: a stage history spread over the last months, some closed deals."""
    from crmkit_insights.demo import load

    load(crm)


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit insight ...``."""
    from crmkit_insights.cli import insight_group

    return [insight_group]


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """The REST routes, mounted by the core under ``/plugins/insights``."""
    from crmkit_insights.api import routes

    return routes()
