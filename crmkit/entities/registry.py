"""Entity types: what the service layer needs to know about each kind of record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import field, frozen
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import ColumnProperty

from crmkit.db.base import Base
from crmkit.entities.customers import Account, Contact, Lead, LeadStatus, LifecycleStage
from crmkit.entities.deals import Deal
from crmkit.entities.followup import Activity, ActivityKind, Task, TaskStatus

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


@frozen
class EntityType:
    """A kind of record served by the generic record service.

    ``kinds`` maps a column to how its values are normalised: ``"name"`` (NFKC, folded
    spaces), ``"email"``, ``"phone"`` (E.164 with the configured default region),
    ``"email_list"``/``"phone_list"``. ``choices`` limits a column to fixed values.
    ``search`` lists the columns free-text search looks in.
    """

    name: str
    model: type[Base]
    label: str = ""
    required: tuple[str, ...] = field(default=(), converter=_names)
    kinds: Mapping[str, str] = field(factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(factory=dict)
    search: tuple[str, ...] = field(default=(), converter=_names)
    source: str = "crmkit"

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
