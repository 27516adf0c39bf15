"""One operation = one transaction: the session, the actor, and the events it emits."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from crmkit.db.engine import bulk_insert
from crmkit.entities.organisation import User
from crmkit.events.payloads import to_json
from crmkit.events.types import Event
from crmkit.permissions.access import SYSTEM, Access, load_access

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.records import RecordService


class Operation:
    """The context of one operation: its transaction (``session``), who acts (``actor``, or
    ``None`` for the system), and the events it emits.

    Hooks receive it as ``op``. Everything done through it commits or rolls back together.
    Events are written to the outbox in the same transaction, just before commit.
    """

    def __init__(
        self, crm: CRM, session: Session, actor: User | None, *, write: bool = True
    ) -> None:
        self.crm = crm
        self.session = session
        self.actor = actor
        self.write = write  # False: a read-only transaction
        #: the access stamp read in this transaction (by the bearer-token check), if any
        self.stamp: int | None = None
        self.events: list[Event] = []
        self._written = 0
        self._access: Access | None = None
        self._elevated = 0

    @property
    def access(self) -> Access:
        """What the actor may do (roles, scopes, field rules), read once per operation.

        A read-only operation takes it from the CRM's :class:`AccessCache` when the cached
        entry is as new as the access stamp; a write operation always reads it afresh (it
        may have changed permissions itself)."""
        if self._elevated:
            return SYSTEM
        if self._access is None:
            if self.write:
                self._access = load_access(self.session, self.actor)
            else:
                self._access = self.crm.access_cache.access(
                    self.session, self.actor, self.stamp, store=True
                )
        return self._access

    @contextmanager
    def elevated(self) -> Iterator[Operation]:
        """Act with the system's rights for a step the service has already authorised
        (handing a departing user's records over needs only ``user:manage``, not the right
        to reassign every record). The actor stays the actor in audit entries and events."""
        self._elevated += 1
        try:
            yield self
        finally:
            self._elevated -= 1

    @property
    def actor_id(self) -> int | None:
        """The acting user's id, or ``None`` for the system."""
        return self.actor.id if self.actor is not None else None

    def emit(
        self,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        record_type: str | None = None,
        record_id: int | None = None,
    ) -> Event:
        """Record an event; it reaches the outbox in this transaction and exists if and only if
        the transaction commits."""
        event = Event(
            name=name,
            payload=to_json(payload or {}),
            record_type=record_type,
            record_id=record_id,
            actor_id=self.actor_id,
        )
        self.events.append(event)
        return event

    def outbox_rows(self) -> list[dict[str, Any]]:
        """The outbox rows (``crmkit.OutboxEvent``) of the events emitted so far and not yet
        written, for a caller that writes them itself in this transaction, in one statement
        with its own writes (on PostgreSQL a round trip less: the loyalty plugin's earn).
        From now on they count as written, so the commit does not write them again: insert
        them before the operation ends, or they are lost."""
        pending = self.events[self._written :]
        self._written = len(self.events)
        return [
            {
                "event_id": str(event.id),
                "name": event.name,
                "occurred_at": event.occurred_at,
                "actor_id": event.actor_id,
                "record_type": event.record_type,
                "record_id": event.record_id,
                "payload": event.payload,
                "dispatched_at": None,
            }
            for event in pending
        ]

    def write_events(self) -> None:
        """Write the events emitted so far to the outbox (in bulk)."""
        rows = self.outbox_rows()
        if rows:
            from crmkit.events.outbox import OutboxEvent  # on the first write, not at start-up

            if self.session.autoflush:
                self.session.flush()  # pending ORM changes go first, as before any ORM statement
            bulk_insert(
                self.session.connection(),
                OutboxEvent.__table__,  # type: ignore[arg-type]
                rows,
            )
        if not self.crm.publishes_events():
            # nobody in this process reads them after the commit: an import of 200 000 rows
            # must not keep 200 000 events (and their payloads) until it ends
            del self.events[:]
            self._written = 0

    def records(self, entity: str, *, elevated: bool = False) -> RecordService:
        """The record service for ``entity`` working inside this operation.

        Its reads and writes see what the actor may see. With ``elevated=True`` they see
        every live record (the system's rights), for checks that must look beyond the
        actor's scope, such as uniqueness: then word an error so that it names nothing the
        actor may not see (look the record up again without ``elevated`` to know)."""
        return self.crm.records(entity, op=self, elevated=elevated)

    def dumps(self, value: Any) -> str:
        """JSON text of ``value`` (dates, decimals and UUIDs included)."""
        return json.dumps(to_json(value), ensure_ascii=False)
