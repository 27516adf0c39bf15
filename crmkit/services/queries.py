"""Read paths: the visibility filter every read goes through, filters, search, sorting and
cursor pagination."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select

from crmkit.entities.custom_fields import CustomField, FieldType
from crmkit.entities.registry import EntityType
from crmkit.errors import CRMError, FieldError, ValidationError
from crmkit.services.operation import Operation
from crmkit.services.values import ValuePreparer

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "empty")


def visible(op: Operation, entity: EntityType) -> Select[Any]:
    """The one query every read of ``entity`` starts from: live (not deleted) records the
    actor may see. Lists, counts, search and exports all build on it, so they agree."""
    model: Any = entity.model
    return select(model).where(model.deleted_at.is_(None))


def _custom_expression(column: Any, custom: CustomField) -> ColumnElement[Any]:
    element = column[custom.name]
    if custom.type is FieldType.NUMBER:
        return element.as_integer()  # type: ignore[no-any-return]
    if custom.type is FieldType.DECIMAL:
        return element.as_numeric(28, 10)  # type: ignore[no-any-return]
    if custom.type is FieldType.BOOLEAN:
        return element.as_boolean()  # type: ignore[no-any-return]
    return element.as_string()  # type: ignore[no-any-return]


def field_expression(entity: EntityType, preparer: ValuePreparer, name: str) -> ColumnElement[Any]:
    """The SQL expression for a built-in or custom field; an unknown name is a
    ``ValidationError`` naming it."""
    model: Any = entity.model
    if name in entity.columns:
        return cast(ColumnElement[Any], getattr(model, name))
    custom = preparer.custom_fields.get(name)
    if custom is not None:
        return _custom_expression(model.custom, custom)
    raise ValidationError([FieldError(name, f"unknown field of {entity.name}")], entity.name)


def _coerce_operand(preparer: ValuePreparer, name: str, value: object) -> Any:
    if name in preparer.coercers:
        coerce = preparer.coercers[name]
    elif name in preparer.custom_fields:
        coerce = preparer.custom_fields[name].coerce
    else:
        return value  # system columns: id, created_at ... compared as given
    try:
        result = coerce(value)
    except ValueError as error:
        raise ValidationError([FieldError(name, str(error))], preparer.entity.name) from None
    return result


def build_filters(
    entity: EntityType, preparer: ValuePreparer, filters: Mapping[str, object]
) -> list[ColumnElement[bool]]:
    """SQL conditions for ``filters``: ``{"city": "上海", "amount__gte": 100,
    "tier__in": ["a", "b"], "email__empty": True, "name__contains": "伟"}``.

    Values are validated and normalised like writes are, so ``phone="138 1234 5678"`` finds
    the stored ``+8613812345678``.
    """
    conditions: list[ColumnElement[bool]] = []
    for key, value in filters.items():
        name, _, operator = key.partition("__")
        operator = operator or "eq"
        if operator not in OPERATORS:
            raise ValidationError(
                [
                    FieldError(
                        key, f"unknown operator {operator!r}; use one of {', '.join(OPERATORS)}"
                    )
                ],
                entity.name,
            )
        expression = field_expression(entity, preparer, name)
        custom = preparer.custom_fields.get(name)
        if operator == "empty":
            empty = (
                expression.is_(None) | (expression == "")
                if _is_text(entity, custom, name)
                else expression.is_(None)
            )
            conditions.append(empty if _truthy(value) else ~empty)
        elif operator == "in":
            items = value if isinstance(value, list | tuple | set) else str(value).split(",")
            operands = [_coerce_operand(preparer, name, item) for item in items]
            conditions.append(expression.in_(operands) if operands else false())
        elif operator == "contains":
            if custom is not None and custom.type is FieldType.MULTI_CHOICE:
                choice = custom.coerce([value])
                assert isinstance(choice, list)
                conditions.append(entity.model.custom[name].as_string().contains(f'"{choice[0]}"'))
            else:
                conditions.append(expression.contains(str(value), autoescape=True))
        else:
            operand = _coerce_operand(preparer, name, value)
            conditions.append(_compare(expression, operator, operand))
    return conditions


def _is_text(entity: EntityType, custom: CustomField | None, name: str) -> bool:
    if custom is not None:
        return custom.type in (FieldType.TEXT, FieldType.CHOICE)
    python_type = _python_type(entity, name)
    return python_type is str


def _python_type(entity: EntityType, name: str) -> type | None:
    try:
        return entity.columns[name].columns[0].type.python_type
    except (NotImplementedError, KeyError):
        return None


def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in {"1", "true", "yes"}


def _compare(expression: ColumnElement[Any], operator: str, operand: Any) -> ColumnElement[bool]:
    if operator == "eq":
        return expression.is_(None) if operand is None else expression == operand
    if operator == "ne":
        return expression.is_not(None) if operand is None else expression != operand
    if operand is None:
        raise CRMError(f"operator {operator!r} needs a value")
    if operator == "lt":
        return cast(ColumnElement[bool], expression < operand)
    if operator == "lte":
        return cast(ColumnElement[bool], expression <= operand)
    if operator == "gt":
        return cast(ColumnElement[bool], expression > operand)
    return cast(ColumnElement[bool], expression >= operand)


def build_search(entity: EntityType, text: str) -> ColumnElement[bool]:
    """Free-text search over the entity's search columns (case-insensitive for Latin text;
    Chinese text matches as a substring)."""
    needle = text.strip().lower()
    model: Any = entity.model
    return or_(
        *(
            func.lower(getattr(model, column)).contains(needle, autoescape=True)
            for column in entity.search
        )
    )


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor for keyset pagination."""
    raw = json.dumps([_cursor_value(v) for v in values], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_value(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def decode_cursor(cursor: str, width: int) -> list[Any]:
    """The values in ``cursor``; a malformed or foreign cursor is a ``ValidationError``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationError(
            [FieldError("cursor", "is not a cursor this list returned")]
        ) from None
    if not isinstance(values, list) or len(values) != width:
        raise ValidationError([FieldError("cursor", "does not fit this sort order")])
    return values


def keyset_after(
    expression: ColumnElement[Any],
    id_column: ColumnElement[Any],
    descending: bool,
    value: Any,
    last_id: int,
) -> ColumnElement[bool]:
    """Rows after ``(value, last_id)`` in the order ``expression`` then id, both ascending
    (NULLs first) or both descending (NULLs last) — the order :func:`order_clauses` gives."""
    if not descending:
        if value is None:
            return or_(and_(expression.is_(None), id_column > last_id), expression.is_not(None))
        return or_(expression > value, and_(expression == value, id_column > last_id))
    if value is None:
        return and_(expression.is_(None), id_column < last_id)
    return or_(
        expression < value, and_(expression == value, id_column < last_id), expression.is_(None)
    )


def order_clauses(
    expression: ColumnElement[Any], id_column: ColumnElement[Any], descending: bool
) -> list[Any]:
    """ORDER BY for a sort field plus the id tiebreaker, the same on SQLite and PostgreSQL."""
    if descending:
        return [expression.desc().nulls_last(), id_column.desc()]
    return [expression.asc().nulls_first(), id_column.asc()]
