"""What admins see and do with the event stream: tail it, list dead deliveries, retry them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select, update

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
