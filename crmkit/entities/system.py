"""Tables the core keeps about itself."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class PluginState(Base):
    """Whether an installed plugin is enabled in this database (``crmkit plugins enable``)."""

    __tablename__ = "plugin_states"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    version: Mapped[str] = mapped_column(String(50), default="")
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ScheduledRun(Base):
    """One occurrence of a scheduled job (``crmkit_scheduled_jobs``), claimed by one worker.

    ``(job, slot)`` is unique: the worker that inserts the row runs the occurrence, the others
    skip it. A run still ``running`` after ``lease_expires_at`` belonged to a worker that died:
    another worker takes it over."""

    __tablename__ = "scheduled_runs"
    __table_args__ = (UniqueConstraint("job", "slot", name="uq_scheduled_runs"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(100))
    slot: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="running")
    worker_id: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    result: Mapped[str] = mapped_column(Text, default="")
