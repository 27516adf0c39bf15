"""Tables of assignment: rules and their members, round-robin cursors, availability, shared
pool policies and claims, and the ownership history of every assigned record."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class AssignmentRule(Base):
    """An ordered rule of one entity: conditions on fields and a strategy over members.

    ``conditions`` use the filter syntax of lists (``{"source_channel": "web",
    "amount__gte": 1000}``); ``options`` hold what a strategy needs beyond its members (the
    territory field and fallback member)."""

    __tablename__ = "assignment_rules"
    __table_args__ = (UniqueConstraint("entity", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    strategy: Mapped[str] = mapped_column(String(64))
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AssignmentMember(Base):
    """A user or a team (meaning every active user of it) a rule hands records to.

    ``weight`` is used by the weighted strategy, ``capacity`` caps the member's open records
    of the rule's entity, ``territory`` is the field value the territory strategy maps to
    this member."""

    __tablename__ = "assignment_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("assignment_rules.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), default=None)
    weight: Mapped[int] = mapped_column(default=1)
    capacity: Mapped[int | None] = mapped_column(default=None)
    territory: Mapped[str | None] = mapped_column(String(200), default=None)


class AssignmentCursor(Base):
    """How many records a rule has handed out: the round-robin and weighted position.

    Advanced with one atomic ``UPDATE ... RETURNING`` inside the creating transaction, which
    row-locks it on PostgreSQL until commit, so concurrent processes take turns."""

    __tablename__ = "assignment_cursors"

    rule_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)


class UserAvailability(Base):
    """A user who is away (holiday, leave): assignment rules skip them until ``away_until``
    (``None``: until they are marked back)."""

    __tablename__ = "user_availability"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    away_since: Mapped[dt.datetime] = mapped_column(default=utcnow)
    away_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    note: Mapped[str] = mapped_column(String(300), default="")


class PoolPolicy(Base):
    """When a record goes back to the shared pool: ``days`` without a follow-up activity
    (and without a change of owner), for the records of ``entity`` matching ``conditions``
    (the segment; filter syntax)."""

    __tablename__ = "pool_policies"
    __table_args__ = (UniqueConstraint("entity", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(100))
    days: Mapped[int] = mapped_column()
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PoolClaim(Base):
    """A user took a record from the shared pool (counted against their daily limit)."""

    __tablename__ = "pool_claims"
    __table_args__ = (Index("ix_pool_claims_user_time", "user_id", "entity", "claimed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    entity: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int] = mapped_column()
    claimed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class OwnershipChange(Base):
    """One change of a record's owner: who had it, who has it, why (``rule``, ``claim``,
    ``release``, ``handover``, ``update``), and which rule or policy decided it. Append-only
    by convention: nothing in crmkit updates or deletes these rows."""

    __tablename__ = "ownership_history"
    __table_args__ = (Index("ix_ownership_history_record", "entity", "record_id", "changed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[int] = mapped_column()
    previous_owner_id: Mapped[int | None] = mapped_column(default=None)
    owner_id: Mapped[int | None] = mapped_column(default=None)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(300), default="")
    actor_id: Mapped[int | None] = mapped_column(default=None)
    batch: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
