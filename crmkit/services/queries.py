"""Read paths: the visibility filter every read goes through, filters, search, sorting and
cursor pagination."""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, Select, and_, bindparam, false, or_, select

from crmkit.entities.custom_fields import CustomField, FieldType
from crmkit.entities.equality import fold_case, sql_fold_case
from crmkit.entities.registry import EntityType
from crmkit.errors import CRMError, FieldError, ValidationError
from crmkit.permissions.access import Access
from crmkit.services.operation import Operation
from crmkit.services.values import ValuePreparer

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "empty")


def visible(
    op: Operation, entity: EntityType, action: str = "read", *, unindexed: bool = False
) -> Select[Any]:
    """The one query every read of ``entity`` starts from: live (not deleted) records within
    the scope the actor holds ``<entity>:<action>`` with, as a SQL condition. Get, list,
    count, search, export and the reads before an update or delete all build on it, so they
    agree, and a record outside the scope behaves as if it did not exist.

    ``unindexed`` writes the scope so that SQLite does not answer it from the owner and team
    indexes (:meth:`Access.condition`); the rows are the same.

    An actor without the permission at all gets ``PermissionDenied``.

    The statement is kept with the actor's ``Access`` (``Access.statements``) and reused
    while that access is: the same statement object, not a new one per operation."""
    access = op.access
    key = (entity.name, action, unindexed)
    query: Select[Any] | None = access.statements.get(key)
    if query is None:
        model: Any = entity.model
        query = select(model).where(model.deleted_at.is_(None))
        condition = scope_condition(access, op.crm.entities, entity, action, unindexed=unindexed)
        if condition is not None:
            query = query.where(condition)
        _keep(access.statements, key, query)
    return query


def scope_condition(
    access: Access,
    entities: Mapping[str, EntityType],
    entity: EntityType,
    action: str = "read",
    *,
    unindexed: bool = False,
) -> ColumnElement[bool] | None:
    """The SQL condition selecting the records of ``entity`` the actor reaches with
    ``action`` (``None``: all of them); ``PermissionDenied`` naming the permission they lack.

    A record's own owner and team decide, except for a child entity (``EntityType.parent``):
    its records are those whose parent is live and within the scope of the parent's
    permission (``EntityType.permission``), so a child is visible exactly as its parent is,
    whoever owns the child row. Always applied, even for the unrestricted: a child of a
    deleted parent is gone with it."""
    scope = access.require(entity.permission(action))
    link = entity.parent
    if link is None:
        return access.condition(entity.model, scope, unindexed=unindexed)
    parent: Any = entities[link.entity].model
    parents = select(parent.id).where(parent.deleted_at.is_(None))
    condition = access.condition(parent, scope)
    if condition is not None:
        parents = parents.where(condition)
    return cast(ColumnElement[bool], getattr(entity.model, link.column).in_(parents))


#: The bound parameter of :func:`visible_by_id`.
RECORD_ID = "crmkit_record_id"


def visible_by_id(op: Operation, entity: EntityType, action: str = "read") -> Select[Any]:
    """:func:`visible` narrowed to one record whose id is the bound parameter
    :data:`RECORD_ID` (pass it when executing): one statement object per actor's access."""
    access = op.access
    key = (entity.name, action, "by id")
    query: Select[Any] | None = access.statements.get(key)
    if query is None:
        model: Any = entity.model
        query = visible(op, entity, action).where(model.id == bindparam(RECORD_ID))
        _keep(access.statements, key, query)
    return query


def _keep(statements: dict[Any, Any], key: Any, query: Select[Any]) -> None:
    if len(statements) < 256:  # bounded, whatever the caller does
        statements[key] = query


def _custom_expression(column: Any, custom: CustomField) -> ColumnElement[Any]:
    element = column[custom.name]
    if custom.type is FieldType.NUMBER:
        return element.as_integer()  # type: ignore[no-any-return]
    if custom.type is FieldType.DECIMAL:
        return element.as_numeric(28, 10)  # type: ignore[no-any-return]
    if custom.type is FieldType.BOOLEAN:
        return element.as_boolean()  # type: ignore[no-any-return]
    return element.as_string()  # type: ignore[no-any-return]


def field_expression(
    entity: EntityType, preparer: ValuePreparer, name: str, hidden: frozenset[str] = frozenset()
) -> ColumnElement[Any]:
    """The SQL expression for a built-in or custom field; an unknown name, or one hidden from
    the actor by a field rule (``hidden``), is a ``ValidationError`` naming it — so a hidden
    field cannot leak through a filter or a sort order either."""
    model: Any = entity.model
    if name in hidden:
        raise ValidationError([FieldError(name, f"unknown field of {entity.name}")], entity.name)
    if name in entity.columns:
        if isinstance(entity.columns[name].columns[0].type, JSON):
            raise ValidationError(
                [FieldError(name, "holds a list or mapping: it cannot be filtered or sorted on")],
                entity.name,
            )
        return cast(ColumnElement[Any], getattr(model, name))
    custom = preparer.custom_fields.get(name)
    if custom is not None:
        return _custom_expression(model.custom, custom)
    raise ValidationError([FieldError(name, f"unknown field of {entity.name}")], entity.name)


def _coerce_operand(preparer: ValuePreparer, name: str, value: object) -> Any:
    custom = preparer.custom_fields.get(name)
    if name in preparer.coercers:
        coerce = preparer.coercers[name]
    elif custom is not None:
        coerce = custom.coerce
    elif name in preparer.system_coercers:
        coerce = preparer.system_coercers[name]
    else:
        return value
    try:
        result = coerce(value)
    except ValueError as error:
        raise ValidationError([FieldError(name, str(error))], preparer.entity.name) from None
    if custom is not None and custom.type is FieldType.DECIMAL and result is not None:
        # stored as canonical text, compared as NUMERIC: PostgreSQL needs a number operand
        return decimal.Decimal(str(result))
    return result


def build_filters(
    entity: EntityType,
    preparer: ValuePreparer,
    filters: Mapping[str, object],
    hidden: frozenset[str] = frozenset(),
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
        expression = field_expression(entity, preparer, name, hidden)
        custom = preparer.custom_fields.get(name)
        # equality is the field's (crmkit.entities.equality): exact after the normaliser,
        # letter case folded on both sides for an ignore_case field
        folded = custom is not None and custom.ignore_case and operator in ("eq", "ne", "in")
        if folded:
            expression = sql_fold_case(expression)
        if operator == "empty":
            empty = (
                expression.is_(None) | (expression == "")
                if _is_text(entity, custom, name)
                else expression.is_(None)
            )
            conditions.append(empty if _truthy(value) else ~empty)
        elif operator == "in":
            items = value if isinstance(value, list | tuple | set) else str(value).split(",")
            operands = [_fold(_coerce_operand(preparer, name, item), folded) for item in items]
            conditions.append(expression.in_(operands) if operands else false())
        elif operator == "contains":
            if custom is not None and custom.type is FieldType.MULTI_CHOICE:
                (choice,) = _coerce_operand(preparer, name, [value])
                # ``expression`` is the list as JSON text, which may spell non-ASCII choices
                # as \u escapes, or not
                spellings = {json.dumps(choice), json.dumps(choice, ensure_ascii=False)}
                conditions.append(
                    or_(*(expression.contains(quoted, autoescape=True) for quoted in spellings))
                )
            elif _is_text(entity, custom, name):
                # letter case ignored on every text field, the same on both databases
                needle = fold_case(str(value))
                conditions.append(sql_fold_case(expression).contains(needle, autoescape=True))
            else:
                raise ValidationError(
                    [FieldError(key, "contains works on text fields only")], entity.name
                )
        else:
            operand = _fold(_coerce_operand(preparer, name, value), folded)
            if operand is None and operator not in ("eq", "ne"):
                raise ValidationError(
                    [FieldError(key, f"operator {operator!r} needs a value")], entity.name
                )
            conditions.append(_compare(expression, operator, operand))
    return conditions


def _fold(operand: Any, folded: bool) -> Any:
    return fold_case(operand) if folded and isinstance(operand, str) else operand


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


_PHONE_SEPARATORS = re.compile(r"[\s\-().+]")


def build_search(
    entity: EntityType, text: str, hidden: frozenset[str] = frozenset()
) -> ColumnElement[bool]:
    """Free-text search over the entity's search columns the actor may see.

    The text is normalised like names are (NFKC: full-width letters and digits become plain
    ones) and matched ignoring the case of A-Z (``crmkit.entities.equality``); Chinese text
    matches as a substring.
    Text that looks like a phone number (``138 1234 5678``, ``(021) 6123-4567``) also matches
    the digits of stored E.164 numbers."""
    needle = fold_case(unicodedata.normalize("NFKC", text).strip())
    model: Any = entity.model
    columns = [column for column in entity.search if column not in hidden]
    conditions = [
        sql_fold_case(getattr(model, column)).contains(needle, autoescape=True)
        for column in columns
    ]
    digits = _PHONE_SEPARATORS.sub("", needle)
    if len(digits) >= 4 and digits.isdigit():
        phone_columns = [c for c in columns if entity.kinds.get(c) == "phone"]
        trunk = digits.lstrip("0") or digits  # 021... is stored as +8621...
        conditions += [getattr(model, c).contains(trunk, autoescape=True) for c in phone_columns]
    return or_(*conditions) if conditions else false()


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
    *,
    nullable: bool = True,
) -> ColumnElement[bool]:
    """Rows after ``(value, last_id)`` in the order ``expression`` then id, both ascending
    (NULLs first) or both descending (NULLs last) — the order :func:`order_clauses` gives.
    Sorting by the id itself needs no second key.

    Where every later row has ``expression >= value`` (ascending, or descending on a NOT
    NULL column with ``<=``), that bound is added although it is implied: it is what lets
    both engines start a range on the sort column's index at the cursor, instead of walking
    the index from its first entry and filtering every row before the cursor."""
    if expression is id_column:
        return id_column < last_id if descending else id_column > last_id
    if value is None:
        if descending:  # NULLs come last: only NULLs with a smaller id follow
            return and_(expression.is_(None), id_column < last_id)
        return or_(and_(expression.is_(None), id_column > last_id), expression.is_not(None))
    if not descending:
        after = or_(expression > value, and_(expression == value, id_column > last_id))
        return and_(expression >= value, after)  # NULLs sort first: none come later
    after = or_(expression < value, and_(expression == value, id_column < last_id))
    if not nullable:
        return and_(expression <= value, after)
    return or_(after, expression.is_(None))


def order_clauses(
    expression: ColumnElement[Any],
    id_column: ColumnElement[Any],
    descending: bool,
    *,
    nullable: bool = True,
) -> list[Any]:
    """ORDER BY for a sort field plus the id tiebreaker, the same on SQLite and PostgreSQL.

    NULLS FIRST/LAST is spelled out only for a column that can hold NULL: on PostgreSQL
    ``ORDER BY id NULLS FIRST`` cannot walk the primary-key index and sorts the whole table
    for every page."""
    if expression is id_column:
        return [id_column.desc() if descending else id_column.asc()]
    if not nullable:
        if descending:
            return [expression.desc(), id_column.desc()]
        return [expression.asc(), id_column.asc()]
    if descending:
        return [expression.desc().nulls_last(), id_column.desc()]
    return [expression.asc().nulls_first(), id_column.asc()]
