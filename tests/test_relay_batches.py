"""The batched relay: a batch of new events is fanned out and claimed in one step, batch
sinks get a batch per pass, outcomes are acknowledged per event, backoff has jitter."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select

import crmkit
from crmkit.events.admin import delivery_log, relay_lag
from crmkit.events.outbox import DeliveryStatus, EventDelivery
from crmkit.events.relay import Relay
from crmkit.events.types import BatchEventSink, deliver_all


class PermanentError(Exception):
    permanent = True


class BatchRecorder:
    """A batch sink: records each batch it gets, fails the events named in ``fail``."""

    def __init__(self, name: str = "batches") -> None:
        self.name = name
        self.patterns: Sequence[str] = ("*",)
        self.batches: list[list[crmkit.Event]] = []
        self.fail: dict[str, Exception] = {}

    def deliver(self, event: crmkit.Event) -> None:
        raise AssertionError("a batch sink gets batches")

    def deliver_batch(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        self.batches.append(list(events))
        return [self.fail.get(event.payload.get("full_name", "")) for event in events]

    @property
    def delivered_names(self) -> list[str]:
        return [e.name for batch in self.batches for e in batch]


def drain(relay: Relay, passes: int = 50) -> None:
    for _ in range(passes):
        if relay.run_once().idle:
            return
    raise AssertionError("the relay still had work")


def statuses(crm: crmkit.CRM) -> list[str]:
    with crm.transaction(write=False) as op:
        return list(op.session.scalars(select(EventDelivery.status).order_by(EventDelivery.id)))


def test_a_batch_sink_gets_one_batch_per_pass(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(relay={"batch_size": 50})
    sink = BatchRecorder()
    assert isinstance(sink, BatchEventSink)
    crm.contacts.create_many((n, {"full_name": f"客户{n}"}) for n in range(120))
    drain(Relay(crm, sinks=[sink]))
    assert [len(batch) for batch in sink.batches] == [50, 50, 20]
    assert set(statuses(crm)) == {DeliveryStatus.DELIVERED.value}


def test_events_of_one_record_in_one_batch_go_out_one_per_pass_in_order(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm()
    sink = BatchRecorder()
    contact = crm.contacts.create({"full_name": "王芳"})
    crm.contacts.update(contact.id, {"title": "经理"})
    crm.contacts.update(contact.id, {"title": "总监"})
    drain(Relay(crm, sinks=[sink]))
    assert sink.delivered_names == ["contact.created", "contact.updated", "contact.updated"]
    assert all(len({e.record_id for e in batch}) == len(batch) for batch in sink.batches)
    titles = [e.payload["changes"]["title"] for batch in sink.batches[1:] for e in batch]
    assert titles == ["经理", "总监"]


def test_one_failed_event_of_a_batch_is_retried_alone(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(relay={"backoff_seconds": 0, "max_attempts": 3})
    sink = BatchRecorder()
    crm.contacts.create({"full_name": "好"})
    crm.contacts.create({"full_name": "坏"})
    sink.fail["坏"] = RuntimeError("receiver refused 坏")
    relay = Relay(crm, sinks=[sink])
    relay.run_once()
    assert statuses(crm) == [DeliveryStatus.DELIVERED.value, DeliveryStatus.PENDING.value]
    sink.fail.clear()
    drain(relay)
    assert len(sink.batches[0]) == 2
    later = [e.payload["full_name"] for batch in sink.batches[1:] for e in batch]
    assert later
    assert set(later) == {"坏"}
    assert statuses(crm) == [DeliveryStatus.DELIVERED.value] * 2


def test_a_permanent_failure_goes_dead_at_once(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(relay={"backoff_seconds": 0, "max_attempts": 5})
    sink = BatchRecorder()
    sink.fail["坏"] = PermanentError("410 Gone")
    crm.contacts.create({"full_name": "坏"})
    drain(Relay(crm, sinks=[sink]))
    with crm.transaction(write=False) as op:
        delivery = op.session.scalars(select(EventDelivery)).one()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DEAD.value, 1)
    assert "410 Gone" in (delivery.last_error or "")


def test_a_batch_sink_that_raises_fails_every_event_of_the_batch() -> None:
    class Broken(BatchRecorder):
        def deliver_batch(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
            raise ConnectionError("broker down")

    events = [crmkit.Event(name="contact.created"), crmkit.Event(name="contact.created")]
    outcomes = deliver_all(Broken(), events)
    assert [type(o) for o in outcomes] == [ConnectionError, ConnectionError]


def test_a_batch_sink_must_answer_for_every_event() -> None:
    class Short(BatchRecorder):
        def deliver_batch(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
            return [None]

    outcomes = deliver_all(Short(), [crmkit.Event(name="a"), crmkit.Event(name="b")])
    assert all(isinstance(o, RuntimeError) and "1 outcomes for 2" in str(o) for o in outcomes)


def test_backoff_doubles_with_jitter_and_is_capped(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(relay={"backoff_seconds": 2, "max_backoff_seconds": 60})
    relay = Relay(crm, sinks=[])
    for attempts, full in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        waits = {relay.backoff(attempts) for _ in range(50)}
        assert all(dt.timedelta(seconds=full / 2) <= w <= dt.timedelta(seconds=full) for w in waits)
        assert len(waits) > 1  # jittered: retries of one burst spread out


def test_lag_shows_each_sinks_open_deliveries(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(relay={"backoff_seconds": 3600})
    sink = BatchRecorder()
    crm.contacts.create({"full_name": "坏"})
    crm.contacts.create({"full_name": "好"})
    sink.fail["坏"] = RuntimeError("down")
    assert relay_lag(crm).undispatched == 2
    Relay(crm, sinks=[sink]).run_once()
    lag = relay_lag(crm)
    assert lag.undispatched == 0
    (open_,) = lag.sinks
    assert (open_.sink, open_.pending, open_.in_flight) == ("batches", 1, 0)
    assert open_.oldest_seconds >= 0
    assert 'crmkit_event_deliveries_open{sink="batches",status="pending"} 1' in (
        lag.as_prometheus().splitlines()
    )
    (line,) = delivery_log(crm, status="pending")
    assert (line.event, line.attempts, line.last_error) == (
        "contact.created",
        1,
        "RuntimeError: down",
    )


def test_the_delivery_log_refuses_an_unknown_status(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.CRMError, match="unknown delivery status 'lost'"):
        delivery_log(crm, status="lost")


class DownSink(BatchRecorder):
    """A batch sink that fails every event while ``down``."""

    def __init__(self) -> None:
        super().__init__("broker")
        self.down = False

    def deliver_batch(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        if self.down:
            return [ConnectionError("broker unreachable")] * len(events)
        return super().deliver_batch(events)


def pending_retries(crm: crmkit.CRM) -> list[dt.datetime]:
    with crm.transaction(write=False) as op:
        return list(
            op.session.scalars(
                select(EventDelivery.next_attempt_at).where(
                    EventDelivery.status == DeliveryStatus.PENDING.value
                )
            )
        )


def test_retries_are_due_at_once_when_a_sink_that_was_down_delivers_again(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    # a long backoff: without the pull-forward the retries would wait minutes
    crm = make_crm(relay={"backoff_seconds": 300, "max_attempts": 10})
    sink = DownSink()
    relay = Relay(crm, sinks=[sink])
    sink.down = True
    crm.contacts.create_many((n, {"full_name": f"停机{n}"}) for n in range(5))
    relay.run_once()
    waiting = pending_retries(crm)
    assert len(waiting) == 5
    assert min(waiting) > crmkit.utcnow() + dt.timedelta(seconds=100)

    sink.down = False
    crm.contacts.create({"full_name": "恢复后"})
    relay.run_once()  # the new event goes through: the sink is back
    relay.run_once()  # the five retries are due now, not in five minutes

    assert sorted(e.payload["full_name"] for e in sink.batches[0]) == ["恢复后"]
    assert sorted(e.payload["full_name"] for b in sink.batches[1:] for e in b) == [
        f"停机{n}" for n in range(5)
    ]
    assert set(statuses(crm)) == {DeliveryStatus.DELIVERED.value}


def test_an_event_refused_alone_keeps_its_backoff(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(relay={"backoff_seconds": 300, "max_attempts": 10})
    sink = BatchRecorder()
    sink.fail["坏"] = RuntimeError("receiver refused 坏")
    relay = Relay(crm, sinks=[sink])
    crm.contacts.create({"full_name": "好"})
    crm.contacts.create({"full_name": "坏"})
    relay.run_once()
    crm.contacts.create({"full_name": "又好"})
    relay.run_once()

    # the sink is not down (it delivered the others): the refused event waits out its backoff
    (waiting,) = pending_retries(crm)
    assert waiting > crmkit.utcnow() + dt.timedelta(seconds=100)
