"""The plugin's tables: blocking keys per record, and the candidate pairs a scan found.

Both are created by the plugin's own Alembic branch (``migrations/``), which matches these
models column for column.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

import crmkit


class DedupeKey(crmkit.Model):
    """One blocking key of one record: ``kind`` is the comparison (``phone``, ``email``,
    ``name``, ``company``, ``domain``, ``date``), ``key`` the normalised value. The online
    check finds candidates with one index-only lookup on ``(kind, key, entity, record_id)``."""

    __tablename__ = "dedupe_keys"
    __table_args__ = (
        Index("ix_dedupe_keys_lookup", "kind", "key", "entity", "record_id"),
        Index("ix_dedupe_keys_record", "entity", "record_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200))


class DedupeCandidate(crmkit.Model):
    """A pair of records a scan found alike: ``(entity_a, id_a)`` is the record checked by
    ``rule``, ``(entity_b, id_b)`` the one it looks like. ``status`` is ``open``,
    ``dismissed`` (not the same customer: a later scan keeps it dismissed) or ``merged``."""

    __tablename__ = "dedupe_candidates"
    __table_args__ = (
        # also the index for lookups by (entity_a, id_a)
        UniqueConstraint("entity_a", "id_a", "entity_b", "id_b", name="uq_dedupe_candidates_pair"),
        # the few decided candidates; a scan writes only open ones (migration dedupe_0003)
        Index(
            "ix_dedupe_candidates_decided",
            "status",
            postgresql_where=text("status <> 'open'"),
            sqlite_where=text("status <> 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_a: Mapped[str] = mapped_column(String(32))
    id_a: Mapped[int] = mapped_column(Integer)
    entity_b: Mapped[str] = mapped_column(String(32))
    id_b: Mapped[int] = mapped_column(Integer, index=True)
    score: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    found_at: Mapped[dt.datetime] = mapped_column(default=crmkit.utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    merge_id: Mapped[int | None] = mapped_column(Integer, default=None)

    def as_dict(self) -> dict[str, Any]:
        """The candidate as JSON-ready values."""
        return {
            "id": self.id,
            "entity_a": self.entity_a,
            "id_a": self.id_a,
            "entity_b": self.entity_b,
            "id_b": self.id_b,
            "score": self.score,
            "rule": self.rule,
            "action": self.action,
            "reasons": list(self.reasons),
            "status": self.status,
            "found_at": self.found_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decided_by_id": self.decided_by_id,
            "merge_id": self.merge_id,
        }
