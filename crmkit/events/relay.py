"""The relay: delivers outbox events to durable sinks, at least once, in order per record.

One pass (:meth:`Relay.run_once`) works in batches, one round trip per step and batch:

1. *fan out and claim*: take up to ``batch_size`` new outbox events in id order and write one
   delivery row per matching sink. A delivery whose record has no open delivery for the same
   sink is written already claimed by this worker (in flight, with a lease); one behind an
   open delivery of its record is written pending. One worker at a time fans out (a
   PostgreSQL advisory lock; SQLite's write lock), so delivery ids follow outbox order.
2. *deliver*: hand the claimed events to their sinks outside any transaction, a whole batch
   per sink where the sink takes batches (:class:`BatchEventSink`).
3. *acknowledge*: one ``UPDATE`` marks the delivered ones; failures get their retry time
   (exponential backoff with jitter) or go dead after ``max_attempts``.
4. *claim leftovers*: deliveries left pending (retries, events behind an earlier one of their
   record, leases of workers that died) are claimed as the head of their record's queue; on
   PostgreSQL with ``FOR UPDATE SKIP LOCKED`` so that two workers never hold the same one;
   then delivered and acknowledged as above.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import Integer, and_, any_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from crmkit.db.base import utcnow
from crmkit.events import relay_postgres
from crmkit.events.outbox import DeliveryStatus, EventDelivery, OutboxEvent
from crmkit.events.subscriptions import disable_gone_subscriptions, refreshed_sinks
from crmkit.events.types import Event, EventSink, deliver_all

if TYPE_CHECKING:
    from crmkit.app import CRM

log = logging.getLogger(__name__)
DISPATCH_LOCK = 0x63726D6B  # "crmk": the advisory lock key of the dispatcher
#: Full batches one pass fans out, the delivery of each overlapping the fan-out of the next
#: (the sink waits on the broker's confirms while PostgreSQL writes the next batch's
#: deliveries). Bounded so that a pass over a large backlog still ends, and the sinks are
#: re-read, every few thousand events. bench/events_bench.py: relay ÷ bare publish loop.
BATCHES_PER_PASS = 8
_OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.IN_FLIGHT.value)
_OUTBOX = OutboxEvent.__table__.c
_DELIVERIES = EventDelivery.__table__.c


def _due(columns: Any, now: dt.datetime) -> Any:
    """Whether a delivery (``columns``: of the table or a subquery) may be claimed now:
    pending and due, or in flight with an expired lease."""
    return or_(
        and_(columns.status == DeliveryStatus.PENDING.value, columns.next_attempt_at <= now),
        and_(columns.status == DeliveryStatus.IN_FLIGHT.value, columns.claim_expires_at < now),
    )


@frozen
class RelayStats:
    """What one relay pass did."""

    dispatched: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def idle(self) -> bool:
        """Whether the pass found nothing to do."""
        return not (self.dispatched or self.delivered or self.retried or self.dead)

    def __add__(self, other: RelayStats) -> RelayStats:
        return RelayStats(
            dispatched=self.dispatched + other.dispatched,
            delivered=self.delivered + other.delivered,
            retried=self.retried + other.retried,
            dead=self.dead + other.dead,
        )


@frozen
class Claimed:
    """A delivery this worker holds: its id, sink, event and the attempt it is on."""

    delivery_id: int
    sink: str
    event: Event
    attempt: int


def event_from_row(row: Any) -> Event:
    """The immutable event an outbox row (an ``OutboxEvent`` or a row of its columns) stores."""
    return event_from_values(
        row.event_id,
        row.name,
        row.occurred_at,
        row.actor_id,
        row.record_type,
        row.record_id,
        row.payload,
    )


def event_from_values(
    event_id: str,
    name: str,
    occurred_at: dt.datetime,
    actor_id: int | None,
    record_type: str | None,
    record_id: int | None,
    payload: dict[str, Any],
) -> Event:
    """The event of an outbox row's columns, in table order from ``event_id`` on."""
    return Event(
        name=name,
        payload=payload,
        record_type=record_type,
        record_id=record_id,
        actor_id=actor_id,
        id=uuid.UUID(event_id),
        occurred_at=occurred_at.astimezone(dt.UTC),
    )


_EVENT_COLUMNS = (
    _OUTBOX.id,
    _OUTBOX.event_id,
    _OUTBOX.name,
    _OUTBOX.occurred_at,
    _OUTBOX.actor_id,
    _OUTBOX.record_type,
    _OUTBOX.record_id,
    _OUTBOX.payload,
)


class Relay:
    """One relay worker. Several may run at once, in one process or many."""

    def __init__(
        self,
        crm: CRM,
        worker_id: str | None = None,
        *,
        sinks: Sequence[EventSink] | None = None,
    ) -> None:
        self.crm = crm
        self.config = crm.settings.relay
        self._fixed_sinks = sinks is not None
        self.sinks = {sink.name: sink for sink in (crm.event_sinks() if sinks is None else sinks)}
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._postgres = crm.engine.dialect.name == "postgresql"
        self._matches: dict[tuple[str, str], bool] = {}
        self._random = random.Random()
        self._sending: ThreadPoolExecutor | None = None
        # sinks whose last batch failed here, and those that have delivered again since:
        # their waiting retries are due at once (see acknowledge)
        self._failing: set[str] = set()
        self._recovered: set[str] = set()

    def _session(self) -> Session:
        return Session(self.crm.engine, expire_on_commit=False)

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction of the relay's own bookkeeping.

        On PostgreSQL it commits without waiting for the WAL flush (``synchronous_commit``
        off for this transaction only). That is safe for at-least-once delivery: a server
        crash can lose only the last fraction of a second of *relay* commits, never an
        event (the outbox rows are written by the changes' own, synchronous commits), and a
        lost relay commit only makes events count as undelivered again, so they are
        delivered again (a duplicate, which consumers drop by ``event.id``)."""
        with self._session() as session, session.begin():
            if self._postgres:
                session.execute(text("SET LOCAL synchronous_commit TO off"))
            yield session

    def _id_in(self, column: Any, ids: Sequence[int]) -> Any:
        """``column`` is one of ``ids``: one array parameter on PostgreSQL (a primary-key
        lookup per element), an ``IN`` list on SQLite."""
        if self._postgres:
            return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
        return column.in_(list(ids))

    def _sinks_for(self, name: str) -> list[str]:
        """The names of the sinks whose patterns match the event name ``name`` (cached)."""
        matching = []
        for sink in self.sinks.values():
            key = (sink.name, name)
            hit = self._matches.get(key)
            if hit is None:
                hit = self._matches[key] = Event(name=name).matches(sink.patterns)
            if hit:
                matching.append(sink.name)
        return matching

    # -- step 1: fan out (and claim the heads) -------------------------------------------

    def dispatch(self) -> int:
        """Fan undispatched outbox events out to the sinks, all pending; return how many
        events. (``run_once`` fans out and claims in one step instead.)"""
        return len(self._fan_out(claim=False)[0])

    def _fan_out(self, *, claim: bool) -> tuple[list[int], list[Claimed]]:
        """Fan up to ``batch_size`` new events out; return their outbox ids and, with
        ``claim``, the deliveries written already claimed by this worker."""
        with self._write() as session:
            if self._postgres and not session.scalar(
                select(func.pg_try_advisory_xact_lock(DISPATCH_LOCK))
            ):
                return [], []  # another worker is fanning out right now
            now = utcnow()
            rows = self._take_new(session, now)
            if not rows:
                return [], []
            wanted: list[tuple[int, Event, list[str]]] = []
            for row in rows:
                sinks = self._sinks_for(row[2])
                if sinks:
                    wanted.append((row[0], event_from_values(*row[1:]), sinks))
            blocked = self._open_record_keys(session, wanted) if claim else set()
            lease = now + dt.timedelta(seconds=self.config.lease_seconds)
            deliveries: list[tuple[int, str, str, bool]] = []
            heads: list[tuple[int, str, Event]] = []
            for outbox_id, event, sinks in wanted:
                key = event.record_key
                for sink in sinks:
                    head = claim and (sink, key) not in blocked
                    blocked.add((sink, key))
                    deliveries.append((outbox_id, sink, key, head))
                    if head:
                        heads.append((outbox_id, sink, event))
            claimed: list[Claimed] = []
            if deliveries:
                ids = self._insert_deliveries(session, deliveries, now, lease)
                claimed = [
                    Claimed(ids[outbox_id, sink], sink, event, 1)
                    for outbox_id, sink, event in heads
                ]
            return [row[0] for row in rows], claimed

    def _take_new(self, session: Session, now: dt.datetime) -> Sequence[Any]:
        """Mark up to ``batch_size`` undispatched outbox events dispatched; their rows (the
        event columns, id first), in id order. On PostgreSQL one ``UPDATE ... RETURNING``
        (:func:`crmkit.events.relay_postgres.take_new`)."""
        if self._postgres:
            return relay_postgres.take_new(session, self.config.batch_size, now)
        rows = session.execute(
            select(*_EVENT_COLUMNS)
            .where(_OUTBOX.dispatched_at.is_(None))
            .order_by(_OUTBOX.id)
            .limit(self.config.batch_size)
        ).all()
        if rows:
            session.execute(
                update(OutboxEvent)
                .where(self._id_in(OutboxEvent.id, [row.id for row in rows]))
                .values(dispatched_at=now)
                .execution_options(synchronize_session=False)
            )
        return rows

    def _insert_deliveries(
        self,
        session: Session,
        deliveries: Sequence[tuple[int, str, str, bool]],
        now: dt.datetime,
        lease: dt.datetime,
    ) -> dict[tuple[int, str], int]:
        """Write delivery rows (outbox id, sink, record key, whether claimed now); return the
        ids of the claimed ones by (outbox id, sink).

        On PostgreSQL one ``INSERT ... SELECT FROM unnest(<arrays>)``
        (:func:`crmkit.events.relay_postgres.insert_deliveries`): four array parameters
        whatever the batch size. The multi-row ``VALUES`` insert SQLAlchemy makes of an
        executemany with ``RETURNING`` took 60 % of a pass (2.2 of 3.7 s for 20,000 events,
        most of it binding each row's eight values); SQLite keeps that form."""
        if self._postgres:
            return relay_postgres.insert_deliveries(
                session, deliveries, now=now, lease=lease, worker_id=self.worker_id
            )
        values = [
            {
                "outbox_id": outbox_id,
                "sink": sink,
                "record_key": key,
                "status": (DeliveryStatus.IN_FLIGHT if head else DeliveryStatus.PENDING).value,
                "attempts": 1 if head else 0,
                "next_attempt_at": now,
                "claimed_by": self.worker_id if head else None,
                "claim_expires_at": lease if head else None,
            }
            for outbox_id, sink, key, head in deliveries
        ]
        ids = session.scalars(
            insert(EventDelivery).returning(EventDelivery.id, sort_by_parameter_order=True),
            values,
        ).all()
        return {(row[0], row[1]): id_ for id_, row in zip(ids, deliveries, strict=True) if row[3]}

    def _open_record_keys(
        self, session: Session, wanted: Sequence[tuple[int, Event, list[str]]]
    ) -> set[tuple[str, str]]:
        """The (sink, record key) pairs of this batch that already have an open delivery:
        their new events must wait behind it."""
        keys = list({event.record_key for _, event, _ in wanted})
        sinks = list({sink for _, _, names in wanted for sink in names})
        if not keys:
            return set()
        if self._postgres:
            return relay_postgres.open_record_keys(session, sinks, keys)
        rows = session.execute(
            select(_DELIVERIES.sink, _DELIVERIES.record_key)
            .where(
                _DELIVERIES.sink.in_(sinks),
                _DELIVERIES.record_key.in_(keys),
                _DELIVERIES.status.in_(_OPEN),
            )
            .distinct()
        ).all()
        return {(row[0], row[1]) for row in rows}

    # -- step 4: claim what is left ------------------------------------------------------

    def claim(self) -> list[Claimed]:
        """Claim due deliveries (at most one per sink and record): retries, events that
        waited behind an earlier one of their record, and expired leases."""
        if not self.sinks:
            return []
        now = utcnow()
        open_here = and_(_DELIVERIES.status.in_(_OPEN), _DELIVERIES.sink.in_(list(self.sinks)))
        with self._write() as session:
            if self._postgres:
                ids = self._claim_postgres(session, open_here, now)
            else:
                # The head of each record's queue: the oldest open delivery per sink and
                # record, by one grouped scan; SQLite evaluates the IN subquery once. Its
                # write lock (BEGIN IMMEDIATE) keeps other workers out meanwhile.
                heads = (
                    select(func.min(_DELIVERIES.id))
                    .where(open_here)
                    .group_by(_DELIVERIES.sink, _DELIVERIES.record_key)
                )
                ids = list(
                    session.scalars(
                        select(_DELIVERIES.id)
                        .where(_due(_DELIVERIES, now), _DELIVERIES.id.in_(heads))
                        .order_by(_DELIVERIES.id)
                        .limit(self.config.batch_size)
                    )
                )
            if not ids:
                return []
            session.execute(
                update(EventDelivery)
                .where(self._id_in(EventDelivery.id, ids))
                .values(
                    status=DeliveryStatus.IN_FLIGHT.value,
                    claimed_by=self.worker_id,
                    claim_expires_at=now + dt.timedelta(seconds=self.config.lease_seconds),
                    attempts=EventDelivery.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            rows = session.execute(
                select(_DELIVERIES.id, _DELIVERIES.sink, _DELIVERIES.attempts, *_EVENT_COLUMNS[1:])
                .join_from(EventDelivery, OutboxEvent, _OUTBOX.id == _DELIVERIES.outbox_id)
                .where(self._id_in(_DELIVERIES.id, ids))
                .order_by(_DELIVERIES.id)
            ).all()
            return [Claimed(row[0], row[1], event_from_row(row), row[2]) for row in rows]

    def _claim_postgres(self, session: Session, open_here: Any, now: dt.datetime) -> list[int]:
        """Lock due heads of record queues, skipping rows other workers hold; their ids.

        Two statements, neither with a join or a correlated subquery, so no plan the
        planner can pick is worse than linear in the open deliveries, whatever its
        statistics say (the tables usually fill long after they were last analyzed; the
        earlier one-statement forms got nested loops that re-ran the grouped scan or the
        array lookup per row: 0.85 s for one claim over 2,000 pending, 25 ms after
        ANALYZE):

        1. the heads of the record queues that are due: ``SELECT min(id) ... GROUP BY sink,
           record_key HAVING min(id) = min(id) FILTER (WHERE <due>)``, the oldest first (one
           scan of the open deliveries, grouped by hashing or sorting);
        2. ``SELECT id ... WHERE id IN (<the candidates, as literals>) AND <due> FOR UPDATE
           SKIP LOCKED``: locks what no other worker holds and checks again, under the lock,
           that each is still due (a delivery another worker claimed or finished meanwhile
           is not). The ids are literals, a constant list that PostgreSQL hashes or looks up
           in the primary key; sent as a bound array, the generic plan of the prepared
           statement searched the array linearly for every due row (over a second per claim
           at 50,000 pending).

        A head stays the head of its queue until it is delivered or dead, so a candidate
        that is still due under the lock is still its record's head: per-record order holds.
        Step 1 takes a few batches of candidates, so that workers claiming at the same
        moment still fill their batches from the heads the others skip."""
        batch = self.config.batch_size
        head = func.min(_DELIVERIES.id)
        candidates = list(
            session.scalars(
                select(head)
                .where(open_here)
                .group_by(_DELIVERIES.sink, _DELIVERIES.record_key)
                # the oldest open delivery is due: it is also the oldest due one
                .having(head == head.filter(_due(_DELIVERIES, now)))
                .order_by(head)
                .limit(batch * 4)
            )
        )
        if not candidates:
            return []
        return list(
            session.scalars(
                select(_DELIVERIES.id)
                .where(
                    # the ids as literals: a constant list, which PostgreSQL hashes (or looks
                    # up in the primary key); as a bound array a generic plan of the
                    # prepared statement searched it linearly for every due row
                    _DELIVERIES.id.in_(
                        bindparam("candidates", candidates, expanding=True, literal_execute=True)
                    ),
                    _due(_DELIVERIES, now),
                )
                .order_by(_DELIVERIES.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )

    # -- steps 2 and 3: deliver and acknowledge ------------------------------------------

    def deliver(self, claimed: Sequence[Claimed]) -> RelayStats:
        """Hand the claimed events to their sinks (a batch per sink), then record the
        outcomes in one transaction."""
        return self.acknowledge(*self._send(claimed))

    def _send(
        self, claimed: Sequence[Claimed]
    ) -> tuple[list[int], list[tuple[Claimed, BaseException]]]:
        """Hand the claimed events to their sinks (a batch per sink); the delivered ids and
        the failures. Touches no database, so it may run beside a fan-out."""
        by_sink: dict[str, list[Claimed]] = {}
        for item in claimed:
            by_sink.setdefault(item.sink, []).append(item)
        delivered: list[int] = []
        failed: list[tuple[Claimed, BaseException]] = []
        with self._holding([item.delivery_id for item in claimed]):
            for sink_name, items in by_sink.items():
                self._send_to(sink_name, items, delivered, failed)
        return delivered, failed

    @contextmanager
    def _holding(self, ids: Sequence[int]) -> Iterator[None]:
        """Keep the leases of ``ids`` from running out while they are being delivered.

        A batch of a thousand events to a slow receiver (one request each) can take longer
        than ``lease_seconds``; another worker would then claim its undelivered events as
        expired and deliver them, and later events of their records, while this worker is
        still sending the old ones: a record's older event after its newer one. A heartbeat
        thread pushes the leases of the deliveries this worker still holds ``lease_seconds``
        ahead every third of a lease until the batch is sent. (A worker that dies stops
        beating: its leases run out as before.)"""
        if not ids:
            yield
            return
        stop = threading.Event()
        interval = self.config.lease_seconds / 3

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    self._extend_leases(ids)
                except Exception:  # noqa: BLE001 - the database away: the lease may run out
                    log.warning("relay %s could not extend its leases", self.worker_id)

        heart = threading.Thread(target=beat, name="crmkit-relay-lease", daemon=True)
        heart.start()
        try:
            yield
        finally:
            stop.set()
            heart.join()

    def _extend_leases(self, ids: Sequence[int]) -> None:
        """Push the leases of those of ``ids`` this worker still holds ``lease_seconds`` on."""
        with self._write() as session:
            session.execute(
                update(EventDelivery)
                .where(
                    self._id_in(EventDelivery.id, ids),
                    EventDelivery.claimed_by == self.worker_id,
                    EventDelivery.status == DeliveryStatus.IN_FLIGHT.value,
                )
                .values(claim_expires_at=utcnow() + dt.timedelta(seconds=self.config.lease_seconds))
                .execution_options(synchronize_session=False)
            )

    def _send_to(
        self,
        sink_name: str,
        items: Sequence[Claimed],
        delivered: list[int],
        failed: list[tuple[Claimed, BaseException]],
    ) -> None:
        """Hand ``items`` to the sink ``sink_name`` (one batch); record the outcomes."""
        sink = self.sinks.get(sink_name)
        if sink is None:  # a subscription deleted since the claim: its lease runs out
            return
        outcomes = deliver_all(sink, [item.event for item in items])
        failed_here = 0
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome is None:
                delivered.append(item.delivery_id)
            else:
                failed_here += 1
                failed.append((item, outcome))
                if failed_here == 1:
                    first = (item.event.id, outcome)
        if failed_here == len(items) and any(item.attempt == 1 for item in items):
            # down (a broker away, a receiver answering 503): even new events fail. A
            # batch of retries failing alone says less (an event the receiver refuses)
            self._failing.add(sink_name)
        elif not failed_here and sink_name in self._failing:
            self._failing.discard(sink_name)  # it delivers again: retries are due now
            self._recovered.add(sink_name)
        if failed_here:  # one line per batch: a broker that is down fails all of them
            log.warning(
                "sink %s failed on %d of %d events (the first, %s: %s)",
                sink_name,
                failed_here,
                len(items),
                *first,
            )

    def acknowledge(
        self, delivered: Sequence[int], failed: Sequence[tuple[Claimed, BaseException]]
    ) -> RelayStats:
        """Record delivered ids (one ``UPDATE``) and failures (retry later, or dead)."""
        retried = dead = 0
        now = utcnow()
        mine = and_(
            EventDelivery.claimed_by == self.worker_id,
            EventDelivery.status == DeliveryStatus.IN_FLIGHT.value,
        )
        outcomes: list[dict[str, Any]] = []
        gone: dict[str, str] = {}
        for item, error in failed:
            if getattr(error, "gone", False):
                gone[item.sink] = str(error)
            message = f"{type(error).__name__}: {error}"[:2000]
            if item.attempt >= self.config.max_attempts or getattr(error, "permanent", False):
                status, next_at = DeliveryStatus.DEAD.value, now
                dead += 1
            else:
                status, next_at = DeliveryStatus.PENDING.value, now + self.backoff(item.attempt)
                retried += 1
            outcomes.append(
                {
                    "b_id": item.delivery_id,
                    "b_status": status,
                    "b_next": next_at,
                    "b_error": message,
                }
            )
        recovered = sorted(self._recovered)
        self._recovered.clear()
        if not delivered and not outcomes and not recovered:
            return RelayStats()
        with self._write() as session:
            if delivered and self._postgres:
                relay_postgres.mark_delivered(session, delivered, now=now, worker_id=self.worker_id)
            elif delivered:
                session.execute(
                    update(EventDelivery)
                    .where(self._id_in(EventDelivery.id, delivered), mine)
                    .values(
                        status=DeliveryStatus.DELIVERED.value,
                        delivered_at=now,
                        last_error=None,
                        claim_expires_at=None,
                    )
                    .execution_options(synchronize_session=False)
                )
            if outcomes:
                session.connection().execute(
                    update(EventDelivery)
                    .where(EventDelivery.id == bindparam("b_id"), mine)
                    .values(
                        status=bindparam("b_status"),
                        next_attempt_at=bindparam("b_next"),
                        last_error=bindparam("b_error"),
                        claim_expires_at=None,
                    ),
                    outcomes,
                )
            if recovered:
                # A sink that failed (a broker down, a receiver answering 503) delivers again:
                # the deliveries waiting out their backoff for it are due now, instead of up
                # to max_backoff_seconds later. Claims still take them a batch at a time, in
                # order per record.
                pulled = session.execute(
                    update(EventDelivery)
                    .where(
                        EventDelivery.sink.in_(recovered),
                        EventDelivery.status == DeliveryStatus.PENDING.value,
                        EventDelivery.next_attempt_at > now,
                        EventDelivery.attempts > 0,
                    )
                    .values(next_attempt_at=now)
                    .execution_options(synchronize_session=False)
                )
                count = int(pulled.rowcount or 0)  # type: ignore[attr-defined]
                if count:
                    log.info(
                        "sink(s) %s deliver again: %d waiting retries are due now",
                        ", ".join(recovered),
                        count,
                    )
            for sink_name, reason in gone.items():
                if disable_gone_subscriptions(session, [sink_name], reason):
                    log.warning("subscription %s disabled: %s", sink_name, reason)
                else:
                    log.error(
                        "webhook %s is gone (%s): remove it from the config", sink_name, reason
                    )
        return RelayStats(delivered=len(delivered), retried=retried, dead=dead)

    def backoff(self, attempts: int) -> dt.timedelta:
        """How long to wait after the ``attempts``-th failed attempt: exponential, capped,
        with jitter (between half and all of it) so that retries of many deliveries that
        failed together do not hit the receiver at the same moment again."""
        seconds = self.config.backoff_seconds * (2 ** max(attempts - 1, 0))
        seconds = min(seconds, self.config.max_backoff_seconds)
        return dt.timedelta(seconds=seconds * self._random.uniform(0.5, 1.0))

    def refresh_sinks(self) -> None:
        """Re-read the sinks (webhook subscriptions come and go through the API); a relay
        given its sinks explicitly keeps them. One small query per pass, so a deleted
        subscription gets nothing more from the next pass on."""
        if self._fixed_sinks:
            return
        with self._session() as session:
            sinks = refreshed_sinks(
                self.sinks, session, allow_internal=self.config.allow_internal_addresses
            )
        if sinks.keys() != self.sinks.keys() or any(
            self.sinks[name] is not sink for name, sink in sinks.items()
        ):
            self._matches.clear()  # a sink came, went or changed its patterns
        self.sinks = sinks

    def run_once(self) -> RelayStats:
        """One pass: refresh the sinks; fan out and deliver new events, up to
        :data:`BATCHES_PER_PASS` full batches, each batch's delivery overlapping the fan-out
        of the next; then claim and deliver a batch of what was left (retries, waiting
        events)."""
        self.refresh_sinks()
        dispatched, claimed = self._fan_out(claim=True)
        stats = RelayStats(dispatched=len(dispatched))
        for _ in range(BATCHES_PER_PASS - 1):
            if len(dispatched) < self.config.batch_size:
                break  # the outbox is drained: nothing to overlap with
            # The next fan-out sees this batch's deliveries still open, so a later event of
            # one of its records is written pending behind it: order per record holds.
            sending = self._sender().submit(self._send, claimed)
            try:
                dispatched, claimed = self._fan_out(claim=True)
            finally:
                stats += self.acknowledge(*sending.result())
            stats += RelayStats(dispatched=len(dispatched))
        stats += self.deliver(claimed)
        return stats + self.deliver(self.claim())

    def _sender(self) -> ThreadPoolExecutor:
        """The one thread that hands a batch to the sinks while the next is fanned out."""
        if self._sending is None:
            self._sending = ThreadPoolExecutor(1, thread_name_prefix="crmkit-relay-send")
        return self._sending

    def run(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Relay until ``stop`` is set; sleep ``poll_interval`` seconds when idle."""
        log.info("relay %s started with sinks: %s", self.worker_id, ", ".join(self.sinks) or "none")
        while not stop.is_set():
            try:
                stats = self.run_once()
            except Exception:
                log.exception("relay pass failed; retrying after %.1fs", poll_interval)
                stop.wait(poll_interval)
                continue
            if stats.idle:
                stop.wait(poll_interval)
