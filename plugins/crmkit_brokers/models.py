"""The plugin's one table: inbound messages already applied, by idempotency key."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

import crmkit


class InboundMessage(crmkit.Model):
    """An inbound message applied once: its idempotency key, what it did, and when."""

    __tablename__ = "brokers_inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int | None] = mapped_column(default=None)
    outcome: Mapped[str] = mapped_column(String(16))
    applied_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
