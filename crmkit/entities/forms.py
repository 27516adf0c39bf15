"""Lead-capture forms: a public key a web site posts to, the fields it accepts, whose leads."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class LeadForm(Base):
    """A lead-capture form. ``key`` is public (it is in the web page); ``fields`` are the lead
    fields a submission may set; ``owner_id`` owns the leads it creates (``None``: the
    assignment rules or the pool decide); ``honeypot`` names a hidden field that people leave
    empty and bots fill in."""

    __tablename__ = "lead_forms"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    fields: Mapped[list[str]] = mapped_column(default=list)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    source_channel: Mapped[str] = mapped_column(String(64), default="web_form")
    honeypot: Mapped[str] = mapped_column(String(64), default="website_url")
    success_message: Mapped[str] = mapped_column(Text, default="Thank you, we will be in touch.")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(default=None)
