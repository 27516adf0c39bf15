"""Activities (the follow-up record of every interaction) and tasks."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, RecordMixin, utcnow


class ActivityKind(enum.StrEnum):
    """The kind of interaction an activity records."""

    CALL = "call"
    VISIT = "visit"
    EMAIL = "email"
    MEETING = "meeting"
    NOTE = "note"


class TaskStatus(enum.StrEnum):
    """Where a task stands."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class RelatedRecordsMixin:
    """Links to the customer records an activity or task is about."""

    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id"), index=True, default=None
    )
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), index=True, default=None
    )
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), index=True, default=None)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True, default=None)


class Activity(RecordMixin, RelatedRecordsMixin, Base):
    """One interaction: what was discussed, what the customer asked for, what to watch."""

    __tablename__ = "activities"

    kind: Mapped[str] = mapped_column(String(16), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text, default=None)
    customer_request: Mapped[str | None] = mapped_column(Text, default=None)
    watch_points: Mapped[str | None] = mapped_column(Text, default=None)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    duration_minutes: Mapped[int | None] = mapped_column(default=None)
    next_follow_up_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Task(RecordMixin, RelatedRecordsMixin, Base):
    """Something somebody has to do, by a due time; its owner is the assignee."""

    __tablename__ = "tasks"

    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text, default=None)
    due_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.OPEN, index=True)
    priority: Mapped[int] = mapped_column(default=0)
    completed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
