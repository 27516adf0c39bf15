"""Users, teams and roles: who works in the CRM and how they are organised."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class Team(Base):
    """A node of the team tree: the company, a department, a sub-team (any depth)."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    """Somebody who signs in to the CRM and owns records."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True, default=None)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class Role(Base):
    """A named bundle of permissions (admin, manager, sales rep, read-only, or your own)."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    is_builtin: Mapped[bool] = mapped_column(default=False)
