"""``crmkit segments``: saved, named filters over one entity, counted and listed live."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from crmkit.cli.assignment import parse_when
from crmkit.cli.context import cli_state
from crmkit.cli.display import echo_details, echo_json, echo_table
from crmkit.cli.parameters import split_names
from crmkit.services.cells import MAX_PAGE
from crmkit.services.segments import Segment

_WHEN_HELP = (
    "A condition (repeatable; all must hold): FIELD=VALUE, FIELD>=VALUE, 'FIELD in A,B',"
    " 'FIELD contains TEXT', 'FIELD empty'; FIELD may be a custom field, a measure, a"
    " relation's field (account.city, deals.stage_kind) or segment (another segment's name)."
    " Dates take year_start, month_start, today-30d and the like."
)
_JSON_FILTERS_HELP = (
    "The filters as a JSON object (nested relations, lists), merged over the --when ones:"
    ' \'{"deals": {"stage_kind": "won", "closed_at__gte": "year_start"}}\''
)


def _filters(when: Sequence[str], filters_json: str | None) -> dict[str, Any]:
    filters = parse_when(when)
    if filters_json is not None:
        try:
            extra = json.loads(filters_json)
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--filters-json") from None
        if not isinstance(extra, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--filters-json")
        filters.update(extra)
    return filters


def _describe(filters: dict[str, Any]) -> str:
    return json.dumps(filters, ensure_ascii=False) if filters else "(every record)"


def _segment_json(segment: Segment, count: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": segment.id,
        "name": segment.name,
        "entity": segment.entity,
        "filters": dict(segment.filters),
        "description": segment.description,
        "created_at": segment.created_at.isoformat(),
        "updated_at": segment.updated_at.isoformat(),
        "created_by": segment.created_by,
        "version": segment.version,
    }
    if count is not None:
        found["count"] = count
    return found


@click.group("segments")
def segments_group() -> None:
    """Segments: saved, named filters over contacts, accounts, deals or any entity, counted
    and listed live for whoever looks.

    Example:

    \b
        crmkit segments add 上海赢单客户 contact --when account.city=上海 \\
            --when deals.stage_kind=won --when "deals.closed_at>=year_start"
        crmkit segments members 上海赢单客户
    """


@segments_group.command("add")
@click.argument("name")
@click.argument("entity")
@click.option("--when", "when", multiple=True, metavar="CONDITION", help=_WHEN_HELP)
@click.option("--filters-json", metavar="JSON", help=_JSON_FILTERS_HELP)
@click.option("--description", default="", help="What the segment is for.")
@click.option("--json", "as_json", is_flag=True, help="Print the segment as JSON.")
def add_segment(
    name: str,
    entity: str,
    when: Sequence[str],
    filters_json: str | None,
    description: str,
    as_json: bool,
) -> None:
    """Save a segment of ENTITY called NAME.

    Example:

    \b
        crmkit segments add 上海客户 account --when city=上海 --when "value_tier in A,B"
    """
    crm = cli_state().crm()
    segment = crm.segments.create(
        name, entity, _filters(when, filters_json), description=description
    )
    if as_json:
        echo_json(_segment_json(segment))
        return
    count = crm.segments.count(segment.name)
    click.echo(f"Saved segment {segment.name!r} of {segment.entity}: {count} record(s) now")


@segments_group.command("list")
@click.option("--entity", metavar="ENTITY", help="Only the segments of this entity.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_segments(entity: str | None, as_json: bool) -> None:
    """List the saved segments.

    Example:

    \b
        crmkit segments list --entity contact
    """
    segments = cli_state().crm().segments.list(entity)
    if as_json:
        echo_json([_segment_json(segment) for segment in segments])
        return
    if not segments:
        click.echo("No segments. Save one with: crmkit segments add NAME ENTITY --when ...")
        return
    echo_table(
        ["name", "entity", "filters", "description"],
        [[s.name, s.entity, _describe(dict(s.filters)), s.description] for s in segments],
    )


@segments_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the segment as JSON.")
def show_segment(name: str, as_json: bool) -> None:
    """Show a segment's definition and how many records are in it now.

    Example:

    \b
        crmkit segments show 上海客户
    """
    crm = cli_state().crm()
    segment = crm.segments.get(name)
    count = crm.segments.count(segment.name)
    if as_json:
        echo_json(_segment_json(segment, count))
        return
    echo_details(
        {
            "name": segment.name,
            "entity": segment.entity,
            "filters": _describe(dict(segment.filters)),
            "description": segment.description,
            "records now": count,
            "created by": segment.created_by or "system",
            "updated at": segment.updated_at.isoformat(),
            "version": segment.version,
        }
    )


@segments_group.command("count")
@click.argument("name")
def count_segment(name: str) -> None:
    """Print how many records are in the segment now.

    Example:

    \b
        crmkit segments count 上海客户
    """
    click.echo(str(cli_state().crm().segments.count(name)))


@segments_group.command("members")
@click.argument("name")
@click.option(
    "--sort", default="id", show_default=True, metavar="[-]FIELD", help="Sort by this field."
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, MAX_PAGE),
    help="Records per page.",
)
@click.option("--cursor", metavar="CURSOR", help="Continue after the page that printed it.")
@click.option("--fields", metavar="A,B,...", help="Columns to show (default: id and name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def segment_members(
    name: str, sort: str, limit: int, cursor: str | None, fields: str | None, as_json: bool
) -> None:
    """List the segment's records, a page at a time.

    Example:

    \b
        crmkit segments members 上海客户 --fields id,name,city --limit 100
    """
    from crmkit.cli.records import echo_record_page, record_values
    from crmkit.services.transfer import export_fields

    crm = cli_state().crm()
    segment = crm.segments.get(name)
    page = crm.segments.members(segment.name, sort=sort, limit=limit, cursor=cursor)
    entity = segment.entity
    if as_json:
        items = [record_values(crm, entity, record) for record in page.items]
        echo_json({"items": items, "next_cursor": page.next_cursor})
        return
    known = [*export_fields(crm, entity), "created_by_id", "updated_by_id"]
    if fields:
        columns = split_names([fields])
        unknown = [column for column in columns if column not in known]
        if unknown:
            raise click.BadParameter(
                f"{', '.join(unknown)}: not a field of {entity}; the fields are {', '.join(known)}",
                param_hint="--fields",
            )
    else:
        labels = [label for label in ("full_name", "name", "title") if label in known]
        columns = ["id", *labels[:1]]
    echo_record_page(crm, entity, page, columns, empty=f"No records in segment {segment.name!r}.")


@segments_group.command("edit")
@click.argument("name")
@click.option(
    "--when",
    "when",
    multiple=True,
    metavar="CONDITION",
    help="Replace the conditions (repeatable), as for add.",
)
@click.option("--filters-json", metavar="JSON", help="Replace the filters with this JSON object.")
@click.option("--rename", "new_name", metavar="NAME", help="A new name.")
@click.option("--description", default=None, help="A new description.")
def edit_segment(
    name: str,
    when: Sequence[str],
    filters_json: str | None,
    new_name: str | None,
    description: str | None,
) -> None:
    """Change a segment's conditions, name or description.

    Example:

    \b
        crmkit segments edit 上海客户 --when city=上海 --when value_tier=A
    """
    filters = _filters(when, filters_json) if when or filters_json is not None else None
    segment = (
        cli_state()
        .crm()
        .segments.update(name, filters=filters, new_name=new_name, description=description)
    )
    click.echo(f"Segment {segment.name!r} is at version {segment.version}")


@segments_group.command("remove")
@click.argument("name")
def remove_segment(name: str) -> None:
    """Delete a segment (refused while segments, pool policies or rules name it).

    Example:

    \b
        crmkit segments remove 上海客户
    """
    cli_state().crm().segments.delete(name)
    click.echo(f"Removed segment {name!r}")


@segments_group.command("fields")
@click.argument("entity")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def segment_fields(entity: str, as_json: bool) -> None:
    """What a segment of ENTITY can filter on: fields, relations and measures.

    Example:

    \b
        crmkit segments fields contact
    """
    known = cli_state().crm().segments.vocabulary(entity)
    if as_json:
        echo_json(known)
        return
    for kind in ("fields", "relations", "measures"):
        click.echo(f"{kind}: {', '.join(known[kind]) or '(none)'}")


__all__ = ["segments_group"]
