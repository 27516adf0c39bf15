"""The segment filter language: the list filters (``build_filters``) plus relations
(``account.city``, ``deals.closed_at__gte``), measures plugins compute in SQL
(``rfm_segment``) and other segments (``segment``), compiled to SQL conditions for one
actor. Lists, counts, segments, pool policies and campaigns all filter through here, so a
filter means the same wherever it is written.

Every part is scoped for the actor: a related record counts only if the actor may read it,
a field hidden from the actor is an unknown field (as in list filters), and a measure needs
its permission and is hidden with the fields it is computed from."""

from __future__ import annotations

import calendar
import datetime as dt
import decimal
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from attrs import frozen
from sqlalchemy import (
    Column,
    ColumnElement,
    Date,
    DateTime,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.selectable import ScalarSelect, Select
from sqlalchemy.sql.util import ClauseAdapter

from crmkit.db.base import UTCDateTime
from crmkit.entities.custom_fields import CustomField, FieldType
from crmkit.entities.deals import Deal, Pipeline, Stage, StageKind
from crmkit.entities.registry import EntityType
from crmkit.entities.segments import MeasureContext, SavedSegment, SegmentMeasure
from crmkit.errors import ConfigError, FieldError, ValidationError
from crmkit.plugins import hookimpl
from crmkit.services.operation import Operation
from crmkit.services.queries import OPERATORS, _compare, build_filters

if TYPE_CHECKING:
    from crmkit.app import CRM

#: The key that names other segments: ``{"segment": "大客户"}``, ``segment__ne``,
#: ``segment__in``.
SEGMENT_KEY = "segment"
#: The most segments one evaluation may expand (segments naming segments naming ...).
MAX_SEGMENT_DEPTH = 8
#: The most relations one filter may follow in a row (``deals.account.contacts.city``).
MAX_RELATION_DEPTH = 4


@frozen
class Relation:
    """A link from one entity to another that filters can follow. ``many`` is a
    one-to-many link (a contact's ``deals``: the contact matches when at least one deal it
    may see matches); otherwise the record points at one record (a contact's ``account``)."""

    name: str
    target: str
    outer: str  # the column of this entity's table compared
    inner: str  # the column of the target's table selected
    many: bool


# -- the vocabulary of each entity ------------------------------------------------------------


def relations(crm: CRM, entity: str) -> dict[str, Relation]:
    """The relations of ``entity`` by name: every foreign key of its table to another
    entity's table (``account_id`` → ``account``), and every entity whose table points at
    it (``deals``; ``<table>_<column>`` when it points twice, e.g. ``referrals_referrer``).
    Kept in ``crm.segment_vocabulary`` (emptied when the plugins are reloaded)."""
    key = ("relations", entity)
    found: dict[str, Relation] | None = crm.segment_vocabulary.get(key)
    if found is None:
        found = crm.segment_vocabulary[key] = _discover_relations(crm, entity)
    return found


def _discover_relations(crm: CRM, entity: str) -> dict[str, Relation]:
    this = crm.entity(entity)
    table_name = this.model.__table__.name  # type: ignore[attr-defined]
    by_table = {e.model.__table__.name: e.name for e in crm.entities.values()}  # type: ignore[attr-defined]
    taken = set(this.columns) | set(crm.custom_fields.get(entity, {})) | {SEGMENT_KEY}
    found: dict[str, Relation] = {}
    for key, prop in this.columns.items():
        for foreign in prop.columns[0].foreign_keys:
            target = by_table.get(foreign.column.table.name)
            if target is None or foreign.column.name != "id":
                continue
            name = key.removesuffix("_id")
            if name not in taken and name not in found:
                found[name] = Relation(name, target, key, "id", many=False)
    for other in crm.entities.values():
        links = [
            key
            for key, prop in other.columns.items()
            if any(
                f.column.table.name == table_name and f.column.name == "id"
                for f in prop.columns[0].foreign_keys
            )
        ]
        other_table = other.model.__table__.name  # type: ignore[attr-defined]
        for key in links:
            name = other_table if len(links) == 1 else f"{other_table}_{key.removesuffix('_id')}"
            if name not in taken and name not in found:
                found[name] = Relation(name, other.name, "id", key, many=True)
    return found


def measures(crm: CRM, entity: str) -> dict[str, SegmentMeasure]:
    """The measures of ``entity`` by name: the core's and those enabled plugins return from
    ``crmkit_segment_measures``. A measure on an unknown entity, a name that is a field of
    the entity, or a name declared twice is a ``ConfigError`` naming it."""
    found: dict[str, dict[str, SegmentMeasure]] | None = crm.segment_vocabulary.get("measures")
    if found is None:
        found = crm.segment_vocabulary["measures"] = _collect_measures(crm)
    return found.get(entity, {})


def _collect_measures(crm: CRM) -> dict[str, dict[str, SegmentMeasure]]:
    found: dict[str, dict[str, SegmentMeasure]] = {}
    for group in crm.host.call("crmkit_segment_measures", crm=crm):
        for measure in group:
            if measure.entity not in crm.entities:
                raise ConfigError(
                    f"measure {measure.name!r} names unknown entity {measure.entity!r};"
                    f" known: {', '.join(sorted(crm.entities))}"
                )
            entity = crm.entities[measure.entity]
            if (
                measure.name in entity.columns
                or measure.name in crm.custom_fields[measure.entity]
                or measure.name == SEGMENT_KEY
            ):
                raise ConfigError(
                    f"measure {measure.name!r} clashes with the field"
                    f" {measure.entity}.{measure.name}"
                )
            mine = found.setdefault(measure.entity, {})
            if measure.name in mine:
                raise ConfigError(f"measure {measure.entity}.{measure.name} is declared twice")
            mine[measure.name] = measure
    return found


# -- the measures the core brings ---------------------------------------------------------------

CORE_MEASURES_NAME = "crmkit-core-measures"


def _stage_column(column: Any) -> Any:
    def expression(context: MeasureContext) -> ColumnElement[Any]:
        model = context.model
        return select(column).where(Stage.id == model.stage_id).scalar_subquery()

    return expression


def _pipeline_name(context: MeasureContext) -> ColumnElement[Any]:
    return select(Pipeline.name).where(Pipeline.id == context.model.pipeline_id).scalar_subquery()


class CoreMeasures:
    """The core's own measures, registered like a plugin's: a deal's ``stage_kind``
    (open, won, lost), ``stage`` (its stage's name) and ``pipeline`` (its pipeline's name)."""

    @hookimpl
    def crmkit_segment_measures(self, crm: CRM) -> Sequence[SegmentMeasure]:
        """Deal stage measures."""
        del crm
        return [
            SegmentMeasure(
                "deal",
                "stage_kind",
                _stage_column(Stage.kind),
                type=FieldType.CHOICE,
                choices=tuple(StageKind),
                label="Stage kind",
                description="open, won or lost: the kind of the deal's stage",
            ),
            SegmentMeasure(
                "deal",
                "stage",
                _stage_column(Stage.name),
                type=FieldType.TEXT,
                label="Stage",
                description="the name of the deal's stage",
            ),
            SegmentMeasure(
                "deal",
                "pipeline",
                _pipeline_name,
                type=FieldType.TEXT,
                label="Pipeline",
                description="the name of the deal's pipeline",
            ),
        ]


assert Deal.__tablename__ == "deals"  # the stage measures correlate on deals.stage_id


def _key_lookup(expression: Any, table: Any) -> tuple[Any, Any, Any] | None:
    """``(outer key, inner key, value)`` when a measure is a plain look-up by key:
    ``(SELECT t.value FROM t WHERE t.key = <table>.column)``, one column of one table, one
    equality, no grouping or limit (the core's stage measures, the insight snapshot's).
    ``None`` for anything else (an aggregate, several conditions), compared as it is."""
    if not isinstance(expression, ScalarSelect) or not isinstance(expression.element, Select):
        return None
    query: Any = expression.element
    # the outer table is among the FROMs until the query is correlated, when compiled
    froms = [found for found in query.get_final_froms() if found is not table]
    columns = list(query.selected_columns)
    where = query.whereclause
    if (
        len(froms) != 1
        or len(columns) != 1
        or not isinstance(columns[0], Column)
        or columns[0].table is not froms[0]
        or query._group_by_clauses
        or query._having_criteria
        or query._limit_clause is not None
        or query._offset_clause is not None
        or query._distinct
        or not isinstance(where, BinaryExpression)
        or where.operator is not operators.eq
    ):
        return None
    sides = (where.left, where.right)
    if not all(isinstance(side, Column) for side in sides):
        return None
    inner = next((side for side in sides if side.table is froms[0]), None)
    outer = next((side for side in sides if side.table is table), None)
    if inner is None or outer is None or inner is outer:
        return None
    return outer, inner, columns[0]


# -- relative dates -----------------------------------------------------------------------------

_RELATIVE = re.compile(
    r"^\s*(today|now|week_start|month_start|quarter_start|year_start)"
    r"\s*(?:([+-])\s*(\d{1,5})\s*([dwmy]))?\s*$"
)


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return day.replace(year=year, month=month, day=min(day.day, last))


def relative_time(text: str, now: dt.datetime) -> dt.datetime | None:
    """``today``, ``now``, ``week_start``, ``month_start``, ``quarter_start``,
    ``year_start``, each optionally ``±N`` days (``d``), weeks (``w``), months (``m``) or
    years (``y``): ``today-30d``, ``year_start``, ``month_start-1m``. UTC; ``None`` when
    ``text`` is not such a word."""
    match = _RELATIVE.match(text)
    if match is None:
        return None
    anchor, sign, amount, unit = match.groups()
    today = now.date()
    if anchor == "now":
        base = now
    else:
        day = {
            "today": today,
            "week_start": today - dt.timedelta(days=today.weekday()),
            "month_start": today.replace(day=1),
            "quarter_start": today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1),
            "year_start": today.replace(month=1, day=1),
        }[anchor]
        base = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    if sign is None:
        return base
    count = int(amount) * (-1 if sign == "-" else 1)
    if unit in ("d", "w"):
        return base + dt.timedelta(days=count * (7 if unit == "w" else 1))
    months = count * (12 if unit == "y" else 1)
    return dt.datetime.combine(_add_months(base.date(), months), base.timetz())


# -- the compiler -------------------------------------------------------------------------------


class SegmentCompiler:
    """Compiles filters of the segment language to SQL conditions for one operation's actor.

    ``overrides`` gives definitions to use instead of the stored ones (a segment being
    created or changed, checked before it is written); ``explain`` makes an unknown name's
    error list the names that are known."""

    def __init__(
        self,
        op: Operation,
        *,
        overrides: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
        explain: bool = False,
        now: dt.datetime | None = None,
    ) -> None:
        self.op = op
        self.overrides = dict(overrides or {})
        self.explain = explain
        self.now = now or dt.datetime.now(dt.UTC)
        self._stored: dict[str, tuple[str, Mapping[str, Any]] | None] = {}

    # -- entry point ----------------------------------------------------------------------

    def conditions(
        self,
        entity: EntityType,
        filters: Mapping[str, object],
        *,
        segments: tuple[str, ...] = (),
        depth: int = 0,
    ) -> list[ColumnElement[bool]]:
        """SQL conditions (on ``entity``'s model) for ``filters``; ``segments`` are the
        segments being expanded around this one (to find cycles)."""
        if not isinstance(filters, Mapping):
            raise ValidationError(
                [FieldError("filters", "must be a mapping of FIELD[__OP] to a value")],
                entity.name,
            )
        crm = self.op.crm
        access = self.op.access
        hidden = frozenset() if access.unrestricted else access.hidden_fields(entity.name)
        own_relations = relations(crm, entity.name)
        own_measures = measures(crm, entity.name)
        fields = set(entity.columns) | set(crm.custom_fields.get(entity.name, {}))
        plain: dict[str, object] = {}
        related: dict[str, dict[str, object]] = {}
        conditions: list[ColumnElement[bool]] = []
        for key, value in filters.items():
            if not isinstance(key, str) or not key:
                raise ValidationError([FieldError(str(key), "is not a field name")], entity.name)
            name, _, operator = key.partition("__")
            if "." in name:
                relation, _, rest = key.partition(".")
                related.setdefault(relation, {})[rest] = value
            elif name == SEGMENT_KEY:
                conditions.append(
                    self._segment(entity, key, operator or "eq", value, segments, depth)
                )
            elif name in own_relations and name not in fields:
                if not operator and isinstance(value, Mapping):
                    related.setdefault(name, {}).update(value)
                elif operator == "empty":
                    conditions.append(
                        self._relation(entity, own_relations[name], {}, segments, depth, key)
                        if not _truthy(value)
                        else ~self._relation(entity, own_relations[name], {}, segments, depth, key)
                    )
                else:
                    raise ValidationError(
                        [
                            FieldError(
                                key,
                                f"{name} is a relation of {entity.name}: filter on its fields"
                                f" ({name}.FIELD=VALUE) or on {name}__empty",
                            )
                        ],
                        entity.name,
                    )
            elif name in own_measures and name not in fields:
                conditions.append(self._measure(entity, own_measures[name], key, operator, value))
            else:
                if self.explain and (name not in fields or name in hidden):
                    self._unknown(entity, name, hidden)
                plain[key] = self._relative_operands(entity, name, operator, value)
        preparer = crm.preparer(entity.name)
        for key, value in plain.items():
            _check_operand(entity, key, value)
            try:
                conditions.extend(build_filters(entity, preparer, {key: value}, hidden))
            except (TypeError, OverflowError, decimal.InvalidOperation):
                raise ValidationError(
                    [FieldError(key, f"cannot be compared with {_short(value)}")], entity.name
                ) from None
        for relation_name, sub in related.items():
            found = own_relations.get(relation_name)
            if found is None:
                self._unknown(entity, relation_name, hidden, relation=True)
            conditions.append(self._relation(entity, found, sub, segments, depth, relation_name))
        return conditions

    # -- errors ---------------------------------------------------------------------------

    def known_names(self, entity: EntityType) -> dict[str, list[str]]:
        """What filters on ``entity`` may name, as the actor sees it: fields (hidden ones
        left out), relations, measures."""
        access = self.op.access
        crm = self.op.crm
        hidden = frozenset() if access.unrestricted else access.hidden_fields(entity.name)
        fields = sorted(
            (set(entity.columns) | set(crm.custom_fields.get(entity.name, {})))
            - hidden
            - {"custom"}
        )
        return {
            "fields": fields,
            "relations": sorted(relations(crm, entity.name)),
            "measures": sorted(
                name
                for name, measure in measures(crm, entity.name).items()
                if self._measure_visible(measure)
            ),
        }

    def _unknown(
        self, entity: EntityType, name: str, hidden: frozenset[str], *, relation: bool = False
    ) -> NoReturn:
        known = self.known_names(entity)
        if relation:
            listed = ", ".join(known["relations"]) or "none"
            message = f"unknown relation of {entity.name}; relations: {listed}"
        else:
            parts = [f"fields: {', '.join(known['fields'])}"]
            if known["relations"]:
                parts.append(f"relations: {', '.join(known['relations'])}")
            if known["measures"]:
                parts.append(f"measures: {', '.join(known['measures'])}")
            message = f"unknown field of {entity.name}; " + "; ".join(parts)
        raise ValidationError([FieldError(name, message)], entity.name)

    # -- relations ------------------------------------------------------------------------

    def _relation(
        self,
        entity: EntityType,
        relation: Relation,
        filters: Mapping[str, object],
        segments: tuple[str, ...],
        depth: int,
        key: str,
    ) -> ColumnElement[bool]:
        if depth >= MAX_RELATION_DEPTH:
            raise ValidationError(
                [FieldError(key, f"follows more than {MAX_RELATION_DEPTH} relations in a row")],
                entity.name,
            )
        target = self.op.crm.entity(relation.target)
        model: Any = target.model
        access = self.op.access
        scope = access.condition(model, access.require(f"{target.name}:read"))
        inner_column = getattr(model, relation.inner)
        wheres = [model.deleted_at.is_(None)]
        if scope is not None:
            wheres.append(scope)
        if relation.many:
            wheres.append(inner_column.is_not(None))
        wheres += self.conditions(target, filters, segments=segments, depth=depth + 1)
        inner = select(inner_column).where(*wheres).correlate(None)
        outer = getattr(entity.model, relation.outer)
        if relation.many:
            return outer.in_(inner)  # type: ignore[no-any-return]
        return and_(outer.is_not(None), outer.in_(inner))

    # -- measures -------------------------------------------------------------------------

    def _measure_visible(self, measure: SegmentMeasure) -> bool:
        access = self.op.access
        if access.unrestricted:
            return True
        if measure.permission is not None and access.scope(measure.permission) is None:
            return False
        for qualified in measure.hidden_with:
            entity, _, name = qualified.partition(".")
            if name in access.hidden_fields(entity):
                return False
        return True

    def _measure(
        self, entity: EntityType, measure: SegmentMeasure, key: str, operator: str, value: object
    ) -> ColumnElement[bool]:
        _check_operand(entity, key, value)
        if not self._measure_visible(measure):
            if measure.permission is not None and self.op.access.scope(measure.permission) is None:
                self.op.access.require(measure.permission)  # PermissionDenied, naming it
            raise ValidationError(
                [FieldError(key.partition("__")[0], f"unknown field of {entity.name}")],
                entity.name,
            )
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
        context = MeasureContext(op=self.op, entity=entity.name, model=entity.model, now=self.now)
        expression = measure.expression(context)
        field = CustomField(
            entity=entity.name,
            name=measure.name,
            type=measure.type,
            choices=measure.choices,
            source="measure",
        )
        # PostgreSQL runs a scalar sub-query as a sub-plan per record (and, over a large
        # table, JIT-compiles the statement for it); a look-up by key is a semi-join there:
        # the records whose key is among the keys whose value matches. SQLite keeps the
        # look-up: it probes the key per record, where an IN list is built in full.
        postgres = self.op.session.get_bind().dialect.name == "postgresql"
        lookup = _key_lookup(expression, entity.model.__table__) if postgres else None
        if lookup is not None and not self._matches_missing(entity, field, key, operator, value):
            outer, inner, looked_up = lookup
            condition = self._measure_condition(entity, field, key, operator, value, looked_up)
            semi_join: ColumnElement[bool] = outer.in_(select(inner).where(condition))
            return semi_join
        return self._measure_condition(entity, field, key, operator, value, expression)

    def _matches_missing(
        self, entity: EntityType, field: CustomField, key: str, operator: str, value: object
    ) -> bool:
        """Whether the condition can hold for a record with no value (``empty``, ``= null``):
        a look-up by key then stays a comparison, which a missing row satisfies."""
        if operator == "empty":
            return True
        if operator in ("eq", "ne"):
            return self._measure_operand(field, key, value, entity) is None
        return False

    def _measure_condition(
        self,
        entity: EntityType,
        field: CustomField,
        key: str,
        operator: str,
        value: object,
        expression: Any,
    ) -> ColumnElement[bool]:
        text = field.type in (FieldType.TEXT, FieldType.CHOICE)
        if operator == "empty":
            empty: ColumnElement[bool] = (
                expression.is_(None) | (expression == "") if text else expression.is_(None)
            )
            return empty if _truthy(value) else ~empty
        if operator == "contains":
            if not text:
                raise ValidationError(
                    [FieldError(key, "contains works on text measures only")], entity.name
                )
            return func.lower(expression).contains(str(value).lower(), autoescape=True)
        if operator == "in":
            items = value if isinstance(value, list | tuple | set) else str(value).split(",")
            operands = [self._measure_operand(field, key, item, entity) for item in items]
            return expression.in_(operands) if operands else false()
        operand = self._measure_operand(field, key, value, entity)
        if operand is None and operator not in ("eq", "ne"):
            raise ValidationError(
                [FieldError(key, f"operator {operator!r} needs a value")], entity.name
            )
        return _compare(expression, operator, operand)

    def _measure_operand(
        self, field: CustomField, key: str, value: object, entity: EntityType
    ) -> Any:
        if isinstance(value, str) and field.type in (FieldType.DATE, FieldType.DATETIME):
            moment = relative_time(value, self.now)
            if moment is not None:
                value = moment.date() if field.type is FieldType.DATE else moment
        try:
            result = field.coerce(value)
        except ValueError as error:
            raise ValidationError([FieldError(key, str(error))], entity.name) from None
        if field.type is FieldType.DATETIME and isinstance(result, str):
            return dt.datetime.fromisoformat(result)
        if field.type is FieldType.DATE and isinstance(result, str):
            return dt.date.fromisoformat(result)
        if field.type is FieldType.DECIMAL and result is not None:
            return decimal.Decimal(str(result))
        return result

    # -- relative dates -------------------------------------------------------------------

    def _relative_operands(
        self, entity: EntityType, name: str, operator: str, value: object
    ) -> object:
        """``today-30d`` and the like, as the time (or date) they mean now, for a date or
        time field; anything else as it is."""
        if not isinstance(value, str) or operator in ("empty", "contains", "in"):
            return value
        kind = _time_kind(self.op.crm, entity, name)
        if kind is None:
            return value
        moment = relative_time(value, self.now)
        if moment is None:
            return value
        return moment.date().isoformat() if kind == "date" else moment.isoformat()

    # -- segments -------------------------------------------------------------------------

    def definition(self, name: str) -> tuple[str, Mapping[str, Any]] | None:
        """The entity and filters of segment ``name`` (an override, else the stored one)."""
        if name in self.overrides:
            return self.overrides[name]
        if name not in self._stored:
            row = self.op.session.execute(
                select(SavedSegment.entity, SavedSegment.filters).where(SavedSegment.name == name)
            ).one_or_none()
            self._stored[name] = None if row is None else (row[0], dict(row[1] or {}))
        return self._stored[name]

    def _segment(
        self,
        entity: EntityType,
        key: str,
        operator: str,
        value: object,
        segments: tuple[str, ...],
        depth: int,
    ) -> ColumnElement[bool]:
        self.op.access.require("segment:read")
        if operator not in ("eq", "ne", "in"):
            raise ValidationError(
                [FieldError(key, "segments are compared with =, != (__ne) or in (__in)")],
                entity.name,
            )
        if operator == "in":
            names = value if isinstance(value, list | tuple) else str(value).split(",")
        else:
            names = [value]
        each: list[ColumnElement[bool]] = []
        for raw in names:
            name = str(raw).strip() if raw is not None else ""
            if not name:
                raise ValidationError([FieldError(key, "names no segment")], entity.name)
            if name in segments:
                cycle = " → ".join((*segments[segments.index(name) :], name))
                raise ValidationError(
                    [FieldError(key, f"segments refer to each other in a cycle: {cycle}")],
                    entity.name,
                )
            if len(segments) >= MAX_SEGMENT_DEPTH:
                raise ValidationError(
                    [FieldError(key, f"segments nest more than {MAX_SEGMENT_DEPTH} deep")],
                    entity.name,
                )
            found = self.definition(name)
            if found is None:
                raise ValidationError(
                    [FieldError(key, f"there is no segment named {name!r}")], entity.name
                )
            target, filters = found
            if target != entity.name:
                raise ValidationError(
                    [
                        FieldError(
                            key,
                            f"segment {name!r} is a segment of {target}, not of {entity.name}",
                        )
                    ],
                    entity.name,
                )
            inner = self.conditions(entity, filters, segments=(*segments, name), depth=depth)
            each.append(and_(*inner) if inner else true())
        if operator == "in":
            return or_(*each) if each else false()
        if operator == "ne":
            # NOT (...) would drop records where a condition is NULL (unknown): count them as
            # outside the segment, which they are
            return case((each[0], literal(1)), else_=literal(0)) == 0
        return each[0]


def _check_operand(entity: EntityType, key: str, value: object) -> None:
    """One value, or for ``__in`` a list of them: never a mapping or a nested list."""
    if isinstance(value, Mapping):
        raise ValidationError(
            [FieldError(key, "takes a value, not a mapping (only relations take one)")],
            entity.name,
        )
    if isinstance(value, list | tuple | set):
        if not key.endswith("__in"):
            raise ValidationError(
                [FieldError(key, "takes one value; use FIELD__in for a list")], entity.name
            )
        if any(isinstance(item, Mapping | list | tuple | set) for item in value):
            raise ValidationError(
                [FieldError(key, "a list may hold only text, numbers and true/false")],
                entity.name,
            )


def _short(value: object) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
    return text if len(text) <= 40 else text[:37] + "..."


def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in {"1", "true", "yes"}


def _time_kind(crm: CRM, entity: EntityType, name: str) -> str | None:
    column = entity.columns.get(name)
    if column is not None:
        column_type = column.columns[0].type
        if isinstance(column_type, DateTime | UTCDateTime):
            return "datetime"
        if isinstance(column_type, Date):
            return "date"
        return None
    custom = crm.custom_fields.get(entity.name, {}).get(name)
    if custom is not None and custom.type is FieldType.DATETIME:
        return "datetime"
    if custom is not None and custom.type is FieldType.DATE:
        return "date"
    return None


def is_segment_key(crm: CRM, entity: EntityType, key: str) -> bool:
    """Whether filter ``key`` needs the database to be judged (a segment, a relation or a
    measure) rather than comparing one of the record's own values."""
    name = key.partition("__")[0]
    if name == SEGMENT_KEY or "." in name:
        return True
    if name in entity.columns or name in crm.custom_fields.get(entity.name, {}):
        return False
    return name in relations(crm, entity.name) or name in measures(crm, entity.name)


def values_match(
    op: Operation, entity: EntityType, values: Mapping[str, Any], filters: Mapping[str, object]
) -> bool:
    """Whether a record with ``values`` (flat: built-in and custom fields, as a create
    prepares them; it need not be written yet) matches ``filters``, judged in the database
    with the system's rights: the filters' conditions run against a one-row ``SELECT`` of
    the values standing in for the entity's table. For assignment rules that name
    segments, relations or measures."""
    with op.elevated():  # a rule applies to every record, whoever creates it
        conditions = SegmentCompiler(op).conditions(entity, filters)
    table: Any = entity.model.__table__
    custom_names = op.crm.custom_fields.get(entity.name, {})
    custom = {name: values[name] for name in custom_names if values.get(name) is not None}
    columns = []
    for column in table.columns:
        value = custom if column.key == "custom" else values.get(column.key)
        columns.append(literal(value, type_=column.type).label(column.name))
    row = select(*columns).subquery("candidate")
    # only the entity's own columns stand for the candidate row (``accounts.id`` in a
    # relation's subquery is not ``contacts.id``)
    adapter = ClauseAdapter(
        row,
        adapt_on_names=True,
        include_fn=lambda element: getattr(element, "table", None) is table,
    )
    adapted = [adapter.traverse(condition) for condition in conditions]
    found = op.session.scalar(select(literal(1)).select_from(row).where(*adapted))
    return found is not None


def filter_conditions(
    op: Operation, entity: EntityType, filters: Mapping[str, object], *, explain: bool = False
) -> list[ColumnElement[bool]]:
    """SQL conditions of ``filters`` (the segment language) on ``entity`` for ``op``'s
    actor. See :class:`SegmentCompiler`."""
    return SegmentCompiler(op, explain=explain).conditions(entity, filters)
