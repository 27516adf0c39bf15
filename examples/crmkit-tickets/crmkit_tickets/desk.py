"""The desk's face: a panel of a contact's open tickets."""

from __future__ import annotations

import crmkit
from crmkit_tickets.models import OPEN_STATUSES

PANEL_SIZE = 10


def open_tickets_panel(crm: crmkit.CRM, contact_id: int, actor: crmkit.User) -> crmkit.DeskPanel:
    """The contact's open and waiting tickets, as ``actor`` may see them."""
    page = crm.records("ticket").list(
        {"contact_id": contact_id, "status__in": list(OPEN_STATUSES)},
        sort="-id",
        limit=PANEL_SIZE,
        actor=actor,
    )
    return crmkit.DeskPanel(
        title="Open tickets",
        columns=("#", "Subject", "Status", "Priority"),
        cells=[
            (
                crmkit.DeskLink(f"#{t.id}", f"/desk/tickets/{t.id}"),
                t.subject,
                t.status,
                t.priority,
            )
            for t in page.items
        ],
    )
