"""Drill: a broker down for a minute while events keep being written (PostgreSQL).

For each broker, on a **private** instance (``crmkit_brokers.testing``: a RabbitMQ node and a
nats-server of their own, on their own ports, so that the outage disturbs nobody else's
tests): a writer thread updates 50 contacts round-robin, about 40 events/s, for the whole
drill; two relay workers (threads, default relay settings: backoff 2 s doubling with jitter,
8 attempts) publish to the broker. Five seconds in, the broker is killed (SIGKILL: the
nats-server process; the RabbitMQ node's whole process group, Erlang VM included, with
``rabbitmqctl stop_app`` as a fallback when ``--stop-app`` is given), for ``down_seconds``;
then it comes back (the same command line, port and store: the RabbitMQ node restarts and
recovers its store, tens of seconds, counted in the time it was down) and the writer goes on
for ten more seconds. Then the relays run until every event is delivered.

Checked: every event written arrived (none lost); duplicates, as a consumer sees them (the
RabbitMQ queue's copies; JetStream drops a repeat of a ``Nats-Msg-Id`` it stored within its
two-minute window, so its stream shows none by construction) and as the sinks sent them
(publish attempts per event, counted in the workers: an event published more than once is
one a consumer without that dedupe could have received twice); whether each record's events
arrived in the order they were written (first arrival of each); how long after the broker
came back the last one arrived.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aio_pika
import nats
from attrs import frozen
from crmkit_brokers.jetstream import NatsSink
from crmkit_brokers.rabbitmq import RabbitMQSink
from crmkit_brokers.testing import NatsServer, RabbitMQNode
from dbs import Databases
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import func, select

import crmkit
from crmkit.events.outbox import DeliveryStatus, EventDelivery, OutboxEvent
from crmkit.events.relay import Relay

RECORDS = 50
WRITE_INTERVAL = 0.025  # seconds between writes: about 40 events/s when the machine allows


@frozen
class OutageDrill:
    """What arrived at a broker that was down for ``down_seconds`` mid-run."""

    broker: str
    down_seconds: float
    written: int
    written_while_down: int
    arrived: int
    unique: int
    out_of_order: int
    dead: int
    drain_seconds: float
    #: publish attempts the sinks made (each event at least once) and the events sent more
    #: than once
    attempts: int = 0
    republished: int = 0
    #: how the broker went down: ``SIGKILL`` or ``stop_app``
    how: str = "SIGKILL"

    @property
    def lost(self) -> int:
        return self.written - self.unique

    @property
    def duplicates(self) -> int:
        return self.arrived - self.unique


class Attempts:
    """Publish attempts per event id, counted by the sinks of one drill (thread-safe)."""

    def __init__(self) -> None:
        self.per_event: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, event_id: str) -> None:
        with self._lock:
            self.per_event[event_id] += 1


class CountingRabbitMQSink(RabbitMQSink):
    attempts: Attempts

    def _publish_on(self, target: Any, event: crmkit.Event, body: bytes) -> Any:
        self.attempts.add(str(event.id))
        return super()._publish_on(target, event, body)


class CountingNatsSink(NatsSink):
    attempts: Attempts

    def _publish_on(self, target: Any, event: crmkit.Event, body: bytes) -> Any:
        self.attempts.add(str(event.id))
        return super()._publish_on(target, event, body)


class Broker:
    """A private broker: down, up, and what arrived."""

    name: str
    how = "SIGKILL"

    def __init__(self) -> None:
        self.attempts = Attempts()

    def sink(self) -> Any:
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def up(self) -> None:
        raise NotImplementedError

    def arrived(self) -> list[str]:
        """The event ids that arrived, in arrival order."""
        raise NotImplementedError


class PrivateRabbitMQ(Broker):
    name = "RabbitMQ"

    def __init__(self, node: RabbitMQNode, *, stop_app: bool = False) -> None:
        super().__init__()
        self.node = node
        self.how = "stop_app" if stop_app else "SIGKILL"
        self.tag = uuid.uuid4().hex[:8]
        asyncio.run(self._bind())

    async def _bind(self) -> None:
        connection = await aio_pika.connect(self.node.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                f"drill.{self.tag}", aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(f"drill.{self.tag}", durable=True)
            await queue.bind(exchange, routing_key="crm.#")

    def sink(self) -> Any:
        sink = CountingRabbitMQSink(self.node.url, exchange=f"drill.{self.tag}", prefix="crm")
        sink.attempts = self.attempts
        return sink

    def down(self) -> None:
        if self.how == "stop_app":
            self.node.stop_app()
        else:
            self.node.kill()

    def up(self) -> None:
        if self.how == "stop_app":
            self.node.start_app()
        else:
            self.node.start()

    def arrived(self) -> list[str]:
        async def drain() -> list[str]:
            ids: list[str] = []
            connection = await aio_pika.connect(self.node.url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(f"drill.{self.tag}", durable=True)
                while (message := await queue.get(fail=False)) is not None:
                    ids.append(str(message.message_id))
                    await message.ack()
                await queue.delete()
                await channel.exchange_delete(f"drill.{self.tag}")
            return ids

        return asyncio.run(drain())


class PrivateNats(Broker):
    name = "NATS JetStream"

    def __init__(self, server: NatsServer) -> None:
        super().__init__()
        self.server = server
        self.tag = uuid.uuid4().hex[:8]

    def sink(self) -> Any:
        sink = CountingNatsSink(self.server.url, stream=f"D{self.tag}", prefix=f"d{self.tag}")
        sink.attempts = self.attempts
        return sink

    def down(self) -> None:
        self.server.kill()

    def up(self) -> None:
        self.server.start()

    def arrived(self) -> list[str]:
        async def read() -> list[str]:
            connection = await nats.connect(self.server.url)
            try:
                jetstream = connection.jetstream()
                total = (await jetstream.stream_info(f"D{self.tag}")).state.messages
                subscription = await jetstream.pull_subscribe(
                    f"d{self.tag}.>",
                    stream=f"D{self.tag}",
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE
                    ),
                )
                ids: list[str] = []
                while len(ids) < total:
                    for message in await subscription.fetch(min(total - len(ids), 500), 10):
                        ids.append(message.headers["Nats-Msg-Id"])
                await jetstream.delete_stream(f"D{self.tag}")
                return ids
            finally:
                await connection.close()

        return asyncio.run(read())


def _writer(url: str, stop: threading.Event, counts: dict[str, int], down: threading.Event) -> None:
    crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)
    try:
        ids = [crm.contacts.create({"full_name": f"客户{n}"}).id for n in range(RECORDS)]
        counts["written"] += RECORDS
        n = 0
        while not stop.is_set():
            crm.contacts.update(ids[n % RECORDS], {"title": f"职位{n}"})
            counts["written"] += 1
            if down.is_set():
                counts["while_down"] += 1
            n += 1
            stop.wait(WRITE_INTERVAL)
    finally:
        crm.close()


def _worker(url: str, name: str, broker: Broker, stop: threading.Event) -> None:
    crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)
    sink = broker.sink()
    try:
        Relay(crm, name, sinks=[sink]).run(stop, poll_interval=0.2)
    finally:
        sink.close()
        crm.close()


def _written(url: str) -> tuple[list[tuple[str, str]], int, int]:
    """(event id, record key) in outbox order; deliveries not delivered yet; dead ones."""
    crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)
    try:
        with crm.transaction(write=False) as op:
            rows = op.session.execute(
                select(OutboxEvent.event_id, OutboxEvent.record_id).order_by(OutboxEvent.id)
            ).all()
            undispatched = op.session.scalar(
                select(func.count()).where(OutboxEvent.dispatched_at.is_(None))
            )
            open_ = op.session.scalar(
                select(func.count()).where(
                    EventDelivery.status.in_(
                        [DeliveryStatus.PENDING.value, DeliveryStatus.IN_FLIGHT.value]
                    )
                )
            )
            dead = op.session.scalar(
                select(func.count()).where(EventDelivery.status == DeliveryStatus.DEAD.value)
            )
        return (
            [(row[0], str(row[1])) for row in rows],
            int(undispatched or 0) + int(open_ or 0),
            int(dead or 0),
        )
    finally:
        crm.close()


def out_of_order(written: Sequence[tuple[str, str]], arrived: Sequence[str]) -> int:
    """Records whose events' first arrivals are not in the order they were written."""
    first: dict[str, int] = {}
    for position, event_id in enumerate(arrived):
        first.setdefault(event_id, position)
    by_record: dict[str, list[str]] = {}
    for event_id, record in written:
        by_record.setdefault(record, []).append(event_id)
    wrong = 0
    for events in by_record.values():
        seen = [first[e] for e in events if e in first]
        wrong += seen != sorted(seen)
    return wrong


def drill(
    dbs: Databases, broker: Broker, down_seconds: float, log: Callable[[str], None]
) -> OutageDrill:
    """Write events throughout, relay them with two workers, take ``broker`` down for
    ``down_seconds`` five seconds in; count what arrived."""
    url = dbs.fresh()
    stop_writing, stop_relaying, down = threading.Event(), threading.Event(), threading.Event()
    counts = {"written": 0, "while_down": 0}
    writer = threading.Thread(target=_writer, args=(url, stop_writing, counts, down))
    workers = [
        threading.Thread(target=_worker, args=(url, f"w{n}", broker, stop_relaying))
        for n in range(2)
    ]
    writer.start()
    for worker in workers:
        worker.start()
    time.sleep(5)
    broker.down()
    went_down = time.monotonic()
    down.set()
    log(f"drill[{broker.name}]: down ({broker.how}) for {down_seconds:.0f} s")
    time.sleep(down_seconds)
    broker.up()
    down.clear()
    back = time.monotonic()
    down_for = back - went_down
    log(f"drill[{broker.name}]: back after {down_for:.1f} s")
    time.sleep(10)
    stop_writing.set()
    writer.join()
    deadline = time.monotonic() + 600
    while True:
        written, left, dead = _written(url)
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    drained = time.monotonic() - back
    stop_relaying.set()
    for worker in workers:
        worker.join()
    arrived = broker.arrived()
    dbs.drop(url)
    attempts = broker.attempts.per_event
    result = OutageDrill(
        broker=broker.name,
        down_seconds=down_for,
        written=len(written),
        written_while_down=counts["while_down"],
        arrived=len(arrived),
        unique=len(set(arrived) & {event_id for event_id, _ in written}),
        out_of_order=out_of_order(written, arrived),
        dead=dead,
        drain_seconds=drained,
        attempts=sum(attempts.values()),
        republished=sum(1 for count in attempts.values() if count > 1),
        how=broker.how,
    )
    log(
        f"drill[{broker.name}]: {result.unique:,} of {result.written:,} arrived"
        f" ({result.written_while_down} written while down), lost {result.lost},"
        f" duplicates {result.duplicates}, records out of order {result.out_of_order},"
        f" dead {result.dead}, all delivered {drained:.1f} s after it came back;"
        f" {result.attempts:,} publish attempts, {result.republished:,} events published"
        " more than once"
    )
    return result


def run(
    dbs: Databases,
    down_seconds: float = 60,
    log: Callable[[str], None] = print,
    *,
    stop_app: bool = False,
) -> list[OutageDrill]:
    """Both drills, each broker a private instance started for it."""
    results = []
    with tempfile.TemporaryDirectory(prefix="crmkit-drill-") as folder:
        os.chmod(folder, 0o755)  # the RabbitMQ node runs as its own user: it must get in
        with NatsServer(Path(folder) / "nats") as server:
            results.append(drill(dbs, PrivateNats(server), down_seconds, log))
        started = time.monotonic()
        with RabbitMQNode(Path(folder) / "rabbitmq") as node:
            log(f"drill: private RabbitMQ node up in {time.monotonic() - started:.0f} s")
            broker = PrivateRabbitMQ(node, stop_app=stop_app)
            results.append(drill(dbs, broker, down_seconds, log))
    return results


def as_markdown(drills: Sequence[OutageDrill]) -> list[str]:
    """The results table."""
    lines = [
        "**Broker killed for a minute while events keep being written** (private broker"
        " instances, SIGKILL, restarted on the same port and store; a writer updating 50"
        " contacts round-robin throughout; two relay workers, default relay settings;"
        " `bench/broker_drills.py`). *Duplicates seen* are the copies a consumer got (the"
        " RabbitMQ queue; the JetStream stream drops a repeated `Nats-Msg-Id` itself, so it"
        " shows none by construction); *published more than once* counts the events the"
        " sinks sent again (publish attempts counted in the workers), the most a consumer"
        " without that dedupe could have received twice:",
        "",
        "| broker | how | down (s) | events written | of them while down | arrived | distinct"
        " | lost | duplicates seen | publish attempts | published more than once"
        " | records out of order | dead | all delivered after it came back (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in drills:
        lines.append(
            f"| {d.broker} | {d.how} | {d.down_seconds:.1f} | {d.written:,}"
            f" | {d.written_while_down:,} | {d.arrived:,} | {d.unique:,} | {d.lost}"
            f" | {d.duplicates} | {d.attempts:,} | {d.republished:,} | {d.out_of_order}"
            f" | {d.dead} | {d.drain_seconds:.1f} |"
        )
    lines.append("")
    return lines


if __name__ == "__main__":
    import sys

    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    seconds = float(numbers[0]) if numbers else 60
    with Databases("postgresql") as databases:
        drills = run(databases, seconds, stop_app="--stop-app" in sys.argv)
        print("\n".join(as_markdown(drills)))
