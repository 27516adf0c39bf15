"""Customers: accounts (companies), contacts (people) and leads (unqualified prospects)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, RecordMixin


class LifecycleStage(enum.StrEnum):
    """Where a customer stands: prospect → first purchase → repeat buyer → advocate, or churned."""

    PROSPECT = "prospect"
    FIRST_PURCHASE = "first_purchase"
    REPEAT_BUYER = "repeat_buyer"
    ADVOCATE = "advocate"
    CHURNED = "churned"


class LeadStatus(enum.StrEnum):
    """The state of a lead on its way to becoming a customer."""

    NEW = "new"
    WORKING = "working"
    QUALIFIED = "qualified"
    UNQUALIFIED = "unqualified"
    CONVERTED = "converted"


class AddressMixin:
    """Postal address columns shared by accounts, contacts and leads."""

    address: Mapped[str | None] = mapped_column(String(500), default=None)
    city: Mapped[str | None] = mapped_column(String(100), default=None, index=True)
    region: Mapped[str | None] = mapped_column(String(100), default=None)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    postal_code: Mapped[str | None] = mapped_column(String(20), default=None)


class Account(RecordMixin, AddressMixin, Base):
    """A company or organisation the business sells to."""

    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(300), index=True)
    industry: Mapped[str | None] = mapped_column(String(100), default=None)
    website: Mapped[str | None] = mapped_column(String(300), default=None)
    phone: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    email: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default=LifecycleStage.PROSPECT)
    value_tier: Mapped[str | None] = mapped_column(String(32), default=None)
    source_channel: Mapped[str | None] = mapped_column(String(64), default=None)
    notes: Mapped[str | None] = mapped_column(Text, default=None)


class Contact(RecordMixin, AddressMixin, Base):
    """A person: a customer, or someone at a customer's company."""

    __tablename__ = "contacts"
    #: A scoped list reads one top-N per team of the actor's scope plus one of their own
    #: records (``RecordService._union_page``), each from an index on the owner or the team,
    #: then the sort order (the id, the name), then what the branch tests (the id, the soft
    #: delete), so that it reads nothing but the index (docs/decisions.md). The first two
    #: replace the single-column owner and team indexes, of which they are a superset.
    __table_args__ = (
        Index("ix_contacts_owner_id", "owner_id", "id", "deleted_at"),
        Index("ix_contacts_team_id", "team_id", "id", "deleted_at"),
        Index("ix_contacts_owner_id_full_name", "owner_id", "full_name", "id", "deleted_at"),
        Index("ix_contacts_team_id_full_name", "team_id", "full_name", "id", "deleted_at"),
    )

    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), default=None)
    full_name: Mapped[str] = mapped_column(String(200), index=True)
    given_name: Mapped[str | None] = mapped_column(String(100), default=None)
    family_name: Mapped[str | None] = mapped_column(String(100), default=None)
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), index=True, default=None
    )
    #: The company as a source names it (a card, a form, another CRM's export), kept as
    #: written whether or not the contact is linked to an account (``account_id``).
    company_name: Mapped[str | None] = mapped_column(String(300), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    phone: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    extra_emails: Mapped[list[str]] = mapped_column(default=list)
    extra_phones: Mapped[list[str]] = mapped_column(default=list)
    social: Mapped[dict[str, str]] = mapped_column(default=dict)
    birthday: Mapped[dt.date | None] = mapped_column(default=None)
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default=LifecycleStage.PROSPECT)
    value_tier: Mapped[str | None] = mapped_column(String(32), default=None)
    source_channel: Mapped[str | None] = mapped_column(String(64), default=None)
    notes: Mapped[str | None] = mapped_column(Text, default=None)


class Lead(RecordMixin, AddressMixin, Base):
    """An unqualified prospect: an inquiry, a scanned card, a form submission.

    Converting a qualified lead creates a contact, an account and (optionally) a deal, and
    records where it went.
    """

    __tablename__ = "leads"

    full_name: Mapped[str] = mapped_column(String(200), index=True)
    company_name: Mapped[str | None] = mapped_column(String(300), default=None)
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None, index=True)
    phone: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    status: Mapped[str] = mapped_column(String(32), default=LeadStatus.NEW, index=True)
    source_channel: Mapped[str | None] = mapped_column(String(64), default=None)
    inquiry: Mapped[str | None] = mapped_column(Text, default=None)
    converted_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    converted_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id"), default=None
    )
    converted_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), default=None
    )
    converted_deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), default=None)
