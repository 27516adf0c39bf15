"""Benchmark 3: event relay throughput on PostgreSQL.

A backlog of ``contact.created`` events (made with ``create_many``, never dispatched) is
relayed by one worker, then (from a fresh copy of the same backlog) by two workers. Each
worker is its own process (``multiprocessing``, spawn) running ``Relay.run_once`` in a loop,
exactly what ``crmkit worker`` does, until nothing is left to dispatch or deliver. The clock
covers dispatch (fan-out to deliveries), claims and deliveries, and starts once every
worker has opened its CRM.

Two sinks: an in-process counting sink (the relay's own cost) and the webhook sink posting
to a small threading HTTP server on 127.0.0.1 that checks every signature, answers 204, and
stops by itself after the expected number of requests (or a deadline).

Before that, :func:`claim_plans` times one claim over a few thousand pending deliveries with
the planner statistics of a freshly migrated table and after ``ANALYZE``: the claim must not
depend on them (an earlier claim query went quadratic on a never-analyzed table).
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import sqlalchemy as sa
from attrs import define, frozen
from dbs import Databases
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import crmkit
from crmkit.db.engine import make_engine
from crmkit.events.outbox import DeliveryStatus, EventDelivery, OutboxEvent
from crmkit.events.relay import Relay
from crmkit.events.webhook import SIGNATURE_HEADER, WebhookSink, verify

SECRET = "bench-secret"


@define
class CountingSink:
    """Counts the events handed to it (in this process)."""

    name: str = "counter"
    patterns: Sequence[str] = ("*",)
    count: int = 0

    def deliver(self, event: crmkit.Event) -> None:
        self.count += 1


# -- the webhook receiver ----------------------------------------------------------------


class Receiver:
    """A threading HTTP server that accepts ``limit`` signed POSTs, then stops itself.

    It counts requests (``received``) and events (``events``: one per plain request, every
    item of a batch) and checks every signature: the request's header, and in a batch each
    event's own ``signature`` over its ``body`` (``bad_signatures`` counts both kinds)."""

    def __init__(self, limit: int, deadline_seconds: float) -> None:
        self.limit = limit
        self.received = 0
        self.events = 0
        self.event_ids: set[str] = set()
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: one connection per worker

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                good = verify(SECRET, body, self.headers.get(SIGNATURE_HEADER, ""))
                ids, bad_items = _events_of(body, batched="X-Crmkit-Batch" in self.headers)
                self.send_response(204 if good else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.count(good, ids if good else [], bad_items)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._deadline = threading.Timer(deadline_seconds, self.stop)
        self._deadline.daemon = True

    def count(self, good: bool, ids: Sequence[str] = (), bad_items: int = 0) -> None:
        with self._lock:
            self.received += 1
            self.events += len(ids)
            self.event_ids.update(ids)
            self.bad_signatures += (0 if good else 1) + bad_items
            done = self.received >= self.limit
        if done:
            threading.Thread(target=self.stop, daemon=True).start()

    def start(self) -> None:
        self._thread.start()
        self._deadline.start()

    def stop(self) -> None:
        self._deadline.cancel()
        self.server.shutdown()

    def close(self) -> None:
        self.stop()
        self._thread.join(timeout=10)
        self.server.server_close()


def _events_of(body: bytes, *, batched: bool) -> tuple[list[str], int]:
    """The event ids a request carries and how many of a batch's per-event signatures do
    not verify (each item's ``signature`` over its ``body``, as a receiver storing events
    one by one checks them)."""
    if not batched:
        return [json.loads(body)["id"]], 0
    items = json.loads(body)["events"]
    bad = sum(
        not verify(SECRET, item["body"].encode(), item["signature"])
        or json.loads(item["body"])["id"] != item["id"]
        for item in items
    )
    return [item["id"] for item in items], bad


# -- workers -------------------------------------------------------------------------------


def _left(engine: Any) -> int:
    """Events not yet dispatched plus deliveries not yet delivered."""
    with Session(engine) as session:
        undispatched = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.dispatched_at.is_(None))
        )
        open_deliveries = session.scalar(
            select(func.count())
            .select_from(EventDelivery)
            .where(EventDelivery.status != DeliveryStatus.DELIVERED.value)
        )
    return int(undispatched or 0) + int(open_deliveries or 0)


def worker(
    url: str,
    sink_kind: str,
    webhook_url: str | None,
    worker_id: str,
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    """One relay worker process: relay until there is nothing left, report its counts."""
    crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)
    sink: Any
    if sink_kind == "counter":
        sink = CountingSink()
    else:
        assert webhook_url is not None
        sink = WebhookSink(name="webhook", url=webhook_url, secret=SECRET, timeout_seconds=30)
    relay = Relay(crm, worker_id, sinks=[sink])
    delivered = failed = passes = 0
    try:
        ready.put(worker_id)
        start.wait()
        while True:
            stats = relay.run_once()
            passes += 1
            delivered += stats.delivered
            failed += stats.retried + stats.dead
            if stats.idle:
                if _left(crm.engine) == 0:
                    break
                time.sleep(0.005)
    finally:
        crm.close()
    results.put((worker_id, delivered, failed, passes))


@frozen
class RelayRun:
    """One measured relay run."""

    sink: str
    workers: int
    events: int
    seconds: float
    per_worker: tuple[int, ...]
    failed: int

    @property
    def rate(self) -> float:
        """Events delivered per second."""
        return self.events / self.seconds


def _relay(
    url: str, sink_kind: str, workers: int, events: int, webhook_url: str | None
) -> RelayRun:
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    start = context.Event()
    processes = [
        context.Process(
            target=worker,
            args=(url, sink_kind, webhook_url, f"bench-{n}", ready, start, results),
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
    outcomes = [results.get(timeout=1800) for _ in processes]
    seconds = time.perf_counter() - began
    for process in processes:
        process.join(timeout=30)
    delivered = tuple(sorted((o[1] for o in outcomes), reverse=True))
    if sum(delivered) < events:
        raise RuntimeError(f"only {sum(delivered)} of {events} events were delivered")
    return RelayRun(
        sink=sink_kind,
        workers=workers,
        events=events,
        seconds=seconds,
        per_worker=delivered,
        failed=sum(o[2] for o in outcomes),
    )


@frozen
class ClaimPlans:
    """One claim (``Relay.claim``) over ``pending`` dispatched deliveries, with the planner
    statistics of the freshly migrated table (never analyzed), and after ``ANALYZE``."""

    pending: int
    cold_seconds: float
    analyzed_seconds: float


def claim_plans(dbs: Databases, events: int) -> ClaimPlans:
    """Time one claim before and after ``ANALYZE``, on two copies of the same database."""
    source = dbs.fresh()
    engine = sa.create_engine(source, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:  # keep autovacuum from refreshing them meanwhile
        connection.exec_driver_sql("ALTER TABLE event_deliveries SET (autovacuum_enabled = false)")
    engine.dispose()
    make_backlog(source, events)
    crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=source), discover=False)
    try:
        relay = Relay(crm, "plans", sinks=[CountingSink()])
        while relay.dispatch():
            pass
    finally:
        crm.close()
    seconds = []
    for analyze in (False, True):
        url = dbs.clone(source)
        crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)
        try:
            with crm.engine.connect() as connection:
                # The same warm connection and cache for both: read the table once.
                connection.exec_driver_sql("SELECT count(*) FROM event_deliveries").scalar()
                if analyze:
                    connection.exec_driver_sql("ANALYZE event_deliveries")
                connection.commit()
            relay = Relay(crm, "plans", sinks=[CountingSink()])
            relay.dispatch()  # nothing left to dispatch: warms the relay's own statements
            started = time.perf_counter()
            claimed = relay.claim()
            seconds.append(time.perf_counter() - started)
            assert claimed, "nothing to claim"
        finally:
            crm.close()
        dbs.drop(url)
    dbs.drop(source)
    return ClaimPlans(events, seconds[0], seconds[1])


def make_backlog(url: str, events: int) -> None:
    """``events`` undispatched ``contact.created`` events (and their contacts)."""
    crm = crmkit.CRM(crmkit.Settings.from_mapping({}, database_url=url), discover=False)
    try:
        rows = ((n, {"full_name": f"客户 {n}", "phone": f"139{n:08d}"}) for n in range(events))
        result = crm.contacts.create_many(rows, batch_size=5000)
        if result.errors or result.created != events:
            raise RuntimeError(f"backlog: {result.created} created, errors {result.errors[:3]}")
    finally:
        crm.close()
    engine = make_engine(url)
    assert _left(engine) == events
    engine.dispose()


def run(
    *,
    events: int,
    webhook_events: int,
    plan_events: int,
    rounds: int = 2,
    log: Callable[[str], None] = print,
) -> tuple[list[RelayRun], ClaimPlans]:
    """One and two workers, counting sink and webhook sink, on PostgreSQL; and the cost of
    a claim with stale and with fresh planner statistics. One worker and two alternate for
    ``rounds`` rounds (so the machine's changing load falls on both alike); the faster run
    of each is kept."""
    runs: list[RelayRun] = []
    with Databases("postgresql") as dbs:
        plans = claim_plans(dbs, plan_events)
        log(
            f"relay: one claim over {plans.pending} pending deliveries takes"
            f" {plans.cold_seconds:.3f} s with stale statistics,"
            f" {plans.analyzed_seconds * 1000:.1f} ms after ANALYZE"
        )
        for sink_kind, count in (("counter", events), ("webhook", webhook_events)):
            backlog = dbs.fresh()
            started = time.perf_counter()
            make_backlog(backlog, count)
            log(f"relay: backlog of {count} events in {time.perf_counter() - started:.1f} s")
            best: dict[int, RelayRun] = {}
            for workers in (1, 2) * rounds:
                url = dbs.clone(backlog)
                receiver = None
                if sink_kind == "webhook":
                    receiver = Receiver(limit=count, deadline_seconds=1800)
                    receiver.start()
                try:
                    webhook_url = receiver.url if receiver is not None else None
                    result = _relay(url, sink_kind, workers, count, webhook_url)
                finally:
                    if receiver is not None:
                        receiver.close()
                if receiver is not None and (receiver.bad_signatures or receiver.received < count):
                    raise RuntimeError(
                        f"webhook receiver got {receiver.received} requests,"
                        f" {receiver.bad_signatures} badly signed"
                    )
                log(
                    f"relay[{sink_kind}, {workers} worker(s)]: {result.rate:,.0f} events/s"
                    f" ({result.seconds:.1f} s, per worker {result.per_worker})"
                )
                if workers not in best or result.seconds < best[workers].seconds:
                    best[workers] = result
                dbs.drop(url)
            runs += [best[1], best[2]]
            dbs.drop(backlog)
    return runs, plans


def _plan_verdict(plans: ClaimPlans) -> str:
    ratio = plans.cold_seconds / max(plans.analyzed_seconds, 1e-9)
    if ratio > 10:
        return (
            f"{ratio:,.0f} × slower with stale statistics: the claim's plan depends on them, so"
            " claims stay slow until autovacuum re-analyzes the table"
        )
    return f"{ratio:.1f} ×: the claim does not depend on fresh statistics"


def as_markdown(runs: Sequence[RelayRun], plans: ClaimPlans, batch_size: int) -> list[str]:
    """The results section of docs/benchmarks.md."""
    lines = [
        "### 3. Event relay throughput (PostgreSQL)",
        "",
        "A backlog of undispatched `contact.created` events (made with `create_many`), relayed"
        " by one worker and then, from a fresh copy of the same backlog, by two workers. Each"
        " worker is a separate **process** (multiprocessing, spawn) looping `Relay.run_once()`"
        " (dispatch → claim with `FOR UPDATE SKIP LOCKED` → deliver) until nothing is left;"
        f" relay settings are the defaults (batch_size {batch_size}). The clock starts when"
        " every worker is ready and stops when the last one finds nothing left. One worker"
        " and two alternate, two rounds; the faster run of each is shown.",
        "",
        "| Sink | events | 1 worker | 2 workers | 2 ÷ 1 | split between the 2 workers |",
        "|---|---:|---:|---:|---:|---|",
    ]
    by_sink: dict[str, dict[int, RelayRun]] = {}
    for run_ in runs:
        by_sink.setdefault(run_.sink, {})[run_.workers] = run_
    labels = {
        "counter": "in-process counting sink",
        "webhook": "webhook → local HTTP server (signed, 204)",
    }
    for sink, pair in by_sink.items():
        one, two = pair[1], pair[2]
        lines.append(
            f"| {labels[sink]} | {one.events:,} | {one.rate:,.0f} events/s ({one.seconds:.1f} s)"
            f" | {two.rate:,.0f} events/s ({two.seconds:.1f} s) | **{two.rate / one.rate:.2f} ×**"
            f" | {' / '.join(f'{n:,}' for n in two.per_worker)} |"
        )
    lines += [
        "",
        "The machine has 2 cores shared by the workers, PostgreSQL and (for the webhook) the"
        " HTTP server, so a second worker cannot double the rate here.",
        "",
        "**Claims and planner statistics.** The claim query must stay cheap whatever the"
        " planner's statistics say: a backlog usually lands in an `event_deliveries` table"
        " analyzed when it was empty (or never). One claim over"
        f" {plans.pending:,} dispatched, pending deliveries, on two copies of one database:"
        f" **{plans.cold_seconds * 1000:,.1f} ms** with the statistics of the freshly migrated"
        f" table, **{plans.analyzed_seconds * 1000:,.1f} ms** after `ANALYZE`"
        f" ({_plan_verdict(plans)}).",
        "",
    ]
    return lines
