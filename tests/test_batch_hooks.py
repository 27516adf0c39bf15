"""The batch after-create hook: every created record reaches it exactly once, per create and
per import batch; an import keeps its batched insert when plugins use only this hook; raising
rolls the whole operation back."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

import crmkit


class BatchRecorder:
    """A plugin that notes every batch it is given and emits one event per batch."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.fail_on = fail_on

    @crmkit.hookimpl
    def crmkit_after_create_many(
        self,
        op: crmkit.Operation,
        entity: str,
        records: Sequence[tuple[int, Mapping[str, Any]]],
    ) -> None:
        names = [values["full_name"] for _, values in records if "full_name" in values]
        if self.fail_on is not None and self.fail_on in names:
            raise crmkit.PluginVeto(f"{self.fail_on} may not be imported")
        self.batches.append((entity, [record_id for record_id, _ in records]))
        op.emit("batch.seen", {"entity": entity, "count": len(records)})


class RowRecorder:
    """A plugin with the per-row hook: it sends bulk creates down the one-row path."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    @crmkit.hookimpl
    def crmkit_after_create(
        self, op: crmkit.Operation, entity: str, record_id: int, values: Mapping[str, Any]
    ) -> None:
        self.seen.append(record_id)


def rows(count: int, start: int = 1) -> list[tuple[int, dict[str, object]]]:
    return [(line, {"full_name": f"客户 {line}"}) for line in range(start, start + count)]


def outbox_names(crm: crmkit.CRM) -> list[str]:
    with crm.engine.connect() as connection:
        return list(connection.scalars(sa.text("SELECT name FROM event_outbox ORDER BY id")))


@contextmanager
def savepoints(crm: crmkit.CRM) -> Iterator[list[str]]:
    """Note every savepoint the CRM's connections open: a bulk create opens one per batch on
    its batched path and one per row on its one-row path (on both engines; PostgreSQL's
    batched insert is a COPY, which no statement event sees)."""
    opened: list[str] = []

    def savepoint(conn: Any, name: str) -> None:
        opened.append(name)

    sa.event.listen(crm.engine, "savepoint", savepoint)
    try:
        yield opened
    finally:
        sa.event.remove(crm.engine, "savepoint", savepoint)


def test_a_single_create_reaches_the_batch_hook_once(make_crm: Callable[..., crmkit.CRM]) -> None:
    recorder = BatchRecorder()
    crm = make_crm(plugins={"batches": recorder})

    contact = crm.contacts.create({"full_name": "张伟"})

    assert recorder.batches == [("contact", [contact.id])]
    assert outbox_names(crm) == ["contact.created", "batch.seen"]


def test_an_import_reaches_the_batch_hook_once_per_batch_with_every_record_once(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    recorder = BatchRecorder()
    crm = make_crm(plugins={"batches": recorder})

    result = crm.contacts.create_many(rows(25), batch_size=10)

    assert [len(ids) for _, ids in recorder.batches] == [10, 10, 5]
    assert [i for _, ids in recorder.batches for i in ids] == result.ids
    assert len(set(result.ids)) == 25
    assert outbox_names(crm).count("batch.seen") == 3


def test_the_batch_hook_alone_keeps_the_batched_insert(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    batched = make_crm(plugins={"batches": BatchRecorder()})
    with savepoints(batched) as opened:
        batched.contacts.create_many(rows(25), batch_size=10)

    assert len(opened) == 3


def test_the_per_row_hook_sends_an_import_down_the_one_row_path(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    recorder = RowRecorder()
    crm = make_crm(plugins={"rows": recorder})
    with savepoints(crm) as opened:
        result = crm.contacts.create_many(rows(5), batch_size=10)

    assert len(opened) == 5
    assert recorder.seen == result.ids


def test_both_hooks_see_every_record_and_the_batch_hook_comes_after_the_row_hook(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    batches, row_hook = BatchRecorder(), RowRecorder()
    crm = make_crm(plugins={"batches": batches, "rows": row_hook})

    result = crm.contacts.create_many(rows(12), batch_size=5)

    assert row_hook.seen == result.ids
    assert [i for _, ids in batches.batches for i in ids] == result.ids


def test_rows_an_import_rejects_never_reach_the_batch_hook(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    recorder = BatchRecorder()
    crm = make_crm(plugins={"batches": recorder})
    data = rows(4)
    data[1] = (2, {"full_name": "李娜", "email": "not an e-mail"})

    result = crm.contacts.create_many(data, batch_size=10)

    assert [error.line for error in result.errors] == [2]
    assert recorder.batches == [("contact", result.ids)]
    assert len(result.ids) == 3


def test_raising_in_the_batch_hook_rolls_the_whole_import_back(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    recorder = BatchRecorder(fail_on="客户 15")
    crm = make_crm(plugins={"batches": recorder})

    with pytest.raises(crmkit.PluginError, match="客户 15 may not be imported"):
        crm.contacts.create_many(rows(25), batch_size=10)

    assert crm.contacts.count() == 0
    assert outbox_names(crm) == []


def test_raising_in_the_batch_hook_refuses_a_single_create(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"batches": BatchRecorder(fail_on="王芳")})

    with pytest.raises(crmkit.PluginError, match="refused by plugin 'batches'"):
        crm.contacts.create({"full_name": "王芳"})

    assert crm.contacts.count() == 0
