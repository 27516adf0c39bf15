"""Broker outages, against a NATS server of the test's own (a free port, a temporary store:
``crmkit_brokers.testing.NatsServer``), so that killing it disturbs no other test: events
written while the broker is down reach it once it is back, none lost, none twice in the
stream, in order per record; the sink's connection survives a server restart.

(RabbitMQ outages are drills in bench/events_bench.py, on a private node: one takes tens of
seconds to start on this machine.)"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from crmkit_brokers.jetstream import NatsSink
from crmkit_brokers.testing import NatsServer
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import select

import crmkit
from crmkit.events.outbox import DeliveryStatus, EventDelivery, OutboxEvent
from crmkit.events.relay import Relay


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as running:
        yield running


@pytest.fixture
def unique() -> str:
    return "o" + uuid.uuid4().hex[:10]


def relay_until_delivered(crm: crmkit.CRM, relay: Relay, seconds: float = 60) -> None:
    """Run passes until every delivery is delivered (retries wait their short backoff)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        relay.run_once()
        with crm.transaction(write=False) as op:
            statuses = set(op.session.scalars(select(EventDelivery.status)))
            left = op.session.scalar(
                select(OutboxEvent.id).where(OutboxEvent.dispatched_at.is_(None)).limit(1)
            )
        if statuses == {DeliveryStatus.DELIVERED.value} and left is None:
            return
        time.sleep(0.05)
    raise AssertionError(f"not all delivered after {seconds} s: {statuses}")


def outbox(crm: crmkit.CRM) -> list[tuple[str, str]]:
    """(event id, record key) of every outbox event, in outbox order."""
    with crm.transaction(write=False) as op:
        rows = op.session.execute(
            select(OutboxEvent.event_id, OutboxEvent.record_type, OutboxEvent.record_id).order_by(
                OutboxEvent.id
            )
        )
        return [(row[0], f"{row[1]}:{row[2]}") for row in rows]


def stream_ids(url: str, stream: str, subject: str) -> list[str]:
    """The event ids in ``stream``, in stream order."""

    async def read() -> list[str]:
        connection = await nats.connect(url)
        try:
            jetstream = connection.jetstream()
            info = await jetstream.stream_info(stream)
            subscription = await jetstream.pull_subscribe(
                subject,
                stream=stream,
                # no acks: an explicit-ack consumer stops at 1,000 unacknowledged messages
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
            )
            messages: list[Any] = []
            while len(messages) < info.state.messages:
                messages += await subscription.fetch(info.state.messages, timeout=10)
            return [json.loads(message.data)["id"] for message in messages]
        finally:
            await connection.close()

    return asyncio.run(read())


def test_events_written_while_nats_is_down_arrive_once_in_order_when_it_is_back(
    make_crm: Callable[..., crmkit.CRM], server: NatsServer, unique: str
) -> None:
    crm = make_crm(
        relay={"backoff_seconds": 0.05, "max_backoff_seconds": 0.3, "max_attempts": 1000}
    )
    sink = NatsSink(server.url, stream=f"S{unique}", prefix=unique, timeout_seconds=1)
    relay = Relay(crm, sinks=[sink])
    try:
        contacts = [crm.contacts.create({"full_name": f"客户{n}"}) for n in range(3)]
        relay_until_delivered(crm, relay)
        server.kill()
        for round_ in range(3):  # written while the broker is down, relayed in vain
            for contact in contacts:
                crm.contacts.update(contact.id, {"title": f"职位{round_}"})
            crm.contacts.create({"full_name": f"新客户{round_}"})
            stats = relay.run_once()
            assert stats.delivered == 0
        assert relay.run_once().delivered == 0
        server.start()
        relay_until_delivered(crm, relay)
    finally:
        sink.close()
    written = outbox(crm)
    arrived = stream_ids(server.url, f"S{unique}", f"{unique}.>")
    assert sorted(arrived) == sorted(event_id for event_id, _ in written)  # none lost, none twice
    position = {event_id: n for n, event_id in enumerate(arrived)}
    for key in {key for _, key in written}:
        mine = [event_id for event_id, record in written if record == key]
        assert sorted(mine, key=position.__getitem__) == mine, f"{key} out of order"


def test_the_nats_sink_delivers_again_after_the_server_restarts(
    server: NatsServer, unique: str
) -> None:
    sink = NatsSink(server.url, stream=f"S{unique}", prefix=unique, timeout_seconds=1)
    before, after = crmkit.Event(name="contact.created"), crmkit.Event(name="contact.updated")
    try:
        assert sink.deliver_batch([before]) == [None]
        server.kill()
        (down,) = sink.deliver_batch([crmkit.Event(name="contact.updated")])
        assert down is not None  # a failed attempt while the server is away
        server.start()
        outcomes: list[BaseException | None] = [down]
        deadline = time.monotonic() + 30
        while outcomes != [None] and time.monotonic() < deadline:
            outcomes = sink.deliver_batch([after])
        assert outcomes == [None]
    finally:
        sink.close()
    # the stream (on disk) kept the event from before the restart; the one that failed
    # meanwhile may have arrived too, once (the client flushes what it had buffered)
    arrived = stream_ids(server.url, f"S{unique}", f"{unique}.>")
    assert {str(before.id), str(after.id)} <= set(arrived)
    assert len(arrived) == len(set(arrived))
