"""The bulk write path of ``create_many`` (ids taken up front, then a plain ``executemany`` on
SQLite or ``COPY`` on PostgreSQL, for records and outbox events) stores exactly what the
one-row path stores, and still finds the row a database refuses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import String, cast, select
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
