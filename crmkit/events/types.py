"""Domain events and the sink protocol durable subscribers implement."""

from __future__ import annotations

import datetime as dt
import fnmatch
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from attrs import field, frozen

from crmkit.db.base import utcnow


def _freeze(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(payload)


@frozen
class Event:
    """Something that happened in the CRM: immutable, with id, name, time, actor and payload.

    ``record_type``/``record_id`` name the record the event is about; delivery is ordered per
    record. ``id`` doubles as the idempotency key consumers use to drop repeats.
    """

    name: str
    payload: Mapping[str, Any] = field(factory=dict, converter=_freeze)
    record_type: str | None = None
    record_id: int | None = None
    actor_id: int | None = None
    id: uuid.UUID = field(factory=uuid.uuid4)
    occurred_at: dt.datetime = field(factory=utcnow)

    @property
    def record_key(self) -> str:
        """The ordering key: events of one record are delivered in order."""
        if self.record_type is None:
            return f"event:{self.id}"
        return f"{self.record_type}:{self.record_id}"

    def matches(self, patterns: Sequence[str]) -> bool:
        """Whether the event name matches any of the shell-style ``patterns`` (``contact.*``)."""
        return any(fnmatch.fnmatchcase(self.name, pattern) for pattern in patterns)

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict (the body webhooks receive)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "occurred_at": self.occurred_at.isoformat(),
            "actor_id": self.actor_id,
            "record_type": self.record_type,
            "record_id": self.record_id,
            "payload": dict(self.payload),
        }


@runtime_checkable
class EventSink(Protocol):
    """A durable subscriber: the relay worker hands it outbox events, at least once.

    ``name`` must be stable: delivery state is kept per sink name. ``patterns`` selects events
    by name (``["*"]`` for all). ``deliver`` raises to signal failure; the relay retries with
    backoff and parks the delivery as dead after the configured number of attempts.
    """

    name: str
    patterns: Sequence[str]

    def deliver(self, event: Event) -> None:
        """Deliver one event; raise on failure."""


@runtime_checkable
class BatchEventSink(EventSink, Protocol):
    """A sink that takes a batch of events at once (a broker publishing with confirms, a
    webhook posting several events per request): the relay hands it every event it claimed
    for it in one pass, at most one per record, oldest first.

    ``deliver_batch`` returns one outcome per event, in order: ``None`` when that event is
    delivered, the exception that failed it otherwise (it is retried like a failed
    ``deliver``). An exception with a true ``permanent`` attribute parks the delivery as dead
    at once. Raising from ``deliver_batch`` itself fails the whole batch.
    """

    def deliver_batch(self, events: Sequence[Event]) -> Sequence[BaseException | None]:
        """Deliver ``events``; return an outcome per event (``None``: delivered)."""


def deliver_all(sink: EventSink, events: Sequence[Event]) -> list[BaseException | None]:
    """Hand ``events`` to ``sink`` (as one batch if it takes batches); an outcome per event,
    ``None`` for delivered. Never raises: a sink's failure is the failed event's outcome."""
    if isinstance(sink, BatchEventSink):
        try:
            outcomes = list(sink.deliver_batch(events))
        except Exception as error:  # noqa: BLE001 - a failed batch fails each of its events
            return [error] * len(events)
        if len(outcomes) != len(events):
            mismatch = RuntimeError(
                f"sink {sink.name} returned {len(outcomes)} outcomes for {len(events)} events"
            )
            return [mismatch] * len(events)
        return outcomes
    results: list[BaseException | None] = []
    for event in events:
        try:
            sink.deliver(event)
        except Exception as error:  # noqa: BLE001 - any sink failure is a failed attempt
            results.append(error)
        else:
            results.append(None)
    return results
