"""The plugin's one table: every scanned card, its image, the draft read from it and what
became of it. Created by the plugin's own Alembic branch (``migrations/``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

import crmkit

#: A scan's life: ``review`` (waiting for a person: a low-confidence field, a duplicate, or
#: read without ``--save``), ``saved`` (contact written), ``discarded``.
STATUSES = ("review", "saved", "discarded")


class CardScan(crmkit.Model):
    """One scanned card. ``fields`` maps a field name to ``{"value", "confidence",
    "source"}``; ``flags`` are the reasons a person must look at it; ``duplicates`` the
    visible matches (``{"entity", "record_id", "label", "reasons"}``) and ``hidden_matches``
    how many matches the scanning user may not see. Who scanned it, when and where
    (``scanned_by_id``, ``scanned_at``, ``location``) are the scan's: the "card scanned"
    activity says them even when someone else confirms the card later."""

    __tablename__ = "card_scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    filename: Mapped[str] = mapped_column(String(300))
    page: Mapped[int] = mapped_column(Integer, default=1)
    media_type: Mapped[str] = mapped_column(String(64))
    image: Mapped[bytes] = mapped_column(LargeBinary)
    engine: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    flags: Mapped[list[str]] = mapped_column(JSON)
    duplicates: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    hidden_matches: Mapped[int] = mapped_column(Integer, default=0)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id"), index=True, default=None
    )
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"), default=None)
    scanned_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id"), index=True, default=None
    )
    scanned_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    #: Where the card was collected (``--where``), kept from the scan for the activity a
    #: later confirmation writes.
    location: Mapped[str | None] = mapped_column(String(300), default=None)
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
