"""Measures and charts by name: the plugin's own and those other plugins add through its
hooks (:mod:`crmkit_insights.hooks`)."""

from __future__ import annotations

import datetime as dt
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from attrs import field, frozen

import crmkit

PLUGIN_NAME = "insights"
#: The value types a measure may have.
MEASURE_TYPES = ("text", "integer", "number")
#: The kinds of chart the renderer draws.
CHART_KINDS = ("bar", "barh", "line", "funnel")


@frozen
class Measure:
    """A per-record value computed in SQL: ``query(op, as_of)`` selects ``(record id,
    value)`` for the records ``op``'s actor may read."""

    name: str
    entity: str
    type: str
    description: str
    query: Callable[[crmkit.Operation, dt.datetime], Any] = field(repr=False)

    def __attrs_post_init__(self) -> None:
        if self.type not in MEASURE_TYPES:
            raise crmkit.ConfigError(
                f"measure {self.name!r}: type {self.type!r} is not one of {MEASURE_TYPES}"
            )


def _tuple_of_str(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _series(values: Any) -> tuple[tuple[str, tuple[float, ...]], ...]:
    return tuple((str(name), tuple(float(v) for v in points)) for name, points in values)


@frozen
class ChartData:
    """What a chart shows: ``labels`` along one axis and one or more named ``series`` of as
    many numbers."""

    title: str
    kind: str
    labels: tuple[str, ...] = field(converter=_tuple_of_str)
    series: tuple[tuple[str, tuple[float, ...]], ...] = field(converter=_series)
    x_label: str = ""
    y_label: str = ""

    def __attrs_post_init__(self) -> None:
        if self.kind not in CHART_KINDS:
            raise crmkit.ConfigError(f"chart kind {self.kind!r} is not one of {CHART_KINDS}")
        for name, points in self.series:
            if len(points) != len(self.labels):
                raise crmkit.ConfigError(
                    f"chart {self.title!r}: series {name!r} has {len(points)} values"
                    f" for {len(self.labels)} labels"
                )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "title": self.title,
            "kind": self.kind,
            "labels": list(self.labels),
            "series": [{"name": name, "values": list(points)} for name, points in self.series],
            "x_label": self.x_label,
            "y_label": self.y_label,
        }


@frozen
class Chart:
    """A named chart: ``build(crm, actor, options)`` returns its :class:`ChartData`."""

    name: str
    description: str
    build: Callable[[crmkit.CRM, crmkit.User | None, Mapping[str, str]], ChartData] = field(
        repr=False
    )


_DECLARED: weakref.WeakSet[crmkit.CRM] = weakref.WeakSet()
_LOCK = threading.Lock()


def declare_hooks(crm: crmkit.CRM) -> None:
    """Declare the plugin's hooks to ``crm`` (once)."""
    if crm in _DECLARED:
        return
    from crmkit_insights.hooks import InsightHooks

    with _LOCK:
        crm.add_hookspecs(InsightHooks)
        _DECLARED.add(crm)


def _collect(crm: crmkit.CRM, hook: str, own: list[Any], what: str) -> dict[str, Any]:
    declare_hooks(crm)
    found: dict[str, Any] = {}
    contributed = crm.call_hook(hook, crm=crm) or []
    for item in [*own, *(one for batch in contributed for one in (batch or []))]:
        if item.name in found:
            raise crmkit.ConfigError(f"two insight {what}s are named {item.name!r}")
        found[item.name] = item
    return found


def measures(crm: crmkit.CRM) -> dict[str, Measure]:
    """Every measure by name: the plugin's own, then those of other plugins."""
    from crmkit_insights.builtin import builtin_measures

    return _collect(crm, "crmkit_insight_measures", builtin_measures(crm), "measure")


def charts(crm: crmkit.CRM) -> dict[str, Chart]:
    """Every chart by name: the plugin's own, then those of other plugins."""
    from crmkit_insights.builtin import builtin_charts

    return _collect(crm, "crmkit_insight_charts", builtin_charts(), "chart")
