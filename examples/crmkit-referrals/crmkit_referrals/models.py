"""The plugin's own entity: a referral, one contact bringing in another.

Subclassing ``crmkit.RecordMixin`` and ``crmkit.Model`` gives it everything a core record has
(id, owner, team, timestamps, actor columns, version, soft delete, custom fields), so the core's
record service serves it as ``crm.records("referral")``. The table itself is created by this
plugin's own Alembic branch (``migrations/``), which must match this model column for column.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import crmkit


class Referral(crmkit.RecordMixin, crmkit.Model):
    """``referrer`` brought in ``referred`` through ``channel`` and earned ``reward_points``."""

    __tablename__ = "referrals"

    referrer_contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    referred_contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    channel: Mapped[str | None] = mapped_column(String(64), default=None)
    reward_points: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text, default=None)
