"""Custom fields: typed fields integrators and plugins add to any entity without a fork.

Values live in the record's ``custom`` JSON column, keyed by field name. Each value is stored
in a form whose order the database can compare directly (ISO dates, numbers as JSON numbers,
decimals as canonical strings cast to NUMERIC in queries), so filters and sorting on custom
fields run in SQL on both SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence

from attrs import field, frozen

from crmkit.entities.parsing import (
    check_text,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_decimal,
    parse_int,
)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
CustomValue = str | int | bool | list[str] | None


class FieldType(enum.StrEnum):
    """The types a custom field can have."""

    TEXT = "text"
    NUMBER = "number"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"


def _choices(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _validate_name(instance: CustomField, attribute: object, value: str) -> None:
    if not _NAME.match(value):
        raise ValueError(
            f"custom field name {value!r} must be lower-case letters, digits and underscores,"
            " starting with a letter"
        )


@frozen
class CustomField:
    """A typed field added to an entity.

    Declare it in a plugin's ``crmkit_custom_fields`` hook or in the config file::

        CustomField(entity="contact", name="wechat_id", type=FieldType.TEXT, label="WeChat")

    ``unique=True`` allows a value on one live record of the entity only (a database index
    enforces it; the error names the other record when the actor may see it);
    ``ignore_case=True`` (text only) makes ``WF-1`` and ``wf-1`` the same value for it
    everywhere: list filters, rule conditions, territory maps and uniqueness
    (``crmkit.entities.equality``).
    """

    entity: str
    name: str = field(validator=_validate_name)
    type: FieldType = field(converter=FieldType)
    label: str = ""
    required: bool = False
    choices: tuple[str, ...] = field(default=(), converter=_choices)
    description: str = ""
    source: str = "config"
    unique: bool = False
    ignore_case: bool = False

    def __attrs_post_init__(self) -> None:
        if self.type in (FieldType.CHOICE, FieldType.MULTI_CHOICE) and not self.choices:
            raise ValueError(f"custom field {self.name!r} of type {self.type} needs choices")
        if self.unique and self.type in (FieldType.MULTI_CHOICE, FieldType.BOOLEAN):
            raise ValueError(f"custom field {self.name!r} of type {self.type} cannot be unique")
        if self.ignore_case and self.type is not FieldType.TEXT:
            raise ValueError(
                f"custom field {self.name!r}: ignore_case applies to text fields only"
                f" (this one is {self.type})"
            )

    def coerce(self, value: object) -> CustomValue:
        """Validate ``value`` and return its stored form; raise ``ValueError`` with the reason.

        Strings are accepted for every type (CSV import and query strings carry strings).
        Blank text and an empty list of choices are no value (``None``).
        """
        if value is None or value == "":
            return None
        result = _COERCERS[self.type](self, value)
        return None if result == "" or result == [] else result


def _text(f: CustomField, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return check_text(value).strip()


def _number(f: CustomField, value: object) -> int:
    return parse_int(value)


def _decimal(f: CustomField, value: object) -> str:
    return format(parse_decimal(value).normalize(), "f")


def _date(f: CustomField, value: object) -> str:
    return parse_date(value).isoformat()


def _datetime(f: CustomField, value: object) -> str:
    return parse_datetime(value).isoformat()


def _boolean(f: CustomField, value: object) -> bool:
    return parse_bool(value)


def _choice(f: CustomField, value: object) -> str:
    text = str(value).strip()
    if text not in f.choices:
        raise ValueError(f"{text!r} is not one of {', '.join(f.choices)}")
    return text


def _multi_choice(f: CustomField, value: object) -> list[str]:
    items: Sequence[object]
    if isinstance(value, str):
        items = [part for part in re.split(r"[;,，；|]", value) if part.strip()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ValueError(f"expected a list of choices, got {value!r}")
    chosen = [_choice(f, item) for item in items]
    return sorted(set(chosen), key=chosen.index)


_COERCERS: dict[FieldType, Callable[[CustomField, object], CustomValue]] = {
    FieldType.TEXT: _text,
    FieldType.NUMBER: _number,
    FieldType.DECIMAL: _decimal,
    FieldType.DATE: _date,
    FieldType.DATETIME: _datetime,
    FieldType.BOOLEAN: _boolean,
    FieldType.CHOICE: _choice,
    FieldType.MULTI_CHOICE: _multi_choice,
}

__all__ = ["CustomField", "FieldType"]
