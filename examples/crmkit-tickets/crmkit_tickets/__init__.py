"""Service tickets (售后工单) for crmkit: a held-out third-party plugin, written from crmkit's
plugin docs alone (docs/plugins.md, docs/plugin-tutorial.md, the hook reference).

While enabled (``crmkit plugins enable tickets``) it adds:

* the entity ``ticket`` (``crm.records("ticket")``), a child of contacts: a ticket is
  visible exactly as its contact is (``crmkit.ParentLink``), in its own table and branch;
* the custom field ``ticket.serial_no`` (letter case ignored: ``SN-1`` is ``sn-1``);
* the setting ``[plugins.tickets] max_open_per_contact`` and a veto enforcing it;
* an event subscriber: an urgent ticket gives the contact's owner a task;
* the commands ``crmkit tickets open|list|close``;
* the REST route ``GET /plugins/tickets/summary`` (counts the caller may see);
* a panel of open tickets on the desk's contact pages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit_tickets.api import ROUTES
from crmkit_tickets.cli import command_group
from crmkit_tickets.desk import open_tickets_panel
from crmkit_tickets.models import OPEN_STATUSES, PRIORITIES, STATUSES, Ticket

PLUGIN_NAME = "tickets"

crmkit_plugin = crmkit.PluginSpec(description="Service tickets of contacts (售后工单)")


@crmkit.hookimpl
def crmkit_entities() -> list[crmkit.EntityType]:
    """Tickets, served by the core record service; a ticket follows its contact's scope."""
    return [
        crmkit.EntityType(
            name="ticket",
            model=Ticket,
            label="Ticket",
            required=("subject",),
            choices={"status": STATUSES, "priority": PRIORITIES},
            search=("subject",),
            source=PLUGIN_NAME,
            parent=crmkit.ParentLink("contact", "contact_id"),
        )
    ]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's own Alembic branch."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_custom_fields() -> list[crmkit.CustomField]:
    """The serial number of the product the ticket is about."""
    return [
        crmkit.CustomField(
            entity="ticket",
            name="serial_no",
            type=crmkit.FieldType.TEXT,
            label="Serial number",
            ignore_case=True,
            source=PLUGIN_NAME,
        )
    ]


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.tickets]`` in crmkit.toml."""
    return [
        crmkit.SettingSpec(
            "max_open_per_contact",
            int,
            default=3,
            description="How many open or waiting tickets one contact may have",
        )
    ]


@crmkit.hookimpl
def crmkit_before_create(op: crmkit.Operation, entity: str, values: dict[str, Any]) -> None:
    """Refuse a ticket for a contact that already has the most open tickets allowed.

    The count is elevated: it must see every open ticket of the contact, whoever wrote it.
    The refusal names only the contact, which the actor may change (the core checked that
    before this hook ran)."""
    if entity != "ticket" or values.get("status") not in (None, *OPEN_STATUSES):
        return
    limit = op.crm.plugin_settings(PLUGIN_NAME)["max_open_per_contact"]
    contact_id = values["contact_id"]
    already = op.records("ticket", elevated=True).count(
        {"contact_id": contact_id, "status__in": list(OPEN_STATUSES)}
    )
    if already >= limit:
        raise crmkit.PluginVeto(
            f"contact {contact_id} already has {already} open tickets (at most {limit}):"
            " close one first"
        )


@crmkit.hookimpl
def crmkit_on_event(crm: crmkit.CRM, event: crmkit.Event) -> None:
    """An urgent ticket gives the contact's owner a task to call back today."""
    if event.name != "ticket.created" or event.payload.get("priority") != "urgent":
        return
    contact = crm.contacts.get(event.payload["contact_id"])
    crm.tasks.create(
        {
            "title": f"Urgent ticket #{event.record_id}: {event.payload['subject']}",
            "contact_id": contact.id,
            "owner_id": contact.owner_id,
        }
    )


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit tickets ...``."""
    return [command_group]


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """Routes served under ``/plugins/tickets``."""
    return list(ROUTES)


@crmkit.hookimpl
def crmkit_desk_record_panels(
    crm: crmkit.CRM, entity: str, record: dict[str, Any], actor: crmkit.User
) -> list[crmkit.DeskPanel]:
    """The open tickets on a contact's desk page."""
    if entity != "contact":
        return []
    return [open_tickets_panel(crm, record["id"], actor)]
