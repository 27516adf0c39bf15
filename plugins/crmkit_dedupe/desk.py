"""The dedupe plugin's face on the web desk: a "Duplicates" page listing the open candidate
pairs the signed-in user may review (both records readable to them), best score first,
each side linking to its record page, with buttons to merge a pair (keeping either record)
or to dismiss it. The buttons call the same service functions as the plugin's API routes
(``service.merge``, ``service.dismiss``), as the signed-in user: the permission checks,
the merge rules and the events are theirs."""

from __future__ import annotations

from collections.abc import Mapping

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


def _buttons(view: crmkit.DeskView, row: dict[str, object]) -> tuple[crmkit.DeskButton | str, ...]:
    """Merge keeping the first record, merge keeping the second, not the same customer (a
    lead and a contact are not merged: the lead is converted instead)."""
    _ = view.gettext
    candidate = {"candidate": str(row["id"])}
    dismiss = crmkit.DeskButton(_("Not the same"), "dismiss", candidate)
    if row["entity_a"] != row["entity_b"]:
        return ("", "", dismiss)
    confirm = _("Merge these two records? (A merge can be undone until either record changes.)")
    return (
        crmkit.DeskButton(_("Keep the first"), "merge", {**candidate, "keep": "a"}, confirm),
        crmkit.DeskButton(_("Keep the second"), "merge", {**candidate, "keep": "b"}, confirm),
        dismiss,
    )


def duplicates_page(view: crmkit.DeskView) -> list[crmkit.DeskPanel]:
    """Open candidate pairs the user may review (needs ``dedupe:review``)."""
    _ = view.gettext
    after = view.query.get("after") or None
    rows = service.candidates(view.crm, limit=PAGE_SIZE, after=after, actor=view.actor)
    links = []
    if len(rows) == PAGE_SIZE:
        links.append(crmkit.DeskLink(_("Next page"), f"?after={rows[-1]['cursor']}"))
    columns = (
        _("Record"),
        _("Looks like"),
        _("Score"),
        _("Rule"),
        _("Merge, keeping the first"),
        _("Merge, keeping the second"),
        _("Dismiss"),
    )
    return [
        crmkit.DeskPanel(
            title=_("Duplicates to review"),
            text="" if rows else _("Nothing to review."),
            columns=columns if rows else (),
            cells=[
                (
                    _side(row, "a"),
                    _side(row, "b"),
                    f"{float(str(row['score'])):.2f}",
                    str(row["rule"]),
                    *_buttons(view, row),
                )
                for row in rows
            ],
            links=links,
        )
    ]


def _candidate_id(form: Mapping[str, str]) -> int:
    text = form.get("candidate", "")
    if not text.isdigit() or len(text) > 18:
        raise crmkit.ValidationError(
            [crmkit.FieldError("candidate", "must be the number of a candidate pair")]
        )
    return int(text)


def merge_action(view: crmkit.DeskView, form: Mapping[str, str]) -> str:
    """Merge a pair, keeping the record ``keep`` names (``a`` or ``b``)."""
    result = service.merge(
        view.crm, _candidate_id(form), keep=form.get("keep", ""), actor=view.actor
    )
    return view.gettext("Merged: record #%(merged)s is now part of #%(survivor)s.") % {
        "merged": result.merged_id,
        "survivor": result.survivor_id,
    }


def dismiss_action(view: crmkit.DeskView, form: Mapping[str, str]) -> str:
    """Mark a pair as two different customers."""
    service.dismiss(view.crm, _candidate_id(form), actor=view.actor)
    return view.gettext("Dismissed: the pair will not be suggested again.")


def desk_pages() -> list[crmkit.DeskPage]:
    """The plugin's desk pages."""
    return [
        crmkit.DeskPage(
            path="duplicates",
            title="Duplicates",
            render=duplicates_page,
            actions={"merge": merge_action, "dismiss": dismiss_action},
        )
    ]
