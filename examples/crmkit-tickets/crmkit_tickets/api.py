"""REST routes, mounted under ``/plugins/tickets`` with the core's token authentication.
Tickets themselves are served by the core: ``/tickets``, ``/contacts/{id}/tickets``."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency

import crmkit
from crmkit_tickets.models import STATUSES


class TicketSummary(msgspec.Struct):
    """How many tickets of each status the caller may see."""

    open: int
    waiting: int
    closed: int


@get(
    "/summary",
    sync_to_thread=True,
    summary="How many tickets the caller may see, by status",
    responses=crmkit.problem_responses(403),
)
def summary(crm: NamedDependency[crmkit.CRM], actor: NamedDependency[crmkit.User]) -> TicketSummary:
    """Counts within the caller's scope: the tickets of the contacts they may read."""
    tickets = crm.records("ticket")
    return TicketSummary(
        **{status: tickets.count({"status": status}, actor=actor) for status in STATUSES}
    )


ROUTES = [summary]
