"""A service ticket (售后工单): one customer problem, about one contact, until it is closed."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

import crmkit

#: A ticket's states, in the order it goes through them.
STATUSES = ("open", "waiting", "closed")
#: Statuses that count as open for the per-contact limit.
OPEN_STATUSES = ("open", "waiting")
PRIORITIES = ("normal", "urgent")


class Ticket(crmkit.RecordMixin, crmkit.Model):
    """One service ticket of a contact (``Mapped[datetime]`` is stored as
    ``crmkit.UTCDateTime``, always timezone-aware)."""

    __tablename__ = "tickets"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="open")
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    due_at: Mapped[dt.datetime | None] = mapped_column(default=None)
