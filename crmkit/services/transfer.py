"""CSV import and export of any entity, core or plugin, through the record service.

Imports stream the file into :meth:`RecordService.create_many` in one transaction: every row
gets the same validation, normalisation, hooks and events as a single create, bad rows are
reported with their physical line, column and reason, and nothing is queried per row.
Exports stream :meth:`RecordService.iterate` and write cells that import again unchanged.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO

from attrs import frozen

from crmkit.entities.organisation import User
from crmkit.errors import CRMError
from crmkit.services.cells import csv_cell, plural
from crmkit.services.records import BulkRejected, RowError

if TYPE_CHECKING:
    from crmkit.app import CRM

#: Columns an export adds after the entity's fields; an import must skip them (with ``id``).
EXPORT_SYSTEM_FIELDS = ("created_at", "updated_at", "version")
#: What ``--skip`` needs to re-import an exported file.
REIMPORT_SKIP = ("id", *EXPORT_SYSTEM_FIELDS)

_BLANK = ""  # marks a column without a header in an import plan


@frozen
class ImportReport:
    """What an import did: data rows read, records created (their ids, in file order) and
    every problem found (line, column, reason)."""

    rows: int
    created: int
    ids: list[int]
    errors: list[RowError]

    @property
    def rejected(self) -> int:
        """How many rows were not imported (a row can have several errors)."""
        return len({error.line for error in self.errors})


class ImportRejected(BulkRejected):
    """``all_or_nothing`` was asked and some rows were bad: nothing was imported.

    ``report`` says how many rows the file had and what was wrong with each bad one.
    """

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        super().__init__(report.errors)


def entity_named(crm: CRM, name: str) -> str | None:
    """The entity a word names, singular or plural (``contacts``, ``Deal``); ``None`` if
    none does."""
    word = name.strip().lower()
    for entity in crm.entities:
        if word in (entity, plural(entity)):
            return entity
    return None


def entity_from_file_name(crm: CRM, path: Path) -> str | None:
    """The entity a file's name suggests: ``contacts.csv``, ``leads-2025-06.csv``,
    ``all_deals.csv``; ``None`` if it names none, or more than one."""
    stem = path.name.split(".", 1)[0].lower()
    whole = entity_named(crm, stem)
    if whole is not None:
        return whole
    words = re.split(r"[-_ .]+", stem)
    found = {entity for word in words if (entity := entity_named(crm, word)) is not None}
    return found.pop() if len(found) == 1 else None


# -- import --------------------------------------------------------------------------------


def import_csv(
    crm: CRM,
    entity: str,
    source: Path | TextIO,
    *,
    mapping: Mapping[str, str] | None = None,
    skip: Sequence[str] = (),
    all_or_nothing: bool = False,
    actor: User | None = None,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
) -> ImportReport:
    """Create one ``entity`` record per row of a CSV file; return what happened.

    The header row names the fields; ``mapping`` renames headers to fields
    (``{"姓名": "full_name"}``) and ``skip`` lists headers to ignore. A header that is neither
    a field, nor mapped, nor skipped fails the import before anything is written, naming the
    column and the fix. Empty cells mean "no value".

    Good rows are created and bad ones reported (line numbers are physical lines of the file,
    the header being line 1); with ``all_or_nothing`` one bad row rejects the whole file
    (``ImportRejected``) and nothing is written. ``progress`` is called with the number of
    rows read since its last call. A file that is not CSV, or not text in ``encoding``, is a
    ``CRMError`` naming the line.

    Example::

        report = import_csv(crm, "contact", Path("客户.csv"), mapping={"姓名": "full_name"})
        print(report.created, "imported;", *report.errors, sep="\\n")
    """
    crm.entity(entity)
    if batch_size < 1:
        raise CRMError("batch_size must be at least 1")
    with _text_lines(source, encoding) as (name, lines):
        reader = _reader(lines, delimiter)
        header = _read_header(reader, name)
        plan = plan_columns(crm, entity, header, mapping=mapping or {}, skip=skip)
        problems: list[RowError] = []
        counter = _RowCounter(progress, batch_size)
        rows = _rows(reader, plan, name, problems, counter)
        with crm.transaction(actor) as op:
            # All or nothing is decided here, after create_many, so that rows refused before
            # it (cells without a header) count too: raising rolls the transaction back.
            result = crm.records(entity, op=op).create_many(
                rows, all_or_nothing=False, batch_size=batch_size
            )
            counter.flush()
            errors = sorted([*problems, *result.errors], key=lambda error: error.line)
            report = ImportReport(
                rows=counter.rows, created=len(result.ids), ids=result.ids, errors=errors
            )
            if all_or_nothing and errors:
                raise ImportRejected(
                    ImportReport(rows=counter.rows, created=0, ids=[], errors=errors)
                )
    return report


def plan_columns(
    crm: CRM,
    entity: str,
    header: Sequence[str],
    *,
    mapping: Mapping[str, str] | None = None,
    skip: Sequence[str] = (),
) -> list[str | None]:
    """The field each column of ``header`` goes to (``None``: skipped); a ``CRMError`` that
    names every column crmkit cannot place, and how to fix it."""
    mapping = {key.strip(): value.strip() for key, value in (mapping or {}).items()}
    skipped = {name.strip() for name in skip}
    fields = set(crm.entity(entity).writable) | set(crm.custom_fields[entity])
    present = set(header)
    problems: list[str] = []
    for column, target in mapping.items():
        if column not in present:
            problems.append(f"--map {column}={target}: the file has no column {column!r}")
        elif target not in fields:
            problems.append(f"--map {column}={target}: {entity} has no field {target!r}")
    problems += [
        f"--skip {column}: the file has no column {column!r}"
        for column in sorted(skipped - present)
    ]
    plan: list[str | None] = []
    unknown: list[str] = []
    for column in header:
        if column in skipped:
            plan.append(None)
        elif column in mapping:
            plan.append(mapping[column])
        elif column in fields:
            plan.append(column)
        elif column == _BLANK:
            plan.append(_BLANK)
        else:
            unknown.append(column)
            plan.append(None)
    if unknown:
        names = ", ".join(repr(column) for column in unknown)
        first = unknown[0]
        problems.append(
            f"column{'s' if len(unknown) > 1 else ''} {names} "
            f"{'are not fields' if len(unknown) > 1 else 'is not a field'} of {entity}:"
            f" map each to a field (--map '{first}=FIELD') or skip it (--skip '{first}');"
            f" the fields are {', '.join(sorted(fields))}"
        )
    targets = [name for name in plan if name]
    doubled = sorted({name for name in targets if targets.count(name) > 1})
    if doubled:
        columns = [column for column, name in zip(header, plan, strict=True) if name in doubled]
        problems.append(
            f"columns {', '.join(repr(c) for c in columns)} all go to field {doubled[0]!r}:"
            " skip all but one"
        )
    if problems:
        raise CRMError("cannot import: " + "; ".join(problems))
    return plan


class _RowCounter:
    """Counts data rows and reports progress in steps of ``step`` rows (not per row)."""

    def __init__(self, progress: Callable[[int], None] | None, step: int) -> None:
        self.rows = 0
        self.progress = progress
        self.step = step
        self.unreported = 0

    def add(self) -> None:
        self.rows += 1
        self.unreported += 1
        if self.progress is not None and self.unreported >= self.step:
            self.flush()

    def flush(self) -> None:
        if self.progress is not None and self.unreported:
            self.progress(self.unreported)
        self.unreported = 0


def _reader(lines: Iterable[str], delimiter: str) -> Iterator[list[str]]:
    if len(delimiter) != 1:
        raise CRMError(f"the delimiter must be one character, not {delimiter!r}")
    return csv.reader(lines, delimiter=delimiter, strict=True)


def _read_header(reader: Iterator[list[str]], name: str) -> list[str]:
    for _, cells in _numbered(reader, name):
        if any(cell.strip() for cell in cells):
            header = [cell.strip() for cell in cells]
            while header and header[-1] == _BLANK:
                header.pop()  # trailing empty header cells, as spreadsheets write them
            return header
    raise CRMError(f"{name} is empty: the first line must name the columns")


def _numbered(reader: Iterator[list[str]], name: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, cells)`` for each of ``reader``'s rows, ``line`` being the physical line the
    row starts on (a quoted cell can span lines); CSV errors become ``CRMError`` naming the
    line."""
    line_num = getattr(reader, "line_num", 0)
    while True:
        start = line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            end = getattr(reader, "line_num", start)
            where = f"line {end}" if end == start else f"lines {start}-{end}"
            hint = ""
            if "end of data" in str(error) or "EOF" in str(error):
                hint = f" (a quoted cell opened on line {start} is never closed)"
            raise CRMError(f"{name}, {where}: not valid CSV: {error}{hint}") from None
        except UnicodeDecodeError as error:  # a text stream the caller decoded
            raise CRMError(
                f"{name}, near line {start}: not {error.encoding} text ({error.reason}):"
                " name the file's encoding (gb18030 for Chinese Excel files, big5 for"
                " Traditional)"
            ) from None
        line_num = getattr(reader, "line_num", start)
        yield start, cells


def _rows(
    reader: Iterator[list[str]],
    plan: Sequence[str | None],
    name: str,
    problems: list[RowError],
    counter: _RowCounter,
) -> Iterator[tuple[int, dict[str, object]]]:
    """``(line, data)`` for each data row: empty cells left out, blank rows skipped, rows
    with cells beyond the header reported in ``problems``."""
    width = len(plan)
    for line, cells in _numbered(reader, name):
        if not any(cell and not cell.isspace() for cell in cells):
            continue
        counter.add()
        data: dict[str, object] = {}
        bad = False
        for index, cell in enumerate(cells):
            if not cell or cell.isspace():
                continue
            field = plan[index] if index < width else _BLANK
            if field is None:
                continue
            if field == _BLANK:
                problems.append(
                    RowError(line, None, f"cell {index + 1} holds {cell!r} but has no header")
                )
                bad = True
                break
            data[field] = formula_text(cell)
        if not bad:
            yield line, data


@contextmanager
def _text_lines(source: Path | TextIO, encoding: str) -> Iterator[tuple[str, Iterable[str]]]:
    """``(name, lines)`` of ``source``; a path is decoded line by line so that a decoding
    error names its exact line."""
    if not isinstance(source, Path):
        yield getattr(source, "name", "<input>"), source
        return
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise CRMError(f"unknown encoding {encoding!r}: try utf-8, gb18030 or big5") from None
    try:
        binary = source.open("rb")
    except OSError as error:
        raise CRMError(f"cannot read {source}: {error.strerror}") from None
    with binary:
        if codec.name.startswith(("utf-16", "utf-32")):
            # Lines cannot be split on b"\n" in these encodings: decode as a stream.
            yield str(source), codecs.getreader(codec.name)(binary)
        else:
            yield str(source), _decoded_lines(binary, codec, str(source))


def _decoded_lines(binary: IO[bytes], codec: codecs.CodecInfo, name: str) -> Iterator[str]:
    decoder = codec.incrementaldecoder("strict")
    label = "UTF-8" if codec.name in ("utf-8", "utf-8-sig") else codec.name
    for number, raw in enumerate(binary, start=1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as error:
            raise CRMError(
                f"{name}, line {number}: not {label} text ({error.reason} at byte"
                f" {error.start + 1} of the line): save the file as UTF-8, or name its"
                " encoding (--encoding gb18030 for Chinese Excel files, big5 for Traditional)"
            ) from None
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise CRMError(f"{name}: the file ends inside a character ({error.reason})") from None
    if tail:
        yield tail


def count_rows(path: Path, *, delimiter: str = ",", encoding: str = "utf-8-sig") -> int | None:
    """How many data rows a CSV file holds (for a progress bar); ``None`` when it cannot be
    read (the import itself then reports why)."""
    try:
        with _text_lines(path, encoding) as (_, lines):
            reader = _reader(lines, delimiter)
            count = sum(1 for cells in reader if any(cell.strip() for cell in cells))
    except (CRMError, csv.Error):
        return None
    return max(count - 1, 0)


# -- export --------------------------------------------------------------------------------


def export_fields(crm: CRM, entity: str, fields: Sequence[str] | None = None) -> list[str]:
    """The columns an export writes: ``fields`` if given (checked), else ``id``, the
    writable built-in fields, the custom fields, then ``created_at``, ``updated_at`` and
    ``version``."""
    kind = crm.entity(entity)
    writable = kind.writable
    builtin = [key for key in kind.columns if key in writable]
    custom = list(crm.custom_fields[entity])
    default = ["id", *builtin, *custom, *EXPORT_SYSTEM_FIELDS]
    if not fields:
        return default
    known = (set(kind.columns) - {"custom", "deleted_at"}) | set(custom)
    unknown = [name for name in fields if name not in known]
    if unknown:
        raise CRMError(
            f"cannot export {', '.join(repr(n) for n in unknown)}: not a field of {entity};"
            f" the fields are {', '.join(default)}"
        )
    return list(fields)


#: Characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 .,]*")


def formula_safe(cell: str) -> str:
    """``cell`` as a spreadsheet will not run it: a text starting with ``=``, ``+``, ``-``,
    ``@``, tab or carriage return gets a leading ``'`` (Excel, LibreOffice and Google Sheets
    then show it as text). A plain number (``-12.50``, ``+8613812345678``) is no formula
    and stays as it is. :func:`formula_text` undoes it on import."""
    if cell.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def formula_text(cell: str) -> str:
    """A cell read from a CSV file: the ``'`` :func:`formula_safe` added is taken off (only
    before one of the formula characters), so an exported file imports back unchanged."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def export_csv(
    crm: CRM,
    entity: str,
    target: Path | TextIO,
    *,
    filters: Mapping[str, object] | None = None,
    search: str | None = None,
    fields: Sequence[str] | None = None,
    actor: User | None = None,
    encoding: str = "utf-8",
    keep_formulas: bool = False,
) -> int:
    """Write the ``entity`` records matching ``filters`` and ``search`` as CSV; return how
    many. The file re-imports with ``skip=REIMPORT_SKIP``.

    A regular file is written whole or not at all (through a temporary file beside it, then
    renamed over it); a symbolic link is followed and its target replaced that way; anything
    else that exists (a FIFO, a device such as ``/dev/stdout``) is written in place, never
    replaced. ``encoding`` ``utf-8-sig`` adds the byte-order mark Excel needs to show
    Chinese text. A cell a spreadsheet would run as a formula gets a leading ``'``
    (:func:`formula_safe`) unless ``keep_formulas``.

    Example::

        export_csv(crm, "contact", Path("上海客户.csv"), filters={"city": "上海"})
    """
    columns = export_fields(crm, entity, fields)
    records = crm.records(entity).export(filters, search=search, actor=actor)
    builtin = set(crm.entity(entity).columns)
    cell = csv_cell if keep_formulas else _safe_cell
    if not isinstance(target, Path):
        return _write_rows(target, columns, builtin, records, cell)
    resolved = target.resolve()
    try:
        if resolved.exists() and not resolved.is_file():
            with resolved.open("w", encoding=encoding, newline="") as stream:
                return _write_rows(stream, columns, builtin, records, cell)
    except OSError as error:
        raise CRMError(f"cannot write {target}: {error.strerror}") from None
    partial = resolved.with_name(f".{resolved.name}.part")
    try:
        if partial.is_symlink():  # a link left there would send the rows elsewhere
            partial.unlink()
        with partial.open("w", encoding=encoding, newline="") as stream:
            count = _write_rows(stream, columns, builtin, records, cell)
        os.replace(partial, resolved)
    except OSError as error:
        raise CRMError(f"cannot write {target}: {error.strerror}") from None
    finally:
        if partial.is_file() and not partial.is_symlink():
            partial.unlink(missing_ok=True)
    return count


def _safe_cell(value: object) -> str:
    return formula_safe(csv_cell(value))


def _write_rows(
    stream: TextIO,
    columns: Sequence[str],
    builtin: set[str],
    records: Iterator[object],
    cell: Callable[[object], str],
) -> int:
    count = 0
    try:
        first = next(records)
    except StopIteration:
        first = None
    writer = csv.writer(stream)
    writer.writerow(columns)
    if first is None:
        return 0
    for record in itertools.chain([first], records):
        custom = getattr(record, "custom", None) or {}
        writer.writerow(
            [
                cell(getattr(record, name) if name in builtin else custom.get(name))
                for name in columns
            ]
        )
        count += 1
    return count


__all__ = [
    "EXPORT_SYSTEM_FIELDS",
    "FORMULA_STARTS",
    "REIMPORT_SKIP",
    "ImportRejected",
    "ImportReport",
    "count_rows",
    "csv_cell",
    "entity_from_file_name",
    "entity_named",
    "export_csv",
    "export_fields",
    "formula_safe",
    "formula_text",
    "import_csv",
    "plan_columns",
    "plural",
]
