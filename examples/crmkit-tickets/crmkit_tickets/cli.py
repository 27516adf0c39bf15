"""``crmkit tickets ...``: the plugin's commands (thin: the record service does the work)."""

from __future__ import annotations

import click

import crmkit
from crmkit_tickets.models import PRIORITIES, STATUSES


@click.group(name="tickets")
def command_group() -> None:
    """Service tickets of contacts (售后工单)."""


@command_group.command(name="open")
@click.argument("contact_id", type=int)
@click.argument("subject")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal", show_default=True)
@click.option("--serial", "serial_no", help="The product's serial number.")
@click.option(
    "--due", "due_at", help="When it must be solved (ISO 8601, e.g. 2026-12-24T18:00+08:00)."
)
def open_ticket(
    contact_id: int, subject: str, priority: str, serial_no: str | None, due_at: str | None
) -> None:
    """Open a ticket for a contact.

    Example: crmkit tickets open 12 "打印机卡纸" --priority urgent --serial SN-1
    """
    values = {"contact_id": contact_id, "subject": subject, "priority": priority}
    values.update({k: v for k, v in (("serial_no", serial_no), ("due_at", due_at)) if v})
    ticket = crmkit.cli_crm().records("ticket").create(values)
    click.echo(f"Opened ticket {ticket.id} for contact {contact_id}: {ticket.subject}")


@command_group.command(name="list")
@click.option("--status", type=click.Choice(STATUSES), help="Only tickets in this status.")
@click.option("--contact", "contact_id", type=int, help="Only the tickets of this contact.")
@click.option("--serial", "serial_no", help="Only tickets about this serial number.")
def list_tickets(status: str | None, contact_id: int | None, serial_no: str | None) -> None:
    """List tickets, newest first.

    Example: crmkit tickets list --status open
    """
    filters = {
        key: value
        for key, value in (("status", status), ("contact_id", contact_id), ("serial_no", serial_no))
        if value is not None
    }
    tickets = crmkit.cli_crm().records("ticket").list(filters, sort="-id").items
    if not tickets:
        click.echo("No tickets.")
    for ticket in tickets:
        click.echo(
            f"{ticket.id:>5}  {ticket.status:<8} {ticket.priority:<7} contact"
            f" {ticket.contact_id:<6} {ticket.subject}"
        )


@command_group.command(name="close")
@click.argument("ticket_id", type=int)
def close_ticket(ticket_id: int) -> None:
    """Close a ticket.

    Example: crmkit tickets close 7
    """
    ticket = crmkit.cli_crm().records("ticket").update(ticket_id, {"status": "closed"})
    click.echo(f"Closed ticket {ticket.id}: {ticket.subject}")
