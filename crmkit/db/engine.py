"""Creating engines that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Dialect,
    Engine,
    Integer,
    Table,
    create_engine,
    event,
    insert,
    make_url,
    text,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from crmkit.db.base import UTCDateTime
from crmkit.errors import ConfigError, FieldError, ValidationError

READ_ONLY = "crmkit_read_only"


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; a malformed URL or a missing driver is a ``ConfigError``.

    SQLite gets foreign keys on, WAL, a busy timeout, and write transactions that take the
    write lock up front (``BEGIN IMMEDIATE``), so two processes writing at once wait for each
    other instead of failing half-way. Read-only transactions (engine option ``READ_ONLY``)
    use a plain ``BEGIN`` and never block writers.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"database URL {_redacted(url)!r} is malformed: use sqlite:///path/to/crm.db or"
            " postgresql+psycopg://user@host:5432/dbname"
        ) from None
    kwargs: dict[str, Any] = {"echo": echo}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ArgumentError, ImportError) as error:
        shown = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"database URL {shown!r}: {error}") from None
    if sqlite:
        _configure_sqlite(engine)
    event.listen(engine, "before_cursor_execute", _refuse_unstorable)
    return engine


#: The range of a 64-bit SQL integer: a Python int beyond it reaches no database.
_INT64 = 2**63


def _refuse_unstorable(
    connection: Any,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    """Refuse a statement with a NUL character in a text parameter, or an integer beyond 64
    bits, on both engines alike: PostgreSQL cannot hold a NUL (its driver raises, an error
    that carries the statement and its parameters), SQLite would store it; SQLite's driver
    raises OverflowError on a larger integer. Written values are refused earlier, naming the
    field (``crmkit.entities.parsing``); this catches every other path (a search, a filter,
    a form key, an id given on the command line, a plugin's own query). Bulk writes
    (``executemany``) take their rows from that validation and are not scanned again."""
    if executemany or not parameters:
        return
    values = parameters.values() if isinstance(parameters, Mapping) else parameters
    for value in values:
        # an array parameter (PostgreSQL ``= ANY``) is scanned item by item
        items = value if isinstance(value, list | tuple) else (value,)
        for item in items:
            if isinstance(item, str) and "\x00" in item:
                raise ValidationError(
                    [FieldError("input", "text may not contain a NUL character (\\x00)")]
                )
            if type(item) is int and not -_INT64 <= item < _INT64:
                raise ValidationError(
                    [FieldError("input", "a number is out of range (beyond 64 bits)")]
                )


def _redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for error messages)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


# -- primary keys for bulk inserts ---------------------------------------------------------

#: Per engine and table: how ``allocate_ids`` gets ids ("sqlite", a PostgreSQL sequence
#: name) or ``None`` when it cannot (the caller then inserts with ``RETURNING``).
_ID_SOURCES: weakref.WeakKeyDictionary[Engine, dict[str, str | None]] = weakref.WeakKeyDictionary()


def allocate_ids(connection: Connection, table: Table, count: int) -> list[int] | None:
    """``count`` new values of ``table``'s integer ``id`` primary key, in increasing order,
    for an insert that passes them explicitly (a plain ``executemany``, without
    ``RETURNING``, is much cheaper for thousands of rows); ``None`` when that is not safe here.

    PostgreSQL: the values come from the column's own sequence (``nextval``), exactly as
    the column default would take them, so concurrent inserts never collide. SQLite: a write
    transaction (``BEGIN IMMEDIATE``, see :func:`make_engine`) holds the database's write
    lock, so ``max(id) + 1 ...`` are exactly the ids SQLite itself would assign, and no one
    else can insert before the transaction ends; tables declared ``AUTOINCREMENT`` and
    read-only transactions are left to ``RETURNING``. Either way the primary key still
    guards against a duplicate.
    """
    primary = list(table.primary_key.columns)
    if count < 1 or len(primary) != 1 or not isinstance(primary[0].type, Integer):
        return None
    column = primary[0]
    dialect = connection.dialect.name
    if dialect == "sqlite" and connection.get_execution_options().get(READ_ONLY, False):
        return None
    sources = _ID_SOURCES.setdefault(connection.engine, {})
    key = f"{table.fullname}.{column.name}"
    if key not in sources:
        sources[key] = _id_source(connection, table, column.name)
    source = sources[key]
    if source is None:
        return None
    if dialect == "sqlite":
        quote = connection.dialect.identifier_preparer.quote
        last = connection.exec_driver_sql(
            f"SELECT max({quote(column.name)}) FROM {quote(table.name)}"
        ).scalar()
        first = int(last or 0) + 1
        return list(range(first, first + count))
    values = connection.execute(
        text("SELECT nextval(CAST(:sequence AS regclass)) FROM generate_series(1, :count)"),
        {"sequence": source, "count": count},
    ).scalars()
    return sorted(int(value) for value in values)


def _id_source(connection: Connection, table: Table, column: str) -> str | None:
    dialect = connection.dialect.name
    if dialect == "sqlite":
        if table.schema is not None:
            return None
        sql = connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table.name,)
        ).scalar()
        if sql is None or "AUTOINCREMENT" in str(sql).upper():
            return None
        return "sqlite"
    if dialect == "postgresql":
        name = connection.dialect.identifier_preparer.format_table(table)
        row = connection.execute(
            text(
                "SELECT pg_get_serial_sequence(:table, :column),"
                " (SELECT attidentity FROM pg_attribute"
                "  WHERE attrelid = CAST(:table AS regclass) AND attname = :column)"
            ),
            {"table": name, "column": column},
        ).one()
        sequence, identity = row
        if sequence is None or identity == "a":  # GENERATED ALWAYS refuses explicit ids
            return None
        return str(sequence)
    return None


# -- bulk inserts --------------------------------------------------------------------------


def bulk_insert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in the current transaction,
    without returning anything. With ``columns`` (column keys), each row is a tuple of
    values in that order instead: a caller writing thousands of rows need not build a dict
    for each.

    The values go through the same SQLAlchemy bind processing an ``INSERT`` applies (JSON,
    time zones), so the stored rows are the same, but without SQLAlchemy's per-row
    parameter bookkeeping: on PostgreSQL (psycopg) as a ``COPY ... FROM STDIN`` on the
    transaction's own connection, on SQLite as one DB-API ``executemany`` of positional
    tuples, elsewhere as an ``executemany`` of ``INSERT``. A row the database refuses raises
    the usual SQLAlchemy exception (``IntegrityError``, ...) inside the same transaction, so
    a savepoint around the call still undoes it. (``COPY`` does not pass through SQLAlchemy's
    ``before_cursor_execute`` events, so ``echo_sql`` does not show it.)
    """
    if not rows:
        return
    given = None if columns is None else tuple(columns)
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        if len(rows) < COPY_FROM_ROWS:
            # a COPY is two round trips (start, then data and end); an INSERT is one
            connection.execute(insert(table), _as_dicts(rows, given))
        else:
            _copy_rows(connection, table, rows, given)
    elif dialect.name == "sqlite" and dialect.paramstyle == "qmark":
        _executemany(connection, table, rows, given)
    else:
        connection.execute(insert(table), _as_dicts(rows, given))


def _as_dicts(rows: Sequence[Any], given: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """``rows`` as the dicts ``Connection.execute`` takes; its own bind processing then
    applies, so a :class:`BoundValue` gives the value it was made from."""
    if given is None:
        dicts = [dict(row) for row in rows]
    else:
        for row in rows:
            if len(row) != len(given):
                raise ValueError(f"a row of {len(row)} values for the {len(given)} columns {given}")
        dicts = [dict(zip(given, row, strict=True)) for row in rows]
    for row in dicts:
        for key, value in row.items():
            if type(value) is BoundValue:
                row[key] = value.value
    return dicts


#: From this many rows on, PostgreSQL gets a ``COPY``; fewer (an operation's one or two
#: outbox events) go as one ``INSERT``: a ``COPY`` costs two round trips to the server, and
#: on a loaded machine each round trip is the larger part of a short transaction
#: (docs/benchmarks.md, loyalty: the earn latency).
COPY_FROM_ROWS = 8

Processor = Callable[[Any], Any]


class _Bind(NamedTuple):
    """How a column's values are bound: the column, and the processor an ``INSERT``
    applies (``None``: the value goes to the driver as it is)."""

    column: Column[Any]
    processor: Processor | None


@functools.lru_cache(maxsize=256)
def _processors(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> tuple[_Bind, ...]:
    """Per column in ``keys``, how its values are bound. JSON ones answer empty lists and
    dicts, which most rows carry, from a cache: the processor is a pure function, so the
    result is the same."""
    binds: list[_Bind] = []
    for key in keys:
        column = table.c[key]
        processor: Processor | None = column.type._cached_bind_processor(dialect)
        if processor is not None and isinstance(column.type, JSON):
            processor = _empty_json_cached(processor)
        elif processor is not None and isinstance(column.type, UTCDateTime):
            processor = _sqlite_utc_text(processor) if dialect.name == "sqlite" else processor
        binds.append(_Bind(column, processor))
    return tuple(binds)


class BoundValue:
    """A value processed for one column on one kind of database (:func:`bind_value`)."""

    __slots__ = ("column", "dialect", "processed", "value")

    def __init__(self, column: Column[Any], dialect: str, value: Any, processed: Any) -> None:
        self.column, self.dialect, self.value, self.processed = column, dialect, value, processed

    def __repr__(self) -> str:
        return f"BoundValue({self.column}, {self.dialect}, {self.value!r})"


def bind_value(connection: Connection, column: Column[Any], value: Any) -> Any:
    """``value`` processed now for ``column`` of a table, exactly as :func:`bulk_insert`
    (and so an ``INSERT``) would process it: for a value that a bulk insert stores in many
    rows (an import's item list for one price and category, say), to be converted once
    and handed to :func:`bulk_insert` in each of them. A column whose type processes
    nothing gets ``value`` itself back.

    Example::

        items = crmkit.bind_value(connection, table.c["items"], [{"category": "tea"}])
        crmkit.bulk_insert(connection, table, [(1, items), (2, items)], columns=("id", "items"))
    """
    table = column.table
    if not isinstance(table, Table) or table.c.get(column.key) is not column:
        raise TypeError(f"{column!r} is not a column of a table")
    bind = _processors(connection.dialect, table, (column.key,))[0]
    if bind.processor is None:
        return value
    return BoundValue(column, connection.dialect.name, value, bind.processor(value))


def _misbound(value: BoundValue, column: Column[Any], dialect: str) -> Any:
    raise ValueError(
        f"a value bound for {value.column} on {value.dialect} given for {column} on {dialect}"
    )


def _sqlite_utc_text(standard: Processor) -> Processor:
    """On SQLite, a ``UTCDateTime``'s bind processing (to UTC, without the zone, then
    SQLAlchemy's text format ``YYYY-MM-DD HH:MM:SS.ffffff``) in one ``isoformat`` call: the
    same text at about half the cost, which a bulk insert pays once per timestamp (three per
    purchase in a purchase-history import, docs/benchmarks.md, loyalty). Checked against
    ``standard`` on sample values; if they differ (another storage format), ``standard``
    stays."""
    utc = dt.UTC

    def process(value: Any) -> Any:
        zone = value.tzinfo if value is not None else None
        if zone is utc:  # already UTC (crmkit's own times): drop the "+00:00" isoformat adds
            return value.isoformat(" ", "microseconds")[:-6]
        if zone is None:
            return standard(value)  # None, or the usual error for a naive time
        return value.astimezone(utc).replace(tzinfo=None).isoformat(" ", "microseconds")

    samples = (
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc),
        dt.datetime(5, 6, 7, 8, 9, 10, 11, tzinfo=utc),
        dt.datetime(1999, 12, 31, 23, 59, 59, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    )
    if all(process(sample) == standard(sample) for sample in samples):
        return process
    return standard


def _empty_json_cached(processor: Processor) -> Processor:
    empty_list, empty_dict = processor([]), processor({})

    def process(value: Any) -> Any:
        if not value:
            kind = type(value)
            if kind is list:
                return empty_list
            if kind is dict:
                return empty_dict
        return processor(value)

    return process


def _processed(
    rows: Sequence[Any],
    keys: tuple[str, ...],
    binds: tuple[_Bind, ...],
    dialect: str,
    given: tuple[str, ...] | None = None,
) -> list[tuple[Any, ...]]:
    """Each row as a tuple of processed values in ``keys`` order; a row is a mapping, or
    with ``given`` (its column keys, ``keys`` in any order) a tuple of values.

    Works column by column; a value that is the very object of the row before (the batch's
    timestamp, a shared ``None``) reuses that row's result instead of processing it again;
    a :class:`BoundValue` (of this column and dialect) gives its own.
    """
    columns: list[Sequence[Any]]
    if given is not None:
        width = len(given)
        for row in rows:
            if len(row) != width:
                raise ValueError(f"a row of {len(row)} values for the {width} columns {given}")
        transposed = list(zip(*rows, strict=True))
        where = {key: index for index, key in enumerate(given)}
        columns = [transposed[where[key]] for key in keys]
    else:
        columns = [[row[key] for row in rows] for key in keys]
    for index, (column, processor) in enumerate(binds):
        if processor is None:
            continue
        processed: list[Any] = []
        append = processed.append
        last: Any = _NOTHING
        result: Any = None
        for value in columns[index]:
            if value is not last:
                last = value
                if type(value) is not BoundValue:
                    result = processor(value)
                elif value.column is column and value.dialect == dialect:
                    result = value.processed
                else:
                    result = _misbound(value, column, dialect)
            append(result)
        columns[index] = processed
    return list(zip(*columns, strict=True))


_NOTHING = object()


@functools.lru_cache(maxsize=256)
def _positional_insert(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...]]:
    """The ``INSERT`` of ``keys`` compiled for a positional-parameter dialect, and the column
    keys in parameter order."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup or ())
    if sorted(order) != sorted(keys):
        raise RuntimeError(f"unexpected parameters {order} for an insert of {keys}")
    return compiled.string, order


def _executemany(
    connection: Connection, table: Table, rows: Sequence[Any], given: tuple[str, ...] | None
) -> None:
    dialect = connection.dialect
    keys = given if given is not None else tuple(rows[0])
    statement, order = _positional_insert(dialect, table, keys)
    binds = _processors(dialect, table, order)
    connection.exec_driver_sql(statement, _processed(rows, order, binds, dialect.name, given))


def _copy_rows(
    connection: Connection, table: Table, rows: Sequence[Any], given: tuple[str, ...] | None
) -> None:
    import psycopg

    dialect = connection.dialect
    keys = given if given is not None else tuple(rows[0])
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(table.c[key].name) for key in keys)
    statement = f"COPY {dialect.identifier_preparer.format_table(table)} ({columns}) FROM STDIN"
    binds = _processors(dialect, table, keys)
    raw: Any = connection.connection.dbapi_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            write = copy.write_row
            for values in _processed(rows, keys, binds, dialect.name, given):
                write(values)
    except psycopg.Error as error:
        raise DBAPIError.instance(statement, None, error, psycopg.Error, dialect=dialect) from error
