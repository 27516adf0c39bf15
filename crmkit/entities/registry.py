"""Entity types: what the service layer needs to know about each kind of record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from attrs import evolve, field, frozen
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import ColumnProperty

from crmkit.db.base import Base
from crmkit.entities.customers import Account, Contact, Lead, LeadStatus, LifecycleStage
from crmkit.entities.deals import Deal
from crmkit.entities.followup import Activity, ActivityKind, Task, TaskStatus
from crmkit.errors import ConfigError

#: Columns the service layer maintains itself; callers cannot write them.
SYSTEM_COLUMNS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "version",
        "deleted_at",
        "custom",
        "created_by_id",
        "updated_by_id",
    }
)


#: model -> its mapped columns by attribute name (see ``EntityType.columns``)
_COLUMNS: dict[type[Base], dict[str, ColumnProperty[object]]] = {}


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


#: What an action on a child record asks of its parent record: reading or exporting a child
#: is reading or exporting the parent; creating, changing or deleting one changes the parent's
#: file, so it needs ``update`` on the parent (Salesforce's master-detail rule).
PARENT_ACTIONS: Mapping[str, str] = {
    "read": "read",
    "export": "export",
    "create": "update",
    "update": "update",
    "delete": "update",
}


@frozen
class ParentLink:
    """The record a child entity's record belongs to: ``ParentLink("contact", "contact_id")``
    on ``EntityType(parent=...)``.

    A child entity has no permissions and no scope of its own: a child record is visible
    exactly when its parent is, to whoever may see the parent (``<parent>:read`` covers the
    parent); creating, changing or deleting one needs ``<parent>:update`` covering the
    parent (see :data:`PARENT_ACTIONS`). Lists, counts, search, exports, the related lists
    and every error follow, in SQL; a child whose parent is deleted is hidden with it.
    ``column`` is required on every child (crmkit adds it to ``required``)."""

    entity: str
    column: str


@frozen
class EntityType:
    """A kind of record served by the generic record service.

    ``kinds`` maps a column to how its values are normalised: ``"name"`` (NFKC, folded
    spaces), ``"email"``, ``"phone"`` (E.164 with the configured default region),
    ``"email_list"``/``"phone_list"``. ``choices`` limits a column to fixed values.
    ``search`` lists the columns free-text search looks in. ``parent`` makes it a child
    entity whose records are visible exactly as their parent record is (:class:`ParentLink`).
    """

    name: str
    model: type[Base]
    label: str = ""
    required: tuple[str, ...] = field(default=(), converter=_names)
    kinds: Mapping[str, str] = field(factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(factory=dict)
    search: tuple[str, ...] = field(default=(), converter=_names)
    source: str = "crmkit"
    parent: ParentLink | None = None

    def permission(self, action: str) -> str:
        """The permission ``action`` on a record of this entity needs: ``<name>:<action>``,
        or for a child entity its parent's (``ParentLink``, :data:`PARENT_ACTIONS`)."""
        if self.parent is None:
            return f"{self.name}:{action}"
        return f"{self.parent.entity}:{PARENT_ACTIONS.get(action, action)}"

    @property
    def columns(self) -> Mapping[str, ColumnProperty[object]]:
        """The model's mapped columns by attribute name (built once per model: every read
        of a record walks it)."""
        columns = _COLUMNS.get(self.model)
        if columns is None:
            mapper = sa_inspect(self.model)
            columns = _COLUMNS[self.model] = {prop.key: prop for prop in mapper.column_attrs}
        return columns

    @property
    def writable(self) -> frozenset[str]:
        """The columns a caller may set."""
        return frozenset(self.columns) - SYSTEM_COLUMNS


def checked_child(entity: EntityType, entities: Mapping[str, EntityType]) -> EntityType:
    """``entity`` (a child: ``parent`` is set) with its parent column required; a
    ``ConfigError`` naming the mistake when the parent is unknown, is itself a child, or the
    column is not a foreign key to the parent's table."""
    link = entity.parent
    assert link is not None
    where = f"entity {entity.name!r} ({entity.source}): parent"
    parent = entities.get(link.entity)
    if parent is None:
        raise ConfigError(
            f"{where} {link.entity!r} is not an entity; known: {', '.join(sorted(entities))}"
        )
    if parent.parent is not None:
        raise ConfigError(
            f"{where} {link.entity!r} is itself a child of {parent.parent.entity!r}: make"
            f" {entity.name!r} a child of {parent.parent.entity!r} (one level of parents)"
        )
    column = entity.columns.get(link.column)
    parent_table: Any = parent.model.__table__
    keys = column.columns[0].foreign_keys if column is not None else set()
    if not any(key.column.table is parent_table and key.column.key == "id" for key in keys):
        raise ConfigError(
            f"{where} column {link.column!r} must be a column of {entity.model.__name__} with"
            f" a foreign key to {parent_table.name}.id"
        )
    if link.column in entity.required:
        return entity
    return evolve(entity, required=(*entity.required, link.column))


_ADDRESS = {"city": "name", "region": "name", "address": "name"}

CORE_ENTITIES: tuple[EntityType, ...] = (
    EntityType(
        name="account",
        model=Account,
        label="Account",
        required=("name",),
        kinds={"name": "name", "phone": "phone", "email": "email", **_ADDRESS},
        choices={"lifecycle_stage": tuple(LifecycleStage)},
        search=("name", "email", "phone", "city"),
    ),
    EntityType(
        name="contact",
        model=Contact,
        label="Contact",
        required=("full_name",),
        kinds={
            "full_name": "name",
            "given_name": "name",
            "family_name": "name",
            "title": "name",
            "company_name": "name",
            "phone": "phone",
            "email": "email",
            "extra_phones": "phone_list",
            "extra_emails": "email_list",
            **_ADDRESS,
        },
        choices={"lifecycle_stage": tuple(LifecycleStage)},
        search=("full_name", "email", "phone", "city"),
    ),
    EntityType(
        name="lead",
        model=Lead,
        label="Lead",
        required=("full_name",),
        kinds={
            "full_name": "name",
            "company_name": "name",
            "title": "name",
            "phone": "phone",
            "email": "email",
            **_ADDRESS,
        },
        choices={"status": tuple(LeadStatus)},
        search=("full_name", "company_name", "email", "phone"),
    ),
    EntityType(
        name="deal",
        model=Deal,
        label="Deal",
        required=("name",),
        kinds={"name": "name"},
        search=("name",),
    ),
    EntityType(
        name="activity",
        model=Activity,
        label="Activity",
        required=("kind", "subject"),
        choices={"kind": tuple(ActivityKind)},
        search=("subject", "body"),
    ),
    EntityType(
        name="task",
        model=Task,
        label="Task",
        required=("title",),
        choices={"status": tuple(TaskStatus)},
        search=("title",),
    ),
)
