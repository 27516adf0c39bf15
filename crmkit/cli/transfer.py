"""``crmkit import`` and ``crmkit export``: records from and to CSV files."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

import click

from crmkit.app import CRM
from crmkit.cli.context import cli_state
from crmkit.cli.parameters import (
    FIELD_VALUE,
    filter_option,
    pairs_to_dict,
    search_option,
    split_names,
)
from crmkit.cli.terminal import raw_stdout, raw_stream
from crmkit.errors import CRMError
from crmkit.services.records import RowError
from crmkit.services.transfer import (
    REIMPORT_SKIP,
    ImportRejected,
    count_rows,
    entity_from_file_name,
    entity_named,
    export_csv,
    import_csv,
    plural,
)

ERRORS_SHOWN = 20
_DELIMITERS = {"\\t": "\t", "tab": "\t", "TAB": "\t"}


def _delimiter(ctx: click.Context, param: click.Parameter, value: str) -> str:
    value = _DELIMITERS.get(value, value)
    if len(value) != 1:
        raise click.BadParameter(f"{value!r} is not one character (use '\\t' for a tab)")
    return value


def resolve_entity(crm: CRM, name: str) -> str:
    """The entity ``name`` names (singular or plural); an error listing the known ones."""
    entity = entity_named(crm, name)
    if entity is None:
        known = ", ".join(plural(e) for e in sorted(crm.entities))
        raise CRMError(f"unknown entity {name!r}; known: {known}")
    return entity


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--entity",
    "-e",
    metavar="ENTITY",
    help="What the rows are: contacts, accounts, leads, deals, activities, tasks, or a"
    " plugin's entity. Default: taken from the file name (contacts.csv, leads-2025.csv).",
)
@click.option(
    "--map",
    "mappings",
    multiple=True,
    type=FIELD_VALUE,
    metavar="COLUMN=FIELD",
    help="Read column COLUMN into field FIELD (repeatable), e.g. --map 姓名=full_name.",
)
@click.option(
    "--skip",
    "skipped",
    multiple=True,
    metavar="COLUMN[,COLUMN...]",
    help="Ignore these columns (repeatable, or comma-separated).",
)
@click.option(
    "--all-or-nothing", is_flag=True, help="Import nothing at all if any row is rejected."
)
@click.option(
    "--delimiter",
    default=",",
    show_default=True,
    callback=_delimiter,
    help="The cell separator; '\\t' for tab-separated files.",
)
@click.option(
    "--encoding",
    default="utf-8-sig",
    show_default=True,
    help="The file's text encoding: gb18030 for CSV saved by Chinese Excel, big5 for"
    " Traditional Chinese.",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, writable=True),
    metavar="REPORT.csv",
    help="Write every rejected row (line, column, reason) to this CSV file.",
)
def import_command(
    file: str,
    entity: str | None,
    mappings: Sequence[tuple[str, str]],
    skipped: Sequence[str],
    all_or_nothing: bool,
    delimiter: str,
    encoding: str,
    errors_path: str | None,
) -> None:
    """Import records from a CSV file, one record per row.

    The first line names the columns: field names, or any names mapped to fields with --map;
    a column that is neither stops the import before anything is written. Empty cells mean
    "no value"; list fields take values separated by ';'. Rows get the same validation as
    every other way in. Good rows are imported and each rejected row is reported with its
    line, column and reason (the first 20 here, all with --errors). A file written by crmkit
    export imports again with --skip id,created_at,updated_at,version.

    Exit status: 0 when every row was imported; 1 when any row was rejected or the file
    could not be imported; 2 for wrong usage.

    Example:

    \b
        crmkit import contacts.csv
        crmkit import 客户.csv -e contacts --map 姓名=full_name --map 手机=phone \\
            --skip 备注 --errors rejected.csv
    """
    crm = cli_state().crm()
    source_path = None if file == "-" else Path(file)
    if entity is not None:
        name = resolve_entity(crm, entity)
    else:
        found = entity_from_file_name(crm, source_path) if source_path else None
        if found is None:
            raise click.UsageError(
                f"cannot tell what {file} holds from its name: say it with --entity, e.g."
                " --entity contacts (or accounts, leads, deals, activities, tasks)"
            )
        name = found
    source: Path | TextIO = source_path or io.TextIOWrapper(
        sys.stdin.buffer, encoding=encoding, newline=""
    )
    # the report file is opened before anything is imported: a path that cannot be written
    # stops the command here, not after the rows went in
    with _report_file(errors_path) as report_stream:
        _import(
            crm,
            name,
            source,
            source_path,
            mappings=mappings,
            skipped=skipped,
            all_or_nothing=all_or_nothing,
            delimiter=delimiter,
            encoding=encoding,
            errors_path=errors_path,
            report_stream=report_stream,
        )


@contextlib.contextmanager
def _report_file(path: str | None) -> Iterator[TextIO | None]:
    """The ``--errors`` file, open for writing (``None`` without one); a ``CRMError``
    naming the path when it cannot be written."""
    if path is None:
        yield None
        return
    try:
        stream = open(path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise CRMError(
            f"cannot write the error report {path}: {exc.strerror}; nothing was imported"
        ) from None
    with stream:
        yield stream


def _import(
    crm: CRM,
    name: str,
    source: Path | TextIO,
    source_path: Path | None,
    *,
    mappings: Sequence[tuple[str, str]],
    skipped: Sequence[str],
    all_or_nothing: bool,
    delimiter: str,
    encoding: str,
    errors_path: str | None,
    report_stream: TextIO | None,
) -> None:
    try:
        with _progress(source_path, delimiter, encoding) as progress:
            report = import_csv(
                crm,
                name,
                source,
                mapping=pairs_to_dict(mappings),
                skip=split_names(skipped),
                all_or_nothing=all_or_nothing,
                delimiter=delimiter,
                encoding=encoding,
                progress=progress,
            )
    except ImportRejected as rejected:
        report = rejected.report
        click.echo(
            f"imported 0 of {report.rows} rows, {report.rejected} rejected"
            " (--all-or-nothing: nothing was imported)"
        )
        _report_errors(report.errors, errors_path, report_stream)
        raise click.exceptions.Exit(1) from None
    click.echo(f"imported {report.created} of {report.rows} rows, {report.rejected} rejected")
    _report_errors(report.errors, errors_path, report_stream)
    if report.errors:
        raise click.exceptions.Exit(1)


#: Without a terminal, a progress line every this many rows (and at most this many seconds
#: apart once rows keep coming), so a log shows a long import moving.
PROGRESS_EVERY_ROWS = 10_000
PROGRESS_EVERY_SECONDS = 10.0


@contextlib.contextmanager
def _progress(
    path: Path | None, delimiter: str, encoding: str
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal; otherwise (a log, CI) a line
    ``... N rows read`` every :data:`PROGRESS_EVERY_ROWS` rows or
    :data:`PROGRESS_EVERY_SECONDS` seconds."""
    if not sys.stderr.isatty() or path is None:
        yield _progress_lines()
        return
    total = count_rows(path, delimiter=delimiter, encoding=encoding)
    if total is None:
        yield _progress_lines()
        return
    with click.progressbar(
        length=total, label=f"Importing {path.name}", file=raw_stream(sys.stderr), show_pos=True
    ) as bar:
        yield bar.update


def _progress_lines() -> Callable[[int], None]:
    state = {"rows": 0, "shown": 0, "at": time.monotonic()}

    def progress(rows: int) -> None:
        state["rows"] += rows
        now = time.monotonic()
        due = state["rows"] - state["shown"] >= PROGRESS_EVERY_ROWS
        if due or now - state["at"] >= PROGRESS_EVERY_SECONDS:
            click.echo(f"... {int(state['rows'])} rows read", err=True)
            state["shown"], state["at"] = state["rows"], now

    return progress


def _report_errors(errors: Sequence[RowError], path: str | None, stream: TextIO | None) -> None:
    for error in errors[:ERRORS_SHOWN]:
        click.echo(str(error), err=True)
    hidden = len(errors) - ERRORS_SHOWN
    if hidden > 0:
        where = f"all are in {path}" if path else "use --errors REPORT.csv to get them all"
        click.echo(f"... and {hidden} more problems ({where})", err=True)
    if stream is None:
        return
    try:
        writer = csv.writer(stream)
        writer.writerow(["line", "column", "reason"])
        writer.writerows([error.line, error.field or "", error.message] for error in errors)
        stream.flush()
    except OSError as exc:
        raise CRMError(f"cannot write {path}: {exc.strerror}") from None


@click.command("export")
@click.argument("entity")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file (default: standard output).",
)
@filter_option("Only records matching this (repeatable; as in the list commands).")
@search_option
@click.option(
    "--fields",
    metavar="A,B,...",
    help="Columns to write (default: id, every field, created_at, updated_at, version).",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="Text encoding of the file; utf-8-sig adds the mark Excel needs to show Chinese.",
)
@click.option(
    "--keep-formulas",
    is_flag=True,
    help="Write cells starting with = + - @ as they are (by default they get a leading ' so"
    " that a spreadsheet shows them as text instead of running them).",
)
def export_command(
    entity: str,
    output: Path | None,
    filters: Sequence[tuple[str, str]],
    search: str | None,
    fields: str | None,
    encoding: str,
    keep_formulas: bool,
) -> None:
    """Export records to CSV.

    One row per record under a header of field names. Lists are written as a;b, key-value
    fields as k=v;k=v, times in ISO 8601. The file imports again with
    --skip id,created_at,updated_at,version. A cell a spreadsheet would run as a formula
    (starting with = + - @) is written with a leading ' (crmkit import takes it off again);
    --keep-formulas writes them as they are. An existing regular file is replaced whole; a
    FIFO or device (-o /dev/stdout) is written in place, never replaced.

    Example:

    \b
        crmkit export contacts --filter city=上海 -o shanghai.csv
        crmkit export deals --fields id,name,amount,stage_id
    """
    crm = cli_state().crm()
    name = resolve_entity(crm, entity)
    chosen = split_names([fields]) if fields else None
    target: Path | TextIO = output or raw_stdout()
    count = export_csv(
        crm,
        name,
        target,
        filters=pairs_to_dict(filters),
        search=search,
        fields=chosen,
        encoding=encoding,
        keep_formulas=keep_formulas,
    )
    where = f" to {output}" if output else ""
    click.echo(f"Exported {count} {plural(name)}{where}", err=True)
    if output and not fields:
        click.echo(
            f"Import it again with: crmkit import {output} -e {plural(name)}"
            f" --skip {','.join(REIMPORT_SKIP)}",
            err=True,
        )


__all__ = ["export_command", "import_command", "resolve_entity"]
