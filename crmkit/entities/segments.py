"""Segments: saved, named filters over one entity, and the computed measures plugins add to
what a segment can filter on."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from attrs import field, frozen
from sqlalchemy import ColumnElement, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow
from crmkit.entities.custom_fields import FieldType

if TYPE_CHECKING:
    from crmkit.services.operation import Operation

_MEASURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class SavedSegment(Base):
    """A saved segment: records of ``entity`` matching ``filters`` (the filter language of
    lists, with relations, measures and other segments; see docs/segments.md). Names are
    unique across entities, so ``segment=NAME`` needs no entity."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    entity: Mapped[str] = mapped_column(String(64), index=True)
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(default=None)
    updated_by_id: Mapped[int | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(default=1)


@frozen
class MeasureContext:
    """What a measure's ``expression`` is built for: the operation (its actor's access, its
    CRM), the entity and its model (the table the expression correlates to), and ``now``
    (one instant per evaluation, for measures relative to the present)."""

    op: Operation
    entity: str
    model: Any
    now: dt.datetime


def _check_measure_name(instance: SegmentMeasure, attribute: object, value: str) -> None:
    if not _MEASURE_NAME.match(value):
        raise ValueError(
            f"measure name {value!r} must be lower-case letters, digits and underscores,"
            " starting with a letter"
        )


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in values)


@frozen
class SegmentMeasure:
    """A computed value of each record of ``entity`` that segments and list filters can
    compare like a field (``{"rfm_segment": "champions"}``, ``{"points_balance__gte": 500}``).

    ``expression(context)`` returns a SQL expression over ``context.model`` (usually a
    correlated scalar subquery); it is evaluated in the database, inside the one query of the
    list, count or segment. ``type`` (and ``choices`` for a choice) says how operands are
    parsed, as for a custom field of that type. ``permission`` is needed to filter on it
    (e.g. ``"loyalty:read"``); ``hidden_with`` names fields (``"deal.amount"``) whose
    hiding by a field rule hides the measure too, so a measure cannot reveal a hidden field.
    """

    entity: str
    name: str = field(validator=_check_measure_name)
    expression: Callable[[MeasureContext], ColumnElement[Any]]
    type: FieldType = field(default=FieldType.DECIMAL, converter=FieldType)
    choices: tuple[str, ...] = field(default=(), converter=_strings)
    label: str = ""
    description: str = ""
    permission: str | None = None
    hidden_with: tuple[str, ...] = field(default=(), converter=_strings)

    def __attrs_post_init__(self) -> None:
        if self.type is FieldType.MULTI_CHOICE:
            raise ValueError(f"measure {self.name!r}: a measure cannot be a multi-choice")
        if self.type is FieldType.CHOICE and not self.choices:
            raise ValueError(f"measure {self.name!r} of type choice needs choices")
        for name in self.hidden_with:
            if name.count(".") != 1:
                raise ValueError(
                    f"measure {self.name!r}: hidden_with names fields as ENTITY.FIELD, not {name!r}"
                )
