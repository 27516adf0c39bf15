"""Tables the core keeps about itself."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from crmkit.db.base import Base, utcnow


class PluginState(Base):
    """Whether an installed plugin is enabled in this database (``crmkit plugins enable``)."""

    __tablename__ = "plugin_states"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    version: Mapped[str] = mapped_column(String(50), default="")
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
