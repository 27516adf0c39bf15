"""Deals (opportunities) moving through the stages of a pipeline."""

from __future__ import annotations

import datetime as dt
import decimal
import enum

from sqlalchemy import ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, RecordMixin, utcnow


class StageKind(enum.StrEnum):
    """Whether a stage is still open, or closes the deal as won or lost."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Pipeline(Base):
    """An ordered set of stages a deal moves through (sales, renewals, projects, ...)."""

    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Stage(Base):
    """One step of a pipeline, with its order, win probability and kind."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("pipeline_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column()
    probability: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(16), default=StageKind.OPEN)


class Deal(RecordMixin, Base):
    """A sales opportunity with an amount, in one stage of one pipeline."""

    __tablename__ = "deals"

    name: Mapped[str] = mapped_column(String(300))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), index=True, default=None
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id"), index=True, default=None
    )
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"), index=True)
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id"), index=True)
    amount: Mapped[decimal.Decimal | None] = mapped_column(Numeric(18, 2), default=None)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    expected_close_date: Mapped[dt.date | None] = mapped_column(default=None)
    stage_changed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
