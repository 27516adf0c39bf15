"""The event bus: outbox written with the change, subscribers after commit, the relay
delivering to sinks at least once, in order per record, with retries and a dead letter."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select

import crmkit
from crmkit.events.admin import dead_deliveries, recent_events, retry_deliveries
from crmkit.events.outbox import DeliveryStatus, EventDelivery, OutboxEvent
from crmkit.events.relay import Relay
from crmkit.events.webhook import SIGNATURE_HEADER, sign, verify


class RecordingSink:
    """A sink that records what it receives and fails on demand."""

    def __init__(self, name: str = "recorder", patterns: tuple[str, ...] = ("*",)) -> None:
        self.name = name
        self.patterns = patterns
        self.received: list[crmkit.Event] = []
        self.failures_left: dict[str, int] = {}
        self.lock = threading.Lock()
        self.in_flight: set[str] = set()
        self.overlaps = 0

    def deliver(self, event: crmkit.Event) -> None:
        key = str(event.id)
        with self.lock:
            if key in self.in_flight:
                self.overlaps += 1
            self.in_flight.add(key)
        try:
            with self.lock:
                left = self.failures_left.get(event.name, 0)
                if left:
                    self.failures_left[event.name] = left - 1
                    raise RuntimeError(f"receiver down for {event.name}")
                self.received.append(event)
        finally:
            with self.lock:
                self.in_flight.discard(key)


def drain(relay: Relay, passes: int = 20) -> None:
    """Run relay passes until one finds nothing to do."""
    for _ in range(passes):
        if relay.run_once().idle:
            return
    raise AssertionError(f"the relay still had work after {passes} passes")


@pytest.fixture
def quick_retry_crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    return make_crm(relay={"backoff_seconds": 0, "max_attempts": 3})


def outbox_names(crm: crmkit.CRM) -> list[str]:
    with crm.transaction(write=False) as op:
        return list(op.session.scalars(select(OutboxEvent.name).order_by(OutboxEvent.id)))


def abort_after_create(crm: crmkit.CRM, name: str) -> None:
    """Create a contact in an operation that then fails."""

    def operation() -> None:
        with crm.transaction() as op:
            op.records("contact").create({"full_name": name})
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        operation()


def test_an_event_is_in_the_outbox_once_its_change_commits(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "王芳"})
    with crm.transaction(write=False) as op:
        row = op.session.scalars(
            select(OutboxEvent).where(OutboxEvent.name == "contact.created")
        ).one()
    assert row.record_type == "contact"
    assert row.record_id == contact.id
    assert row.payload["full_name"] == "王芳"


def test_events_a_caller_takes_for_its_own_insert_are_not_written_again(
    crm: crmkit.CRM,
) -> None:
    seen: list[str] = []
    crm.subscribe("demo.*", lambda event: seen.append(event.name))
    with crm.transaction() as op:
        op.emit("demo.first", {"n": 1})
        rows = op.outbox_rows()
        assert [row["name"] for row in rows] == ["demo.first"]
        assert op.outbox_rows() == []  # taken: counted as written
        crmkit.bulk_insert(op.session.connection(), crmkit.OutboxEvent.__table__, rows)
        op.emit("demo.second", {"n": 2})  # written by the commit, as usual
    assert [name for name in outbox_names(crm) if name.startswith("demo.")] == [
        "demo.first",
        "demo.second",
    ]
    assert seen == ["demo.first", "demo.second"]  # subscribers still hear both


def test_a_rolled_back_operation_leaves_no_event(crm: crmkit.CRM) -> None:
    before = outbox_names(crm)
    abort_after_create(crm, "陈静")
    assert outbox_names(crm) == before
    assert crm.contacts.count() == 0


def test_subscribers_run_after_commit_and_not_after_rollback(crm: crmkit.CRM) -> None:
    seen: list[tuple[str, int]] = []

    def subscriber(event: crmkit.Event) -> None:
        with crm.transaction(write=False) as op:  # the change is visible: it committed
            count = op.records("contact").count()
        seen.append((event.name, count))

    crm.subscribe("contact.*", subscriber)
    crm.contacts.create({"full_name": "A"})
    abort_after_create(crm, "B")
    assert seen == [("contact.created", 1)]


def test_a_failing_subscriber_does_not_undo_the_change_or_stop_others(crm: crmkit.CRM) -> None:
    seen: list[str] = []

    def broken(event: crmkit.Event) -> None:
        raise ValueError("subscriber bug")

    crm.subscribe("*", broken)
    crm.subscribe("*", lambda event: seen.append(event.name))
    crm.contacts.create({"full_name": "A"})
    assert seen == ["contact.created"]
    assert crm.contacts.count() == 1


def test_relay_delivers_each_event_to_each_matching_sink(quick_retry_crm: crmkit.CRM) -> None:
    contacts_only = RecordingSink("contacts", ("contact.*",))
    everything = RecordingSink("all")
    quick_retry_crm.contacts.create({"full_name": "A"})
    quick_retry_crm.accounts.create({"name": "Acme"})
    drain(Relay(quick_retry_crm, sinks=[contacts_only, everything]))
    assert [e.name for e in contacts_only.received] == ["contact.created"]
    assert sorted(e.name for e in everything.received) == ["account.created", "contact.created"]


def test_events_of_one_record_are_delivered_in_order_even_across_retries(
    quick_retry_crm: crmkit.CRM,
) -> None:
    crm = quick_retry_crm
    sink = RecordingSink()
    sink.failures_left["contact.created"] = 1
    contact = crm.contacts.create({"full_name": "A"})
    crm.contacts.update(contact.id, {"title": "CEO"})
    crm.contacts.update(contact.id, {"title": "CTO"})
    drain(Relay(crm, sinks=[sink]))
    names = [e.name for e in sink.received if e.record_id == contact.id]
    assert names == ["contact.created", "contact.updated", "contact.updated"]
    assert [e.payload["changes"]["title"] for e in sink.received[1:]] == ["CEO", "CTO"]


def test_a_delivery_that_keeps_failing_goes_dead_and_can_be_retried(
    quick_retry_crm: crmkit.CRM,
) -> None:
    crm = quick_retry_crm
    sink = RecordingSink(patterns=("contact.*",))
    sink.failures_left["contact.created"] = 3  # max_attempts is 3
    crm.contacts.create({"full_name": "A"})
    relay = Relay(crm, sinks=[sink])
    drain(relay)
    dead = dead_deliveries(crm)
    assert [d.sink for d in dead] == ["recorder"]
    assert dead[0].attempts == 3
    assert "receiver down" in (dead[0].last_error or "")
    assert sink.received == []
    assert retry_deliveries(crm, all_dead=True) == 1
    drain(relay)
    assert [e.name for e in sink.received] == ["contact.created"]
    assert dead_deliveries(crm) == []


def test_a_dead_delivery_does_not_block_later_events_of_the_same_record(
    quick_retry_crm: crmkit.CRM,
) -> None:
    crm = quick_retry_crm
    sink = RecordingSink()
    sink.failures_left["contact.created"] = 3
    contact = crm.contacts.create({"full_name": "A"})
    crm.contacts.update(contact.id, {"title": "CEO"})
    drain(Relay(crm, sinks=[sink]))
    assert [e.name for e in sink.received] == ["contact.updated"]


def test_a_failed_delivery_waits_for_its_backoff(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(relay={"backoff_seconds": 3600})
    sink = RecordingSink()
    sink.failures_left["contact.created"] = 1
    crm.contacts.create({"full_name": "A"})
    relay = Relay(crm, sinks=[sink])
    first = relay.run_once()
    second = relay.run_once()
    assert (first.retried, second.delivered) == (1, 0)
    with crm.transaction(write=False) as op:
        delivery = op.session.scalars(select(EventDelivery)).one()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.next_attempt_at > crmkit.utcnow()


def test_retry_needs_a_selection(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.CRMError, match="say which deliveries"):
        retry_deliveries(crm)


def test_an_expired_claim_is_delivered_by_another_worker(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(relay={"lease_seconds": 0})
    sink = RecordingSink()
    crm.contacts.create({"full_name": "A"})
    crashed = Relay(crm, "crashed", sinks=[sink])
    crashed.dispatch()
    assert len(crashed.claim()) == 1  # ...and the worker dies before delivering
    drain(Relay(crm, "survivor", sinks=[sink]))
    assert [e.name for e in sink.received] == ["contact.created"]


def in_two_workers(crm: crmkit.CRM, sink: Any, work: Callable[[Relay], Any]) -> None:
    """Run ``work`` with a relay of its own in two threads (workers ``w0`` and ``w1``) that
    start together; neither may raise."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        relay = Relay(crm, name, sinks=[sink])
        try:
            barrier.wait()
            work(relay)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_two_workers_deliver_every_event_once_and_never_concurrently(crm: crmkit.CRM) -> None:
    sink = RecordingSink(patterns=("contact.*",))
    rows = [(n, {"full_name": f"客户{n}"}) for n in range(300)]
    result = crm.contacts.create_many(rows)
    for record_id in result.ids[:50]:
        crm.contacts.update(record_id, {"title": "经理"})
    in_two_workers(crm, sink, lambda relay: drain(relay, passes=200))
    ids = [str(e.id) for e in sink.received]
    assert len(ids) == len(set(ids)) == 350
    assert sink.overlaps == 0
    by_record: dict[int | None, list[str]] = {}
    for event in sink.received:
        by_record.setdefault(event.record_id, []).append(event.name)
    assert all(names[0] == "contact.created" for names in by_record.values())


class SlowSink:
    """Takes ``seconds`` per event (a slow receiver, one request each); records arrivals."""

    name = "slow"
    patterns = ("contact.*",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.arrived: list[crmkit.Event] = []
        self._lock = threading.Lock()

    def deliver(self, event: crmkit.Event) -> None:
        time.sleep(self.seconds)
        with self._lock:
            self.arrived.append(event)


def test_a_batch_slower_than_the_lease_keeps_its_claims_so_records_stay_in_order(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    # a batch of 16 heads takes 2.4 s to send, the lease is 1.5 s: without the lease being
    # extended while it is sent, the other worker would take the batch's last events as
    # expired and deliver them and their records' next events before this one got there
    crm = make_crm(relay={"lease_seconds": 1.5, "backoff_seconds": 0})
    sink = SlowSink(0.15)
    ids = crm.contacts.create_many((n, {"full_name": f"客户{n}"}) for n in range(16)).ids
    for round_ in range(2):
        for record_id in ids:
            crm.contacts.update(record_id, {"title": f"职位{round_}"})

    def all_delivered() -> bool:
        with crm.transaction(write=False) as op:
            open_ = op.session.scalar(
                select(func.count()).where(EventDelivery.status != DeliveryStatus.DELIVERED.value)
            )
            undispatched = op.session.scalar(
                select(func.count()).where(OutboxEvent.dispatched_at.is_(None))
            )
        return not open_ and not undispatched

    def work(relay: Relay) -> None:
        # both workers keep polling, as `crmkit worker` does, until everything is delivered:
        # an idle pass does not end one while the other holds the batch
        deadline = time.monotonic() + 120
        while not all_delivered() and time.monotonic() < deadline:
            if relay.run_once().idle:
                time.sleep(0.05)

    in_two_workers(crm, sink, work)
    assert all_delivered()
    arrived = [str(event.id) for event in sink.arrived]
    assert len(arrived) == len(set(arrived)) == 48  # each once: no claim was taken over
    with crm.transaction(write=False) as op:
        written = op.session.execute(
            select(OutboxEvent.event_id, OutboxEvent.record_id).order_by(OutboxEvent.id)
        ).all()
    position = {event_id: n for n, event_id in enumerate(arrived)}
    for record_id in ids:
        mine = [row[0] for row in written if row[1] == record_id]
        assert sorted(mine, key=position.__getitem__) == mine, f"contact {record_id} out of order"


def test_tail_lists_recent_events_filtered_by_name(crm: crmkit.CRM) -> None:
    crm.contacts.create({"full_name": "A"})
    crm.accounts.create({"name": "Acme"})
    assert [e.name for e in recent_events(crm, limit=10, name_pattern="contact.*")] == [
        "contact.created"
    ]
    newest = recent_events(crm, limit=1)
    assert [e.name for e in newest] == ["account.created"]
    assert recent_events(crm, limit=10, after_id=newest[0].id) == []


# -- the webhook sink, against a real HTTP server on loopback -----------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records webhook requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"body": body, "headers": dict(self.headers)})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/crm-events"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def webhook_crm(make_crm: Callable[..., crmkit.CRM], receiver: Receiver) -> crmkit.CRM:
    return make_crm(
        # the receiver is on 127.0.0.1, which webhooks refuse unless told (crmkit.outbound)
        relay={"backoff_seconds": 0, "max_attempts": 2, "allow_internal_addresses": True},
        webhooks=[{"name": "erp", "url": receiver.url, "secret": "s3cret", "patterns": ["deal.*"]}],
    )


def test_webhook_posts_signed_events_with_an_idempotency_key(
    make_crm: Callable[..., crmkit.CRM], receiver: Receiver
) -> None:
    crm = webhook_crm(make_crm, receiver)
    crm.pipelines.create("Sales")
    deal = crm.deals.create({"name": "ERP rollout", "amount": "99000"})
    crm.deals.move_to_stage(deal.id, "Won")
    drain(Relay(crm))
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert [b["name"] for b in bodies] == ["deal.created", "deal.updated", "deal.stage_changed"]
    assert bodies[2]["payload"]["stage"] == "Won"
    for request in receiver.requests:
        assert verify("s3cret", request["body"], request["headers"][SIGNATURE_HEADER])
        assert not verify("wrong", request["body"], request["headers"][SIGNATURE_HEADER])
        assert request["headers"]["Idempotency-Key"] == json.loads(request["body"])["id"]


def test_webhook_non_2xx_is_retried_then_dead(
    make_crm: Callable[..., crmkit.CRM], receiver: Receiver
) -> None:
    crm = webhook_crm(make_crm, receiver)
    crm.pipelines.create("Sales")
    receiver.status = 503
    crm.deals.create({"name": "X"})
    drain(Relay(crm))
    assert len(receiver.requests) == 2
    (dead,) = dead_deliveries(crm, sink="erp")
    assert "answered 503" in (dead.last_error or "")


def test_webhook_to_a_closed_port_fails_cleanly(make_crm: Callable[..., crmkit.CRM]) -> None:
    closed = Receiver()
    url = closed.url
    closed.close()
    crm = make_crm(
        relay={"backoff_seconds": 0, "max_attempts": 1, "allow_internal_addresses": True},
        webhooks=[{"name": "gone", "url": url, "secret": "x"}],
    )
    crm.contacts.create({"full_name": "A"})
    drain(Relay(crm))
    (dead,) = dead_deliveries(crm)
    assert "ConnectError" in (dead.last_error or "")


def test_signature_rejects_stale_timestamps() -> None:
    body = b'{"a": 1}'
    header = sign("k", body, 1_000_000)
    assert verify("k", body, header, now=1_000_100)
    assert not verify("k", body, header, now=1_000_000 + 301)
    assert not verify("k", body, "garbage")


def test_two_sinks_with_one_name_are_refused(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(
        webhooks=[
            {"name": "a", "url": "http://127.0.0.1:9/", "secret": "x"},
            {"name": "a", "url": "http://127.0.0.1:9/", "secret": "y"},
        ]
    )
    with pytest.raises(crmkit.ConfigError, match="named 'a'"):
        crm.event_sinks()


def test_outbox_counts_match_changes(crm: crmkit.CRM) -> None:
    crm.contacts.create_many([(n, {"full_name": f"n{n}"}) for n in range(25)])
    with crm.transaction(write=False) as op:
        count = op.session.scalar(select(func.count()).where(OutboxEvent.name == "contact.created"))
    assert count == 25
