"""The campaigns plugin's tables: campaigns, one compact row per contact in a campaign, and
one row of send counters per recipient domain.

State is set-based and compact on purpose (Mautic keeps an event row per contact and step and
its log grows to hundreds of GB): a member row holds where the contact stands (the last step
sent, when the next is due, clicked, replied, bought) and is updated in place, in batches.
What was sent, when and how it went is the core delivery log's business (one row per message,
keyed ``campaign:<campaign>:<step>:<contact>``), and each sent mail is an activity on the
contact."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

import crmkit


class Campaign(crmkit.Model):
    """A campaign: an audience (a saved segment, or a filter on contacts), a sequence of
    steps (``steps``: the checked definition, see :mod:`crmkit_campaigns.definition`), a
    schedule window and its owner, whose view of the contacts bounds the audience.

    ``status``: ``draft`` (being written; nobody mailed), ``running``, ``paused``,
    ``finished``."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    segment: Mapped[str | None] = mapped_column(String(200), default=None)
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    window: Mapped[dict[str, Any]] = mapped_column(default=dict)
    allow_same_day: Mapped[bool] = mapped_column(default=False)
    audience: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CampaignMember(crmkit.Model):
    """Where one contact stands in one campaign (one row, updated in place).

    ``step`` is the position of the last sequence step sent (0: none yet); ``next_due_at``
    when the next one is due (``None``: the sequence is over for them). ``status``:
    ``active``, ``done`` (sequence over), ``replied`` (stopped: they answered),
    ``unsubscribed`` / ``bounced`` / ``complained`` / ``manual`` (stopped: on the e-mail
    do-not-contact list for that reason), ``invalid`` (no usable address), ``left`` (no
    longer visible to the owner). ``converted_at``/``converted_by`` (``purchase`` or
    ``form``) arm the thank-you step; ``thanked_at`` says it went."""

    __tablename__ = "campaign_members"
    __table_args__ = (
        Index("ix_campaign_members_due", "campaign_id", "status", "next_due_at"),
        Index("ix_campaign_members_contact", "contact_id", "last_sent_at"),
    )

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    step: Mapped[int] = mapped_column(default=0)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    joined_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    clicked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    replied_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    converted_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    converted_by: Mapped[str | None] = mapped_column(String(16), default=None)
    thanked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class DomainCounter(crmkit.Model):
    """Campaign mails handed to the message queue for one recipient domain, in the current
    minute and the current day (two counters that restart when their window moves on:
    one row per domain, however long the history)."""

    __tablename__ = "campaign_domain_counters"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    minute_start: Mapped[dt.datetime] = mapped_column()
    minute_count: Mapped[int] = mapped_column(default=0)
    day_start: Mapped[dt.datetime] = mapped_column()
    day_count: Mapped[int] = mapped_column(default=0)
