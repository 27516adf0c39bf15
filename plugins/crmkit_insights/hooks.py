"""The insight plugin's own hooks, for other plugins to add measures and charts.

Declared to crmkit with ``crm.add_hookspecs`` when the plugin starts; implement them in any
plugin with ``@crmkit.hookimpl``, as core hooks.
"""

from __future__ import annotations

from collections.abc import Sequence

import crmkit
from crmkit_insights.registry import Chart, Measure


class InsightHooks:
    """Hook specifications of the insight plugin."""

    @staticmethod
    @crmkit.hookspec
    def crmkit_insight_measures(crm: crmkit.CRM) -> Sequence[Measure] | None:
        """Add per-record measures computed in SQL (collected).

        Return ``crmkit_insights.Measure`` objects: a name, the entity it measures
        (``contact`` or ``account``), a value type (``text``, ``integer``, ``number``), a
        description, and ``query(op, as_of)`` returning a SQLAlchemy ``Select`` of
        ``(record id, value)`` that reads only what ``op``'s actor may read
        (``crmkit.readable_ids_query``). ``crmkit insight measures`` lists them, ``crmkit
        insight measure NAME`` and ``GET /plugins/insights/measures/NAME`` evaluate them,
        and the core's segments filter on them. A name used twice is a configuration error.

        Example::

            @crmkit.hookimpl
            def crmkit_insight_measures(crm):
                def query(op, as_of):
                    contacts = crmkit.Contact.__table__
                    return select(contacts.c.id, func.length(contacts.c.full_name)).where(
                        contacts.c.id.in_(crmkit.readable_ids_query(op, "contact"))
                    )

                return [crmkit_insights.Measure("name_length", "contact", "integer",
                                                "Letters in the name", query)]
        """

    @staticmethod
    @crmkit.hookspec
    def crmkit_insight_charts(crm: crmkit.CRM) -> Sequence[Chart] | None:
        """Add charts (collected).

        Return ``crmkit_insights.Chart`` objects: a name, a description, and
        ``build(crm, actor, options)`` returning ``crmkit_insights.ChartData`` (a title, a
        kind: ``bar``, ``barh``, ``line`` or ``funnel``, the labels and one or more named
        series). ``options`` holds the strings given with ``--option key=value`` or the
        query string. ``crmkit insight chart NAME --png out.png`` draws it (matplotlib,
        CJK labels in a CJK font), ``GET /plugins/insights/charts/NAME`` returns its data as
        JSON for any front end.

        Example::

            @crmkit.hookimpl
            def crmkit_insight_charts(crm):
                def build(crm, actor, options):
                    count = crm.contacts.count(actor=actor)
                    return crmkit_insights.ChartData("客户数", "bar", ("contacts",),
                                                     (("count", (float(count),)),))

                return [crmkit_insights.Chart("contacts", "How many contacts", build)]
        """
