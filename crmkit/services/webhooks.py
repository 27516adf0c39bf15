"""Webhook subscriptions: integrators subscribe a URL to events through the API.

Each subscription is a durable event sink named ``subscription:<id>``: the relay worker
(``crmkit worker``) fans matching outbox events out to it and POSTs them signed with the
subscription's secret exactly like a ``[[webhooks]]`` entry of the config file. The secret is
shown once, when the subscription is created. Managing subscriptions needs
``webhook:manage`` (a subscriber receives every matching event, whoever could see the record).
"""

from __future__ import annotations

import builtins
import datetime as dt
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from attrs import frozen
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crmkit.entities.organisation import User
from crmkit.errors import FieldError, NotFoundError, ValidationError
from crmkit.events.outbox import DeliveryStatus, EventDelivery, OutboxEvent
from crmkit.events.subscriptions import WebhookSubscription
from crmkit.events.webhook import MAX_BATCH
from crmkit.outbound import UnsafeDestination, check_url_host
from crmkit.permissions.audit import audit_rows

if TYPE_CHECKING:
    from crmkit.app import CRM

SECRET_PREFIX = "whsec_"
MAX_PATTERNS = 50


@frozen
class SubscriptionInfo:
    """A subscription as listings show it (never its secret)."""

    id: int
    url: str
    description: str
    patterns: tuple[str, ...]
    created_at: dt.datetime
    batch_size: int = 1
    disabled_at: dt.datetime | None = None
    disabled_reason: str | None = None


@frozen
class DeliveryInfo:
    """One event's delivery to a subscription: where it stands and why it failed last."""

    id: int
    event_id: str
    event: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None
    last_error: str | None


def _info(subscription: WebhookSubscription) -> SubscriptionInfo:
    return SubscriptionInfo(
        id=subscription.id,
        url=subscription.url,
        description=subscription.description,
        patterns=tuple(subscription.patterns),
        created_at=subscription.created_at,
        batch_size=subscription.batch_size,
        disabled_at=subscription.disabled_at,
        disabled_reason=subscription.disabled_reason,
    )


def check_url(url: str, *, allow_internal: bool = False) -> str:
    """``url`` if it is an absolute http(s) URL to a host outside the local network (unless
    ``allow_internal``, see crmkit.outbound); a ``ValidationError`` naming ``url`` if not."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            [FieldError("url", "must be an absolute http:// or https:// URL")], "webhook"
        )
    if len(url) > 2000:
        raise ValidationError([FieldError("url", "longer than 2000 characters")], "webhook")
    try:
        check_url_host(url, allow_internal=allow_internal)
    except UnsafeDestination as error:
        raise ValidationError([FieldError("url", str(error))], "webhook") from None
    return url


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """Event-name patterns (``contact.*``): non-blank, at most ``MAX_PATTERNS``; none means
    every event."""
    cleaned = [pattern.strip() for pattern in patterns]
    if any(not pattern or len(pattern) > 100 for pattern in cleaned):
        raise ValidationError(
            [FieldError("events", "each pattern is 1 to 100 characters, like contact.*")],
            "webhook",
        )
    if len(cleaned) > MAX_PATTERNS:
        raise ValidationError([FieldError("events", f"at most {MAX_PATTERNS} patterns")], "webhook")
    return cleaned or ["*"]


class WebhookSubscriptionService:
    """Create, list, delete webhook subscriptions and see their deliveries."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def create(
        self,
        url: str,
        patterns: Sequence[str] = ("*",),
        *,
        description: str = "",
        batch_size: int = 1,
        actor: User | None = None,
    ) -> tuple[SubscriptionInfo, str]:
        """Subscribe ``url`` to events matching ``patterns``; return the subscription and its
        signing secret (shown only now). ``batch_size`` above 1 sends up to that many events
        per request (the batch body, each event signed on its own)."""
        url = check_url(url, allow_internal=self.crm.settings.relay.allow_internal_addresses)
        chosen = check_patterns(patterns)
        description = description.strip()
        if len(description) > 200:
            raise ValidationError(
                [FieldError("description", "longer than 200 characters")], "webhook"
            )
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValidationError(
                [FieldError("batch_size", f"must be from 1 to {MAX_BATCH}")], "webhook"
            )
        with self.crm.transaction(actor) as op:
            op.access.require("webhook:manage")
            secret = SECRET_PREFIX + secrets.token_urlsafe(32)
            subscription = WebhookSubscription(
                url=url,
                description=description,
                patterns=chosen,
                secret=secret,
                created_by_id=op.actor_id,
                batch_size=batch_size,
            )
            op.session.add(subscription)
            op.session.flush()
            audit_rows(
                op,
                "webhook.subscribe",
                "webhook_subscription",
                [(subscription.id, {"url": [None, url], "patterns": [None, chosen]})],
            )
            op.emit(
                "webhook.subscribed",
                {"url": url, "patterns": chosen},
                record_type="webhook_subscription",
                record_id=subscription.id,
            )
            return _info(subscription), secret

    def list(self, *, actor: User | None = None) -> list[SubscriptionInfo]:
        """Every subscription, oldest first."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("webhook:manage")
            rows = op.session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
            return [_info(row) for row in rows]

    def get(self, subscription_id: int, *, actor: User | None = None) -> SubscriptionInfo:
        """One subscription; ``NotFoundError`` if there is none with that id."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("webhook:manage")
            return _info(self._load(op.session, subscription_id))

    def delete(self, subscription_id: int, *, actor: User | None = None) -> None:
        """Delete a subscription; its open deliveries are parked as dead (kept for the record,
        never sent)."""
        with self.crm.transaction(actor) as op:
            op.access.require("webhook:manage")
            subscription = self._load(op.session, subscription_id)
            op.session.execute(
                update(EventDelivery)
                .where(
                    EventDelivery.sink == subscription.sink_name,
                    EventDelivery.status.in_(
                        [DeliveryStatus.PENDING.value, DeliveryStatus.IN_FLIGHT.value]
                    ),
                )
                .values(status=DeliveryStatus.DEAD.value, last_error="subscription deleted")
            )
            audit_rows(
                op,
                "webhook.unsubscribe",
                "webhook_subscription",
                [(subscription.id, {"url": [subscription.url, None]})],
            )
            op.emit(
                "webhook.unsubscribed",
                {"url": subscription.url},
                record_type="webhook_subscription",
                record_id=subscription.id,
            )
            op.session.delete(subscription)

    def deliveries(
        self,
        subscription_id: int,
        *,
        status: str | None = None,
        limit: int = 50,
        actor: User | None = None,
    ) -> builtins.list[DeliveryInfo]:
        """The subscription's latest deliveries, newest first (``status`` narrows them)."""
        statuses = [s.value for s in DeliveryStatus]
        if status is not None and status not in statuses:
            raise ValidationError(
                [FieldError("status", f"must be one of {', '.join(statuses)}")], "delivery"
            )
        if not 1 <= limit <= 1000:
            raise ValidationError([FieldError("limit", "must be between 1 and 1000")])
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("webhook:manage")
            subscription = self._load(op.session, subscription_id)
            query = (
                select(EventDelivery, OutboxEvent.event_id, OutboxEvent.name)
                .join(OutboxEvent, OutboxEvent.id == EventDelivery.outbox_id)
                .where(EventDelivery.sink == subscription.sink_name)
                .order_by(EventDelivery.id.desc())
                .limit(limit)
            )
            if status is not None:
                query = query.where(EventDelivery.status == status)
            return [
                DeliveryInfo(
                    id=delivery.id,
                    event_id=event_id,
                    event=name,
                    status=delivery.status,
                    attempts=delivery.attempts,
                    next_attempt_at=delivery.next_attempt_at,
                    delivered_at=delivery.delivered_at,
                    last_error=delivery.last_error,
                )
                for delivery, event_id, name in op.session.execute(query)
            ]

    @staticmethod
    def _load(session: Session, subscription_id: int) -> WebhookSubscription:
        subscription = session.get(WebhookSubscription, subscription_id)
        if subscription is None:
            raise NotFoundError("webhook subscription", subscription_id)
        return subscription
