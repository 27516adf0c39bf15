"""The tables of message channels: one delivery log for every channel, and the per-channel
do-not-contact list."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class MessageStatus(enum.StrEnum):
    """Where one message stands with its channel.

    ``pending`` waits for the worker (or for its next attempt), ``in_flight`` is claimed by a
    worker, ``sent`` was handed over, ``dead`` failed for good (an admin may retry it),
    ``suppressed`` was not sent because the address is on the do-not-contact list, ``late``
    was not sent because it was due longer ago than the catch-up window."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    DEAD = "dead"
    SUPPRESSED = "suppressed"
    LATE = "late"


class MessageDelivery(Base):
    """One message to one recipient over one channel: the delivery log.

    ``key`` is unique: a second send with the same key is not a second message (the delivery
    key of a reminder occurrence is built from the occurrence, the recipient and the
    channel, so each is delivered once)."""

    __tablename__ = "message_deliveries"
    __table_args__ = (
        Index("ix_message_deliveries_due", "status", "next_attempt_at"),
        Index("ix_message_deliveries_record", "record_type", "record_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(500))
    user_id: Mapped[int | None] = mapped_column(default=None)
    contact_id: Mapped[int | None] = mapped_column(default=None)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text, default=None)
    record_type: Mapped[str | None] = mapped_column(String(64), default=None)
    record_id: Mapped[int | None] = mapped_column(default=None)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.PENDING)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    late: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class SuppressionReason(enum.StrEnum):
    """Why an address is on the do-not-contact list of a channel."""

    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    MANUAL = "manual"


class Suppression(Base):
    """An address (normalised: e-mails lower case) a channel must not send to, and why."""

    __tablename__ = "message_suppressions"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_message_suppressions"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    contact_id: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(default=None)
