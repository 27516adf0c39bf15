"""The record of each merge: what it changed, so that it can be undone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class Merge(Base):
    """One merge of ``merged_id`` into ``survivor_id`` (records of ``entity``).

    ``survivor_before``/``merged_before`` are the two records' values before the merge;
    ``survivor_version``/``merged_version`` their versions right after it (an undo refuses
    when either moved on since); ``moved`` lists the re-pointed references
    (``[{"table", "column", "ids"}]``) and ``plugin_moves`` what plugins reported moving
    through ``crmkit_merge_references``.
    """

    __tablename__ = "merges"
    __table_args__ = (Index("ix_merges_records", "entity", "survivor_id", "merged_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(64))
    survivor_id: Mapped[int] = mapped_column(Integer)
    merged_id: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    survivor_before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    merged_before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    survivor_version: Mapped[int] = mapped_column(Integer)
    merged_version: Mapped[int] = mapped_column(Integer)
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    plugin_moves: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    merged_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
