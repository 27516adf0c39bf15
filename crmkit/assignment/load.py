"""Which records count as a user's open workload (for least-loaded, capacity caps, claim
limits and the hand-over of a departing user's records)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select, true

from crmkit.entities.customers import LeadStatus
from crmkit.entities.deals import Stage, StageKind
from crmkit.entities.followup import TaskStatus


def open_condition(entity: str, model: Any) -> ColumnElement[bool]:
    """The SQL condition of an *open* record of ``entity`` (live records only are counted by
    the callers): leads not converted, deals in an open stage, open tasks; every live
    contact and account."""
    if entity == "lead":
        return model.status != LeadStatus.CONVERTED  # type: ignore[no-any-return]
    if entity == "deal":
        open_stages = select(Stage.id).where(Stage.kind == StageKind.OPEN)
        return model.stage_id.in_(open_stages)  # type: ignore[no-any-return]
    if entity == "task":
        return model.status == TaskStatus.OPEN  # type: ignore[no-any-return]
    return true()
