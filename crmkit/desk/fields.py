"""How the desk shows and edits fields: which columns a list shows, each field's label,
input and displayed text, and turning a submitted form back into a service's values."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen
from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, String, Text, TypeDecorator

from crmkit.app import CRM
from crmkit.entities.custom_fields import FieldType
from crmkit.entities.registry import SYSTEM_COLUMNS, EntityType
from crmkit.services.transfer import plural

#: The columns a list shows first, per core entity (others: their first few columns).
LIST_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "contact": ("full_name", "title", "phone", "email", "city", "lifecycle_stage", "owner_id"),
    "account": ("name", "industry", "phone", "city", "lifecycle_stage", "value_tier", "owner_id"),
    "lead": (
        "full_name",
        "company_name",
        "phone",
        "status",
        "source_channel",
        "created_at",
        "owner_id",
    ),
    "deal": ("name", "amount", "currency", "stage_id", "expected_close_date", "owner_id"),
    "activity": ("occurred_at", "kind", "subject", "contact_id", "account_id"),
    "task": ("title", "due_at", "status", "priority", "owner_id"),
}

#: The fields of the "new" form, per entity the desk creates from a form.
CREATE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "lead": ("full_name", "company_name", "title", "phone", "email", "source_channel", "inquiry"),
    "contact": ("full_name", "title", "phone", "email", "account_id", "city", "address"),
    "account": ("name", "industry", "phone", "email", "website", "city", "address"),
    "task": ("title", "due_at", "priority", "description"),
}

#: The field that names a record, in order of preference.
TITLE_FIELDS = ("full_name", "name", "subject", "title")

#: Columns the desk does not offer in an edit form (ownership moves through assignment and
#: the pool; lists and maps are edited through the API).
NOT_EDITED = SYSTEM_COLUMNS | {"owner_id", "team_id", "pipeline_id", "stage_id"}

#: Activity kinds the record page offers as one-click buttons.
LOG_KINDS = ("call", "visit", "meeting", "note")


@frozen
class Input:
    """One input of a form: its field name, label, HTML input type and choices."""

    name: str
    label: str
    kind: str  # text, textarea, number, date, datetime-local, checkbox, select
    choices: tuple[str, ...] = ()
    required: bool = False
    read_only: bool = False


def label(name: str) -> str:
    """The English label of a field (``full_name`` → ``Full name``), the msgid of its
    translation."""
    text = name.removesuffix("_id") if name.endswith("_id") and name != "id" else name
    return text.replace("_", " ").capitalize()


def title_of(record: Mapping[str, Any]) -> str:
    """What a record is called on the page."""
    for name in TITLE_FIELDS:
        value = record.get(name)
        if value:
            return str(value)
    return f"#{record.get('id')}"


def display(value: Any) -> str:
    """A value as text on a page."""
    if type(value) is str and value:  # most cells: no conversion to try
        return value
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return f"{value:,.2f}"
    if isinstance(value, list | tuple):
        return ", ".join(display(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {display(item)}" for key, item in value.items())
    return str(value)


def input_value(value: Any) -> str:
    """A value as an input's ``value`` attribute (what an unchanged form sends back)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def reference_entities(crm: CRM, entity: EntityType) -> dict[str, str]:
    """``<name>_id`` columns of ``entity`` that point at another entity → that entity."""
    found: dict[str, str] = {}
    for column in entity.columns:
        target = column.removesuffix("_id")
        if column.endswith("_id") and target in crm.entities and column not in NOT_EDITED:
            found[column] = target
    return found


def list_columns(crm: CRM, entity: EntityType) -> tuple[str, ...]:
    """The columns a list of ``entity`` shows."""
    wanted = LIST_COLUMNS.get(entity.name)
    if wanted is None:
        wanted = tuple(name for name in entity.columns if name not in NOT_EDITED)[:6]
    return tuple(name for name in wanted if name in entity.columns)


def field_input(crm: CRM, entity: EntityType, name: str) -> Input | None:
    """The input of field ``name`` of ``entity`` (``None``: not edited in the desk)."""
    custom = crm.custom_fields[entity.name].get(name)
    if custom is not None:
        kinds = {
            FieldType.TEXT: "text",
            FieldType.NUMBER: "number",
            FieldType.DECIMAL: "text",
            FieldType.DATE: "date",
            FieldType.DATETIME: "datetime-local",
            FieldType.BOOLEAN: "checkbox",
            FieldType.CHOICE: "select",
        }
        kind = kinds.get(custom.type)
        if kind is None:
            return None
        return Input(name, custom.label or label(name), kind, custom.choices, custom.required)
    prop = entity.columns.get(name)
    if prop is None or name in NOT_EDITED:
        return None
    column = prop.columns[0]
    required = name in entity.required
    if name in entity.choices:
        return Input(name, label(name), "select", tuple(entity.choices[name]), required)
    column_type: Any = column.type
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl
    if isinstance(column_type, Text):
        kind = "textarea"
    elif isinstance(column_type, Boolean):
        kind = "checkbox"
    elif isinstance(column_type, Integer):
        kind = "number"
    elif isinstance(column_type, DateTime):
        kind = "datetime-local"
    elif isinstance(column_type, Date):
        kind = "date"
    elif isinstance(column_type, Numeric | String):
        kind = "text"
    else:
        return None  # JSON lists and maps: through the API
    return Input(name, label(name), kind, (), required)


def form_inputs(crm: CRM, entity: EntityType, names: Sequence[str]) -> list[Input]:
    """The inputs of ``names`` (those the desk edits)."""
    inputs = [field_input(crm, entity, name) for name in names]
    return [item for item in inputs if item is not None]


def edit_inputs(crm: CRM, entity: EntityType, visible: Sequence[str]) -> list[Input]:
    """The inputs of an edit form: every editable field the user can see."""
    names = [name for name in entity.columns if name in visible]
    names += sorted(name for name in crm.custom_fields[entity.name] if name in visible)
    return form_inputs(crm, entity, names)


def submitted_values(
    inputs: Sequence[Input], form: Mapping[str, Any], current: Mapping[str, Any] | None
) -> dict[str, object]:
    """The values of a submitted form for the service: blank is no value; with ``current``
    (an edit) only the fields whose text changed."""
    values: dict[str, object] = {}
    for item in inputs:
        if item.read_only:
            continue
        if item.name not in form and item.kind != "checkbox":
            continue  # not on the form that was sent: unchanged (an unticked box is absent)
        raw = form.get(item.name)
        if isinstance(raw, list):
            raw = raw[-1] if raw else ""
        text = raw.strip() if isinstance(raw, str) else ""
        if item.kind == "checkbox":
            text = "true" if text else ""
        if current is not None:
            before = current.get(item.name, (current.get("custom") or {}).get(item.name))
            if text == input_value(before).strip():
                continue
        if item.kind == "checkbox":
            values[item.name] = bool(text)
        else:
            values[item.name] = text or None
    return values


def entity_by_plural(crm: CRM, name: str) -> EntityType | None:
    """The entity whose plural is ``name`` (``contacts`` → contact)."""
    for entity in crm.entities.values():
        if plural(entity.name) == name:
            return entity
    return None
