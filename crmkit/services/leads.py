"""Leads and their conversion into a contact, an account and a deal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from crmkit.db.base import utcnow
from crmkit.entities.customers import LeadStatus
from crmkit.entities.organisation import User
from crmkit.errors import ConflictError, FieldError, ValidationError
from crmkit.services.assignment import operation_state
from crmkit.services.operation import Operation
from crmkit.services.records import RecordService


@frozen
class Conversion:
    """What converting a lead created (or linked)."""

    lead_id: int
    contact_id: int
    account_id: int | None
    deal_id: int | None


CONVERSION_FIELDS = (
    "converted_at",
    "converted_contact_id",
    "converted_account_id",
    "converted_deal_id",
)


class LeadService(RecordService):
    """Leads, with :meth:`convert` — the only way a lead becomes ``converted``."""

    _converting = False

    def _refuse_conversion_fields(self, values: Mapping[str, Any]) -> None:
        if self._converting:
            return
        touched = [key for key in CONVERSION_FIELDS if values.get(key) is not None]
        if values.get("status") == LeadStatus.CONVERTED:
            touched.insert(0, "status")
        if touched:
            raise ValidationError(
                [
                    FieldError(key, "is set by converting the lead (crm.leads.convert)")
                    for key in touched
                ],
                "lead",
            )

    def before_create(self, op: Operation, values: dict[str, Any]) -> None:
        self._refuse_conversion_fields(values)

    def before_update(
        self, op: Operation, record: Any, changes: dict[str, Any], previous: Mapping[str, Any]
    ) -> None:
        self._refuse_conversion_fields(changes)

    def convert(
        self,
        lead_id: int,
        *,
        account_id: int | None = None,
        create_deal: bool = True,
        deal: Mapping[str, object] | None = None,
        actor: User | None = None,
    ) -> Conversion:
        """Turn a lead into a contact, an account (a new one from the lead's company name, or
        ``account_id``) and, unless ``create_deal`` is false, a deal; all in one transaction.

        The lead keeps links to what it became and its status becomes ``converted``; a
        ``lead.converted`` event is emitted. Converting twice is a ``ConflictError``.
        """
        with self._operation(actor) as op:
            lead = self._load(op, lead_id, for_update=True, action="convert")
            if lead.status == LeadStatus.CONVERTED:
                raise ConflictError(
                    f"lead {lead_id} was already converted (contact {lead.converted_contact_id})"
                )
            shared: dict[str, Any] = {
                key: getattr(lead, key)
                for key in ("address", "city", "region", "country", "postal_code", "source_channel")
                if getattr(lead, key) is not None
            }
            # the contact and account it becomes are this customer, not duplicates of the lead
            operation_state(op).not_duplicates.add(("lead", lead_id))
            # what the lead becomes stays with the lead's owner and team, whoever converts it
            ownership: dict[str, Any] = {}
            if lead.owner_id is not None:
                ownership = {"owner_id": lead.owner_id, "team_id": lead.team_id}
            shared.update(ownership)
            if account_id is None and lead.company_name:
                account = op.records("account").create(
                    {"name": lead.company_name, **shared, "phone": lead.phone}
                )
                account_id = account.id
            elif account_id is not None:
                op.records("account").get(account_id)
            contact_values: dict[str, Any] = {
                "full_name": lead.full_name,
                "title": lead.title,
                "email": lead.email,
                "phone": lead.phone,
                "account_id": account_id,
                **shared,
            }
            contact = op.records("contact").create(
                {key: value for key, value in contact_values.items() if value is not None}
            )
            exempt = operation_state(op).not_duplicates
            exempt.add(("contact", contact.id))
            if account_id is not None:
                exempt.add(("account", account_id))
            deal_id = None
            if create_deal:
                deal_values: dict[str, object] = {
                    "name": f"{lead.company_name or lead.full_name}",
                    "account_id": account_id,
                    "contact_id": contact.id,
                    **ownership,
                    **(deal or {}),
                }
                deal_id = op.records("deal").create(deal_values).id
            converter = LeadService(self.crm, self.entity, op=op)
            converter._converting = True
            converter.update(
                lead_id,
                {
                    "status": LeadStatus.CONVERTED.value,
                    "converted_at": utcnow(),
                    "converted_contact_id": contact.id,
                    "converted_account_id": account_id,
                    "converted_deal_id": deal_id,
                },
            )
            op.emit(
                "lead.converted",
                {"contact_id": contact.id, "account_id": account_id, "deal_id": deal_id},
                record_type="lead",
                record_id=lead_id,
            )
            return Conversion(lead_id, contact.id, account_id, deal_id)
