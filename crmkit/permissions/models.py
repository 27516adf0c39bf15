"""Tables of the permission model: grants, role membership, field rules, API tokens, the
append-only audit log and the in-app notification inbox."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class Scope(enum.StrEnum):
    """Which records a grant covers, from narrowest to widest."""

    OWN = "own"  # records the user owns
    TEAM = "team"  # ... and records of the user's own team
    SUBTREE = "subtree"  # ... and records of every team below it
    ALL = "all"  # every record

    @property
    def rank(self) -> int:
        """Order from narrowest (0) to widest (3)."""
        return list(Scope).index(self)


class FieldAccess(enum.StrEnum):
    """What a field rule does to a field for a role."""

    HIDDEN = "hidden"  # never shown, never written
    READ_ONLY = "read_only"  # shown, never written


class RoleGrant(Base):
    """A role's permission (``contact:read``) with the record scope it covers."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("role_id", "permission"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), index=True)
    permission: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(16), default=Scope.OWN)


class UserRole(Base):
    """A user holds a role."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )


class FieldRule(Base):
    """For a role, a field of an entity is hidden or read-only."""

    __tablename__ = "field_rules"
    __table_args__ = (UniqueConstraint("role_id", "entity", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), index=True)
    entity: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(100))
    access: Mapped[str] = mapped_column(String(16))


class AccessStamp(Base):
    """One row whose ``version`` database triggers bump, in the changing transaction,
    whenever anything an ``Access`` is made of changes (roles held, grants, field rules, the
    team tree, a user's team, flags or name). Caches of ``Access`` compare it to know they are
    current (migration 0006_access_stamp)."""

    __tablename__ = "access_stamp"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(default=0)


class ApiToken(Base):
    """A bearer token of a user, stored only as a SHA-256 hash."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One write or sensitive operation. Append-only: database triggers refuse UPDATE and
    DELETE on this table, so not even a buggy service can rewrite history."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_record", "entity", "record_id"),
        Index("ix_audit_log_actor_time", "actor_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(default=None)
    operation: Mapped[str] = mapped_column(String(64), index=True)
    entity: Mapped[str | None] = mapped_column(String(64), default=None)
    record_id: Mapped[int | None] = mapped_column(default=None)
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sensitive: Mapped[bool] = mapped_column(default=False, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class Notification(Base):
    """A message in a user's in-app inbox."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    event_id: Mapped[str | None] = mapped_column(String(36), default=None)
    read_at: Mapped[dt.datetime | None] = mapped_column(default=None)
