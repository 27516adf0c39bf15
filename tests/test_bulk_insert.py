"""The bulk write path of ``create_many`` (ids taken up front, then a plain ``executemany`` on
SQLite or ``COPY`` on PostgreSQL, for records and outbox events) stores exactly what the
one-row path stores, and still finds the row a database refuses."""

from __future__ import annotations

import datetime as dt
import decimal
import zoneinfo
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Integer, MetaData, Numeric, String, Table, cast, select
from sqlalchemy.orm import Session

import crmkit
from crmkit.db.engine import allocate_ids
from crmkit.entities.customers import Contact
from tests.outbox_reader import outbox_events

ROWS: list[dict[str, object]] = [
    {
        "full_name": "张伟",
        "email": "ZW@Example.CN",
        "phone": "138 1234 5678",
        "extra_phones": "+852 9123 4567; 010-6552 1234",
        "social": "wechat=zw88",
        "birthday": "1990-05-01",
        "lifecycle_stage": "repeat_buyer",
        "city": "上海",
        "notes": "对价格敏感",
    },
    {"full_name": "Ｄａｖｉｄ　Wong", "phone": "+1 (415) 555-0123", "title": "CEO"},
    {"full_name": "陳美玲", "extra_emails": "a@b.tw, c@d.tw", "address": "台北市  中山路1号"},
]
VOLATILE = {"id", "created_at", "updated_at"}


def stored(crm: crmkit.CRM, ids: list[int]) -> list[dict[str, Any]]:
    with Session(crm.engine) as session:
        records = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))}
    return [
        {
            key: getattr(records[i], key)
            for key in crm.entity("contact").columns
            if key not in VOLATILE
        }
        for i in ids
    ]


def payloads(crm: crmkit.CRM) -> list[dict[str, Any]]:
    return [
        {key: value for key, value in event.payload.items() if key != "id"}
        for event in outbox_events(crm, "contact.created")
    ]


def test_create_many_stores_what_single_creates_store(make_crm: Any) -> None:
    crm = make_crm()
    single = [crm.contacts.create(row).id for row in ROWS]
    single_payloads = payloads(crm)
    bulk = crm.contacts.create_many(list(enumerate(ROWS, start=2)))
    assert bulk.errors == []
    assert stored(crm, bulk.ids) == stored(crm, single)
    assert payloads(crm)[len(ROWS) :] == single_payloads


def test_create_many_ids_follow_the_input_and_never_collide(crm: crmkit.CRM) -> None:
    first = crm.contacts.create({"full_name": "first"}).id
    result = crm.contacts.create_many(
        [(n, {"full_name": f"row {n}"}) for n in range(2, 40)], batch_size=7
    )
    last = crm.contacts.create({"full_name": "last"}).id
    ids = [first, *result.ids, last]
    assert ids == sorted(set(ids))
    with Session(crm.engine) as session:
        names = {row[0]: row[1] for row in session.execute(select(Contact.id, Contact.full_name))}
    assert [names[i] for i in result.ids] == [f"row {n}" for n in range(2, 40)]
    events = outbox_events(crm, "contact.created")
    assert [e.record_id for e in events] == ids
    assert [e.payload["id"] for e in events] == ids


def test_a_row_the_database_refuses_is_reported_and_the_rest_imported(make_crm: Any) -> None:
    class BreakOne:
        @crmkit.hookimpl
        def crmkit_before_create(self, op: Any, entity: str, values: dict[str, Any]) -> None:
            if values.get("full_name") == "broken":
                values["full_name"] = None  # passes validation, the NOT NULL column refuses it

    crm = make_crm(plugins={"break_one": BreakOne()})
    rows = [(n, {"full_name": name}) for n, name in enumerate(["a", "broken", "c", "d"], 2)]
    result = crm.contacts.create_many(rows)
    assert [error.line for error in result.errors] == [3]
    assert "rejected by the database" in result.errors[0].message
    assert [row["full_name"] for row in stored(crm, result.ids)] == ["a", "c", "d"]
    assert [e.record_id for e in outbox_events(crm, "contact.created")] == result.ids


def test_outbox_rows_keep_their_time_and_payload(crm: crmkit.CRM) -> None:
    before = dt.datetime.now(dt.UTC)
    crm.contacts.create_many([(2, {"full_name": "时间"}), (3, {"full_name": "Zeit"})])
    events = outbox_events(crm, "contact.created")
    assert [e.payload["full_name"] for e in events] == ["时间", "Zeit"]
    for event in events:
        assert event.occurred_at.tzinfo is not None
        assert before - dt.timedelta(seconds=5) <= event.occurred_at <= dt.datetime.now(dt.UTC)
        assert event.dispatched_at is None


def test_allocated_ids_are_new_and_increasing(crm: crmkit.CRM) -> None:
    existing = [crm.contacts.create({"full_name": f"c{n}"}).id for n in range(3)]
    with crm.transaction() as op:
        ids = allocate_ids(op.session.connection(), Contact.__table__, 5)  # type: ignore[arg-type]
    assert ids is not None
    assert ids == sorted(set(ids))
    assert len(ids) == 5
    assert min(ids) > max(existing)


@pytest.mark.parametrize("count", [0, -1])
def test_no_ids_are_allocated_for_nothing(crm: crmkit.CRM, count: int) -> None:
    with crm.transaction() as op:
        assert allocate_ids(op.session.connection(), Contact.__table__, count) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC),  # no microseconds
        dt.datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ],
    ids=["whole-second", "east-of-utc", "west-of-utc"],
)
def test_bulk_timestamps_are_stored_as_an_insert_stores_them(
    crm: crmkit.CRM, moment: dt.datetime
) -> None:
    table: Any = crmkit.OutboxEvent.__table__
    with crm.transaction() as op:
        connection = op.session.connection()
        for name, write in (("demo.insert", connection.execute), ("demo.bulk", None)):
            row = {"event_id": name, "name": name, "payload": {}, "occurred_at": moment}
            if write is None:
                crmkit.bulk_insert(connection, table, [row])
            else:
                write(table.insert(), [row])
        # the text the database holds (SQLite keeps timestamps as text)
        stored_as = dict(
            connection.execute(
                select(table.c.name, cast(table.c.occurred_at, String)).where(
                    table.c.name.in_(["demo.insert", "demo.bulk"])
                )
            ).all()
        )
    assert stored_as["demo.bulk"] == stored_as["demo.insert"]


#: A table of every kind of value ``bulk_insert`` processes itself (a UTC timestamp, JSON,
#: a money amount), created in each test's database.
SAMPLE = Table(
    "bulk_sample",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", crmkit.UTCDateTime()),
    Column("items", JSON),
    Column("amount", Numeric(18, 2)),
    Column("label", String(50)),
)
SAMPLE_COLUMNS = ("at", "items", "amount", "label")

zones = st.sampled_from(
    [
        dt.UTC,
        dt.timezone(dt.timedelta(hours=8)),
        dt.timezone(dt.timedelta(hours=-5, minutes=-30)),
        zoneinfo.ZoneInfo("America/New_York"),
    ]
)
moments = st.none() | st.datetimes(
    min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2200, 1, 1), timezones=zones
)
texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)
item_lists = st.lists(
    st.fixed_dictionaries(
        {"amount": st.decimals(min_value=0, max_value=10**6, places=2).map(str)},
        optional={"category": texts, "quantity": st.integers(0, 99)},
    ),
    max_size=3,
)
amounts = st.none() | st.decimals(min_value=0, max_value=10**15, places=2)
# a row: its time, which of the pool's item lists (the same object in several rows, as an
# import shares one per amount and category), amount, label
sample_rows = st.tuples(
    moments, st.integers(0, 3), amounts, st.none() | texts.map(lambda t: t[:50])
)


def _stored(connection: Any, first: int, count: int) -> list[tuple[Any, ...]]:
    """The rows with ids ``first`` ... as the database holds them (SQLite: each value's
    storage class too; PostgreSQL: each value's text)."""
    if connection.dialect.name == "sqlite":
        sql = (
            "SELECT typeof(at), at, typeof(items), items, typeof(amount), amount, label"
            " FROM bulk_sample WHERE id BETWEEN ? AND ? ORDER BY id"
        )
        parameters: tuple[Any, ...] = (first, first + count - 1)
    else:
        sql = (
            "SELECT at::text, items::text, amount::text, label FROM bulk_sample"
            " WHERE id BETWEEN %(first)s AND %(last)s ORDER BY id"
        )
        parameters = {"first": first, "last": first + count - 1}  # type: ignore[assignment]
    return [tuple(row) for row in connection.exec_driver_sql(sql, parameters)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pool=st.lists(item_lists, min_size=4, max_size=4), rows=st.lists(sample_rows, max_size=12))
def test_bulk_rows_are_stored_as_an_insert_stores_them(
    crm: crmkit.CRM, pool: list[Any], rows: list[tuple[Any, ...]]
) -> None:
    """Plain ``INSERT``, then ``bulk_insert`` of dicts, of dicts with the item lists bound
    once (``bind_value``, the same object in several rows) and of tuples (columns in
    another order than the table's, every value bound) store the very same values, byte
    for byte."""
    SAMPLE.create(crm.engine, checkfirst=True)
    values = [(at, pool[item], amount, label) for at, item, amount, label in rows]
    count = len(values)
    with crm.engine.begin() as connection:
        connection.execute(SAMPLE.delete())
        if not count:
            crmkit.bulk_insert(connection, SAMPLE, [])  # nothing to do
            return
        bound = {
            id(items): crmkit.bind_value(connection, SAMPLE.c["items"], items) for items in pool
        }

        def bind(column: str, value: Any) -> Any:
            return crmkit.bind_value(connection, SAMPLE.c[column], value)

        connection.execute(
            SAMPLE.insert(),
            [
                {"id": n, **dict(zip(SAMPLE_COLUMNS, row, strict=True))}
                for n, row in enumerate(values, 1)
            ],
        )
        crmkit.bulk_insert(
            connection,
            SAMPLE,
            [
                {"id": n, **dict(zip(SAMPLE_COLUMNS, row, strict=True))}
                for n, row in enumerate(values, count + 1)
            ],
        )
        crmkit.bulk_insert(
            connection,
            SAMPLE,
            [
                {"id": n, "at": at, "items": bound[id(items)], "amount": amount, "label": label}
                for n, (at, items, amount, label) in enumerate(values, 2 * count + 1)
            ],
        )
        crmkit.bulk_insert(
            connection,
            SAMPLE,
            [
                (
                    bind("label", label),
                    bind("amount", amount),
                    bind("items", items),
                    bind("at", at),
                    n,
                )
                for n, (at, items, amount, label) in enumerate(values, 3 * count + 1)
            ],
            columns=("label", "amount", "items", "at", "id"),
        )
        inserted = _stored(connection, 1, count)
        for first in (count + 1, 2 * count + 1, 3 * count + 1):
            assert _stored(connection, first, count) == inserted


def test_a_value_bound_for_another_column_is_refused(crm: crmkit.CRM) -> None:
    SAMPLE.create(crm.engine, checkfirst=True)
    moment = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    with crm.engine.begin() as connection:
        wrong = crmkit.bind_value(connection, crmkit.OutboxEvent.__table__.c["occurred_at"], moment)  # type: ignore[attr-defined]
        rows = [(n, wrong) for n in range(1, 11)]
        with pytest.raises(ValueError, match="bound for"):
            crmkit.bulk_insert(connection, SAMPLE, rows, columns=("id", "at"))
        with pytest.raises(TypeError, match="not a column of a table"):
            crmkit.bind_value(connection, Column("loose", Integer), 1)
        assert crmkit.bind_value(connection, SAMPLE.c["label"], "as is") == "as is"


def test_bulk_rows_as_tuples_must_match_the_columns(crm: crmkit.CRM) -> None:
    SAMPLE.create(crm.engine, checkfirst=True)
    moment = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    short: list[tuple[Any, ...]] = [(1, moment)]
    long: list[tuple[Any, ...]] = [(1, moment, [], decimal.Decimal(1))] * 10  # a COPY's size
    for rows in (short, long):
        with crm.engine.begin() as connection, pytest.raises(ValueError, match="3 columns"):
            crmkit.bulk_insert(connection, SAMPLE, rows, columns=("id", "at", "items"))
    with crm.engine.connect() as connection:
        assert connection.execute(select(SAMPLE.c.id)).all() == []
