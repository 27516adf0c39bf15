"""Webhook subscriptions made through the API: stored in the database, delivered by the relay
like the ``[[webhooks]]`` of the config file (HMAC-signed, at least once, in order per record).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from crmkit.db.base import Base, utcnow
from crmkit.events.types import EventSink
from crmkit.events.webhook import WebhookSink

#: Delivery rows of a subscription carry this sink name prefix and its id.
SINK_PREFIX = "subscription:"


class WebhookSubscription(Base):
    """One subscriber URL, the events it wants (shell-style patterns) and its signing secret."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    patterns: Mapped[list[str]] = mapped_column(default=list)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(default=None)

    @property
    def sink_name(self) -> str:
        """The name its deliveries are kept under (``subscription:<id>``)."""
        return f"{SINK_PREFIX}{self.id}"


def subscription_sinks(session: Session, *, allow_internal: bool = False) -> list[WebhookSink]:
    """A webhook sink for every stored subscription (``allow_internal``: the setting
    ``crmkit.relay.allow_internal_addresses``)."""
    return [
        WebhookSink(
            name=subscription.sink_name,
            url=subscription.url,
            secret=subscription.secret,
            patterns=tuple(subscription.patterns) or ("*",),
            allow_internal=allow_internal,
        )
        for subscription in session.scalars(
            select(WebhookSubscription).order_by(WebhookSubscription.id)
        )
    ]


def refreshed_sinks(
    current: Mapping[str, EventSink], session: Session, *, allow_internal: bool = False
) -> dict[str, EventSink]:
    """``current`` with its subscription sinks brought up to date: new subscriptions added,
    deleted ones dropped, unchanged ones kept (with their open HTTP connection)."""
    sinks = {name: sink for name, sink in current.items() if not name.startswith(SINK_PREFIX)}
    for fresh in subscription_sinks(session, allow_internal=allow_internal):
        old = current.get(fresh.name)
        same = isinstance(old, WebhookSink) and (old.url, old.secret, tuple(old.patterns)) == (
            fresh.url,
            fresh.secret,
            tuple(fresh.patterns),
        )
        sinks[fresh.name] = old if same and old is not None else fresh
    return sinks
