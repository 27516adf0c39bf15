"""The record service: create, read, update, soft-delete and list any entity, core or plugin.

This is the one write path. Every interface (Python, CLI, import, API) goes through it, so
validation, normalisation, hooks, events and (later) permissions cannot drift between them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from attrs import define, field, frozen
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    bindparam,
    false,
    func,
    insert,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError

from crmkit.db.base import UTCDateTime, utcnow
from crmkit.db.engine import allocate_ids, bulk_insert
from crmkit.entities.custom_fields import FieldType
from crmkit.entities.organisation import User
from crmkit.entities.registry import SYSTEM_COLUMNS, EntityType
from crmkit.errors import (
    ConflictError,
    CRMError,
    FieldError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from crmkit.events.payloads import to_json
from crmkit.events.types import Event
from crmkit.permissions.catalogue import ASSIGNABLE
from crmkit.permissions.models import Scope
from crmkit.services import collisions
from crmkit.services.cells import MAX_PAGE
from crmkit.services.disclosure import disclosed_matches
from crmkit.services.operation import Operation
from crmkit.services.queries import (
    RECORD_ID,
    build_search,
    decode_cursor,
    encode_cursor,
    field_expression,
    keyset_after,
    order_clauses,
    scope_condition,
    visible,
    visible_by_id,
)
from crmkit.services.segment_filters import SegmentCompiler
from crmkit.services.uniqueness import check_unique, unique_values_race
from crmkit.services.views import Record

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.assignment import PendingCreate

#: The Python type of each custom field type's SQL sort expression (the rest sort as text).
_CUSTOM_SORT_TYPES: dict[FieldType, type] = {
    FieldType.NUMBER: int,
    FieldType.DECIMAL: decimal.Decimal,
    FieldType.BOOLEAN: bool,
}
#: On SQLite, a scoped list sorted by the id or an indexed column walks that index when the
#: actor's scope covers at least this share of the team tree (``Access.share``), and reads
#: the visible rows through the owner and team indexes below it. The walk reads about
#: ``page ÷ share`` rows; the index plan collects and sorts ``share × records`` rows. They
#: cost the same at about ``share = sqrt(page ÷ records)``: 0.7 % for a page of 50 among
#: 1 M records (measured: 1.8 % of 1 M walks 5-10 × faster, 0.4 % about as fast as the
#: index plan, bench/scope_bench.py). 1 % keeps a leaf team of a large tree on the index
#: plan; on small tables both plans take milliseconds.
WALK_SHARE = 0.01
#: A scoped page is read as one top-N per team of the scope plus one for the actor's own
#: records (``RecordService._union_page``) when the scope reaches at most this many
#: branches' worth of teams and few enough of the tree (``_branch_teams``).
MAX_SCOPE_BRANCHES = 32
#: What reading a row by its id costs against reading the next row of an index or table
#: walk, per dialect, in ``RecordService._branch_teams``'s estimate. SQLite, 1 M contacts:
#: ≈ 1 µs against ≈ 0.25 µs. PostgreSQL: 1, because what weighs there is planning one
#: subquery per branch; measured, a manager of 21 teams of 341 reads a page by name in
#: 1.06-1.20 × the unscoped time with the single query, 1.27-1.42 × with 22 branches.
LOOKUP_COST = {"sqlite": 4}
#: From this many rows on, a bulk insert takes its ids first (``allocate_ids``) and runs a
#: plain ``executemany``; smaller ones (a single create) use ``INSERT ... RETURNING``.
_ALLOCATE_IDS_FROM = 2


@frozen
class Page:
    """One page of a list and the cursor of the next (``None`` on the last page)."""

    items: list[Any]
    next_cursor: str | None


@frozen
class RowError:
    """Why one input row was not imported: its line, the field, and the reason."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.field}" if self.field else "")
        return f"{where}: {self.message}"


@define
class BulkResult:
    """What a bulk create did: the new ids (in input order) and every rejected row."""

    ids: list[int] = field(factory=list)
    errors: list[RowError] = field(factory=list)
    #: Rows imported but flagged as possible duplicates (a ``warn`` rule or a collision).
    warnings: list[RowError] = field(factory=list)

    @property
    def created(self) -> int:
        """How many records were created."""
        return len(self.ids)


class BulkRejected(CRMError):
    """``all_or_nothing`` was asked and some rows were bad: nothing was written."""

    title = "Import rejected"

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        super().__init__(
            f"{len(self.errors)} bad row(s), nothing imported; first: {self.errors[0]}"
        )


class RecordService:
    """Create, read, update, delete and list records of one entity.

    Bound to a CRM, each call is its own transaction; bound to an :class:`Operation` (from
    ``op.records(name)``), calls join that operation's transaction. ``elevated`` (only with
    an operation: ``op.records(name, elevated=True)``) runs the calls with the system's
    rights instead of the actor's scope.
    """

    def __init__(
        self,
        crm: CRM,
        entity: EntityType,
        *,
        op: Operation | None = None,
        elevated: bool = False,
    ) -> None:
        if elevated and op is None:
            raise CRMError(
                "elevated record access needs an operation: use op.records(name,"
                " elevated=True) inside a hook or a `with crm.transaction() as op` block"
            )
        self.crm = crm
        self.entity = entity
        self.model: Any = entity.model
        self.table: Table = entity.model.__table__  # type: ignore[assignment]
        self.op = op
        self.elevated = elevated

    @property
    def name(self) -> str:
        """The entity name (``contact``, ``deal``, ...)."""
        return self.entity.name

    @contextmanager
    def _operation(self, actor: User | None, *, write: bool = True) -> Iterator[Operation]:
        if self.op is not None and self.elevated:
            with self.op.elevated():
                yield self.op
        elif self.op is not None:
            yield self.op
        else:
            with self.crm.transaction(actor, write=write) as op:
                yield op

    # -- create ----------------------------------------------------------------------------

    def create(self, data: Mapping[str, object], *, actor: User | None = None) -> Any:
        """Validate, normalise and insert one record; return it.

        Raises ``ValidationError`` naming every bad field, or ``PluginError`` when a plugin
        refuses it; nothing is written then.
        """
        with self._operation(actor) as op:
            values = self._prepare_new(op, data)
            from crmkit.services.assignment import operation_state

            pending = operation_state(op).pending.get(id(values))
            self._check_references(op, [values])
            with unique_values_race(self.name):
                (record_id,) = self._insert(op, [values])
            self._created(op, record_id, values)
            self._audit_created(op, [(record_id, values)])
            self._after_create_many(op, [(record_id, values)])
            record = self.view(op, op.session.get(self.model, record_id))
            return self._with_warnings(op, record, pending)

    def create_many(
        self,
        rows: Iterable[tuple[int, Mapping[str, object]]],
        *,
        actor: User | None = None,
        all_or_nothing: bool = False,
        batch_size: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> BulkResult:
        """Create many records in one transaction; ``rows`` are ``(line, data)`` pairs.

        Good rows are created and each bad row is reported with its line, field and reason;
        with ``all_or_nothing`` a single bad row rejects the whole batch (``BulkRejected``) and
        nothing is written. Every row gets the same validation, hooks and events as
        :meth:`create`.
        """
        result = BulkResult()
        with self._operation(actor) as op:
            op.access.require(self.entity.permission("create"))  # none at all: refuse the lot
            batch: list[tuple[int, dict[str, Any]]] = []
            keys: set[tuple[str, str]] = set()  # the batch's e-mails and phones
            checked = self.name in collisions.CHECKED_ENTITIES

            def flush() -> None:
                nonlocal batch, keys
                self._insert_batch(op, batch, result)
                if progress:
                    progress(len(batch))
                batch, keys = [], set()

            for line, data in rows:
                try:
                    values = self._prepare_new(op, data, check_duplicates=False)
                except ValidationError as error:
                    result.errors.extend(RowError(line, e.field, e.message) for e in error.errors)
                    continue
                except CRMError as error:
                    result.errors.append(RowError(line, None, str(error)))
                    continue
                if checked:
                    row_keys = {(c, str(values[c])) for c in ("email", "phone") if values.get(c)}
                    if row_keys & keys:
                        # an earlier row of this batch has the same e-mail or phone: write the
                        # batch first, so the duplicate check sees that row as a record
                        flush()
                    keys |= row_keys
                batch.append((line, values))
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
            if all_or_nothing and result.errors:
                result.errors.sort(key=lambda e: e.line)
                raise BulkRejected(result.errors)
        result.errors.sort(key=lambda e: e.line)
        return result

    def _insert_batch(
        self, op: Operation, batch: list[tuple[int, dict[str, Any]]], result: BulkResult
    ) -> None:
        batch = self._check_duplicates_batch(op, batch, result)
        lines = [line for line, _ in batch]
        bad = self._check_references(op, [values for _, values in batch], lines=lines)
        result.errors.extend(bad)
        bad_lines = {error.line for error in bad}
        good = [(line, values) for line, values in batch if line not in bad_lines]
        created: list[tuple[int, Mapping[str, Any]]] = []  # by the batched insert
        one_by_one: list[tuple[int, Mapping[str, Any]]] = []  # by the one-row path
        if good and not self._has_after_create_rules():
            try:
                with op.session.begin_nested():
                    ids = self._insert(op, [values for _, values in good])
            except IntegrityError:
                pass  # a row the database refused: find it below, one row at a time
            else:
                # no after-create rule can change the values: the audit entries are made
                # from the events' payloads, already in JSON form (one conversion, not two)
                payloads: list[tuple[int, Mapping[str, Any]]] = []
                for (_, values), record_id in zip(good, ids, strict=True):
                    payloads.append((record_id, self._created(op, record_id, values).payload))
                    result.ids.append(record_id)
                    created.append((record_id, values))
                self._audit_created(op, payloads, json_ready=True)
                good = []
        for line, values in good:
            mark = len(op.events)
            try:
                with op.session.begin_nested():
                    (record_id,) = self._insert(op, [values])
                    self._created(op, record_id, values)
            except IntegrityError as error:
                del op.events[mark:]
                result.errors.append(RowError(line, None, _integrity_reason(error)))
            except CRMError as error:
                del op.events[mark:]
                result.errors.append(RowError(line, None, str(error)))
            else:
                result.ids.append(record_id)
                one_by_one.append((record_id, values))
        self._audit_created(op, one_by_one)
        self._after_create_many(op, created + one_by_one)
        op.write_events()

    def _after_create_many(self, op: Operation, created: list[tuple[int, Any]]) -> None:
        """The batch hook, once for the records one create or one import batch made."""
        if created and self.crm.host.implemented("crmkit_after_create_many"):
            self.crm.host.call("crmkit_after_create_many", op=op, entity=self.name, records=created)

    def _check_duplicates_batch(
        self, op: Operation, batch: list[tuple[int, dict[str, Any]]], result: BulkResult
    ) -> list[tuple[int, dict[str, Any]]]:
        """The duplicate check and collision policy of an import batch: a blocked row is a
        row error; the fallback check is one query per batch, not one per row."""
        if self.name not in collisions.CHECKED_ENTITIES or not batch:
            return batch
        found = collisions.find_duplicates_many(op, self.name, batch)
        if not found:
            return batch
        from crmkit.services.assignment import operation_state

        pending = operation_state(op).pending
        kept: list[tuple[int, dict[str, Any]]] = []
        for line, values in batch:
            try:
                outcome = collisions.judge(op, self.name, values, found.get(line, []))
            except CRMError as error:
                pending.pop(id(values), None)
                result.errors.append(RowError(line, None, str(error)))
                continue
            if outcome.warnings or outcome.collisions:
                previous = pending.get(id(values))
                outcome.decision = previous.decision if previous else None
                pending[id(values)] = outcome
                shown = disclosed_matches(
                    op, self.name, list(dict.fromkeys((*outcome.warnings, *outcome.collisions)))
                )
                result.warnings.append(
                    RowError(
                        line,
                        None,
                        "possible duplicate: " + ", ".join(m.describe() for m in shown),
                    )
                )
            kept.append((line, values))
        return kept

    def _with_warnings(self, op: Operation, record: Any, pending: PendingCreate | None) -> Any:
        """``record`` carrying the write's duplicate warnings as the actor may see them."""
        if pending is None or not pending.warnings:
            return record
        return record.with_warnings(tuple(disclosed_matches(op, self.name, pending.warnings)))

    def _has_after_create_rules(self) -> bool:
        overridden = type(self).after_create is not RecordService.after_create
        return overridden or self.crm.host.implemented("crmkit_after_create")

    def _prepare_new(
        self, op: Operation, data: Mapping[str, object], *, check_duplicates: bool = True
    ) -> dict[str, Any]:
        from crmkit.services.assignment import PendingCreate, assign_new, operation_state

        access = op.access
        scope = access.require(self.entity.permission("create"))
        if not access.unrestricted:
            access.check_writable(self.name, data)
        preparer = self.crm.preparer(self.name)
        columns, custom = preparer.prepare(data, creating=True)
        writable = preparer.writable
        decision = None
        if "owner_id" in writable and columns.get("owner_id") is None:
            # no owner given: the assignment rules decide, else the actor owns it
            decision = assign_new(op, self.name, {**columns, **custom})
            if decision is not None:
                columns["owner_id"] = decision.user_id
                if columns.get("team_id") is None:
                    columns["team_id"] = decision.team_id
            else:
                columns["owner_id"] = op.actor_id
        if "team_id" in writable and columns.get("team_id") is None and op.actor:
            columns["team_id"] = op.actor.team_id
        # an owner a rule chose is the admins' decision, not the actor's: only an owner the
        # actor gave (or the actor) must lie within their create scope. A child's own owner
        # and team reach no one: its parent must (``_check_references``).
        if (
            decision is None
            and self.entity.parent is None
            and not (
                access.covers(scope, columns.get("owner_id"), columns.get("team_id"))
                and access.covers_team(scope, columns.get("team_id"))
            )
        ):
            raise PermissionDenied(
                f"{access.username} may not create a {self.name} for another owner or team"
                f" ({self.name}:create covers {scope.value} records)"
            )
        values: dict[str, Any] = {**columns, **custom}
        check_unique(op, self.name, values, None)
        self.before_create(op, values)
        if self.crm.host.implemented("crmkit_before_create"):
            self.crm.host.call("crmkit_before_create", op=op, entity=self.name, values=values)
        pending = PendingCreate(decision=decision)
        if check_duplicates and self.name in collisions.CHECKED_ENTITIES:
            matches = collisions.find_duplicates(op, self.name, values, None)
            pending = collisions.judge(op, self.name, values, matches)
            pending.decision = decision
        if decision is not None or pending.warnings or pending.collisions:
            operation_state(op).pending[id(values)] = pending
        return values

    def _insert(self, op: Operation, rows: list[dict[str, Any]]) -> list[int]:
        now = utcnow()
        writable = self.crm.preparer(self.name).writable
        custom_names = self.crm.custom_fields[self.name]
        constants, factories = _insert_defaults(self.table)
        params = []
        for values in rows:
            row = constants.copy()
            for key, factory in factories:
                row[key] = factory()
            custom: dict[str, Any] = {}
            for key, value in values.items():
                if key in writable:
                    row[key] = value
                elif key in custom_names:
                    if value is not None:
                        custom[key] = value
                else:
                    raise CRMError(f"a hook set unknown field {key!r} on a new {self.name}")
            row.update(
                custom=custom,
                created_at=now,
                updated_at=now,
                created_by_id=op.actor_id,
                updated_by_id=op.actor_id,
                version=1,
                deleted_at=None,
            )
            params.append(row)
        ids = None
        if len(params) >= _ALLOCATE_IDS_FROM:
            ids = allocate_ids(op.session.connection(), self.table, len(params))
        if ids is None:
            statement = insert(self.table).returning(self.table.c.id, sort_by_parameter_order=True)
            return list(op.session.scalars(statement, params))
        for row, record_id in zip(params, ids, strict=True):
            row["id"] = record_id
        bulk_insert(op.session.connection(), self.table, params)  # no RETURNING: COPY or
        return ids  # a plain executemany

    def _created(self, op: Operation, record_id: int, values: dict[str, Any]) -> Event:
        """Emit ``<entity>.created`` and run the after-create rules and hooks; the event."""
        from crmkit.services.assignment import note_owner_change, operation_state

        pending = operation_state(op).pending.pop(id(values), None) if values else None
        values["id"] = record_id
        event = op.emit(f"{self.name}.created", values, record_type=self.name, record_id=record_id)
        if pending is not None:
            if pending.decision is not None:
                decision = pending.decision
                note_owner_change(
                    op,
                    self.name,
                    record_id,
                    None,
                    decision.user_id,
                    reason="rule",
                    detail=f"rule {decision.rule} ({decision.strategy}): {decision.reason}",
                )
            collisions.flag(op, self.name, record_id, pending)
        self.after_create(op, record_id, values)
        if self.crm.host.implemented("crmkit_after_create"):
            self.crm.host.call(
                "crmkit_after_create", op=op, entity=self.name, record_id=record_id, values=values
            )
        return event

    def _check_references(
        self, op: Operation, rows: list[dict[str, Any]], lines: Sequence[int] | None = None
    ) -> list[RowError]:
        """Every foreign key must name a live record, and a record of an entity the actor may
        read (one outside their read scope does not exist for them); a bad one is a field
        error. A child's parent must moreover be one the actor may change (``<parent>:update``
        covers it): adding, changing or moving a child changes its parent's file."""
        errors: list[RowError] = []
        link = self.entity.parent
        for column in self.table.columns:
            if not column.foreign_keys or column.key in SYSTEM_COLUMNS:
                continue
            wanted = {row[column.key] for row in rows if row.get(column.key) is not None}
            if not wanted:
                continue
            target = next(iter(column.foreign_keys)).column.table
            query = select(target.c.id).where(target.c.id.in_(wanted))
            if "deleted_at" in target.c:
                query = query.where(target.c.deleted_at.is_(None))
            linked = next(
                (e for e in self.crm.entities.values() if e.model.__table__ is target), None
            )
            condition = self._reach(op, linked, "read")
            found = set(op.session.scalars(query if condition is None else query.where(condition)))
            unchangeable: set[Any] = set()
            if linked is not None and link is not None and column.key == link.column:
                condition = self._reach(op, linked, "update")
                if condition is not None:
                    unchangeable = found - set(op.session.scalars(query.where(condition)))
            missing = wanted - found
            if not missing and not unchangeable:
                continue
            for index, row in enumerate(rows):
                value = row.get(column.key)
                if value in missing:
                    message = f"{_entity_word(target.name)} {value} does not exist"
                    if lines is None:
                        raise ValidationError([FieldError(column.key, message)], self.name)
                    errors.append(RowError(lines[index], column.key, message))
                elif value in unchangeable:
                    assert linked is not None
                    message = (
                        f"{op.access.username} may not file a {self.name} under"
                        f" {linked.name} {value} ({linked.permission('update')} does not"
                        " cover it)"
                    )
                    if lines is None:
                        raise PermissionDenied(message)
                    errors.append(RowError(lines[index], column.key, message))
        return errors

    def _reach(
        self, op: Operation, entity: EntityType | None, action: str
    ) -> ColumnElement[bool] | None:
        """The records of ``entity`` the actor reaches with ``action``, as a condition
        (``None``: all; ``false()`` without the permission); ``None`` for a table that is
        not an entity (users, teams)."""
        access = op.access
        if entity is None or access.unrestricted:
            return None
        if access.scope(entity.permission(action)) is None:
            return false()
        return scope_condition(access, self.crm.entities, entity, action)

    # -- read ------------------------------------------------------------------------------

    def get(self, record_id: int, *, actor: User | None = None) -> Any:
        """The record with ``record_id``; ``NotFoundError`` if it does not exist, was deleted
        or is outside the actor's scope."""
        with self._operation(actor, write=False) as op:
            return self.view(op, self._load(op, record_id))

    def view(self, op: Operation, record: Any, *, hidden: frozenset[str] | None = None) -> Record:
        """A read-only snapshot of ``record`` without the fields hidden from the actor
        (``hidden``: those fields, when the caller already has them for many records)."""
        if hidden is None:
            hidden = self._hidden(op)
        loaded = record.__dict__  # a loaded column's value, without the descriptor's work
        values = {
            key: loaded[key] if key in loaded else getattr(record, key)
            for key in self.entity.columns
            if key != "custom" and key not in hidden
        }
        custom = record.custom or {}
        values["custom"] = (
            {k: v for k, v in custom.items() if k not in hidden} if hidden else dict(custom)
        )
        return Record(self.name, values)

    def _hidden(self, op: Operation) -> frozenset[str]:
        access = op.access
        return frozenset() if access.unrestricted else access.hidden_fields(self.name)

    def _load(
        self, op: Operation, record_id: int, *, for_update: bool = False, action: str = "read"
    ) -> Any:
        query = visible_by_id(op, self.entity, action)
        if for_update:
            query = query.with_for_update()
        record = op.session.scalars(query, {RECORD_ID: record_id}).one_or_none()
        if record is None:
            raise NotFoundError(self.name, record_id)
        return record

    def _query(
        self,
        op: Operation,
        filters: Mapping[str, object] | None,
        search: str | None,
        action: str = "read",
        *,
        unindexed: bool = False,
    ) -> Any:
        query = visible(op, self.entity, action, unindexed=unindexed)
        conditions = self._filter_conditions(op, filters, search)
        return query.where(*conditions) if conditions else query

    def _filter_conditions(
        self, op: Operation, filters: Mapping[str, object] | None, search: str | None
    ) -> list[ColumnElement[bool]]:
        """The conditions of ``filters`` and ``search`` (not the scope, not the soft delete)."""
        hidden = op.access.hidden_fields(self.name) if not op.access.unrestricted else frozenset()
        conditions: list[ColumnElement[bool]] = []
        if filters:
            conditions.extend(SegmentCompiler(op).conditions(self.entity, filters))
        if search and search.strip():
            conditions.append(build_search(self.entity, search, hidden))
        return conditions

    def list(
        self,
        filters: Mapping[str, object] | None = None,
        *,
        search: str | None = None,
        sort: str = "id",
        limit: int = 50,
        cursor: str | None = None,
        actor: User | None = None,
    ) -> Page:
        """A page of records matching ``filters`` (see :func:`build_filters`) and ``search``,
        sorted by ``sort`` (``"-amount"`` for descending), ``limit`` per page; pass the
        returned ``next_cursor`` to get the next page."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError([FieldError("limit", f"must be between 1 and {MAX_PAGE}")])
        descending = sort.startswith("-")
        sort_field = sort.lstrip("-")
        preparer = self.crm.preparer(self.name)
        expression = field_expression(self.entity, preparer, sort_field)  # hidden: see below
        if sort_field == "id":
            expression = self.model.id
        column = self.entity.columns.get(sort_field)
        nullable = column is None or bool(column.columns[0].nullable)
        custom = preparer.custom_fields.get(sort_field)
        if custom is not None and custom.type is FieldType.MULTI_CHOICE:
            raise ValidationError(
                [FieldError(sort_field, "a multi-choice field cannot be sorted on")]
            )
        with self._operation(actor, write=False) as op:
            if not op.access.unrestricted:
                field_expression(
                    self.entity, preparer, sort_field, op.access.hidden_fields(self.name)
                )
            keyset: tuple[Any, int] | None = None
            if cursor:
                value, last_id = decode_cursor(cursor, 2)
                if not isinstance(last_id, int):
                    raise ValidationError(
                        [FieldError("cursor", "is not a cursor this list returned")]
                    )
                keyset = (self._cursor_operand(sort_field, value), last_id)
            teams = self._branch_teams(op, sort_field)
            params: dict[str, Any] = {}
            if teams:
                query, params = self._union_page(
                    op, filters, search, teams, sort_field, keyset, descending, nullable, limit
                )
            else:
                query = self._query(
                    op, filters, search, unindexed=self._walk_sort_index(op, sort_field)
                )
                if keyset is not None:
                    query = query.where(
                        keyset_after(
                            expression, self.model.id, descending, *keyset, nullable=nullable
                        )
                    )
                query = query.order_by(
                    *order_clauses(expression, self.model.id, descending, nullable=nullable)
                ).limit(limit + 1)
            rows = list(op.session.scalars(query, params))
            next_cursor = None
            if len(rows) > limit:
                rows = rows[:limit]
                last = rows[-1]
                next_cursor = encode_cursor([self._sort_value(last, sort_field), last.id])
            hidden = self._hidden(op)
            items = [self.view(op, row, hidden=hidden) for row in rows]
        return Page(items=items, next_cursor=next_cursor)

    def _branch_teams(self, op: Operation, sort_field: str) -> tuple[int, ...]:
        """The teams of a scoped page read as one top-N per team plus one of the actor's
        own records (:meth:`_union_page`); empty when the page is better read as one query.

        Only when the table has an index on ``(team_id, sort)`` and one on ``(owner_id,
        sort)`` (on SQLite an index on ``team_id`` alone serves the id order: it ends with
        the rowid); without them a branch would collect and sort all its team's rows. Then
        by the rows each plan reads for one row of the page: the ``k + 1`` branches read
        ``k + 1``, the single query about ``1 ÷ share`` with ``share = k ÷ teams in the
        tree`` (the walk of the sort order's index, on SQLite and in PostgreSQL's plan),
        each weighed by :data:`LOOKUP_COST` where it is a row looked up by its id rather
        than the next entry of the index being read: a walk sorted by anything but the id
        looks up every row it passes, and a branch every row it returns unless its index
        covers it (holds the id and ``deleted_at`` too).
        At most :data:`MAX_SCOPE_BRANCHES` branches."""
        access = op.access
        if access.unrestricted or access.user_id is None or self.entity.parent is not None:
            return ()  # a child's scope is its parent's: no team branches of its own
        scope = access.scope(f"{self.name}:read")
        if scope is None:
            return ()
        teams = access.teams(scope)
        k = len(teams)
        if not teams or k + 1 > MAX_SCOPE_BRANCHES:
            return ()
        dialect = op.session.get_bind().dialect.name
        served = min(
            _branch_index(self.table, lead, sort_field, dialect) for lead in ("team_id", "owner_id")
        )
        if served is _Served.NO:
            return ()
        lookup = LOOKUP_COST.get(dialect, 1)
        walk = 1 if sort_field == "id" else lookup
        branch = 1 if served is _Served.COVERED else lookup
        if (k + 1) * branch * k >= access.team_count * walk:
            return ()
        return tuple(sorted(teams))

    def _union_page(
        self,
        op: Operation,
        filters: Mapping[str, object] | None,
        search: str | None,
        teams: Sequence[int],
        sort_field: str,
        keyset: tuple[Any, int] | None,
        descending: bool,
        nullable: bool,
        limit: int,
    ) -> tuple[Any, dict[str, Any]]:
        """A scoped page as the first ``limit + 1`` of a ``UNION ALL`` of one top-N per team of
        the scope and one of the actor's own records; the statement and its parameters.

        Each branch is the list's own query (live records, the filters, the search, the
        cursor's keyset bound) restricted to one team, or to the actor's own records,
        instead of the whole scope, ordered and limited like the page, so that it reads
        ``limit + 1`` entries of an index on ``(team_id, sort)`` / ``(owner_id, sort)`` in
        order. The branches return the id and the sort value, and ``UNION ALL`` keeps a
        record found twice (an own record in a team of the scope: only the owner's branch
        overlaps the others, so no record comes more than twice, next to itself in the
        order); the outer query takes the first ``2 × (limit + 1)`` ids in the page's
        order, which hold the first ``limit + 1`` distinct ones (``IN`` drops the
        repeats), and reads those records, ordered and limited again. (Dropping the
        repeats with ``UNION`` cost twice the whole union on SQLite.) Every record of the
        page is among the first ``limit + 1`` of its branch, so the page is the one the
        single query gives (tests/test_scoped_union.py).

        Without filters and search the statement depends only on the sort, the number of
        teams and the cursor's shape, with every value a parameter: it is built once and
        kept, since building it cost more than running it."""
        after_null = keyset is not None and keyset[0] is None
        key = (self.table, sort_field, descending, nullable, len(teams), keyset is None, after_null)
        cacheable = not filters and not (search and search.strip())
        query = _UNION_PAGES.get(key) if cacheable else None
        if query is None:
            model: Any = self.model
            conditions = [model.deleted_at.is_(None)]
            if not cacheable:
                conditions += self._filter_conditions(op, filters, search)
            expression: ColumnElement[Any] = (
                model.id if sort_field == "id" else getattr(model, sort_field)
            )
            if keyset is not None:
                value = None if after_null else bindparam("after_value", type_=expression.type)
                conditions.append(
                    keyset_after(
                        expression,
                        model.id,
                        descending,
                        value,
                        bindparam("after_id", type_=Integer),  # type: ignore[arg-type]
                        nullable=nullable,
                    )
                )
            by_id = sort_field == "id"
            columns = [model.id.label("id")] + ([] if by_id else [expression.label("sort")])
            order = order_clauses(expression, model.id, descending, nullable=nullable)
            # the limits are written into the SQL (still one statement per page size): with
            # them as parameters PostgreSQL re-planned the union on every call, as its
            # generic plan could not know the branches are short (L3: 1.18 → 0.74 ms bare)
            page = bindparam("page", type_=Integer, literal_execute=True)
            scope = [self.table.c.team_id == bindparam(f"team_{i}") for i in range(len(teams))]
            scope.append(self.table.c.owner_id == bindparam("me"))
            # SQLite takes no ORDER BY / LIMIT in a member of a compound SELECT: each branch
            # is wrapped in a sub-select, its columns named (collecting ``.c`` costs)
            names: list[ColumnElement[Any]] = [literal_column("id")]
            if not by_id:
                names.append(literal_column("sort"))
            found = union_all(
                *(
                    select(*names).select_from(
                        select(*columns)
                        .where(*conditions, branch)
                        .order_by(*order)
                        .limit(page)
                        .subquery()
                    )
                    for branch in scope
                )
            ).subquery("scoped")
            first = (
                select(found.c.id)
                .order_by(
                    *order_clauses(
                        found.c.id if by_id else found.c.sort,
                        found.c.id,
                        descending,
                        nullable=nullable,
                    )
                )
                .limit(bindparam("window", type_=Integer, literal_execute=True))
            )
            query = select(model).where(model.id.in_(first)).order_by(*order).limit(page)
            if cacheable:
                if len(_UNION_PAGES) >= 512:
                    _UNION_PAGES.clear()
                _UNION_PAGES[key] = query
        params: dict[str, Any] = {f"team_{i}": team for i, team in enumerate(teams)}
        params["me"] = op.access.user_id
        params["page"] = limit + 1
        params["window"] = 2 * (limit + 1)
        if keyset is not None:
            params["after_id"] = keyset[1]
            if not after_null:
                params["after_value"] = keyset[0]
        return query, params

    def _walk_sort_index(self, op: Operation, sort_field: str) -> bool:
        """Whether a scoped page should walk the sort order's index and filter by the scope
        (SQLite only; see :data:`WALK_SHARE` and docs/decisions.md).

        SQLite answers ``owner_id = ? OR team_id IN (...)`` from the owner and team indexes
        whenever it can: it collects every visible row, sorts them and keeps one page, so the
        wider the actor's scope the slower the page (150 ms for a manager seeing 7 % of 1 M
        contacts). Walking the sort's index reads about ``page ÷ share`` rows instead, which
        is better once the scope reaches more than a small share of the records."""
        if op.session.get_bind().dialect.name != "sqlite":
            return False  # PostgreSQL weighs the LIMIT against both plans itself
        access = op.access
        scope = access.scope(f"{self.name}:read")
        if scope is None or scope is Scope.ALL or access.unrestricted or self.entity.parent:
            return False  # no condition (of its own, for a child) to walk past
        if access.share(scope) < WALK_SHARE:
            return False
        return sort_field in _sort_indexes(self.table)

    def _sort_value(self, record: Any, name: str) -> Any:
        if name in self.entity.columns:
            return to_json(getattr(record, name))
        return record.custom.get(name)

    def _cursor_operand(self, name: str, raw: Any) -> Any:
        """The sort value a cursor carries, typed as its SQL expression compares; a value
        of another type (a tampered or foreign cursor) is a ``ValidationError``, not a
        database error."""
        if raw is None:
            return None
        custom = self.crm.custom_fields[self.name].get(name)
        if custom is not None:
            # custom values compare in their stored (JSON) form; decimals as NUMERIC
            python_type = _CUSTOM_SORT_TYPES.get(custom.type, str)
        else:
            column_type = self.entity.columns[name].columns[0].type
            # a TypeDecorator reports ``object`` as its python_type
            utc = isinstance(column_type, UTCDateTime)
            python_type = dt.datetime if utc else column_type.python_type
        try:
            if python_type is dt.datetime:
                value = dt.datetime.fromisoformat(raw)
                if value.tzinfo is not None:
                    return value
            elif python_type is dt.date:
                return dt.date.fromisoformat(raw)
            elif python_type is decimal.Decimal:
                number = decimal.Decimal(raw) if isinstance(raw, str) else None
                if number is not None and number.is_finite():
                    return number
            elif isinstance(raw, python_type) and not (
                python_type is int and isinstance(raw, bool)
            ):
                return raw
        except (ValueError, TypeError, decimal.InvalidOperation):
            pass
        raise ValidationError([FieldError("cursor", "is not a cursor this list returned")])

    def count(
        self,
        filters: Mapping[str, object] | None = None,
        *,
        search: str | None = None,
        actor: User | None = None,
    ) -> int:
        """How many records match; always equal to the number ``list`` pages through."""
        with self._operation(actor, write=False) as op:
            return self._count(op, filters, search)

    def _count(
        self,
        op: Operation,
        filters: Mapping[str, object] | None,
        search: str | None,
        action: str = "read",
    ) -> int:
        query = self._query(op, filters, search, action)
        counted = select(func.count()).select_from(query.subquery())
        return int(op.session.scalar(counted) or 0)

    def ids_query(
        self,
        filters: Mapping[str, object] | None = None,
        *,
        search: str | None = None,
        actor: User | None = None,
    ) -> Select[Any]:
        """``SELECT id`` of the live records the actor may read that match ``filters`` and
        ``search`` (as :meth:`list` and :meth:`count` find them), to use inside a query of
        your own: a plugin targets "the contacts this filter names, as this user sees them"
        set-based (``CampaignMember.contact_id IN op.records("contact").ids_query({...})``).
        An unknown field or operator is a ``ValidationError`` naming it, raised here."""
        with self._operation(actor, write=False) as op:
            query: Select[Any] = self._query(op, filters, search)
            return query.with_only_columns(self.model.id)

    def iterate(
        self,
        filters: Mapping[str, object] | None = None,
        *,
        search: str | None = None,
        actor: User | None = None,
        batch_size: int = 1000,
        action: str = "read",
    ) -> Iterator[Record]:
        """Stream every matching record in id order, in one read transaction."""
        with self._operation(actor, write=False) as op:
            query = self._query(op, filters, search, action).order_by(self.model.id)
            hidden = self._hidden(op)
            for record in op.session.scalars(query.execution_options(yield_per=batch_size)):
                yield self.view(op, record, hidden=hidden)

    def export(
        self,
        filters: Mapping[str, object] | None = None,
        *,
        search: str | None = None,
        actor: User | None = None,
    ) -> Iterator[Record]:
        """Stream the records an export may take: ``<entity>:export`` and its scope.

        An export is a sensitive operation: before the first record is read it is written to
        the audit log (who, which entity, which filters), ``security.sensitive_operation`` is
        emitted and admins are notified — in its own committed transaction, so an export that
        fails half-way is still on record."""
        with self.crm.transaction(actor) as op:
            op.access.require(self.entity.permission("export"))
            count = self._count(op, filters, search, "export")
            from crmkit.permissions.audit import flag_sensitive

            flag_sensitive(
                op,
                "export",
                entity=self.name,
                detail=f"export of {count} {self.name} record(s)",
                facts={"filters": dict(filters or {}), "search": search, "count": count},
            )
        return self.iterate(filters, search=search, actor=actor, action="export")

    # -- update and delete -----------------------------------------------------------------

    def snapshot(self, record: Any) -> dict[str, Any]:
        """The record's field values as a flat dict (built-in and custom fields)."""
        values = {key: getattr(record, key) for key in self.entity.columns if key != "custom"}
        values.update(record.custom or {})
        return values

    def update(
        self,
        record_id: int,
        changes: Mapping[str, object],
        *,
        expected_version: int | None = None,
        actor: User | None = None,
    ) -> Any:
        """Change fields of a record; return it.

        With ``expected_version`` (the version the caller read) a record changed since then
        raises ``ConflictError`` instead of overwriting someone else's change.
        """
        from crmkit.permissions.audit import audit_rows
        from crmkit.services.assignment import note_owner_change

        with self._operation(actor) as op:
            record = self._load(op, record_id, for_update=True, action="update")
            self._check_version(record, expected_version)
            if not op.access.unrestricted:
                op.access.check_writable(self.name, changes)
            columns, custom = self.crm.preparer(self.name).prepare(changes, creating=False)
            check_unique(op, self.name, custom, record_id)
            previous = self.snapshot(record)
            changed = {
                key: value
                for key, value in {**columns, **custom}.items()
                if previous.get(key) != value
            }
            if not changed:
                return self.view(op, record)
            self._check_ownership_change(op, changed, previous)
            self._check_references(op, [changed])
            pending = None
            if self.name in collisions.CHECKED_ENTITIES and set(changed) - _OWNERSHIP_FIELDS:
                after = {**previous, **changed}
                matches = collisions.find_duplicates(op, self.name, after, record_id)
                pending = collisions.judge(op, self.name, after, matches)
            self.before_update(op, record, changed, previous)
            if self.crm.host.implemented("crmkit_before_update"):
                self.crm.host.call(
                    "crmkit_before_update",
                    op=op,
                    entity=self.name,
                    record_id=record_id,
                    changes=changed,
                    previous=previous,
                )
            self._apply(op, record, changed)
            if changed.keys() & self.crm.custom_fields[self.name].keys():
                with unique_values_race(self.name):
                    op.session.flush()
            before = {key: previous.get(key) for key in changed}
            op.emit(
                f"{self.name}.updated",
                {"changes": changed, "previous": before},
                record_type=self.name,
                record_id=record_id,
            )
            if "owner_id" in changed:
                note_owner_change(
                    op, self.name, record_id, previous.get("owner_id"), changed["owner_id"]
                )
            if pending is not None:
                collisions.flag(op, self.name, record_id, pending)
            self.after_update(op, record, changed, before)
            if self.crm.host.implemented("crmkit_after_update"):
                self.crm.host.call(
                    "crmkit_after_update",
                    op=op,
                    entity=self.name,
                    record_id=record_id,
                    changes=changed,
                    previous=before,
                )
            audit_rows(
                op,
                "update",
                self.name,
                [(record_id, {key: [before.get(key), value] for key, value in changed.items()})],
            )
            view = self.view(op, record)
            return self._with_warnings(op, view, pending)

    def _check_ownership_change(
        self, op: Operation, changed: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> None:
        """Moving a record to another owner or team is an assignment: it needs
        ``<entity>:assign`` (``update`` for entities that are not assigned), and the new owner
        and team must lie within that permission's scope."""
        if "owner_id" not in changed and "team_id" not in changed:
            return
        if self.entity.parent is not None:
            return  # a child's owner and team reach no one: its parent decides
        access = op.access
        action = "assign" if self.name in ASSIGNABLE else "update"
        scope = access.require(f"{self.name}:{action}")
        owner = changed.get("owner_id", previous.get("owner_id"))
        team = changed.get("team_id", previous.get("team_id"))
        moved_team = "team_id" in changed and not access.covers_team(scope, team)
        if moved_team or not access.covers(scope, owner, team):
            raise PermissionDenied(
                f"{access.username} may not hand a {self.name} to that owner or team"
                f" ({self.name}:{action} covers {scope.value} records)"
            )

    def _check_version(self, record: Any, expected_version: int | None) -> None:
        if expected_version is not None and record.version != expected_version:
            raise ConflictError(
                f"{self.name} {record.id} was changed by someone else since you read it"
                f" (it is at version {record.version}, you had {expected_version}):"
                " reload it and apply your change again"
            )

    def _apply(self, op: Operation, record: Any, changed: Mapping[str, Any]) -> None:
        writable = self.entity.writable
        custom = dict(record.custom or {})
        for key, value in changed.items():
            if key in writable:
                setattr(record, key, value)
            elif key in self.crm.custom_fields[self.name]:
                if value is None:
                    custom.pop(key, None)
                else:
                    custom[key] = value
            else:
                raise CRMError(f"a hook set unknown field {key!r} on {self.name} {record.id}")
        if custom != (record.custom or {}):
            record.custom = custom
        record.version += 1
        record.updated_at = utcnow()
        record.updated_by_id = op.actor_id
        op.session.flush()

    def delete(
        self, record_id: int, *, expected_version: int | None = None, actor: User | None = None
    ) -> None:
        """Soft-delete a record: it disappears from every read, its data stays."""
        from crmkit.permissions.audit import audit_rows

        with self._operation(actor) as op:
            record = self._load(op, record_id, for_update=True, action="delete")
            self._check_version(record, expected_version)
            previous = self.snapshot(record)
            if self.crm.host.implemented("crmkit_before_delete"):
                self.crm.host.call(
                    "crmkit_before_delete",
                    op=op,
                    entity=self.name,
                    record_id=record_id,
                    previous=previous,
                )
            record.deleted_at = utcnow()
            record.version += 1
            record.updated_by_id = op.actor_id
            op.session.flush()
            op.emit(
                f"{self.name}.deleted",
                {"previous": previous},
                record_type=self.name,
                record_id=record_id,
            )
            if self.crm.host.implemented("crmkit_after_delete"):
                self.crm.host.call(
                    "crmkit_after_delete",
                    op=op,
                    entity=self.name,
                    record_id=record_id,
                    previous=previous,
                )
            audit_rows(op, "delete", self.name, [(record_id, {"deleted_at": [None, utcnow()]})])

    def _audit_created(
        self,
        op: Operation,
        created: Sequence[tuple[int, Mapping[str, Any]]],
        *,
        json_ready: bool = False,
    ) -> None:
        """One audit entry per new record: every field set, as ``[None, value]``
        (``json_ready``: the values are in JSON form already, as event payloads are)."""
        from crmkit.permissions.audit import audit_rows

        audit_rows(
            op,
            "create",
            self.name,
            [
                (
                    record_id,
                    {
                        key: [None, value]
                        for key, value in values.items()
                        if value is not None and key != "id"
                    },
                )
                for record_id, values in created
            ],
            json_ready=json_ready,
        )

    # -- entity-specific rules (overridden by DealService, LeadService) ----------------------

    def before_create(self, op: Operation, values: dict[str, Any]) -> None:
        """Entity rules checked before insert (after validation, before plugin hooks)."""

    def after_create(self, op: Operation, record_id: int, values: Mapping[str, Any]) -> None:
        """Entity rules run after insert (before plugin hooks)."""

    def before_update(
        self, op: Operation, record: Any, changes: dict[str, Any], previous: Mapping[str, Any]
    ) -> None:
        """Entity rules checked before an update is applied."""

    def after_update(
        self, op: Operation, record: Any, changes: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> None:
        """Entity rules run after an update is applied."""


#: Changing only these is a change of hands, not of the customer: no duplicate check.
_OWNERSHIP_FIELDS = frozenset({"owner_id", "team_id"})
#: The columns ``RecordService._insert`` sets on every row, whatever their defaults.
_SET_BY_INSERT = frozenset(
    {
        "custom",
        "created_at",
        "updated_at",
        "created_by_id",
        "updated_by_id",
        "version",
        "deleted_at",
    }
)
_DEFAULTS_CACHE: dict[Table, tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]] = {}


def _insert_defaults(
    table: Table,
) -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    """Per column, the value an insert gets when the caller gives none, so every row of a
    bulk insert has the same keys: ``(constants, factories)``, the constant defaults by
    column and ``(column, zero-argument callable)`` pairs for the computed ones (``list``,
    ``dict``, ``utcnow``: a fresh value per row)."""
    cached = _DEFAULTS_CACHE.get(table)
    if cached is not None:
        return cached
    constants: dict[str, Any] = {}
    factories: list[tuple[str, Callable[[], Any]]] = []
    for column in table.columns:
        if column.primary_key:
            continue
        default = column.default
        if default is None:
            constants[column.key] = None
        elif getattr(default, "is_callable", False):
            if column.key in _SET_BY_INSERT:
                continue  # _insert sets these itself: do not compute a default to drop
            function: Callable[[Any], Any] = default.arg  # type: ignore[attr-defined]
            inner = getattr(function, "__wrapped__", None)
            if inner in (list, dict):  # SQLAlchemy's wrapper of default=list / default=dict
                factories.append((column.key, inner))
            else:
                factories.append((column.key, functools.partial(function, None)))
        else:
            constants[column.key] = default.arg  # type: ignore[attr-defined]
    cached = (constants, tuple(factories))
    _DEFAULTS_CACHE[table] = cached
    return cached


_SORT_INDEX_CACHE: dict[Table, frozenset[str]] = {}
#: The statements of :meth:`RecordService._union_page` without filters, by their shape.
_UNION_PAGES: dict[tuple[Any, ...], Any] = {}


def _sort_indexes(table: Table) -> frozenset[str]:
    """The columns of ``table`` an index can return in order: the primary key (``id``) and
    the first column of every index."""
    cached = _SORT_INDEX_CACHE.get(table)
    if cached is None:
        keys = {column.key for column in table.primary_key.columns}
        keys.update(next(iter(index.columns)).key for index in table.indexes if index.columns)
        cached = _SORT_INDEX_CACHE[table] = frozenset(keys)
    return cached


class _Served(enum.IntEnum):
    """How an index serves a branch of a scoped page (``_branch_index``)."""

    NO = 0
    ORDERED = 1  # the rows of one owner or team in the page's order
    COVERED = 2  # ... and the branch reads nothing else: no row is looked up


def _branch_index(table: Table, lead: str, sort_field: str, dialect: str) -> _Served:
    """How the best index of ``table`` returns the rows of one ``lead`` value (``team_id``,
    ``owner_id``) in ``sort_field`` order: an index on ``(lead, sort_field, ...)``, or on
    SQLite an index on ``lead`` alone for the id (every SQLite index ends with the rowid).
    Covered when the index also holds the id (SQLite: always) and ``deleted_at``, so that
    the branch's test of the soft delete needs no row. Partial indexes are not used, nor on
    PostgreSQL a nullable sort column (lists sort NULLs first ascending, last descending)."""
    best = _Served.NO
    column = table.c.get(sort_field)
    if column is None or (dialect != "sqlite" and column.nullable):
        return best  # PostgreSQL: NULLS FIRST is not an ascending index's order
    for index in table.indexes:
        keys = [column.key for column in index.columns]
        if not keys or keys[0] != lead or index.dialect_kwargs.get(f"{dialect}_where"):
            continue
        if keys[1:2] != [sort_field] and not (
            sort_field == "id" and dialect == "sqlite" and len(keys) == 1
        ):
            continue
        covered = "deleted_at" in keys and (dialect == "sqlite" or "id" in keys)
        best = max(best, _Served.COVERED if covered else _Served.ORDERED)
    return best


def _integrity_reason(error: IntegrityError) -> str:
    text = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return f"rejected by the database: {text}"


def _entity_word(table_name: str) -> str:
    """``accounts`` → ``account``, ``activities`` → ``activity`` (for messages)."""
    if table_name.endswith("ies"):
        return table_name[:-3] + "y"
    return table_name[:-1] if table_name.endswith("s") else table_name
