"""What admins see and do with the event stream: tail it, read the delivery log, list dead
deliveries and retry them, watch the relay's lag."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import func, select, update

from crmkit.db.base import utcnow
from crmkit.errors import CRMError
from crmkit.events.outbox import DeliveryStatus, EventDelivery, OutboxEvent

if TYPE_CHECKING:
    from crmkit.app import CRM


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def recent_events(
    crm: CRM, limit: int = 20, name_pattern: str | None = None, after_id: int | None = None
) -> list[OutboxEvent]:
    """The latest ``limit`` outbox events (oldest first), optionally only names matching the
    shell-style ``name_pattern`` and only after outbox id ``after_id`` (for ``--follow``)."""
    query = select(OutboxEvent)
    if name_pattern:
        query = query.where(OutboxEvent.name.like(_like(name_pattern), escape="\\"))
    if after_id is not None:
        query = query.where(OutboxEvent.id > after_id).order_by(OutboxEvent.id).limit(limit)
        with crm.transaction(write=False) as op:
            return list(op.session.scalars(query))
    query = query.order_by(OutboxEvent.id.desc()).limit(limit)
    with crm.transaction(write=False) as op:
        return list(reversed(list(op.session.scalars(query))))


def dead_deliveries(crm: CRM, sink: str | None = None) -> list[EventDelivery]:
    """Deliveries that ran out of attempts, oldest first."""
    query = select(EventDelivery).where(EventDelivery.status == DeliveryStatus.DEAD.value)
    if sink:
        query = query.where(EventDelivery.sink == sink)
    with crm.transaction(write=False) as op:
        return list(op.session.scalars(query.order_by(EventDelivery.id)))


def retry_deliveries(
    crm: CRM, *, ids: Sequence[int] = (), sink: str | None = None, all_dead: bool = False
) -> int:
    """Put dead deliveries back in the queue with fresh attempts; return how many.

    Say which: ``ids``, a ``sink``, or ``all_dead``; with none of them nothing is retried
    and a ``CRMError`` says so.
    """
    if not ids and not sink and not all_dead:
        raise CRMError("say which deliveries to retry: --id N, --sink NAME or --all-dead")
    statement = update(EventDelivery).where(EventDelivery.status == DeliveryStatus.DEAD.value)
    if ids:
        statement = statement.where(EventDelivery.id.in_(list(ids)))
    if sink:
        statement = statement.where(EventDelivery.sink == sink)
    with crm.transaction() as op:
        result = op.session.execute(
            statement.values(
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=utcnow(),
                last_error=None,
                claimed_by=None,
            )
        )
        count = int(result.rowcount)  # type: ignore[attr-defined]
        if count:
            op.emit("events.retried", {"count": count, "sink": sink, "ids": list(ids)})
        return count


@frozen
class DeliveryLine:
    """One row of the delivery log: an event's delivery to one sink and where it stands."""

    id: int
    sink: str
    event: str
    event_id: str
    record: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None
    last_error: str | None


def delivery_log(
    crm: CRM, *, sink: str | None = None, status: str | None = None, limit: int = 50
) -> list[DeliveryLine]:
    """The latest ``limit`` deliveries (newest first), of one ``sink`` and ``status`` if
    given; a ``CRMError`` names a status that does not exist."""
    statuses = [s.value for s in DeliveryStatus]
    if status is not None and status not in statuses:
        raise CRMError(f"unknown delivery status {status!r}: use one of {', '.join(statuses)}")
    if not 1 <= limit <= 10_000:
        raise CRMError(f"--limit must be from 1 to 10000, not {limit}")
    query = (
        select(EventDelivery, OutboxEvent.name, OutboxEvent.event_id)
        .join(OutboxEvent, OutboxEvent.id == EventDelivery.outbox_id)
        .order_by(EventDelivery.id.desc())
        .limit(limit)
    )
    if sink:
        query = query.where(EventDelivery.sink == sink)
    if status:
        query = query.where(EventDelivery.status == status)
    with crm.transaction(write=False) as op:
        return [
            DeliveryLine(
                id=delivery.id,
                sink=delivery.sink,
                event=name,
                event_id=event_id,
                record=delivery.record_key,
                status=delivery.status,
                attempts=delivery.attempts,
                next_attempt_at=delivery.next_attempt_at,
                delivered_at=delivery.delivered_at,
                last_error=delivery.last_error,
            )
            for delivery, name, event_id in op.session.execute(query)
        ]


@frozen
class SinkLag:
    """What one sink still has to get: open deliveries and the age of the oldest."""

    sink: str
    pending: int
    in_flight: int
    oldest_seconds: float


@frozen
class RelayLag:
    """How far the relay is behind: events not yet fanned out, and each sink's backlog."""

    undispatched: int
    oldest_undispatched_seconds: float
    sinks: tuple[SinkLag, ...]

    def as_prometheus(self) -> str:
        """The figures in Prometheus' text format (for a node exporter's textfile
        collector, or any agent that reads it)."""
        lines = [
            "# HELP crmkit_events_undispatched Outbox events the relay has not fanned out yet.",
            "# TYPE crmkit_events_undispatched gauge",
            f"crmkit_events_undispatched {self.undispatched}",
            "# HELP crmkit_events_undispatched_age_seconds Age of the oldest such event.",
            "# TYPE crmkit_events_undispatched_age_seconds gauge",
            f"crmkit_events_undispatched_age_seconds {self.oldest_undispatched_seconds:.3f}",
            "# HELP crmkit_event_deliveries_open Deliveries not yet delivered or dead.",
            "# TYPE crmkit_event_deliveries_open gauge",
        ]
        for sink in self.sinks:
            label = _label(sink.sink)
            for status, number in (("pending", sink.pending), ("in_flight", sink.in_flight)):
                lines.append(
                    f'crmkit_event_deliveries_open{{sink="{label}",status="{status}"}} {number}'
                )
        lines += [
            "# HELP crmkit_event_deliveries_age_seconds Age of a sink's oldest open delivery.",
            "# TYPE crmkit_event_deliveries_age_seconds gauge",
        ]
        for sink in self.sinks:
            label = _label(sink.sink)
            lines.append(
                f'crmkit_event_deliveries_age_seconds{{sink="{label}"}} {sink.oldest_seconds:.3f}'
            )
        return "\n".join(lines) + "\n"


def relay_lag(crm: CRM) -> RelayLag:
    """The relay's lag, read through the partial indexes of open work (cheap however many
    events were ever delivered)."""
    now = utcnow()
    open_statuses = [DeliveryStatus.PENDING.value, DeliveryStatus.IN_FLIGHT.value]
    with crm.transaction(write=False) as op:
        count, oldest = op.session.execute(
            select(func.count(), func.min(OutboxEvent.occurred_at)).where(
                OutboxEvent.dispatched_at.is_(None)
            )
        ).one()
        rows = op.session.execute(
            select(
                EventDelivery.sink,
                EventDelivery.status,
                func.count(),
                func.min(OutboxEvent.occurred_at),
            )
            .join(OutboxEvent, OutboxEvent.id == EventDelivery.outbox_id)
            .where(EventDelivery.status.in_(open_statuses))
            .group_by(EventDelivery.sink, EventDelivery.status)
        ).all()
    by_sink: dict[str, dict[str, Any]] = {}
    for sink, status, number, first in rows:
        entry = by_sink.setdefault(sink, {"pending": 0, "in_flight": 0, "oldest": now})
        entry[status] = int(number)
        entry["oldest"] = min(entry["oldest"], _aware(first) or now)
    return RelayLag(
        undispatched=int(count or 0),
        oldest_undispatched_seconds=_age(now, oldest),
        sinks=tuple(
            SinkLag(name, e["pending"], e["in_flight"], _age(now, e["oldest"]))
            for name, e in sorted(by_sink.items())
        ),
    )


def _label(value: str) -> str:
    """``value`` escaped for a Prometheus label."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _age(now: dt.datetime, then: dt.datetime | None) -> float:
    then = _aware(then)
    return max((now - then).total_seconds(), 0.0) if then is not None else 0.0
