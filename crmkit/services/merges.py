"""Merging two records of one entity into one, and undoing it.

``crm.merges.merge("contact", survivor_id, merged_id)`` keeps the survivor, fills and
overrides its fields by survivorship rules, re-points every reference to the merged record
(every foreign key to the entity's table in the SQLAlchemy metadata, plugin tables
included, and what plugins move through ``crmkit_merge_references``), soft-deletes the
merged record, writes an audit entry, flags the merge as a sensitive operation and emits
``<entity>.merged`` — all in one transaction. ``crm.merges.undo(merge_id)`` restores both
records and every moved reference, unless either record changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import Table, inspect, select, update

from crmkit.db.base import Base, utcnow
from crmkit.entities.merges import Merge
from crmkit.entities.organisation import User
from crmkit.errors import ConflictError, FieldError, NotFoundError, ValidationError
from crmkit.events.payloads import to_json
from crmkit.permissions.audit import audit_rows, flag_sensitive
from crmkit.services.operation import Operation
from crmkit.services.views import Record

if TYPE_CHECKING:
    from crmkit.app import CRM

#: How a field's value is chosen when both records have one.
STRATEGIES = ("survivor", "merged", "most_recent", "most_complete", "owner")
#: Fields never taken from the merged record unless chosen per field.
_KEEP = frozenset({"owner_id", "team_id"})


@frozen
class MergeResult:
    """What a merge (or an undo) did: the merge's id, the survivor as it is now, the fields
    changed on it (``field -> [before, after]``) and the references moved per table."""

    merge_id: int
    entity: str
    survivor_id: int
    merged_id: int
    survivor: Record
    changes: Mapping[str, Any]
    moved: Mapping[str, int]


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _size(value: Any) -> int:
    if isinstance(value, list | dict | str):
        return len(value)
    return 0 if _empty(value) else 1


class MergeService:
    """Merges of core and plugin records (``crm.merges``)."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    # -- merge ------------------------------------------------------------------------------

    def merge(
        self,
        entity: str,
        survivor_id: int,
        merged_id: int,
        *,
        strategy: str = "survivor",
        fields: Mapping[str, str] | None = None,
        owner_id: int | None = None,
        actor: User | None = None,
        op: Operation | None = None,
    ) -> MergeResult:
        """Merge record ``merged_id`` into ``survivor_id``; return what was done.

        ``strategy`` picks each field's value when both records have one: ``survivor``
        (keep the survivor's), ``merged`` (take the merged record's), ``most_recent`` (from
        the record updated last), ``most_complete`` (the longer value) or ``owner`` (from
        the record owned by ``owner_id``, default the actor). An empty field is always
        filled from the other record, and list fields (extra e-mails, phones) are united;
        the merged record's e-mail and phone, when they differ, join the survivor's extra
        ones. ``fields`` chooses per field (``{"phone": "merged"}``) over the strategy.

        Needs ``<entity>:merge`` covering both records (and the actor must see both).
        Merging a record with itself, with a deleted record, or naming unknown fields or
        strategies is a ``ValidationError``; nothing is changed then."""
        if op is None:
            with self.crm.transaction(actor) as new_op:
                return self._merge(
                    new_op, entity, survivor_id, merged_id, strategy, fields or {}, owner_id
                )
        return self._merge(op, entity, survivor_id, merged_id, strategy, fields or {}, owner_id)

    def _merge(
        self,
        op: Operation,
        entity: str,
        survivor_id: int,
        merged_id: int,
        strategy: str,
        fields: Mapping[str, str],
        owner_id: int | None,
    ) -> MergeResult:
        service = op.records(entity)
        self._check_input(entity, survivor_id, merged_id, strategy, fields)
        op.access.require(f"{entity}:merge")
        survivor = self._live(op, entity, survivor_id)
        merged = self._live(op, entity, merged_id)
        before_survivor = service.snapshot(survivor)
        before_merged = service.snapshot(merged)
        prefer_owner = owner_id if owner_id is not None else op.actor_id
        changes = self._survivorship(
            entity, before_survivor, before_merged, survivor, merged, strategy, fields, prefer_owner
        )
        moved = self._repoint(op, entity, merged_id, survivor_id)
        plugin_moves: dict[str, Any] = {}
        if self.crm.host.implemented("crmkit_merge_references"):
            for answer in self.crm.host.call(
                "crmkit_merge_references",
                op=op,
                entity=entity,
                survivor_id=survivor_id,
                merged_id=merged_id,
            ):
                if answer:
                    plugin_moves.update(to_json(dict(answer)))
        with op.elevated():
            if changes:
                service.update(survivor_id, changes)
            service.delete(merged_id)
        survivor_after = self._raw(op, entity, survivor_id)
        merged_after = self._raw(op, entity, merged_id)
        assert survivor_after is not None
        assert merged_after is not None
        row = Merge(
            entity=entity,
            survivor_id=survivor_id,
            merged_id=merged_id,
            strategy=strategy,
            fields=dict(fields),
            survivor_before=to_json(before_survivor),
            merged_before=to_json(before_merged),
            changes=to_json({key: before_survivor.get(key) for key in changes}),
            survivor_version=survivor_after.version,
            merged_version=merged_after.version,
            moved={"references": moved},
            plugin_moves=plugin_moves,
            actor_id=op.actor_id,
        )
        op.session.add(row)
        op.session.flush()
        counts = {f"{m['table']}.{m['column']}": len(m["ids"]) for m in moved}
        diff = {key: [before_survivor.get(key), value] for key, value in changes.items()}
        flag_sensitive(
            op,
            "merge",
            entity=entity,
            record_id=survivor_id,
            detail=f"merged {entity} {merged_id} into {entity} {survivor_id} (merge {row.id})",
            facts={
                "merge_id": row.id,
                "survivor_id": survivor_id,
                "merged_id": merged_id,
                "strategy": strategy,
                "changes": diff,
                "moved": counts,
            },
        )
        op.emit(
            f"{entity}.merged",
            {
                "merge_id": row.id,
                "survivor_id": survivor_id,
                "merged_id": merged_id,
                "changes": diff,
                "moved": counts,
            },
            record_type=entity,
            record_id=survivor_id,
        )
        return MergeResult(
            row.id,
            entity,
            survivor_id,
            merged_id,
            service.view(op, survivor_after),
            diff,
            counts,
        )

    def _check_input(
        self,
        entity: str,
        survivor_id: int,
        merged_id: int,
        strategy: str,
        fields: Mapping[str, str],
    ) -> None:
        kind = self.crm.entity(entity)
        if survivor_id == merged_id:
            raise ValidationError(
                [FieldError("merged_id", f"cannot merge {entity} {survivor_id} with itself")],
                entity,
            )
        problems = []
        if strategy not in STRATEGIES:
            problems.append(
                FieldError(
                    "strategy",
                    f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}",
                )
            )
        known = set(kind.writable) | set(self.crm.custom_fields[entity])
        for name, choice in fields.items():
            if name not in known:
                problems.append(
                    FieldError(name, f"{entity} has no field {name!r} to choose a value for")
                )
            elif choice not in STRATEGIES:
                problems.append(
                    FieldError(name, f"unknown choice {choice!r}; known: {', '.join(STRATEGIES)}")
                )
        if problems:
            raise ValidationError(problems, entity)

    def _raw(self, op: Operation, entity: str, record_id: int) -> Any:
        model: Any = self.crm.entity(entity).model
        return op.session.get(model, record_id, populate_existing=True)

    def _live(self, op: Operation, entity: str, record_id: int) -> Any:
        service = op.records(entity)
        raw = self._raw(op, entity, record_id)
        if raw is not None and raw.deleted_at is not None:
            visible = op.access.scope(f"{entity}:read")
            condition_ok = visible is not None and op.access.covers(
                visible, raw.owner_id, raw.team_id
            )
            if condition_ok:
                raise ValidationError(
                    [FieldError("id", f"{entity} {record_id} is deleted and cannot be merged")],
                    entity,
                )
            raise NotFoundError(entity, record_id)
        service._load(op, record_id, action="read")  # the actor must see it
        return service._load(op, record_id, for_update=True, action="merge")

    def _survivorship(
        self,
        entity: str,
        survivor: Mapping[str, Any],
        merged: Mapping[str, Any],
        survivor_row: Any,
        merged_row: Any,
        strategy: str,
        fields: Mapping[str, str],
        prefer_owner: int | None,
    ) -> dict[str, Any]:
        kind = self.crm.entity(entity)
        names = sorted(set(kind.writable) | set(self.crm.custom_fields[entity]))
        changes: dict[str, Any] = {}
        for name in names:
            mine, theirs = survivor.get(name), merged.get(name)
            choice = fields.get(name)
            if choice is None and name in _KEEP:
                continue
            if choice is None and isinstance(mine, list) and isinstance(theirs, list):
                united = list(dict.fromkeys([*mine, *theirs]))
                if united != mine:
                    changes[name] = united
                continue
            if _empty(theirs) or mine == theirs:
                continue
            take_theirs = _empty(mine) if choice is None else False
            rule = choice or strategy
            if not take_theirs:
                if rule == "merged":
                    take_theirs = True
                elif rule == "most_recent":
                    take_theirs = merged_row.updated_at > survivor_row.updated_at
                elif rule == "most_complete":
                    take_theirs = _size(theirs) > _size(mine)
                elif rule == "owner":
                    take_theirs = (
                        prefer_owner is not None
                        and merged_row.owner_id == prefer_owner
                        and survivor_row.owner_id != prefer_owner
                    )
            if take_theirs:
                changes[name] = theirs
        # Nothing is lost: the merged record's other e-mail and phone join the extra ones.
        for single, extra in (("email", "extra_emails"), ("phone", "extra_phones")):
            if extra not in names or single not in names:
                continue
            kept = changes.get(single, survivor.get(single))
            current = list(changes.get(extra, survivor.get(extra) or []))
            for value in (merged.get(single), survivor.get(single)):
                if value and value != kept and value not in current:
                    current.append(value)
            if current != list(survivor.get(extra) or []):
                changes[extra] = current
        return changes

    def _references(self, op: Operation, entity: str) -> list[tuple[Table, str]]:
        """Every ``(table, column)`` with a foreign key to ``entity``'s table that exists in
        this database (a disabled plugin's table may not)."""
        target: Any = self.crm.entity(entity).model.__table__
        self.crm.import_installed_plugins()  # a disabled plugin's tables are in the metadata
        existing = set(inspect(op.session.connection()).get_table_names())
        found = []
        for table in Base.metadata.sorted_tables:
            if table.name not in existing or "id" not in table.c:
                # the moved rows are recorded by id for the undo: a table keyed otherwise (a
                # plugin's one row per record, say) is its plugin's to move, through
                # crmkit_merge_references
                continue
            for column in table.columns:
                for key in column.foreign_keys:
                    if key.column.table is target and key.column.name == "id":
                        found.append((table, column.name))
        return found

    def _repoint(
        self, op: Operation, entity: str, from_id: int, to_id: int
    ) -> list[dict[str, Any]]:
        moved = []
        for table, column in self._references(op, entity):
            query = select(table.c.id).where(table.c[column] == from_id)
            if table is self.crm.entity(entity).model.__table__:
                query = query.where(table.c.id != from_id)
            ids = list(op.session.scalars(query))
            if not ids:
                continue
            self._point(op, table, column, ids, to_id, None)
            moved.append({"table": table.name, "column": column, "ids": ids})
        return moved

    def _point(
        self,
        op: Operation,
        table: Table,
        column: str,
        ids: list[int],
        to_id: int,
        only_from: int | None,
    ) -> None:
        values: dict[str, Any] = {column: to_id}
        if "version" in table.c:
            values["version"] = table.c.version + 1
        if "updated_at" in table.c:
            values["updated_at"] = utcnow()
        if "updated_by_id" in table.c:
            values["updated_by_id"] = op.actor_id
        for start in range(0, len(ids), 500):
            statement = update(table).where(table.c.id.in_(ids[start : start + 500]))
            if only_from is not None:
                statement = statement.where(table.c[column] == only_from)
            op.session.execute(statement.values(values))
        entity = next(
            (e.name for e in self.crm.entities.values() if e.model.__table__ is table), None
        )
        audit_rows(
            op,
            "merge",
            entity or table.name,
            [(record_id, {column: [None, to_id]}) for record_id in ids],
            detail=f"re-pointed {table.name}.{column} to {to_id}",
        )

    # -- undo -------------------------------------------------------------------------------

    def get(self, merge_id: int, *, actor: User | None = None) -> dict[str, Any]:
        """A merge as JSON-ready values; ``NotFoundError`` if there is none."""
        with self.crm.transaction(actor, write=False) as op:
            row = op.session.get(Merge, merge_id)
            if row is None:
                raise NotFoundError("merge", merge_id)
            op.access.require(f"{row.entity}:merge")
            return {
                "id": row.id,
                "entity": row.entity,
                "survivor_id": row.survivor_id,
                "merged_id": row.merged_id,
                "strategy": row.strategy,
                "changes": row.changes,
                "moved": row.moved,
                "merged_at": row.merged_at.isoformat(),
                "undone_at": row.undone_at.isoformat() if row.undone_at else None,
            }

    def undo(
        self, merge_id: int, *, actor: User | None = None, op: Operation | None = None
    ) -> MergeResult:
        """Undo a merge: the survivor gets its values back, the merged record returns, every
        moved reference points at it again. Refused (``ConflictError``, nothing changed) when
        either record changed since the merge, or the merge was already undone."""
        if op is None:
            with self.crm.transaction(actor) as new_op:
                return self._undo(new_op, merge_id)
        return self._undo(op, merge_id)

    def _undo(self, op: Operation, merge_id: int) -> MergeResult:
        row = op.session.get(Merge, merge_id, with_for_update=True)
        if row is None:
            raise NotFoundError("merge", merge_id)
        entity = row.entity
        op.access.require(f"{entity}:merge")
        if row.undone_at is not None:
            raise ConflictError(f"merge {merge_id} was already undone")
        service = op.records(entity)
        survivor = self._raw(op, entity, row.survivor_id)
        merged = self._raw(op, entity, row.merged_id)
        if survivor is None or merged is None:
            raise NotFoundError(entity, row.survivor_id if survivor is None else row.merged_id)
        problems = []
        if survivor.deleted_at is not None:
            problems.append(f"{entity} {row.survivor_id} was deleted since")
        elif survivor.version != row.survivor_version:
            problems.append(
                f"{entity} {row.survivor_id} changed since the merge (version"
                f" {survivor.version}, the merge left it at {row.survivor_version})"
            )
        if merged.deleted_at is None or merged.version != row.merged_version:
            problems.append(f"{entity} {row.merged_id} changed since the merge")
        if problems:
            raise ConflictError(
                f"cannot undo merge {merge_id}: {'; '.join(problems)}; nothing was changed"
            )
        # The actor must be able to merge both as they are now.
        for record in (survivor, merged):
            scope = op.access.require(f"{entity}:merge")
            if not op.access.covers(scope, record.owner_id, record.team_id):
                raise NotFoundError(entity, record.id)
        restore = {key: row.survivor_before.get(key) for key in row.changes}
        with op.elevated():
            if restore:
                service.update(row.survivor_id, restore)
        merged.deleted_at = None
        merged.version += 1
        merged.updated_at = utcnow()
        merged.updated_by_id = op.actor_id
        op.session.flush()
        op.emit(
            f"{entity}.restored",
            {"merge_id": merge_id},
            record_type=entity,
            record_id=row.merged_id,
        )
        if self.crm.host.implemented("crmkit_after_update"):
            self.crm.host.call(
                "crmkit_after_update",
                op=op,
                entity=entity,
                record_id=row.merged_id,
                changes={"deleted_at": None},
                previous={"deleted_at": row.merged_at},
            )
        self.crm.import_installed_plugins()  # the moves may name a disabled plugin's tables
        tables = {table.name: table for table in Base.metadata.sorted_tables}
        for move in (row.moved or {}).get("references", []):
            table = tables.get(move["table"])
            if table is not None:
                self._point(
                    op, table, move["column"], list(move["ids"]), row.merged_id, row.survivor_id
                )
        if self.crm.host.implemented("crmkit_undo_merge_references"):
            self.crm.host.call(
                "crmkit_undo_merge_references",
                op=op,
                entity=entity,
                survivor_id=row.survivor_id,
                merged_id=row.merged_id,
                moved=dict(row.plugin_moves or {}),
            )
        row.undone_at = utcnow()
        row.undone_by_id = op.actor_id
        audit_rows(op, "restore", entity, [(row.merged_id, {"deleted_at": [row.merged_at, None]})])
        flag_sensitive(
            op,
            "merge_undo",
            entity=entity,
            record_id=row.survivor_id,
            detail=f"undid merge {merge_id} of {entity} {row.merged_id} into {row.survivor_id}",
            facts={"merge_id": merge_id},
        )
        op.emit(
            f"{entity}.merge_undone",
            {"merge_id": merge_id, "survivor_id": row.survivor_id, "merged_id": row.merged_id},
            record_type=entity,
            record_id=row.survivor_id,
        )
        survivor_now = self._raw(op, entity, row.survivor_id)
        return MergeResult(
            merge_id,
            entity,
            row.survivor_id,
            row.merged_id,
            service.view(op, survivor_now),
            {key: [row.survivor_before.get(key)] for key in restore},
            {f"{m['table']}.{m['column']}": len(m["ids"]) for m in row.moved.get("references", [])},
        )
