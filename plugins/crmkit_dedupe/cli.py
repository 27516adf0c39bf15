"""``crmkit dedupe ...``: scan, review, merge, dismiss, undo, check, reindex."""

from __future__ import annotations

import json
from typing import Any

import click

import crmkit
from crmkit_dedupe import service
from crmkit_dedupe.engine import engine_of


@click.group(name="dedupe")
def dedupe_group() -> None:
    """Duplicate detection and merge (bundled plugin dedupe)."""


def _fail(error: crmkit.CRMError) -> None:
    raise click.ClickException(str(error)) from None


@dedupe_group.command(name="scan")
@click.option(
    "--entity",
    default="contact",
    show_default=True,
    help="Which records to scan: contact, lead, account, or a plugin entity with rules.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def scan_command(entity: str, as_json: bool) -> None:
    """Scan every record for duplicates (blocking: only records sharing a key or near each
    other in name order are compared) and save the candidate pairs for review.

    Example: crmkit dedupe scan --entity contact
    """
    crm = crmkit.cli_crm()
    try:
        total = crm.records(entity).count()
        with click.progressbar(
            length=max(total, 1),
            label=f"Reading {entity} records",
            file=crmkit.cli_progress_stream(),
        ) as bar:
            counts = service.scan(crm, entity, progress=bar.update)
    except crmkit.CRMError as error:
        _fail(error)
        return
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(
            f"Scanned {counts['records']} records, compared {counts['compared']} pairs,"
            f" found {counts['candidates']} candidate pairs: crmkit dedupe review"
        )


@dedupe_group.command(name="review")
@click.option("--entity", help="Only candidates of this entity.")
@click.option(
    "--status",
    type=click.Choice(service.STATUSES),
    default="open",
    show_default=True,
    help="Which candidates.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option(
    "--after", metavar="CURSOR", help="The next page: the cursor the previous page ended with."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def review_command(
    entity: str | None, status: str, limit: int, after: str | None, as_json: bool
) -> None:
    """List candidate pairs, best score first, with the reasons, a page at a time.

    Example: crmkit dedupe review --entity contact --limit 20 --after 0.9:412
    """
    crm = crmkit.cli_crm()
    try:
        rows = service.candidates(crm, entity=entity, status=status, limit=limit, after=after)
    except crmkit.CRMError as error:
        _fail(error)
        return
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo(f"No {status} candidates.")
        return
    for row in rows:
        click.echo(
            f"#{row['id']:<5} {row['score']:.2f}  [{row['action']}] "
            f"a: {row['label_a']} ({row['entity_a']} {row['id_a']})  "
            f"b: {row['label_b']} ({row['entity_b']} {row['id_b']})  rule {row['rule']}"
        )
        for reason in row["reasons"]:
            click.echo(f"        - {reason}")
    if len(rows) == limit:
        click.echo(f"Next page: --after {rows[-1]['cursor']}")


@dedupe_group.command(name="export")
@click.option("--entity", help="Only candidates of this entity.")
@click.option(
    "--status",
    type=click.Choice(service.STATUSES),
    default="open",
    show_default=True,
    help="Which candidates.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(service.EXPORT_FORMATS),
    default="csv",
    show_default=True,
    help="CSV (one line per pair, reasons joined with '; ') or a JSON array.",
)
@click.option(
    "--output",
    "-o",
    type=click.File("w", encoding="utf-8", lazy=True),
    default="-",
    help="The file to write (default: standard output).",
)
def export_command(entity: str | None, status: str, fmt: str, output: Any) -> None:
    """Write every candidate pair with its reasons, best score first, for a spreadsheet.

    Example: crmkit dedupe export --entity contact --format csv -o candidates.csv
    """
    crm = crmkit.cli_crm()
    try:
        for piece in service.export_text(
            service.export_candidates(crm, entity=entity, status=status), fmt
        ):
            output.write(piece)
    except crmkit.CRMError as error:
        _fail(error)


@dedupe_group.command(name="merge")
@click.argument("candidate_id", type=int)
@click.option(
    "--keep",
    type=click.Choice(["a", "b"]),
    default="a",
    show_default=True,
    help="Which record of the pair survives.",
)
@click.option(
    "--strategy",
    type=click.Choice(crmkit.MERGE_STRATEGIES),
    default="survivor",
    show_default=True,
    help="Whose value wins when both records have one.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME=CHOICE",
    help="Choose one field's value: phone=merged, title=most_recent ... (repeatable).",
)
def merge_command(candidate_id: int, keep: str, strategy: str, fields: tuple[str, ...]) -> None:
    """Merge the two records of a candidate pair (undo with: crmkit dedupe undo MERGE_ID).

    Example: crmkit dedupe merge 12 --keep b --strategy most_recent --field phone=survivor
    """
    chosen: dict[str, Any] = {}
    for item in fields:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise click.BadParameter(f"{item!r} is not NAME=CHOICE", param_hint="--field")
        chosen[name.strip()] = value.strip()
    crm = crmkit.cli_crm()
    try:
        result = service.merge(crm, candidate_id, keep=keep, strategy=strategy, fields=chosen)
    except crmkit.CRMError as error:
        _fail(error)
        return
    moved = ", ".join(f"{n} {k}" for k, n in result.moved.items()) or "no references"
    click.echo(
        f"Merged {result.entity} {result.merged_id} into {result.survivor_id}"
        f" (merge {result.merge_id}; moved {moved}). Undo: crmkit dedupe undo {result.merge_id}"
    )


@dedupe_group.command(name="undo")
@click.argument("merge_id", type=int)
def undo_command(merge_id: int) -> None:
    """Undo a merge: both records back as they were (refused if either changed since).

    Example: crmkit dedupe undo 3
    """
    crm = crmkit.cli_crm()
    try:
        result = crm.merges.undo(merge_id)
    except crmkit.CRMError as error:
        _fail(error)
        return
    click.echo(f"Undid merge {merge_id}: {result.entity} {result.merged_id} is back.")


@dedupe_group.command(name="dismiss")
@click.argument("candidate_id", type=int)
def dismiss_command(candidate_id: int) -> None:
    """Mark a candidate pair as two different customers.

    Example: crmkit dedupe dismiss 12
    """
    crm = crmkit.cli_crm()
    try:
        service.dismiss(crm, candidate_id)
    except crmkit.CRMError as error:
        _fail(error)
        return
    click.echo(f"Dismissed candidate {candidate_id}.")


@dedupe_group.command(name="check")
@click.option("--entity", default="contact", show_default=True)
@click.option(
    "--set",
    "values",
    multiple=True,
    metavar="FIELD=VALUE",
    help="A field of the record to check (repeatable).",
)
def check_command(entity: str, values: tuple[str, ...]) -> None:
    """Show which existing records a new record would match, without writing anything.

    Example: crmkit dedupe check --set full_name=張偉 --set phone="138 1234 5678"
    """
    data: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="--set")
        data[name] = value
    crm = crmkit.cli_crm()
    try:
        matches = service.check(crm, entity, data)
    except crmkit.CRMError as error:
        _fail(error)
        return
    if not matches:
        click.echo("No duplicates.")
    for match in matches:
        score = f"{match.score:.2f}" if match.score is not None else "   ?"
        click.echo(f"{score} [{match.action}] {match.describe()} rule {match.rule}")
        for reason in match.reasons:
            click.echo(f"     - {reason}")


@dedupe_group.command(name="reindex")
def reindex_command() -> None:
    """Rebuild the blocking-key index of every record the rules cover.

    Example: crmkit dedupe reindex
    """
    crm = crmkit.cli_crm()
    try:
        with crm.transaction() as op:
            count = engine_of(crm).rebuild(op)
    except crmkit.CRMError as error:
        _fail(error)
        return
    click.echo(f"Indexed {count} records.")
