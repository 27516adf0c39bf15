"""Webhook subscriptions made through the API: stored in the database, delivered by the relay
like the ``[[webhooks]]`` of the config file (HMAC-signed, at least once, in order per record).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from crmkit.db.base import Base, utcnow
from crmkit.events.outbox import DeliveryStatus, EventDelivery
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
    batch_size: Mapped[int] = mapped_column(default=1, server_default="1")
    disabled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), default=None)

    @property
    def sink_name(self) -> str:
        """The name its deliveries are kept under (``subscription:<id>``)."""
        return f"{SINK_PREFIX}{self.id}"


def subscription_sinks(session: Session, *, allow_internal: bool = False) -> list[WebhookSink]:
    """A webhook sink for every stored subscription that is not disabled (``allow_internal``:
    the setting ``crmkit.relay.allow_internal_addresses``)."""
    return [
        WebhookSink(
            name=subscription.sink_name,
            url=subscription.url,
            secret=subscription.secret,
            patterns=tuple(subscription.patterns) or ("*",),
            batch_size=subscription.batch_size,
            allow_internal=allow_internal,
        )
        for subscription in session.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.disabled_at.is_(None))
            .order_by(WebhookSubscription.id)
        )
    ]


def disable_gone_subscriptions(session: Session, sinks: Sequence[str], reason: str) -> int:
    """Disable the subscriptions among the sink names ``sinks`` (their receiver answered
    410 Gone) and park their open deliveries as dead; return how many were disabled.
    Config-file webhooks are not stored: only their deliveries at hand went dead."""
    ids = [int(name[len(SINK_PREFIX) :]) for name in sinks if name.startswith(SINK_PREFIX)]
    if not ids:
        return 0
    now = utcnow()
    disabled = session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id.in_(ids), WebhookSubscription.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=reason[:500])
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.sink.in_([f"{SINK_PREFIX}{id_}" for id_ in ids]),
            EventDelivery.status.in_(
                [DeliveryStatus.PENDING.value, DeliveryStatus.IN_FLIGHT.value]
            ),
        )
        .values(
            status=DeliveryStatus.DEAD.value,
            last_error=f"subscription disabled: {reason}"[:2000],
            claim_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return int(disabled.rowcount)  # type: ignore[attr-defined]


def refreshed_sinks(
    current: Mapping[str, EventSink], session: Session, *, allow_internal: bool = False
) -> dict[str, EventSink]:
    """``current`` with its subscription sinks brought up to date: new subscriptions added,
    deleted ones dropped, unchanged ones kept (with their open HTTP connection)."""
    sinks = {name: sink for name, sink in current.items() if not name.startswith(SINK_PREFIX)}
    for fresh in subscription_sinks(session, allow_internal=allow_internal):
        old = current.get(fresh.name)
        same = isinstance(old, WebhookSink) and (
            old.url,
            old.secret,
            tuple(old.patterns),
            old.batch_size,
        ) == (fresh.url, fresh.secret, tuple(fresh.patterns), fresh.batch_size)
        sinks[fresh.name] = old if same and old is not None else fresh
    return sinks
