"""Benchmark: events at scale on PostgreSQL: the relay next to a bare publish loop.

For each sink (in-process counter, RabbitMQ, NATS JetStream, webhook one event per request
and batched), a backlog of ``contact.created`` events is relayed by one and by two worker
processes (``Relay.run_once`` in a loop, what ``crmkit worker`` does), and, in the same run,
a **bare loop** reads the same outbox rows with psycopg and publishes them with the same
client library (aio-pika with publisher confirms, nats-py with JetStream acks, httpx posting
one signed event per request or 100 per request with a signature per event, in a process of
its own as the workers are), a batch of 1 000 at a time, waiting for every confirm: what a
user would write by hand. The runs alternate (relay 1 worker, [floor,] bare, relay 2
workers, per round) so that the changing load falls on all alike; every run is reported.
The webhook receiver counts events, not requests, and checks every signature (a batch's
per-event ones too).

Then the drills: two workers relaying to RabbitMQ and a queue bound to count what arrived,
one worker killed (SIGKILL) mid-run, duplicates counted as the consumer sees them (the
queue); and each broker killed for a minute while events keep being written
(``broker_drills``, on private broker instances; ``--no-outages`` leaves them to a call of
their own). Every event id must arrive; duplicates are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import aio_pika
import broker_drills
import nats
import psycopg
from attrs import frozen
from dbs import Databases, libpq_url
from relay_bench import SECRET, CountingSink, Receiver, _left, make_backlog

import crmkit
from crmkit.events.relay import Relay
from crmkit.events.webhook import WebhookSink

RABBITMQ = os.environ.get("CRMKIT_BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
NATS = os.environ.get("CRMKIT_BENCH_NATS", "nats://127.0.0.1:4222")
BATCH = 1000
WEBHOOK_BATCH = 100  # events per request of the batched webhook runs


def make_sink(kind: str, tag: str, webhook_url: str | None) -> Any:
    """The sink a worker relays to (``tag`` names the exchange / stream of this run)."""
    from crmkit_brokers.jetstream import NatsSink
    from crmkit_brokers.rabbitmq import RabbitMQSink

    if kind == "counter":
        return CountingSink()
    if kind == "rabbitmq":
        return RabbitMQSink(RABBITMQ, exchange=f"bench.{tag}", prefix="crm")
    if kind == "nats":
        return NatsSink(NATS, stream=f"B{tag}", prefix=f"b{tag}")
    assert webhook_url is not None
    return WebhookSink(
        name="webhook",
        url=webhook_url,
        secret=SECRET,
        timeout_seconds=30,
        batch_size=WEBHOOK_BATCH if kind == "webhook-batched" else 1,
        allow_internal=True,
    )


def worker(
    url: str,
    kind: str,
    tag: str,
    webhook_url: str | None,
    worker_id: str,
    relay_settings: dict[str, Any],
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    """One relay worker process: relay until nothing is left, report its counts."""
    settings = crmkit.Settings.from_mapping({"crmkit": {"relay": relay_settings}}, database_url=url)
    crm = crmkit.CRM(settings, discover=False)
    sink = make_sink(kind, tag, webhook_url)
    relay = Relay(crm, worker_id, sinks=[sink])
    delivered = failed = 0
    try:
        ready.put(worker_id)
        start.wait()
        while True:
            stats = relay.run_once()
            delivered += stats.delivered
            failed += stats.retried + stats.dead
            if stats.idle:
                if _left(crm.engine) == 0:
                    break
                time.sleep(0.01)
    finally:
        if hasattr(sink, "close"):
            sink.close()
        crm.close()
    results.put((worker_id, delivered, failed))


@frozen
class Run:
    """One measured run: who ran (``relay`` with 1 or 2 workers, or ``bare``), how fast."""

    sink: str
    runner: str
    events: int
    seconds: float
    load: float

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds


def relay_run(
    url: str,
    kind: str,
    workers: int,
    events: int,
    tag: str,
    webhook_url: str | None,
    relay_settings: dict[str, Any] | None = None,
    during: Callable[[list[Any]], None] | None = None,
) -> tuple[float, int]:
    """Relay the backlog at ``url`` with ``workers`` processes; seconds and failed attempts.
    ``during`` (if given) runs once all workers started, with their processes."""
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    start = context.Event()
    processes = [
        context.Process(
            target=worker,
            args=(
                url,
                kind,
                tag,
                webhook_url,
                f"w{n}",
                relay_settings or {},
                ready,
                start,
                results,
            ),
            daemon=True,
        )
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    began = time.perf_counter()
    start.set()
    alive = len(processes)
    if during is not None:
        during(processes)
        alive = sum(1 for process in processes if process.exitcode is None)
    outcomes = [results.get(timeout=900) for _ in range(alive)]
    seconds = time.perf_counter() - began
    for process in processes:
        process.join(timeout=30)
    return seconds, sum(o[2] for o in outcomes)


# -- the bare loops ------------------------------------------------------------------------


def _outbox_batches(url: str) -> Any:
    """The outbox rows in id order, ``BATCH`` at a time, as the JSON an event carries."""
    with psycopg.connect(libpq_url(url)) as connection:
        last = 0
        while True:
            rows = connection.execute(
                "SELECT id, event_id, name, occurred_at, actor_id, record_type, record_id,"
                " payload FROM event_outbox WHERE id > %s ORDER BY id LIMIT %s",
                (last, BATCH),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [
                (
                    row[1],
                    row[2],
                    json.dumps(
                        {
                            "id": row[1],
                            "name": row[2],
                            "occurred_at": row[3].isoformat(),
                            "actor_id": row[4],
                            "record_type": row[5],
                            "record_id": row[6],
                            "payload": row[7],
                        },
                        ensure_ascii=False,
                    ).encode(),
                )
                for row in rows
            ]


async def _bare_rabbitmq(url: str, tag: str) -> int:
    connection = await aio_pika.connect(RABBITMQ)
    sent = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            f"bench.{tag}", aio_pika.ExchangeType.TOPIC, durable=True
        )
        for batch in _outbox_batches(url):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            body,
                            message_id=event_id,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=f"crm.{name}",
                        mandatory=False,
                    )
                    for event_id, name, body in batch
                )
            )
            sent += len(batch)
    return sent


async def _bare_nats(url: str, tag: str) -> int:
    connection = await nats.connect(NATS)
    sent = 0
    try:
        jetstream = connection.jetstream()
        try:
            await jetstream.stream_info(f"B{tag}")
        except nats.js.errors.NotFoundError:
            await jetstream.add_stream(name=f"B{tag}", subjects=[f"b{tag}.>"])
        for batch in _outbox_batches(url):
            await asyncio.gather(
                *(
                    jetstream.publish(f"b{tag}.{name}", body, headers={"Nats-Msg-Id": event_id})
                    for event_id, name, body in batch
                )
            )
            sent += len(batch)
    finally:
        await connection.close()
    return sent


def _bare_webhook(url: str, receiver_url: str, batch_size: int) -> int:
    """Post the outbox rows with httpx as the webhook sink would: one signed event per
    request, or ``batch_size`` per request each with its own signature (the batch body of
    ``crmkit.events.webhook``), one request after the other on a keep-alive connection."""
    import httpx

    from crmkit.events.webhook import SIGNATURE_HEADER, sign

    sent = 0
    with httpx.Client(timeout=30) as client:

        def post(body: bytes, headers: dict[str, str]) -> None:
            headers[SIGNATURE_HEADER] = sign(SECRET, body, int(time.time()))
            headers["Content-Type"] = "application/json"
            client.post(receiver_url, content=body, headers=headers).raise_for_status()

        for batch in _outbox_batches(url):
            if batch_size == 1:
                for event_id, name, body in batch:
                    post(body, {"Idempotency-Key": event_id, "X-Crmkit-Event": name})
            else:
                for start in range(0, len(batch), batch_size):
                    chunk = batch[start : start + batch_size]
                    now = int(time.time())
                    items = [
                        {
                            "id": event_id,
                            "name": name,
                            "body": body.decode(),
                            "signature": sign(SECRET, body, now),
                        }
                        for event_id, name, body in chunk
                    ]
                    payload = json.dumps({"batch": len(items), "events": items}).encode()
                    post(
                        payload,
                        {
                            "Idempotency-Key": f"batch:{chunk[0][0]}",
                            "X-Crmkit-Batch": str(len(items)),
                        },
                    )
            sent += len(batch)
    return sent


def _bare_webhook_process(url: str, receiver_url: str, batch_size: int, results: Any) -> None:
    began = time.perf_counter()
    _bare_webhook(url, receiver_url, batch_size)
    results.put(time.perf_counter() - began)


def _bare_counter(url: str) -> int:
    return sum(len(batch) for batch in _outbox_batches(url))


#: The relay's database work with nothing around it: one statement marks a batch of outbox
#: rows dispatched, writes their deliveries already claimed and returns the events (payload
#: as text: no JSON decoding), one ``UPDATE`` acknowledges them; each its own transaction
#: with ``synchronous_commit`` off, as the relay's. It leaves out what the relay does on top:
#: the per-record order check (an open delivery of the same record), the fan-out lock, the
#: claim of leftovers, and any Python object per event.
FLOOR_CLAIM = """
WITH batch AS (
  UPDATE event_outbox SET dispatched_at = now()
  WHERE id = ANY(ARRAY(SELECT id FROM event_outbox WHERE dispatched_at IS NULL
                       ORDER BY id LIMIT %(limit)s))
  RETURNING id, event_id, name, occurred_at, actor_id, record_type, record_id, payload
), claimed AS (
  INSERT INTO event_deliveries (outbox_id, sink, record_key, status, attempts,
                                next_attempt_at, claimed_by, claim_expires_at)
  SELECT id, 'counter', coalesce(record_type || ':' || record_id, 'event:' || event_id),
         'in_flight', 1, now(), 'floor', now() + interval '5 minutes'
  FROM batch RETURNING id, outbox_id
)
SELECT claimed.id, batch.event_id, batch.name, batch.occurred_at, batch.actor_id,
       batch.record_type, batch.record_id, batch.payload::text
FROM claimed JOIN batch ON batch.id = claimed.outbox_id
"""
FLOOR_ACK = """
UPDATE event_deliveries SET status = 'delivered', delivered_at = now(), last_error = NULL,
       claim_expires_at = NULL
WHERE id = ANY(%(ids)s) AND claimed_by = 'floor' AND status = 'in_flight'
"""


def _floor_counter(url: str) -> int:
    """The bare SQL claim + acknowledge loop (``FLOOR_CLAIM``, ``FLOOR_ACK``); events done."""
    done = 0
    with psycopg.connect(libpq_url(url)) as connection:
        while True:
            with connection.transaction():
                connection.execute("SET LOCAL synchronous_commit TO off")
                rows = connection.execute(FLOOR_CLAIM, {"limit": BATCH}).fetchall()
            if not rows:
                return done
            with connection.transaction():
                connection.execute("SET LOCAL synchronous_commit TO off")
                connection.execute(FLOOR_ACK, {"ids": [row[0] for row in rows]})
            done += len(rows)


def bare_run(url: str, kind: str, tag: str, webhook_url: str | None = None) -> float:
    """Seconds for the bare loop to read every outbox row and publish it. The webhook loop
    runs in a process of its own, as the relay's workers do: the receiver's threads are in
    this one."""
    if kind.startswith("webhook"):
        assert webhook_url is not None
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        size = WEBHOOK_BATCH if kind == "webhook-batched" else 1
        process = context.Process(
            target=_bare_webhook_process, args=(url, webhook_url, size, results), daemon=True
        )
        process.start()
        seconds: float = results.get(timeout=900)
        process.join(timeout=30)
        return seconds
    began = time.perf_counter()
    if kind == "floor":
        assert _floor_counter(url) > 0
    elif kind == "rabbitmq":
        asyncio.run(_bare_rabbitmq(url, tag))
    elif kind == "nats":
        asyncio.run(_bare_nats(url, tag))
    else:
        _bare_counter(url)
    return time.perf_counter() - began


async def _cleanup(tag: str) -> None:
    """Remove the run's exchange and stream."""
    connection = await aio_pika.connect(RABBITMQ)
    async with connection:
        channel = await connection.channel()
        await channel.exchange_delete(f"bench.{tag}")
    client = await nats.connect(NATS)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(f"B{tag}")
    finally:
        await client.close()


# -- the throughput runs -------------------------------------------------------------------


def throughput(
    dbs: Databases, kind: str, events: int, rounds: int, log: Callable[[str], None]
) -> list[Run]:
    """Relay 1 worker, bare loop (where there is one), relay 2 workers, ``rounds`` times."""
    backlog = dbs.fresh()
    make_backlog(backlog, events)
    runs: list[Run] = []
    order = ["relay-1", "bare", "relay-2"]  # brokers and webhooks
    if kind == "counter":
        order = ["relay-1", "floor", "bare", "relay-2"]
    for _ in range(rounds):
        for runner in order:
            url = dbs.clone(backlog)
            tag = uuid.uuid4().hex[:8]
            receiver = None
            if kind.startswith("webhook"):
                receiver = Receiver(limit=10**9, deadline_seconds=900)
                receiver.start()
            try:
                webhook_url = receiver.url if receiver is not None else None
                if runner in ("bare", "floor"):
                    seconds = bare_run(url, runner if runner == "floor" else kind, tag, webhook_url)
                else:
                    workers = int(runner[-1])
                    seconds, _ = relay_run(url, kind, workers, events, tag, webhook_url)
            finally:
                if receiver is not None:
                    receiver.close()
                if kind in ("rabbitmq", "nats"):
                    asyncio.run(_cleanup(tag))
            if receiver is not None:  # every event arrived, each signature verified
                assert len(receiver.event_ids) == events, (len(receiver.event_ids), events)
                assert receiver.bad_signatures == 0, receiver.bad_signatures
                log(
                    f"events[{kind}, {runner}]: receiver got {receiver.events:,} events"
                    f" ({len(receiver.event_ids):,} distinct) in {receiver.received:,} requests,"
                    " every signature valid"
                )
            run = Run(kind, runner, events, seconds, os.getloadavg()[0])
            log(
                f"events[{kind}, {runner}]: {run.rate:,.0f} events/s"
                f" ({seconds:.2f} s, load {run.load:.1f})"
            )
            runs.append(run)
            dbs.drop(url)
    dbs.drop(backlog)
    return runs


# -- CPU per event ---------------------------------------------------------------------------


@frozen
class CpuCost:
    """CPU time per relayed event (in-process sink, one worker in this process), in the
    worker (Python) and in its PostgreSQL backend: a figure the machine's load does not
    change, unlike events/s."""

    events: int
    seconds: float
    client_us: float
    server_us: float

    @property
    def one_core_rate(self) -> float:
        """Events/s one free core for the worker and one for PostgreSQL would give, if both
        ran in turn (client + server per event)."""
        return 1e6 / (self.client_us + self.server_us)


def _backend_cpu(pids: Sequence[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def cpu_cost(dbs: Databases, events: int) -> CpuCost:
    """Relay ``events`` to the counting sink in this process; CPU per event on both sides
    (PostgreSQL must run on this machine: its backends' CPU is read from /proc)."""
    import sqlalchemy as sa

    url = dbs.fresh()
    make_backlog(url, events)
    crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)
    try:
        sink = CountingSink()
        relay = Relay(crm, "cpu", sinks=[sink])
        with crm.engine.connect() as connection:
            pids = list(
                connection.execute(
                    sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                ).scalars()
            )
        server, client, began = _backend_cpu(pids), time.process_time(), time.perf_counter()
        while not relay.run_once().idle:
            pass
        seconds = time.perf_counter() - began
        client = time.process_time() - client
        server = _backend_cpu(pids) - server
        assert sink.count == events, sink.count
    finally:
        crm.close()
    dbs.drop(url)
    return CpuCost(events, seconds, client / events * 1e6, server / events * 1e6)


# -- the kill drills -------------------------------------------------------------------------


@frozen
class Drill:
    """What arrived at the broker when something was killed mid-run."""

    what: str
    events: int
    arrived: int
    unique: int
    seconds: float

    @property
    def lost(self) -> int:
        return self.events - self.unique

    @property
    def duplicates(self) -> int:
        return self.arrived - self.unique


async def _bind_queue(tag: str) -> None:
    connection = await aio_pika.connect(RABBITMQ)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            f"bench.{tag}", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(f"bench.{tag}", durable=True)
        await queue.bind(exchange, routing_key="crm.#")


async def _drain_queue(tag: str) -> list[str]:
    ids: list[str] = []
    connection = await aio_pika.connect(RABBITMQ)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"bench.{tag}", durable=True)
        while True:
            message = await queue.get(fail=False)
            if message is None:
                break
            ids.append(str(message.message_id))
            await message.ack()
        await queue.delete()
        await channel.exchange_delete(f"bench.{tag}")
    return ids


def drill(dbs: Databases, what: str, events: int, log: Callable[[str], None]) -> Drill:
    """Two workers relay ``events`` to RabbitMQ; ``what`` (``worker``: one of them) is
    killed mid-run. Count what arrived. (The broker outage drills are in
    ``broker_drills``, on private broker instances: stopping the shared RabbitMQ would
    break whatever else on the machine uses it.)"""
    url = dbs.fresh()
    make_backlog(url, events)
    tag = uuid.uuid4().hex[:8]
    asyncio.run(_bind_queue(tag))
    settings = {
        "lease_seconds": 5,
        "backoff_seconds": 0.5,
        "max_backoff_seconds": 2,
        "max_attempts": 100,
    }

    def kill(processes: list[Any]) -> None:
        time.sleep(1.0)
        processes[0].kill()
        processes[0].join()
        log(f"drill: worker w0 killed ({what}, SIGKILL)")

    seconds, _ = relay_run(url, "rabbitmq", 2, events, tag, None, settings, during=kill)
    ids = asyncio.run(_drain_queue(tag))
    dbs.drop(url)
    result = Drill(what, events, len(ids), len(set(ids)), seconds)
    log(
        f"drill[{what}]: {result.unique:,} of {events:,} arrived, lost {result.lost},"
        f" duplicates {result.duplicates} ({seconds:.1f} s)"
    )
    return result


def run(
    *,
    events: int,
    webhook_events: int,
    rounds: int,
    outage_seconds: float = 60,
    log: Callable[[str], None] = print,
) -> tuple[list[Run], list[Drill], list[broker_drills.OutageDrill], list[CpuCost]]:
    """The CPU per event (three runs), every sink's throughput runs, then the worker kill
    drill, then each broker down for ``outage_seconds`` (private instances:
    ``broker_drills``)."""
    runs: list[Run] = []
    costs: list[CpuCost] = []
    with Databases("postgresql") as dbs:
        for _ in range(3):
            cost = cpu_cost(dbs, 20_000)
            costs.append(cost)
            log(
                f"cpu: worker {cost.client_us:.1f} us, PostgreSQL {cost.server_us:.1f} us per"
                f" event ({cost.events / cost.seconds:,.0f} events/s,"
                f" load {os.getloadavg()[0]:.1f})"
            )
        for kind in ("counter", "rabbitmq", "nats"):
            runs += throughput(dbs, kind, events, rounds, log)
        for kind in ("webhook", "webhook-batched"):
            runs += throughput(dbs, kind, webhook_events, rounds, log)
        drills = [drill(dbs, "worker", events, log)]
        # (outage_seconds 0: the broker drills are left to their own quiet call,
        # `python broker_drills.py 60`, to keep each call under ten minutes)
        outages = broker_drills.run(dbs, outage_seconds, log) if outage_seconds else []
    return runs, drills, outages, costs


LABELS = {
    "counter": "in-process counting sink",
    "rabbitmq": "RabbitMQ (publisher confirms)",
    "nats": "NATS JetStream (acks)",
    "webhook": "webhook, 1 event per request",
    "webhook-batched": "webhook, 100 events per request",
}


def as_markdown(
    runs: Sequence[Run],
    drills: Sequence[Drill],
    outages: Sequence[broker_drills.OutageDrill] = (),
    costs: Sequence[CpuCost] = (),
) -> list[str]:
    """The results section."""
    lines = [
        "### Events at scale: relay vs. a bare publish loop (PostgreSQL)",
        "",
        "A backlog of `contact.created` events, relayed by 1 and by 2 worker processes"
        " (`Relay.run_once` in a loop, default settings: batch_size 1 000) and, in the same"
        " run, read and published by a **bare loop** (psycopg reads the same outbox rows in"
        " id order, 1 000 at a time, and publishes them with the same client library,"
        " awaiting every confirm / JetStream ack; for the in-process sink it only reads)"
        " and, for the in-process sink, by the **floor**: the relay's database work as bare"
        " SQL (one statement marks a batch dispatched, writes its deliveries claimed and"
        " returns the events; one `UPDATE` acknowledges them), no Python object per event."
        " The runs alternate (relay 1, floor, bare, relay 2) for each round; every run is listed"
        " with the 1-minute load average when it ended. `bench/events_bench.py`.",
        "",
        "| sink | run | events | events/s | seconds | load |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for run_ in runs:
        lines.append(
            f"| {LABELS[run_.sink]} | {run_.runner} | {run_.events:,} | {run_.rate:,.0f}"
            f" | {run_.seconds:.2f} | {run_.load:.1f} |"
        )
    floors = [r for r in runs if r.sink == "counter" and r.runner == "floor"]
    lines += ["", "Relay ÷ the bare SQL claim + ack floor (in-process sink), per round:", ""]
    for number, floor in enumerate(floors):
        mine = [r for r in runs if r.sink == "counter"]
        one = [r for r in mine if r.runner == "relay-1"][number]
        two = [r for r in mine if r.runner == "relay-2"][number]
        lines.append(
            f"- round {number + 1}: 1 worker **{one.rate / floor.rate:.2f} ×**, 2 workers"
            f" **{two.rate / floor.rate:.2f} ×** the floor ({floor.rate:,.0f} events/s)"
        )
    lines += ["", "Relay ÷ bare loop, per round (same order as above):", ""]
    for sink in LABELS:
        mine = [r for r in runs if r.sink == sink]
        bare = [r for r in mine if r.runner == "bare"]
        for number, base in enumerate(bare):
            one = [r for r in mine if r.runner == "relay-1"][number]
            two = [r for r in mine if r.runner == "relay-2"][number]
            lines.append(
                f"- {LABELS[sink]}, round {number + 1}: 1 worker **{one.rate / base.rate:.2f} ×**,"
                f" 2 workers **{two.rate / base.rate:.2f} ×** the bare loop"
                f" ({base.rate:,.0f} events/s)"
            )
    lines += [
        "",
        "**Kill drill** (two workers relaying to RabbitMQ, a durable queue bound to count"
        " what arrived; relay lease 5 s, backoff 0.5-2 s):",
        "",
        "| killed mid-run | events | arrived | distinct | lost | duplicates | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d in drills:
        label = "one worker (SIGKILL)" if d.what == "worker" else d.what
        lines.append(
            f"| {label} | {d.events:,} | {d.arrived:,} | {d.unique:,} | {d.lost} |"
            f" {d.duplicates} | {d.seconds:.1f} |"
        )
    lines.append("")
    if costs:
        lines += [
            "**CPU per relayed event** (in-process sink, one worker in the bench process,"
            " 20 000 events; the worker's CPU time and its PostgreSQL backend's, from"
            " `/proc`; `cpu_cost`):",
            "",
            "| run | worker µs | PostgreSQL µs | both µs | events/s measured |",
            "|---:|---:|---:|---:|---:|",
        ]
        for number, cost in enumerate(costs, 1):
            lines.append(
                f"| {number} | {cost.client_us:.1f} | {cost.server_us:.1f}"
                f" | {cost.client_us + cost.server_us:.1f} | {cost.events / cost.seconds:,.0f} |"
            )
        lines.append("")
    return lines + (broker_drills.as_markdown(outages) if outages else [])


if __name__ == "__main__":
    import sys

    quick = "--quick" in sys.argv
    rounds_given = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--rounds=")]
    results, drill_results, outage_results, cpu_results = run(
        events=3_000 if quick else 10_000,
        webhook_events=1_000 if quick else 3_000,
        rounds=int(rounds_given[0]) if rounds_given else 1 if quick else 2,
        outage_seconds=0 if "--no-outages" in sys.argv else 10 if quick else 60,
    )
    print("\n".join(as_markdown(results, drill_results, outage_results, cpu_results)))
