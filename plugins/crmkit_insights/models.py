"""The plugin's one table: each deal's stage history (the core keeps only the time of the
current stage, ``deals.stage_changed_at``).

A row is written in the deal's own transaction whenever a deal is created or moves to another
stage (the plugin's ``crmkit_after_create_many`` and ``crmkit_after_update``). Enabling the
plugin files one row per existing deal: its current stage, entered at ``stage_changed_at``
(history from before the plugin was enabled is not known). Created by the plugin's Alembic
branch (``migrations/``), which matches this model column for column.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

import crmkit


class InsightStageMove(crmkit.Model):
    """A deal entering a stage: ``deal_id`` entered ``stage_id`` (of ``pipeline_id``) at
    ``entered_at``. The time in a stage is the gap to the deal's next row."""

    __tablename__ = "insight_stage_moves"
    __table_args__ = (Index("ix_insight_stage_moves_deal", "deal_id", "entered_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"))
    pipeline_id: Mapped[int] = mapped_column(Integer)
    stage_id: Mapped[int] = mapped_column(Integer)
    entered_at: Mapped[dt.datetime] = mapped_column(crmkit.UTCDateTime())


STAGE_MOVES: Any = InsightStageMove.__table__


class InsightCustomerMeasure(crmkit.Model):
    """The customer measures as of the last refresh (``crmkit insight refresh`` or the
    ``insight.refresh`` job), one row per customer with an order, computed for the whole
    business: what segments filter on (an indexed look-up per record)."""

    __tablename__ = "insight_customer_measures"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    computed_at: Mapped[dt.datetime] = mapped_column(crmkit.UTCDateTime())
    recency_days: Mapped[float] = mapped_column(Float)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary: Mapped[decimal.Decimal] = mapped_column(Numeric(18, 2))
    r_score: Mapped[int] = mapped_column(Integer)
    f_score: Mapped[int] = mapped_column(Integer)
    m_score: Mapped[int] = mapped_column(Integer)
    rfm_segment: Mapped[str] = mapped_column(String(32))
    pareto_tier: Mapped[str | None] = mapped_column(String(32), default=None)
    churn_risk: Mapped[float | None] = mapped_column(Float, default=None)
    lifecycle_by_rules: Mapped[str | None] = mapped_column(String(32), default=None)


CUSTOMER_MEASURES: Any = InsightCustomerMeasure.__table__
