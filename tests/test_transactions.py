"""One operation = one transaction: all of it commits or none of it does, its events exist if
and only if it commits, stale writes are conflicts, and deletes are soft."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from outbox_reader import outbox_events, outbox_names

import crmkit


class Boom(Exception):
    """An error the caller's own code raises in the middle of an operation."""


@pytest.fixture
def seen(crm: crmkit.CRM) -> list[crmkit.Event]:
    """Every event in-process subscribers receive (after commit)."""
    events: list[crmkit.Event] = []
    crm.subscribe("*", events.append)
    return events


# -- all or nothing --------------------------------------------------------------------------


def fail_after(crm: crmkit.CRM, steps: Callable[[crmkit.Operation], object]) -> None:
    """Run ``steps`` in one transaction, then fail as the caller's own code might."""
    with crm.transaction() as op:
        steps(op)
        raise Boom


def create_account_and_contact(op: crmkit.Operation) -> None:
    account = op.records("account").create({"name": "Acme"})
    op.records("contact").create({"full_name": "张伟", "account_id": account.id})


def test_an_exception_inside_a_transaction_leaves_nothing_written(crm: crmkit.CRM) -> None:
    with pytest.raises(Boom):
        fail_after(crm, create_account_and_contact)

    assert (crm.accounts.count(), crm.contacts.count()) == (0, 0)


def test_an_exception_inside_a_transaction_leaves_no_outbox_rows(crm: crmkit.CRM) -> None:
    def steps(op: crmkit.Operation) -> None:
        create_account_and_contact(op)
        op.emit("custom.happened", {"n": 1})

    with pytest.raises(Boom):
        fail_after(crm, steps)

    assert outbox_names(crm) == ["pipeline.created"]


def test_subscribers_hear_nothing_from_a_rolled_back_transaction(
    crm: crmkit.CRM, seen: list[crmkit.Event]
) -> None:
    with pytest.raises(Boom):
        fail_after(crm, create_account_and_contact)

    assert seen == []


def test_a_failed_step_undoes_the_earlier_steps_of_the_operation(crm: crmkit.CRM) -> None:
    def steps(op: crmkit.Operation) -> None:
        op.records("account").create({"name": "Acme"})
        op.records("contact").create({"full_name": "张伟", "birthday": "1990-02-30"})

    with pytest.raises(crmkit.ValidationError):
        fail_after(crm, steps)

    assert crm.accounts.count() == 0


def test_an_update_rolled_back_keeps_the_old_values_and_version(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "city": "上海"})

    with pytest.raises(Boom):
        fail_after(crm, lambda op: op.records("contact").update(contact.id, {"city": "北京"}))

    stored = crm.contacts.get(contact.id)
    assert (stored.city, stored.version) == ("上海", 1)


def test_a_committed_transaction_writes_every_step(crm: crmkit.CRM) -> None:
    with crm.transaction() as op:
        account = op.records("account").create({"name": "Acme"})
        op.records("contact").create({"full_name": "张伟", "account_id": account.id})

    assert (crm.accounts.count(), crm.contacts.count()) == (1, 1)


def test_a_committed_transaction_writes_its_events_in_order(crm: crmkit.CRM) -> None:
    with crm.transaction() as op:
        contact = op.records("contact").create({"full_name": "张伟"})
        op.records("contact").update(contact.id, {"city": "上海"})
        op.emit("custom.happened", {"contact": contact.id})

    assert outbox_names(crm)[1:] == ["contact.created", "contact.updated", "custom.happened"]


def test_subscribers_receive_exactly_the_committed_events(
    crm: crmkit.CRM, seen: list[crmkit.Event]
) -> None:
    with crm.transaction() as op:
        op.records("contact").create({"full_name": "张伟"})
        op.emit("custom.happened")

    committed = [row.event_id for row in outbox_events(crm)[1:]]
    assert [str(event.id) for event in seen] == committed


def test_subscribers_run_after_the_commit(crm: crmkit.CRM) -> None:
    # a subscriber reading through its own connection already sees the committed record
    found: list[str] = []
    crm.subscribe(
        "contact.created",
        lambda event: found.append(crm.contacts.get(event.record_id).full_name),
    )

    crm.contacts.create({"full_name": "张伟"})

    assert found == ["张伟"]


def test_a_failing_subscriber_neither_undoes_the_change_nor_stops_the_others(
    crm: crmkit.CRM, seen: list[crmkit.Event]
) -> None:
    def broken(event: crmkit.Event) -> None:
        raise RuntimeError("subscriber bug")

    crm.subscribe("*", broken)
    later: list[str] = []
    crm.subscribe("*", lambda event: later.append(event.name))

    crm.contacts.create({"full_name": "张伟"})

    assert crm.contacts.count() == 1
    assert later == ["contact.created"]


def test_every_step_of_an_operation_acts_for_its_actor(crm: crmkit.CRM) -> None:
    rep = crm.users.create("alice")

    with crm.transaction(rep) as op:
        contact = op.records("contact").create({"full_name": "张伟"})
        task = op.records("task").create({"title": "Call", "contact_id": contact.id})

    assert (contact.owner_id, task.owner_id, task.created_by_id) == (rep.id, rep.id, rep.id)
    assert {event.actor_id for event in outbox_events(crm)[-2:]} == {rep.id}


class RefuseContacts:
    """A plugin that refuses every new contact after it was inserted."""

    @crmkit.hookimpl
    def crmkit_after_create(self, op: Any, entity: str, record_id: int, values: Any) -> None:
        if entity == "contact":
            raise crmkit.PluginVeto("no new contacts during the audit")


def test_a_plugin_veto_after_the_insert_rolls_the_operation_back(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"audit": RefuseContacts()})

    with pytest.raises(crmkit.PluginError, match="no new contacts during the audit"):
        crm.contacts.create({"full_name": "张伟"})

    assert crm.contacts.count() == 0
    assert outbox_names(crm) == []


# -- optimistic concurrency ------------------------------------------------------------------


def test_an_update_with_the_current_version_succeeds(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})

    updated = crm.contacts.update(contact.id, {"city": "上海"}, expected_version=1)

    assert updated.version == 2


def test_an_update_with_a_stale_version_is_a_conflict(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})
    crm.contacts.update(contact.id, {"city": "上海"})

    with pytest.raises(crmkit.ConflictError, match="at version 2, you had 1"):
        crm.contacts.update(contact.id, {"city": "北京"}, expected_version=1)


def test_a_conflicting_update_changes_nothing_and_emits_nothing(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})
    crm.contacts.update(contact.id, {"city": "上海"})

    with pytest.raises(crmkit.ConflictError):
        crm.contacts.update(contact.id, {"city": "北京"}, expected_version=1)

    stored = crm.contacts.get(contact.id)
    assert (stored.city, stored.version) == ("上海", 2)
    assert outbox_names(crm).count("contact.updated") == 1


def test_a_delete_with_a_stale_version_is_a_conflict(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})
    crm.contacts.update(contact.id, {"city": "上海"})

    with pytest.raises(crmkit.ConflictError):
        crm.contacts.delete(contact.id, expected_version=1)

    assert crm.contacts.get(contact.id).version == 2


# -- soft delete -----------------------------------------------------------------------------


@pytest.fixture
def deleted(crm: crmkit.CRM) -> Any:
    """One live contact (李娜) and one deleted one (张伟), both in 上海; the deleted one."""
    crm.contacts.create({"full_name": "李娜", "city": "上海"})
    gone = crm.contacts.create({"full_name": "张伟", "city": "上海"})
    crm.contacts.delete(gone.id)
    return gone


def test_a_deleted_record_is_not_found_by_get(crm: crmkit.CRM, deleted: Any) -> None:
    with pytest.raises(crmkit.NotFoundError):
        crm.contacts.get(deleted.id)


def test_a_deleted_record_is_left_out_of_lists(crm: crmkit.CRM, deleted: Any) -> None:
    assert [c.full_name for c in crm.contacts.list({"city": "上海"}).items] == ["李娜"]


def test_a_deleted_record_is_left_out_of_counts(crm: crmkit.CRM, deleted: Any) -> None:
    assert crm.contacts.count({"city": "上海"}) == 1


def test_a_deleted_record_is_left_out_of_search(crm: crmkit.CRM, deleted: Any) -> None:
    assert crm.contacts.count(search="张伟") == 0


def test_a_deleted_record_is_left_out_of_exports(crm: crmkit.CRM, deleted: Any) -> None:
    assert [c.full_name for c in crm.contacts.iterate()] == ["李娜"]


def test_a_deleted_record_keeps_its_data(crm: crmkit.CRM, deleted: Any) -> None:
    table = crmkit.Contact.__table__
    query = sa.select(table.c.full_name, table.c.deleted_at, table.c.version).where(
        table.c.id == deleted.id
    )
    with crm.engine.connect() as connection:
        name, deleted_at, version = connection.execute(query).one()

    assert (name, version) == ("张伟", 2)
    assert deleted_at is not None


# -- concurrent writers (PostgreSQL) ---------------------------------------------------------

postgres_only = pytest.mark.skipif(
    os.environ.get("CRMKIT_TEST_DB", "sqlite") != "postgresql",
    reason="row locks between real connections: PostgreSQL",
)


def wait_for_a_lock_waiter(database_url: str, deadline_seconds: float = 30) -> None:
    """Return once some connection to this database waits on a lock (polling the server,
    not sleeping); fail after the deadline."""
    engine = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + deadline_seconds
    try:
        with engine.connect() as connection:
            while not connection.scalar(query):
                if time.monotonic() > deadline:
                    raise AssertionError("the second writer never waited for the first")
    finally:
        engine.dispose()


def race(
    database_url: str,
    first: Callable[[Callable[[], None]], None],
    second: Callable[[], None],
) -> dict[str, BaseException | None]:
    """Run ``first`` and ``second`` in two threads on real connections so that ``second``
    starts while ``first`` is inside its transaction and must wait for it.

    ``first`` receives a ``hold`` function to call inside its transaction, after its write:
    it returns once ``second`` is blocked on the row lock.
    """
    first_wrote = threading.Event()
    second_blocked = threading.Event()
    outcome: dict[str, BaseException | None] = {}

    def hold() -> None:
        first_wrote.set()
        if not second_blocked.wait(30):
            raise AssertionError("the second writer never started")

    def run(name: str, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome[name] = error
        else:
            outcome[name] = None
        finally:
            first_wrote.set()  # a first writer that failed early must not stall the race

    def start_second() -> None:
        if not first_wrote.wait(30):
            raise AssertionError("the first writer never wrote")
        second()

    threads = [
        threading.Thread(target=run, args=("first", lambda: first(hold))),
        threading.Thread(target=run, args=("second", start_second)),
    ]
    for thread in threads:
        thread.start()
    try:
        if first_wrote.wait(30) and "first" not in outcome:
            wait_for_a_lock_waiter(database_url)
    finally:
        second_blocked.set()
        for thread in threads:
            thread.join(60)
    return outcome


@postgres_only
def test_two_concurrent_updates_of_one_version_let_exactly_one_win(
    crm: crmkit.CRM, database_url: str
) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})

    def first(hold: Callable[[], None]) -> None:
        with crm.transaction() as op:
            op.records("contact").update(contact.id, {"city": "上海"}, expected_version=1)
            hold()

    def second() -> None:
        crm.contacts.update(contact.id, {"city": "北京"}, expected_version=1)

    outcome = race(database_url, first, second)

    assert outcome["first"] is None
    assert isinstance(outcome["second"], crmkit.ConflictError)
    stored = crm.contacts.get(contact.id)
    assert (stored.city, stored.version) == ("上海", 2)


@postgres_only
def test_two_concurrent_updates_without_a_version_both_apply_one_after_the_other(
    crm: crmkit.CRM, database_url: str
) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})

    def first(hold: Callable[[], None]) -> None:
        with crm.transaction() as op:
            op.records("contact").update(contact.id, {"city": "上海"})
            hold()

    def second() -> None:
        crm.contacts.update(contact.id, {"title": "经理"})

    outcome = race(database_url, first, second)

    assert outcome == {"first": None, "second": None}
    stored = crm.contacts.get(contact.id)
    assert (stored.city, stored.title, stored.version) == ("上海", "经理", 3)
    updates = outbox_events(crm, "contact.updated")
    assert [event.payload["changes"] for event in updates] == [{"city": "上海"}, {"title": "经理"}]


@postgres_only
def test_a_delete_waits_for_a_concurrent_update_and_then_sees_its_version(
    crm: crmkit.CRM, database_url: str
) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})

    def first(hold: Callable[[], None]) -> None:
        with crm.transaction() as op:
            op.records("contact").update(contact.id, {"city": "上海"})
            hold()

    def second() -> None:
        crm.contacts.delete(contact.id, expected_version=1)

    outcome = race(database_url, first, second)

    assert isinstance(outcome["second"], crmkit.ConflictError)
    assert crm.contacts.get(contact.id).city == "上海"


def test_opening_a_second_operation_inside_one_is_refused_with_the_fix(
    crm: crmkit.CRM,
) -> None:
    def nested() -> None:
        with crm.transaction() as op:
            op.records("contact").create({"full_name": "外层"})
            crm.contacts.create({"full_name": "内层"})

    with pytest.raises(crmkit.CRMError, match=r"use op\.records"):
        nested()
    assert crm.contacts.count() == 0
