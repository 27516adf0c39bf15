"""The outbox: events written in the same transaction as the change that caused them, and the
per-sink delivery state the relay worker keeps."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class OutboxEvent(Base):
    """One committed event. ``dispatched_at`` is set once the relay has fanned it out."""

    __tablename__ = "event_outbox"
    # Partial: only undispatched rows are in it, so marking a row dispatched adds no entry
    # (migration 0009; docs/decisions.md "The relay's indexes hold only open work").
    __table_args__ = (
        Index(
            "ix_event_outbox_undispatched",
            "id",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(default=None)
    record_type: Mapped[str | None] = mapped_column(String(64), default=None)
    record_id: Mapped[int | None] = mapped_column(default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class DeliveryStatus(enum.StrEnum):
    """Where one event stands with one sink."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DEAD = "dead"


#: The rows the relay still has to deliver (the partial indexes' condition).
OPEN_CONDITION = "status IN ('pending', 'in_flight')"


class EventDelivery(Base):
    """The delivery of one outbox event to one sink: attempts, next try, claim, last error."""

    __tablename__ = "event_deliveries"
    # Both partial, over open deliveries only: the relay reads nothing else through them,
    # and a delivered row's new version then gets no entry in either (migration 0009).
    __table_args__ = (
        Index(
            "ix_event_deliveries_order",
            "sink",
            "record_key",
            "id",
            postgresql_where=text(OPEN_CONDITION),
            sqlite_where=text(OPEN_CONDITION),
        ),
        Index(
            "ix_event_deliveries_due",
            "status",
            "next_attempt_at",
            postgresql_where=text(OPEN_CONDITION),
            sqlite_where=text(OPEN_CONDITION),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("event_outbox.id"), index=True)
    sink: Mapped[str] = mapped_column(String(100))
    record_key: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(default=None)
