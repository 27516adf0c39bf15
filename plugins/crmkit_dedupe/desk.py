"""The dedupe plugin's face on the web desk: a "Duplicates" page listing the open candidate
pairs the signed-in user may review (both records readable to them), best score first,
each side linking to its record page."""

from __future__ import annotations

import crmkit
from crmkit_dedupe import service

#: Candidate pairs shown on one page.
PAGE_SIZE = 50


def _plural(entity: str) -> str:
    return entity[:-1] + "ies" if entity.endswith("y") else entity + "s"


def _side(row: dict[str, object], side: str) -> crmkit.DeskLink | str:
    entity, record_id = row[f"entity_{side}"], row[f"id_{side}"]
    label = row.get(f"label_{side}") or f"#{record_id}"
    return crmkit.DeskLink(str(label), f"/desk/{_plural(str(entity))}/{record_id}")


def duplicates_page(view: crmkit.DeskView) -> list[crmkit.DeskPanel]:
    """Open candidate pairs the user may review (needs ``dedupe:review``)."""
    _ = view.gettext
    after = view.query.get("after") or None
    rows = service.candidates(view.crm, limit=PAGE_SIZE, after=after, actor=view.actor)
    links = []
    if len(rows) == PAGE_SIZE:
        links.append(crmkit.DeskLink(_("Next page"), f"?after={rows[-1]['cursor']}"))
    return [
        crmkit.DeskPanel(
            title=_("Duplicates to review"),
            text="" if rows else _("Nothing to review."),
            columns=(_("Record"), _("Looks like"), _("Score"), _("Rule")) if rows else (),
            cells=[
                (
                    _side(row, "a"),
                    _side(row, "b"),
                    f"{float(str(row['score'])):.2f}",
                    str(row["rule"]),
                )
                for row in rows
            ],
            links=links,
        )
    ]


def desk_pages() -> list[crmkit.DeskPage]:
    """The plugin's desk pages."""
    return [crmkit.DeskPage(path="duplicates", title="Duplicates", render=duplicates_page)]
