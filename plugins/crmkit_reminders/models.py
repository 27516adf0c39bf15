"""The reminders plugin's tables: reminders, each user's reminder preferences (time zone,
channels, calendar feed token) and the record of care messages already planned."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import crmkit


class Reminder(crmkit.Model):
    """A reminder for its owner about a record, once (``rrule`` empty) or on an RFC 5545
    recurrence rule, in the owner's time zone.

    ``next_due_at`` is the next occurrence in UTC (``None`` when nothing is left: done, or a
    one-off that fired); the worker delivers every reminder whose ``next_due_at`` has come,
    claiming rows with ``FOR UPDATE SKIP LOCKED``. ``source_key`` identifies a derived
    reminder (``birthday:contact:12:2026``) so deriving again never makes a second one."""

    __tablename__ = "reminders"
    __table_args__ = (
        Index("ix_reminders_due", "next_due_at", postgresql_where="next_due_at IS NOT NULL"),
        Index("ix_reminders_owner", "owner_id", "status", "next_due_at"),
        Index("ix_reminders_record", "record_type", "record_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    record_type: Mapped[str | None] = mapped_column(String(64), default=None)
    record_id: Mapped[int | None] = mapped_column(default=None)
    title: Mapped[str] = mapped_column(String(300))
    note: Mapped[str] = mapped_column(Text, default="")
    #: the first occurrence, as wall-clock time in ``timezone`` (naive ISO text)
    starts_local: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    rrule: Mapped[str | None] = mapped_column(String(500), default=None)
    channels: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    next_due_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    #: the occurrence the next delivery is for (differs from next_due_at while snoozed)
    occurrence_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    fired_count: Mapped[int] = mapped_column(default=0)
    last_fired_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    source: Mapped[str] = mapped_column(String(64), default="manual")
    source_key: Mapped[str | None] = mapped_column(String(200), default=None, unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    created_by_id: Mapped[int | None] = mapped_column(default=None)
    done_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class ReminderPreferences(crmkit.Model):
    """One user's reminder preferences: time zone, channels, calendar feed token."""

    __tablename__ = "reminder_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    channels: Mapped[list[str]] = mapped_column(default=list)
    #: sha256 of the calendar feed's secret token (the token itself is shown once)
    feed_token_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
