"""Request and response types of each entity, built from the entity registry and the custom
fields when the app is created, so the OpenAPI schema shows every field (custom ones too)
and bodies of the wrong shape are refused before they reach a service.

The types only check the JSON shape (text, number, date, one of the choices); every rule
about values (normalisation, required fields, field permissions) stays in the services.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from litestar.params import PathParameter
from sqlalchemy import JSON, Boolean, Date, Integer, Numeric

from crmkit.db.base import UTCDateTime
from crmkit.duplicates import DisclosedMatch
from crmkit.entities.custom_fields import CustomField, FieldType
from crmkit.entities.parsing import INT_MAX, INT_MIN
from crmkit.entities.registry import SYSTEM_COLUMNS, EntityType

#: A whole number within the SQL INTEGER range (ids, counts, number fields).
SQL_INT = Annotated[int, msgspec.Meta(ge=INT_MIN, le=INT_MAX)]

#: A record id in a path.
RecordId = Annotated[int, PathParameter(ge=1, le=INT_MAX, description="The record's id.")]

#: Fields the responses carry but callers never write.
READ_ONLY = ("id", "version", "created_at", "updated_at", "created_by_id", "updated_by_id")


class MatchedRecord(msgspec.Struct, kw_only=True):
    """A record a write matched, as the caller may see it: a duplicate warning of a saved
    record, a match of a 409, a result of the dedupe check. A record outside the caller's
    scope is ``visible: false`` with only its entity, rule, action and owner."""

    entity: str
    visible: bool
    action: Literal["block", "warn", "allow"]
    record_id: int | None = None
    score: float | None = None
    reasons: list[str] = msgspec.field(default_factory=list)
    withheld_reasons: int = 0
    rule: str | None = None
    owner_id: int | None = None
    owner_name: str | None = None
    label: str | None = None

    @classmethod
    def of(cls, match: DisclosedMatch) -> MatchedRecord:
        """The JSON type of a :class:`~crmkit.duplicates.DisclosedMatch`."""
        return msgspec.convert(match.as_dict(), cls)


def _literal(choices: tuple[str, ...]) -> Any:
    return Literal[tuple(choices)]


def column_type(entity: EntityType, name: str, *, response: bool) -> Any:
    """The JSON type of a built-in column."""
    sql_type = entity.columns[name].columns[0].type
    choices = entity.choices.get(name)
    if choices:
        return _literal(tuple(str(c) for c in choices))
    if isinstance(sql_type, UTCDateTime):
        return dt.datetime
    if isinstance(sql_type, Boolean):
        return bool
    if isinstance(sql_type, Integer):
        return SQL_INT
    if isinstance(sql_type, Numeric):
        return str if response else str | float
    if isinstance(sql_type, Date):
        return dt.date
    if isinstance(sql_type, JSON):
        return dict[str, str] if name == "social" else list[str]
    return str


def custom_type(custom: CustomField, *, response: bool) -> Any:
    """The JSON type of a custom field."""
    kind = custom.type
    if kind is FieldType.NUMBER:
        return SQL_INT
    if kind is FieldType.DECIMAL:
        return str if response else str | float
    if kind is FieldType.DATE:
        return dt.date
    if kind is FieldType.DATETIME:
        return dt.datetime
    if kind is FieldType.BOOLEAN:
        return bool
    if kind is FieldType.CHOICE:
        return _literal(custom.choices)
    if kind is FieldType.MULTI_CHOICE:
        return list[_literal(custom.choices)]  # type: ignore[misc]
    return str


def _describe(kind: Any, description: str) -> Any:
    if not description:
        return kind
    return Annotated[kind, msgspec.Meta(description=description)]


def _title(entity: EntityType) -> str:
    return (entity.label or entity.name.capitalize()).replace(" ", "")


class EntitySchemas:
    """The body types of one entity: ``create`` and ``update`` (requests), ``record`` (a
    read), ``saved`` (the answer of a create or an update: the record and its
    ``duplicate_warnings``) and ``page`` (a list response)."""

    def __init__(self, entity: EntityType, custom_fields: Mapping[str, CustomField]) -> None:
        self.entity = entity
        title = _title(entity)
        writable = sorted(entity.writable)
        custom = sorted(custom_fields.values(), key=lambda c: c.name)
        required = set(entity.required) | {c.name for c in custom if c.required}

        def request_fields(creating: bool) -> list[tuple[str, Any, Any]]:
            fields: list[tuple[str, Any, Any]] = []
            for name in writable:
                kind = column_type(entity, name, response=False)
                if creating and name in required:
                    fields.append((name, kind, msgspec.NODEFAULT))
                elif entity.columns[name].columns[0].nullable:
                    fields.append((name, kind | None | msgspec.UnsetType, msgspec.UNSET))
                else:  # NOT NULL: may be left out (its default), not set to null
                    fields.append((name, kind | msgspec.UnsetType, msgspec.UNSET))
            for field in custom:
                kind = _describe(custom_type(field, response=False), field.label)
                if creating and field.name in required:
                    fields.append((field.name, kind, msgspec.NODEFAULT))
                else:
                    fields.append((field.name, kind | None | msgspec.UnsetType, msgspec.UNSET))
            fields.sort(key=lambda item: item[2] is not msgspec.NODEFAULT)
            return fields

        self.create: type[msgspec.Struct] = msgspec.defstruct(
            f"{title}Create", request_fields(True), kw_only=True, forbid_unknown_fields=True
        )
        self.update: type[msgspec.Struct] = msgspec.defstruct(
            f"{title}Update", request_fields(False), kw_only=True, forbid_unknown_fields=True
        )
        response: list[tuple[str, Any, Any]] = [("id", int, msgspec.NODEFAULT)]
        response.append(("version", int, msgspec.NODEFAULT))
        for name in sorted(entity.columns):
            if name in ("id", "version", "custom") or name == "deleted_at":
                continue
            if name not in entity.writable and name not in SYSTEM_COLUMNS:
                continue
            kind = column_type(entity, name, response=True)
            response.append((name, kind | None, None))
        for field in custom:
            kind = _describe(custom_type(field, response=True), field.label)
            response.append((field.name, kind | None, None))
        self.record: type[msgspec.Struct] = msgspec.defstruct(
            title, response, kw_only=True, omit_defaults=True
        )
        warnings = Annotated[
            list[MatchedRecord],
            msgspec.Meta(
                description="Records this write matched under a `warn` duplicate rule: the "
                "record was saved, and may be a duplicate of these."
            ),
        ]
        self.saved: type[msgspec.Struct] = msgspec.defstruct(
            f"{title}Saved",
            [*response, ("duplicate_warnings", warnings, msgspec.NODEFAULT)],
            kw_only=True,
        )
        cursor = Annotated[
            str | None,
            msgspec.Meta(
                description="Pass it as `cursor` for the next page; null on the last page."
            ),
        ]
        self.page: type[msgspec.Struct] = msgspec.defstruct(
            f"{title}Page",
            [("items", list[self.record]), ("next_cursor", cursor, None)],  # type: ignore[name-defined]
            kw_only=True,
        )


def body_values(body: msgspec.Struct) -> dict[str, Any]:
    """The fields a request body set (``null`` included, absent ones left out), as service
    input: decimals given as numbers become ``Decimal`` via their text."""
    values: dict[str, Any] = {}
    for name in body.__struct_fields__:
        value = getattr(body, name)
        if value is msgspec.UNSET:
            continue
        if isinstance(value, float):
            value = decimal.Decimal(repr(value))
        values[name] = value
    return values
