"""Reading the event outbox in tests: what an operation left behind for the relay."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

import crmkit
from crmkit.events.outbox import OutboxEvent


def outbox_events(crm: crmkit.CRM, name: str | None = None) -> list[OutboxEvent]:
    """Every committed outbox row in write order, optionally only those called ``name``."""
    query = select(OutboxEvent).order_by(OutboxEvent.id)
    if name is not None:
        query = query.where(OutboxEvent.name == name)
    with Session(crm.engine) as session:
        return list(session.scalars(query))


def outbox_names(crm: crmkit.CRM) -> list[str]:
    """The names of every committed outbox event, in write order."""
    return [event.name for event in outbox_events(crm)]
