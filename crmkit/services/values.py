"""Turning caller input into validated, normalised column values: the one path every write
(create, update, import, API, CLI) takes."""

from __future__ import annotations

import decimal
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Integer, Numeric, String, Text, Uuid

from crmkit.db.base import UTCDateTime
from crmkit.entities.custom_fields import CustomField
from crmkit.entities.normalise import (
    normalise_email,
    normalise_name,
    normalise_phone,
    normalise_text,
)
from crmkit.entities.parsing import (
    DECIMAL_MAX_DIGITS,
    check_text,
    parse_bool,
    parse_date,
    parse_datetime,
    parse_decimal,
    parse_int,
)
from crmkit.entities.registry import SYSTEM_COLUMNS, EntityType
from crmkit.errors import ConfigError, FieldError, ValidationError

Coercer = Callable[[object], Any]
_LIST_SPLIT = re.compile(r"[;,，；\n]")


def normalise_long_text(value: str) -> str:
    """Notes and descriptions keep their line breaks (as ``\n``); only the ends are trimmed."""
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return check_text(value)
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected text, got {type(value).__name__}")


def _as_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in _LIST_SPLIT.split(value) if part.strip()]
    if isinstance(value, list | tuple):
        return [_as_text(item) for item in value]
    raise ValueError(f"expected a list, got {type(value).__name__}")


def _as_mapping(value: object) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(key): _as_text(item) for key, item in value.items()}
    if isinstance(value, str):  # "wechat=abc; weibo=def" from a CSV cell
        pairs = [part.split("=", 1) for part in _LIST_SPLIT.split(value) if "=" in part]
        return {key.strip(): item.strip() for key, item in pairs}
    raise ValueError(f"expected key=value pairs, got {type(value).__name__}")


def _as_uuid(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a UUID") from None


class ValuePreparer:
    """Validates and normalises input for one entity type.

    Built once per entity and reused for every row (imports call it 100 000 times), so the
    per-column decisions are made here, not per value.
    """

    def __init__(
        self,
        entity: EntityType,
        custom_fields: Mapping[str, CustomField],
        region: str,
    ) -> None:
        self.entity = entity
        self.custom_fields = dict(custom_fields)
        self.region = region
        self.required = frozenset(entity.required)
        #: The columns callers may write (``EntityType.writable``, computed once: the
        #: record service asks per row).
        self.writable = entity.writable
        self.coercers: dict[str, Coercer] = {}
        #: Read-only columns (id, version, timestamps): never written by callers, but
        #: filters compare them, so their operands are parsed like written values are.
        self.system_coercers: dict[str, Coercer] = {}
        for key, prop in entity.columns.items():
            if key not in SYSTEM_COLUMNS:
                self.coercers[key] = self._column_coercer(key, prop.columns[0].type)
            elif isinstance(prop.columns[0].type, UTCDateTime):
                self.system_coercers[key] = parse_datetime
            elif isinstance(prop.columns[0].type, Integer):
                self.system_coercers[key] = parse_int
        #: Writable columns that cannot hold NULL: ``None`` there means "the default" on
        #: create (when there is one) and is refused on update.
        self.not_null: dict[str, bool] = {
            key: prop.columns[0].default is not None
            for key, prop in entity.columns.items()
            if key in self.writable and not prop.columns[0].nullable
        }
        required_custom = [f.name for f in self.custom_fields.values() if f.required]
        self.required_custom = tuple(required_custom)

    def _column_coercer(self, key: str, column_type: object) -> Coercer:
        kind = self.entity.kinds.get(key)
        choices = self.entity.choices.get(key)
        region = self.region
        if choices:
            allowed = tuple(str(c) for c in choices)

            def choice(value: object) -> str:
                text = normalise_text(_as_text(value))
                if text not in allowed:
                    raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
                return text

            return choice
        if kind == "phone_list":
            return lambda value: [normalise_phone(v, region) for v in _as_list(value)]
        if kind == "email_list":
            return lambda value: [normalise_email(v) for v in _as_list(value)]
        if isinstance(column_type, UTCDateTime | DateTime):
            return parse_datetime  # a plain DateTime too: an ISO string is never stored as text
        if isinstance(column_type, Boolean):
            return parse_bool
        if isinstance(column_type, Integer):
            return parse_int
        if isinstance(column_type, Numeric):
            precision = column_type.precision or DECIMAL_MAX_DIGITS
            scale = column_type.scale

            def number(value: object) -> decimal.Decimal:
                return parse_decimal(value, precision=precision, scale=scale)

            return number
        if isinstance(column_type, Date):
            return parse_date
        if isinstance(column_type, JSON):
            return _as_mapping if key == "social" else _as_list
        if isinstance(column_type, Uuid):
            return _as_uuid
        if not isinstance(column_type, String):  # Text and Enum are Strings too
            raise ConfigError(
                f"entity {self.entity.name!r} ({self.entity.source}): column {key!r} has type"
                f" {type(column_type).__name__}, which crmkit cannot validate; use String, Text,"
                " Integer, Numeric, Boolean, Date, crmkit.UTCDateTime, Uuid or JSON"
            )
        normalise: Callable[[str], str] = {
            "name": normalise_name,
            "email": normalise_email,
            "phone": lambda text: normalise_phone(text, region),
        }.get(kind or "", normalise_long_text if isinstance(column_type, Text) else normalise_text)
        length = getattr(column_type, "length", None) if isinstance(column_type, String) else None

        def text(value: object) -> str:
            result = normalise(_as_text(value))
            if length is not None and len(result) > length:
                raise ValueError(f"longer than {length} characters")
            return result

        return text

    def prepare(
        self, data: Mapping[str, object], *, creating: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return ``(columns, custom)`` for ``data``; raise ``ValidationError`` naming every
        bad field. Empty strings mean "no value"."""
        columns: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        errors: list[FieldError] = []
        for key, value in data.items():
            coercer = self.coercers.get(key)
            if coercer is not None:
                if value is None or value == "":
                    columns[key] = None
                    continue
                try:
                    result = coercer(value)
                except ValueError as error:
                    errors.append(FieldError(key, str(error)))
                    continue
                # text that normalises to nothing (spaces only) is no value, like ""
                columns[key] = None if result == "" else result
                continue
            custom_field = self.custom_fields.get(key)
            if custom_field is not None:
                try:
                    custom[key] = custom_field.coerce(value)
                except ValueError as error:
                    errors.append(FieldError(key, str(error)))
                continue
            if key in SYSTEM_COLUMNS:
                errors.append(FieldError(key, "is maintained by crmkit and cannot be set"))
            else:
                errors.append(FieldError(key, f"unknown field of {self.entity.name}"))
        for key in self.required:
            if (creating and key not in data) or (key in columns and columns[key] is None):
                errors.append(FieldError(key, "is required"))
        for key, has_default in self.not_null.items():
            if key in self.required or key not in columns or columns[key] is not None:
                continue
            if creating and has_default:
                del columns[key]  # no value: the column's default applies
            else:
                errors.append(FieldError(key, "cannot be empty"))
        for key in self.required_custom:
            if (creating and custom.get(key) is None) or (key in custom and custom[key] is None):
                errors.append(FieldError(key, "is required"))
        if errors:
            errors.sort(key=lambda e: e.field)
            raise ValidationError(errors, entity=self.entity.name)
        return columns, custom
