"""Lead capture: public forms on web sites whose submissions become leads.

An admin creates a form (``crmkit forms add``, needs ``form:manage``) naming the lead fields it
accepts; the form gets a random public key. A web site posts to ``/forms/<key>`` without a
token; :meth:`FormService.submit` creates the lead through the lead service (validation,
normalisation, hooks, assignment and the duplicate check all happen there), as the system,
owned by the form's owner when it has one, and emits ``lead.captured`` in the same
transaction. A filled-in honeypot field marks a bot: nothing is created, and the caller answers
as if it had been (so the bot learns nothing).
"""

from __future__ import annotations

import datetime as dt
import html
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from attrs import frozen
from sqlalchemy import or_, select

from crmkit.entities.forms import LeadForm
from crmkit.entities.organisation import User
from crmkit.errors import CRMError, FieldError, NotFoundError, ValidationError
from crmkit.permissions.audit import audit_rows
from crmkit.services.leads import CONVERSION_FIELDS
from crmkit.services.users import find_user

if TYPE_CHECKING:
    from crmkit.app import CRM

#: Lead fields a form may never set: who owns the lead and how far it got are the CRM's call.
NOT_ON_FORMS = frozenset({"owner_id", "team_id", "status", *CONVERSION_FIELDS})
DEFAULT_FIELDS = ("full_name", "company_name", "email", "phone", "inquiry")
KEY_BYTES = 12


@frozen
class FormInfo:
    """A lead-capture form as listings show it."""

    id: int
    key: str
    name: str
    fields: tuple[str, ...]
    owner: str | None
    source_channel: str
    honeypot: str
    success_message: str
    created_at: dt.datetime


@frozen
class Submission:
    """What a submission did: the new lead's id, or ``None`` when the honeypot caught it."""

    lead_id: int | None
    message: str

    @property
    def captured(self) -> bool:
        """Whether a lead was created."""
        return self.lead_id is not None


class FormService:
    """Lead-capture forms: add, list, remove, submit, and their embeddable HTML."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def allowed_fields(self) -> list[str]:
        """The lead fields (built-in and custom) a form may ask for."""
        preparer = self.crm.preparer("lead")
        names = sorted(preparer.writable - NOT_ON_FORMS)
        return names + sorted(preparer.custom_fields)

    def add(
        self,
        name: str,
        fields: Sequence[str] = DEFAULT_FIELDS,
        *,
        owner: str | None = None,
        source_channel: str = "web_form",
        honeypot: str = "website_url",
        success_message: str = "Thank you, we will be in touch.",
        actor: User | None = None,
    ) -> FormInfo:
        """Create a form asking for ``fields`` (``full_name`` is always among them: a lead
        needs it); its leads belong to ``owner`` (a username) or go to the assignment rules."""
        name = name.strip()
        errors: list[FieldError] = []
        if not name or len(name) > 200:
            errors.append(FieldError("name", "is required (at most 200 characters)"))
        chosen = list(dict.fromkeys(field.strip() for field in fields if field.strip()))
        if "full_name" not in chosen:
            chosen.insert(0, "full_name")
        allowed = self.allowed_fields()
        unknown = [field for field in chosen if field not in allowed]
        if unknown:
            errors.append(
                FieldError(
                    "fields",
                    f"{', '.join(unknown)}: not a lead field a form may set; choose from"
                    f" {', '.join(allowed)}",
                )
            )
        if not honeypot.isidentifier() or honeypot in chosen:
            errors.append(
                FieldError("honeypot", "must be a field name that is not one of the form's")
            )
        if not source_channel.strip() or len(source_channel) > 64:
            errors.append(FieldError("source_channel", "is required (at most 64 characters)"))
        if errors:
            raise ValidationError(errors, "form")
        with self.crm.transaction(actor) as op:
            op.access.require("form:manage")
            if op.session.scalar(select(LeadForm.id).where(LeadForm.name == name)):
                raise ValidationError([FieldError("name", f"a form {name!r} exists")], "form")
            owner_user = find_user(op.session, owner) if owner else None
            if owner_user is not None and not owner_user.is_active:
                raise CRMError(f"user {owner!r} is deactivated: choose another owner")
            form = LeadForm(
                key=secrets.token_urlsafe(KEY_BYTES),
                name=name,
                fields=chosen,
                owner_id=owner_user.id if owner_user else None,
                source_channel=source_channel.strip(),
                honeypot=honeypot,
                success_message=success_message,
                created_by_id=op.actor_id,
            )
            op.session.add(form)
            op.session.flush()
            audit_rows(
                op,
                "form.add",
                "lead_form",
                [(form.id, {"name": [None, name], "fields": [None, chosen]})],
            )
            op.emit(
                "form.added",
                {"name": name, "fields": chosen},
                record_type="lead_form",
                record_id=form.id,
            )
            return self._info(form, owner_user)

    def list(self, *, actor: User | None = None) -> list[FormInfo]:
        """Every form, oldest first."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("form:manage")
            rows = op.session.execute(
                select(LeadForm, User)
                .outerjoin(User, User.id == LeadForm.owner_id)
                .order_by(LeadForm.id)
            )
            return [self._info(form, owner) for form, owner in rows]

    def remove(self, key_or_name: str, *, actor: User | None = None) -> FormInfo:
        """Delete a form (by key or name); posts to its key then answer 404. Its leads stay."""
        with self.crm.transaction(actor) as op:
            op.access.require("form:manage")
            form = op.session.scalar(
                select(LeadForm).where(
                    or_(LeadForm.key == key_or_name, LeadForm.name == key_or_name)
                )
            )
            if form is None:
                raise NotFoundError("form", key_or_name)
            info = self._info(form, None)
            audit_rows(op, "form.remove", "lead_form", [(form.id, {"name": [form.name, None]})])
            op.emit("form.removed", {"name": form.name}, record_type="lead_form", record_id=form.id)
            op.session.delete(form)
            return info

    def get(self, key: str) -> FormInfo:
        """The form with public ``key`` (no permission needed: the key is public)."""
        with self.crm.transaction(write=False) as op:
            row = op.session.execute(
                select(LeadForm, User)
                .outerjoin(User, User.id == LeadForm.owner_id)
                .where(LeadForm.key == key)
            ).one_or_none()
            if row is None:
                raise NotFoundError("form", key)
            return self._info(row[0], row[1])

    def submit(self, key: str, data: Mapping[str, object]) -> Submission:
        """Turn a submission into a lead; see the module docstring. A field the form does not
        ask for is a ``ValidationError`` naming it; nothing is written then."""
        form = self.get(key)
        if str(data.get(form.honeypot) or "").strip():
            return Submission(None, form.success_message)
        unknown = sorted(k for k in data if k not in form.fields and k != form.honeypot)
        if unknown:
            raise ValidationError(
                [FieldError(k, f"this form does not ask for {k}") for k in unknown], "lead"
            )
        values: dict[str, object] = {k: v for k, v in data.items() if k in form.fields}
        values.setdefault("source_channel", form.source_channel)
        with self.crm.transaction() as op:
            if form.owner is not None:
                owner = find_user(op.session, form.owner)
                if owner.is_active:
                    values["owner_id"] = owner.id
                    values["team_id"] = owner.team_id
            lead = op.records("lead").create(values)
            op.emit(
                "lead.captured",
                {
                    "form": form.name,
                    "form_id": form.id,
                    "lead_id": lead.id,
                    "full_name": lead.full_name,
                    "email": lead.email,
                    "phone": lead.phone,
                },
                record_type="lead",
                record_id=lead.id,
            )
            return Submission(lead.id, form.success_message)

    def snippet(self, key: str, base_url: str) -> str:
        """An embeddable HTML form posting to ``<base_url>/forms/<key>``."""
        form = self.get(key)
        preparer = self.crm.preparer("lead")
        action = f"{base_url.rstrip('/')}/forms/{form.key}"
        rows = []
        for name in form.fields:
            custom = preparer.custom_fields.get(name)
            label = (
                custom.label if custom and custom.label else name.replace("_", " ")
            ).capitalize()
            kind = {"email": "email", "phone": "tel"}.get(name, "text")
            required = " required" if name == "full_name" or (custom and custom.required) else ""
            if name in ("inquiry", "notes"):
                control = f'<textarea name="{html.escape(name)}" rows="4"{required}></textarea>'
            else:
                control = f'<input type="{kind}" name="{html.escape(name)}"{required}>'
            rows.append(f"  <label>{html.escape(label)}<br>{control}</label><br>")
        trap = html.escape(form.honeypot)
        return "\n".join(
            [
                f'<form method="post" action="{html.escape(action)}" accept-charset="utf-8"'
                f' class="crmkit-form" data-form="{html.escape(form.name)}">',
                *rows,
                "  <!-- left empty by people; bots that fill it in are ignored -->",
                f'  <div style="position:absolute;left:-10000px" aria-hidden="true">'
                f'<input type="text" name="{trap}" tabindex="-1" autocomplete="off"></div>',
                '  <button type="submit">Send</button>',
                "</form>",
            ]
        )

    @staticmethod
    def _info(form: LeadForm, owner: User | None) -> FormInfo:
        return FormInfo(
            id=form.id,
            key=form.key,
            name=form.name,
            fields=tuple(form.fields),
            owner=owner.username if owner is not None else None,
            source_channel=form.source_channel,
            honeypot=form.honeypot,
            success_message=form.success_message,
            created_at=form.created_at,
        )
