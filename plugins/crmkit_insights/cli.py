"""``crmkit insight ...``: funnel, idle deals, RFM, value tiers, churn risk, lifecycle
stages, trends, measures and charts (text, JSON, PNG, SVG)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit_insights import service
from crmkit_insights.customers import SEGMENTS, TIER_ENTITIES
from crmkit_insights.funnel import GROUPINGS, Funnel
from crmkit_insights.periods import FORMS
from crmkit_insights.registry import ChartData
from crmkit_insights.trends import TREND_DIMENSIONS


@click.group(name="insight")
def insight_group() -> None:
    """Sales funnel, RFM, value tiers, churn risk, lifecycle and trends (bundled plugin
    insights)."""


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except crmkit.CRMError as error:
        raise click.ClickException(str(error)) from None


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _charts(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--svg", "svg", type=click.Path(dir_okay=False), help="Draw it as SVG.")(
        func
    )
    return click.option("--png", "png", type=click.Path(dir_okay=False), help="Draw it as PNG.")(
        func
    )


def _draw(crm: crmkit.CRM, data: ChartData, png: str | None, svg: str | None) -> None:
    from crmkit_insights.render import cjk_family, render
    from crmkit_insights.settings import settings_of

    font = cjk_family(settings_of(crm).chart_font)
    for fmt, path in (("png", png), ("svg", svg)):
        if not path:
            continue
        if not path.lower().endswith(f".{fmt}"):
            raise click.ClickException(f"--{fmt} {path[:60]!r}: the file name must end in .{fmt}")
        image = render(data, fmt, font=font)
        try:
            Path(path).write_bytes(image)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise click.ClickException(f"cannot write {path!r}: {reason}") from None
        click.echo(f"Wrote {path}" + ("" if font else " (no CJK font found: CJK text as boxes)"))


def _period_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--period", help=f"Deals created in: {FORMS} (default: this year).")(func)


def _table(rows: Iterable[Iterable[Any]], header: Iterable[str]) -> None:
    lines = [list(map(str, header)), *[[("" if c is None else str(c)) for c in r] for r in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def _print_funnel(result: Funnel) -> None:
    click.echo(
        f"Funnel of {result.pipeline}, deals created in {result.period.label}:"
        f" {result.deals} deals (idle: no move for {result.idle_days} days)"
    )
    for name, stages in result.groups.items():
        if result.by != "none":
            click.echo(f"\n{result.by} {name}:")
        _table(
            (
                (
                    s.stage,
                    s.kind,
                    s.current,
                    "-" if s.current_amount is None else f"{s.current_amount:,.2f}",
                    s.reached,
                    "" if s.conversion is None else f"{s.conversion:.0%}",
                    "" if s.median_days is None else f"{s.median_days:g}",
                    s.idle,
                )
                for s in stages
            ),
            ("stage", "kind", "now", "amount", "reached", "→ next", "median days", "idle"),
        )


@insight_group.command(name="funnel")
@click.option("--pipeline", help="Pipeline name or id (default: the default pipeline).")
@_period_option
@click.option("--by", type=click.Choice(GROUPINGS), default="none", show_default=True)
@click.option("--idle-days", type=int, help="Idle after this many days without a move.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_charts
def funnel_command(
    pipeline: str | None,
    period: str | None,
    by: str,
    idle_days: int | None,
    as_json: bool,
    png: str | None,
    svg: str | None,
) -> None:
    """The sales funnel of a pipeline: deals per stage now and reached, amounts,
    stage-to-stage conversion, median days in stage, idle deals; per owner or team.

    Example: crmkit insight funnel --period 2026-Q2 --by owner --png funnel.png
    """
    crm = crmkit.cli_crm()
    result: Funnel = _run(
        lambda: service.funnel(crm, pipeline=pipeline, period=period, by=by, idle_days=idle_days)
    )
    if png or svg:
        from crmkit_insights.builtin import _funnel_chart

        options = {"pipeline": pipeline or "", "period": period or ""}
        _draw(crm, _run(lambda: _funnel_chart(crm, None, options)), png, svg)
    if as_json:
        _echo_json(result.as_dict())
    elif not (png or svg):
        _print_funnel(result)


@insight_group.command(name="idle")
@click.option("--pipeline", help="Pipeline name or id (default: the default pipeline).")
@click.option("--days", type=int, help="No stage change for this many days (default: setting).")
@click.option("--limit", type=click.IntRange(1, service.MAX_LIMIT), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def idle_command(pipeline: str | None, days: int | None, limit: int, as_json: bool) -> None:
    """Open deals with no stage change for a while, the longest idle first.

    Example: crmkit insight idle --days 14
    """
    crm = crmkit.cli_crm()
    rows = _run(lambda: service.idle_deals(crm, pipeline=pipeline, idle_days=days, limit=limit))
    if as_json:
        _echo_json(rows)
    elif not rows:
        click.echo("No idle deals.")
    else:
        _table(
            ((r["id"], r["name"], r["stage"], r["owner"], r["idle_days"]) for r in rows),
            ("id", "name", "stage", "owner", "idle days"),
        )


@insight_group.command(name="rfm")
@click.option("--as-of", help="Measure as of this date (default: now).")
@click.option("--since", help="Only orders from this date.")
@click.option("--customers", is_flag=True, help="List customers instead of the segments.")
@click.option("--segment", type=click.Choice(SEGMENTS), help="With --customers: only these.")
@click.option("--after", type=click.IntRange(0), default=0, help="With --customers: ids after.")
@click.option("--limit", type=click.IntRange(1, service.MAX_LIMIT), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_charts
def rfm_command(
    as_of: str | None,
    since: str | None,
    customers: bool,
    segment: str | None,
    after: int,
    limit: int,
    as_json: bool,
    png: str | None,
    svg: str | None,
) -> None:
    """RFM: recency, frequency and monetary value of every customer (won deals and loyalty
    purchases), quintile scores 1-5 and named segments (champions, loyal, at risk, ...).

    Example: crmkit insight rfm --customers --segment at_risk
    """
    crm = crmkit.cli_crm()
    if customers:
        rows = _run(
            lambda: service.rfm_customers(
                crm, as_of=as_of, since=since, segment=segment, after=after, limit=limit
            )
        )
        if as_json:
            _echo_json(rows)
            return
        _table(
            (
                (
                    r["contact_id"],
                    r["recency_days"],
                    r["frequency"],
                    f"{r['monetary']:,.2f}",
                    r["score"],
                    r["segment"],
                )
                for r in rows
            ),
            ("contact", "recency days", "frequency", "monetary", "RFM", "segment"),
        )
        return
    summary = _run(lambda: service.rfm_summary(crm, as_of=as_of, since=since))
    if png or svg:
        from crmkit_insights.builtin import _rfm_chart

        _draw(crm, _run(lambda: _rfm_chart(crm, None, {"as_of": as_of or ""})), png, svg)
    if as_json:
        _echo_json(summary)
    elif not (png or svg):
        click.echo(f"RFM of {summary['customers']} customers as of {summary['as_of'][:10]}:")
        _table(
            (
                (
                    s["segment"],
                    s["customers"],
                    f"{s['share']:.0%}",
                    f"{s['monetary']:,.2f}",
                    s["mean_recency_days"],
                    s["mean_frequency"],
                )
                for s in summary["segments"]
            ),
            ("segment", "customers", "share", "monetary", "mean recency", "mean frequency"),
        )


@insight_group.command(name="tiers")
@click.option("--entity", type=click.Choice(TIER_ENTITIES), help="Default: the setting.")
@click.option("--write", is_flag=True, help="Write the tiers to value_tier.")
@click.option("--as-of", help="Measure as of this date (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tiers_command(entity: str | None, write: bool, as_of: str | None, as_json: bool) -> None:
    """Value tiers by the Pareto cut: the customers making 80 % of revenue are the first
    tier; --write sets each record's value_tier (only the changed ones).

    Example: crmkit insight tiers --write
    """
    crm = crmkit.cli_crm()
    result = _run(lambda: service.tiers(crm, entity=entity, write=write, as_of=as_of))
    if as_json:
        _echo_json(result)
        return
    _table(
        (
            (t["tier"], t["records"], f"{t['revenue']:,.2f}", f"{t['share']:.0%}")
            for t in result["tiers"]
        ),
        ("tier", result["entity"] + "s", "revenue", "share"),
    )
    verb = "written" if write else "would change (--write to write)"
    click.echo(f"{result['changes']} value tiers {verb}")


@insight_group.command(name="churn")
@click.option("--as-of", help="Measure as of this date (default: now).")
@click.option("--factor", type=float, help="Gap / usual interval at least (default: setting).")
@click.option("--limit", type=click.IntRange(1, service.MAX_LIMIT), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def churn_command(as_of: str | None, factor: float | None, limit: int, as_json: bool) -> None:
    """Customers slipping away: the gap since their last order is far beyond their own
    usual interval between orders.

    Example: crmkit insight churn --factor 2.5
    """
    crm = crmkit.cli_crm()
    result = _run(lambda: service.churn(crm, as_of=as_of, factor=factor, limit=limit))
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['at_risk']} customers at risk (gap ≥ {result['factor']:g}× usual):")
    _table(
        (
            (c["contact_id"], c["orders"], c["usual_days"], c["gap_days"], c["ratio"])
            for c in result["customers"]
        ),
        ("contact", "orders", "usual days", "gap days", "ratio"),
    )


@insight_group.command(name="lifecycle")
@click.option("--write", is_flag=True, help="Move the contacts' lifecycle_stage.")
@click.option("--as-of", help="Measure as of this date (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def lifecycle_command(write: bool, as_of: str | None, as_json: bool) -> None:
    """Lifecycle stages by rule: first purchase, repeat buyer, advocate, churned.

    Example: crmkit insight lifecycle --write
    """
    crm = crmkit.cli_crm()
    result = _run(lambda: service.lifecycle(crm, write=write, as_of=as_of))
    if as_json:
        _echo_json(result)
        return
    for move, count in result["moves"].items():
        click.echo(f"{count:>6}  {move}")
    verb = "moved" if write else "would move (--write to move them)"
    click.echo(f"{result['changes']} contacts {verb}")


@insight_group.command(name="trend")
@click.option("--by", type=click.Choice(TREND_DIMENSIONS), default="month", show_default=True)
@click.option("--period", help=f"Orders in: {FORMS} (default: this year).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_charts
def trend_command(
    by: str, period: str | None, as_json: bool, png: str | None, svg: str | None
) -> None:
    """Orders and revenue by month, product category or region.

    Example: crmkit insight trend --by category --period 2026
    """
    crm = crmkit.cli_crm()
    result = _run(lambda: service.trend(crm, by=by, period=period))
    if png or svg:
        from crmkit_insights.builtin import _trend_chart

        options = {"by": by, "period": period or ""}
        _draw(crm, _run(lambda: _trend_chart(crm, None, options)), png, svg)
    if as_json:
        _echo_json(result)
    elif not (png or svg):
        _table(
            ((r["key"], r["orders"], f"{r['revenue']:,.2f}") for r in result["rows"]),
            (by, "orders", "revenue"),
        )


@insight_group.command(name="refresh")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def refresh_command(as_json: bool) -> None:
    """Recompute the customer measures segments filter on (rfm_segment, pareto_tier, ...);
    the worker does it every refresh_every_hours.

    Example: crmkit insight refresh
    """
    crm = crmkit.cli_crm()
    result = _run(lambda: service.refresh(crm))
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"Measured {result['customers']} customers")


@insight_group.command(name="measures")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def measures_command(as_json: bool) -> None:
    """The measures (the plugin's and other plugins'), for segments and reports.

    Example: crmkit insight measures
    """
    crm = crmkit.cli_crm()
    rows = _run(lambda: service.measure_list(crm))
    if as_json:
        _echo_json(rows)
    else:
        _table(
            ((m["name"], m["entity"], m["type"], m["description"]) for m in rows),
            ("name", "entity", "type", "description"),
        )


@insight_group.command(name="measure")
@click.argument("name")
@click.option("--as-of", help="Measure as of this date (default: now).")
@click.option("--after", type=click.IntRange(0), default=0, help="Record ids after this one.")
@click.option("--limit", type=click.IntRange(1, service.MAX_LIMIT), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def measure_command(name: str, as_of: str | None, after: int, limit: int, as_json: bool) -> None:
    """A measure's value per record, by record id.

    Example: crmkit insight measure rfm_segment --limit 20
    """
    crm = crmkit.cli_crm()
    result = _run(lambda: service.measure_values(crm, name, as_of=as_of, after=after, limit=limit))
    if as_json:
        _echo_json(result)
    else:
        _table(((v["id"], v["value"]) for v in result["values"]), (result["entity"], name))


@insight_group.command(name="charts")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def charts_command(as_json: bool) -> None:
    """The charts (the plugin's and other plugins').

    Example: crmkit insight charts
    """
    crm = crmkit.cli_crm()
    rows = _run(lambda: service.chart_list(crm))
    if as_json:
        _echo_json(rows)
    else:
        _table(((c["name"], c["description"]) for c in rows), ("name", "description"))


@insight_group.command(name="chart")
@click.argument("name")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the chart (repeatable), e.g. period=2026.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the chart's data as JSON.")
@_charts
def chart_command(
    name: str, options: tuple[str, ...], as_json: bool, png: str | None, svg: str | None
) -> None:
    """Draw a chart (PNG, SVG) or print its data (JSON).

    Example: crmkit insight chart trend --option by=region --svg regions.svg
    """
    crm = crmkit.cli_crm()
    parsed: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise click.ClickException(f"option {option[:60]!r} is not KEY=VALUE")
        parsed[key.strip()] = value
    data: ChartData = _run(lambda: service.chart_data(crm, name, parsed))
    if png or svg:
        _draw(crm, data, png, svg)
    if as_json or not (png or svg):
        _echo_json(data.as_dict())
