"""REST routes, mounted under ``/plugins/tickets`` with the core's token authentication.
Tickets themselves are served by the core: ``/tickets``, ``/contacts/{id}/tickets``."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

import crmkit
from crmkit_tickets.models import STATUSES


@get(
    "/summary",
    sync_to_thread=True,
    summary="How many tickets the caller may see, by status",
    responses=crmkit.problem_responses(403),
)
def summary(
    crm: NamedDependency[crmkit.CRM], actor: NamedDependency[crmkit.User]
) -> dict[str, int]:
    """Counts within the caller's scope: the tickets of the contacts they may read."""
    tickets = crm.records("ticket")
    return {status: tickets.count({"status": status}, actor=actor) for status in STATUSES}


ROUTES = [summary]
