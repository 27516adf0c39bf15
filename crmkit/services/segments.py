"""Segments: saved, named filters over one entity, evaluated live in SQL for whoever looks.

A segment's members are the records of its entity that match its filters *and* that the
actor may read: the same rows ``crm.records(entity).list({"segment": name})`` pages
through, because that is how members are read (one path for reads). ``member_ids`` hands
plugins (campaigns, reminders) the same set as a ``SELECT id`` to join on."""

from __future__ import annotations

import builtins
import datetime as dt
import json
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import Select, select

from crmkit.assignment.models import AssignmentRule, PoolPolicy
from crmkit.db.base import utcnow
from crmkit.entities.organisation import User
from crmkit.entities.segments import SavedSegment
from crmkit.errors import ConflictError, FieldError, NotFoundError, ValidationError
from crmkit.permissions.audit import audit_rows
from crmkit.services.operation import Operation
from crmkit.services.queries import visible
from crmkit.services.records import Page
from crmkit.services.segment_filters import SEGMENT_KEY, SegmentCompiler

if TYPE_CHECKING:
    from crmkit.app import CRM

#: The longest segment name.
MAX_NAME = 200
#: The largest definition stored, as JSON text.
MAX_FILTERS_JSON = 20_000


@frozen
class Segment:
    """A saved segment as its service returns it: a name unique across entities, the entity
    it selects from, its filters (the segment filter language, docs/segments.md), a
    description, who made it, and its version (for ``expected_version`` on update)."""

    id: int
    name: str
    entity: str
    filters: Mapping[str, Any]
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str | None
    version: int


def segment_references(filters: Mapping[str, Any]) -> set[str]:
    """The names of the segments ``filters`` refers to, through relations too
    (``segment``, ``segment__in``, ``account.segment``, ``{"account": {"segment": ...}}``)."""
    found: set[str] = set()
    for key, value in filters.items():
        if not isinstance(key, str):
            continue
        name = key.partition("__")[0].rpartition(".")[2]
        if isinstance(value, Mapping):
            found |= segment_references(value)
        elif name == SEGMENT_KEY:
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            found |= {str(item).strip() for item in items if str(item).strip()}
    return found


def _check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str):
        raise ValidationError([FieldError(field, "must be text")], "segment")
    text = unicodedata.normalize("NFKC", name).strip()
    problem = None
    if not text:
        problem = "is required"
    elif len(text) > MAX_NAME:
        problem = f"is longer than {MAX_NAME} characters"
    elif "/" in text or "," in text:
        problem = "may not contain '/' or ','"
    elif any(unicodedata.category(ch)[0] == "C" for ch in text):
        problem = "may not contain control characters"
    if problem:
        raise ValidationError([FieldError(field, problem)], "segment")
    return text


#: The deepest nesting of relations a stored definition may hold.
_MAX_NESTING = 5


def _check_shape(filters: Mapping[Any, Any], depth: int = 0) -> None:
    """Keys are names (text without control characters); values are text, numbers,
    true/false, null, lists of those, or (for a relation) mappings of the same shape."""
    if depth > _MAX_NESTING:
        raise ValidationError(
            [FieldError("filters", f"nests relations more than {_MAX_NESTING} deep")], "segment"
        )
    for key, value in filters.items():
        if (
            not isinstance(key, str)
            or not key.strip()
            or len(key) > MAX_NAME
            or any(unicodedata.category(ch)[0] == "C" for ch in key)
        ):
            raise ValidationError(
                [FieldError("filters", f"{str(key)[:40]!r} is not a field name")], "segment"
            )
        if isinstance(value, Mapping):
            _check_shape(value, depth + 1)
        elif isinstance(value, list | tuple):
            if not all(_scalar(item) for item in value):
                raise ValidationError(
                    [FieldError(key, "a list may hold only text, numbers and true/false")],
                    "segment",
                )
        elif not _scalar(value):
            raise ValidationError(
                [FieldError(key, "must be text, a number, true/false, null or a list")],
                "segment",
            )


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _check_filters(filters: object) -> dict[str, Any]:
    if not isinstance(filters, Mapping):
        raise ValidationError(
            [FieldError("filters", "must be a mapping of FIELD[__OP] to a value")], "segment"
        )
    _check_shape(filters)
    try:
        text = json.dumps(dict(filters), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError(
            [FieldError("filters", "must hold only text, numbers, true/false, lists, mappings")],
            "segment",
        ) from None
    if len(text) > MAX_FILTERS_JSON:
        raise ValidationError(
            [FieldError("filters", f"is larger than {MAX_FILTERS_JSON} characters")], "segment"
        )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


class SegmentService:
    """Saved segments: create, get, list, update, delete, and count and list their members
    as the actor may see them. Reach it as ``crm.segments``. Managing needs
    ``segment:manage``; reading ``segment:read`` (and reading the members needs
    ``<entity>:read``, whose scope bounds them)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    @contextmanager
    def _operation(
        self, actor: User | None, op: Operation | None, *, write: bool
    ) -> Iterator[Operation]:
        if op is not None:
            yield op
        else:
            with self.crm.transaction(actor, write=write) as opened:
                yield opened

    # -- definitions -----------------------------------------------------------------------

    def create(
        self,
        name: str,
        entity: str,
        filters: Mapping[str, Any],
        *,
        description: str = "",
        actor: User | None = None,
    ) -> Segment:
        """Save a segment of ``entity``. Its filters are compiled for the actor first: an
        unknown field, relation, measure or segment, a bad operator or value, a cycle of
        segments is a ``ValidationError`` naming it (listing what is known), with nothing
        written. Needs ``segment:manage``.

        Example::

            crm.segments.create("上海赢单客户", "contact", {
                "account.city": "上海",
                "deals.stage_kind": "won", "deals.closed_at__gte": "year_start"})
        """
        name = _check_name(name)
        stored = _check_filters(filters)
        with self.crm.transaction(actor) as op:
            op.access.require("segment:manage")
            entity_type = self._entity(entity)
            if op.session.scalar(select(SavedSegment.id).where(SavedSegment.name == name)):
                raise ConflictError(f"a segment named {name!r} exists")
            self._compile(op, name, entity_type.name, stored)
            now = utcnow()
            row = SavedSegment(
                name=name,
                entity=entity_type.name,
                filters=stored,
                description=str(description or ""),
                created_at=now,
                updated_at=now,
                created_by_id=op.actor_id,
                updated_by_id=op.actor_id,
            )
            op.session.add(row)
            op.session.flush()
            facts = {"name": [None, name], "entity": [None, entity_type.name]}
            facts["filters"] = [None, stored]
            audit_rows(op, "segment.created", "segment", [(row.id, facts)])
            op.emit(
                "segment.created",
                {"name": name, "entity": entity_type.name, "filters": stored},
                record_type="segment",
                record_id=row.id,
            )
            return self._info(op, row)

    def get(self, name: str, *, actor: User | None = None) -> Segment:
        """The segment called ``name``; ``NotFoundError`` if there is none. Needs
        ``segment:read``."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("segment:read")
            return self._info(op, self._row(op, name))

    def list(
        self, entity: str | None = None, *, actor: User | None = None
    ) -> builtins.list[Segment]:
        """Every segment (of ``entity`` when given), by name. Needs ``segment:read``."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("segment:read")
            query = select(SavedSegment).order_by(SavedSegment.name)
            if entity is not None:
                query = query.where(SavedSegment.entity == self._entity(entity).name)
            rows = list(op.session.scalars(query))
            users = self._usernames(op, {row.created_by_id for row in rows})
            return [self._info(op, row, users) for row in rows]

    def update(
        self,
        name: str,
        *,
        filters: Mapping[str, Any] | None = None,
        new_name: str | None = None,
        description: str | None = None,
        expected_version: int | None = None,
        actor: User | None = None,
    ) -> Segment:
        """Change a segment's filters, name or description (what is not given stays). The
        new filters are checked as on create, including cycles through the segments that
        refer to this one; a segment others refer to (segments, pool policies, assignment
        rules) cannot be renamed. A stale ``expected_version`` is a ``ConflictError``.
        Needs ``segment:manage``."""
        stored = _check_filters(filters) if filters is not None else None
        renamed = _check_name(new_name, "new_name") if new_name is not None else None
        with self.crm.transaction(actor) as op:
            op.access.require("segment:manage")
            row = self._row(op, name, for_update=True)
            if expected_version is not None and row.version != expected_version:
                raise ConflictError(
                    f"segment {row.name!r} is at version {row.version}, not {expected_version}:"
                    " read it again"
                )
            changes: dict[str, list[Any]] = {}
            if renamed is not None and renamed != row.name:
                if op.session.scalar(select(SavedSegment.id).where(SavedSegment.name == renamed)):
                    raise ConflictError(f"a segment named {renamed!r} exists")
                users = self._referrers(op, row.name)
                if users:
                    raise ConflictError(
                        f"segment {row.name!r} is used by {', '.join(users)}: it cannot be"
                        " renamed while they name it"
                    )
                changes["name"] = [row.name, renamed]
            if stored is not None and stored != row.filters:
                self._compile(op, row.name, row.entity, stored)
                changes["filters"] = [row.filters, stored]
            if description is not None and description != row.description:
                changes["description"] = [row.description, description]
            if changes:
                if "name" in changes:
                    row.name = renamed  # type: ignore[assignment]
                if "filters" in changes:
                    row.filters = stored  # type: ignore[assignment]
                if "description" in changes:
                    row.description = str(description)
                row.version += 1
                row.updated_at = utcnow()
                row.updated_by_id = op.actor_id
                op.session.flush()
                audit_rows(op, "segment.updated", "segment", [(row.id, changes)])
                op.emit(
                    "segment.updated",
                    {"name": row.name, "entity": row.entity, "changes": list(changes)},
                    record_type="segment",
                    record_id=row.id,
                )
            return self._info(op, row)

    def delete(self, name: str, *, actor: User | None = None) -> None:
        """Delete a segment; refused (``ConflictError`` naming them) while other segments,
        pool policies or assignment rules refer to it. Needs ``segment:manage``."""
        with self.crm.transaction(actor) as op:
            op.access.require("segment:manage")
            row = self._row(op, name, for_update=True)
            users = self._referrers(op, row.name)
            if users:
                raise ConflictError(
                    f"segment {row.name!r} is used by {', '.join(users)}: change those first"
                )
            facts = {"name": [row.name, None], "entity": [row.entity, None]}
            audit_rows(op, "segment.deleted", "segment", [(row.id, facts)])
            op.emit(
                "segment.deleted",
                {"name": row.name, "entity": row.entity},
                record_type="segment",
                record_id=row.id,
            )
            op.session.delete(row)

    # -- members -----------------------------------------------------------------------------

    def count(self, name: str, *, actor: User | None = None) -> int:
        """How many records of the segment the actor may read, counted now. Needs
        ``segment:read`` and ``<entity>:read``."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("segment:read")
            row = self._row(op, name)
            return op.records(row.entity).count({SEGMENT_KEY: row.name})

    def members(
        self,
        name: str,
        *,
        sort: str = "id",
        limit: int = 50,
        cursor: str | None = None,
        actor: User | None = None,
    ) -> Page:
        """A page of the segment's records the actor may read, as the record list pages
        (keyset: pass ``next_cursor`` back for the next page; ``sort`` as for lists).
        Needs ``segment:read`` and ``<entity>:read``."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("segment:read")
            row = self._row(op, name)
            return op.records(row.entity).list(
                {SEGMENT_KEY: row.name}, sort=sort, limit=limit, cursor=cursor
            )

    def member_ids(self, op: Operation, name: str) -> Select[tuple[int]]:
        """``SELECT id`` of the segment's records that ``op``'s actor may read, to join on
        or feed an ``INSERT ... SELECT`` in the same transaction (campaigns, reminders).
        Run it inside ``op.elevated()`` to take every member whatever the actor's scope.
        Needs ``segment:read`` and ``<entity>:read``.

        Example::

            with crm.transaction() as op:
                members = crm.segments.member_ids(op, "上海赢单客户").subquery()
                emails = op.session.scalars(
                    select(crmkit.Contact.email).where(crmkit.Contact.id.in_(select(members.c.id))))
        """
        op.access.require("segment:read")
        row = self._row(op, name)
        entity = self.crm.entity(row.entity)
        model: Any = entity.model
        conditions = SegmentCompiler(op).conditions(entity, {SEGMENT_KEY: row.name})
        query = visible(op, entity).with_only_columns(model.id).where(*conditions)
        return query

    def entity_of(self, name: str, *, actor: User | None = None) -> str:
        """The entity segment ``name`` selects from. Needs ``segment:read``."""
        return self.get(name, actor=actor).entity

    def vocabulary(
        self, entity: str, *, actor: User | None = None
    ) -> dict[str, builtins.list[str]]:
        """What a segment of ``entity`` may filter on, as the actor sees it: ``fields``
        (hidden ones left out), ``relations`` and ``measures``."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("segment:read")
            return SegmentCompiler(op).known_names(self._entity(entity))

    # -- helpers -----------------------------------------------------------------------------

    def _entity(self, entity: object) -> Any:
        if not isinstance(entity, str) or entity not in self.crm.entities:
            raise ValidationError(
                [
                    FieldError(
                        "entity",
                        f"unknown entity {entity!r}; known: {', '.join(sorted(self.crm.entities))}",
                    )
                ],
                "segment",
            )
        return self.crm.entities[entity]

    def _compile(self, op: Operation, name: str, entity: str, filters: Mapping[str, Any]) -> None:
        """Compile ``filters`` as the segment ``name`` would be, to refuse a bad one before
        it is written (and a cycle through the segments that refer to it)."""
        compiler = SegmentCompiler(op, overrides={name: (entity, filters)}, explain=True)
        entity_type = self.crm.entity(entity)
        compiler.conditions(entity_type, filters, segments=(name,))
        # a segment referring to this one must still compile with the new definition
        for other in self._referring_segments(op, name):
            compiler.conditions(
                self.crm.entity(other.entity), other.filters, segments=(other.name,)
            )

    def _referring_segments(self, op: Operation, name: str) -> builtins.list[SavedSegment]:
        rows = op.session.scalars(select(SavedSegment).order_by(SavedSegment.name))
        return [row for row in rows if row.name != name and name in segment_references(row.filters)]

    def _referrers(self, op: Operation, name: str) -> builtins.list[str]:
        found = [f"segment {row.name!r}" for row in self._referring_segments(op, name)]
        for entity, policy_name, conditions in op.session.execute(
            select(PoolPolicy.entity, PoolPolicy.name, PoolPolicy.conditions)
        ):
            if name in segment_references(conditions or {}):
                found.append(f"pool policy {policy_name!r} of {entity}")
        for entity, rule_name, conditions in op.session.execute(
            select(AssignmentRule.entity, AssignmentRule.name, AssignmentRule.conditions)
        ):
            if name in segment_references(conditions or {}):
                found.append(f"assignment rule {rule_name!r} of {entity}")
        settings = self.crm.settings.assignment
        for policy in settings.pool_policies:
            if name in segment_references(policy.when):
                found.append(f"pool policy {policy.name!r} of {policy.entity} (config file)")
        for rule in settings.rules:
            if name in segment_references(rule.when):
                found.append(f"assignment rule {rule.name!r} of {rule.entity} (config file)")
        return found

    def _row(self, op: Operation, name: object, *, for_update: bool = False) -> SavedSegment:
        if not isinstance(name, str):
            raise NotFoundError("segment", repr(name))
        query = select(SavedSegment).where(
            SavedSegment.name == unicodedata.normalize("NFKC", name).strip()
        )
        if for_update:
            query = query.with_for_update()
        row = op.session.scalar(query)
        if row is None:
            raise NotFoundError("segment", repr(name))
        return row

    def _usernames(self, op: Operation, ids: set[int | None]) -> dict[int, str]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        return dict(
            op.session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all()
        )

    def _info(
        self, op: Operation, row: SavedSegment, users: Mapping[int, str] | None = None
    ) -> Segment:
        if users is None:
            users = self._usernames(op, {row.created_by_id})
        return Segment(
            id=row.id,
            name=row.name,
            entity=row.entity,
            filters=dict(row.filters or {}),
            description=row.description or "",
            created_at=row.created_at,
            updated_at=row.updated_at,
            created_by=users.get(row.created_by_id) if row.created_by_id is not None else None,
            version=row.version,
        )


__all__ = ["Segment", "SegmentService", "segment_references"]
