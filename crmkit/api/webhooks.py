"""Webhook subscriptions through the API: create (the signing secret is in this answer only),
list, get, delete, and the deliveries of one subscription. Needs ``webhook:manage``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from litestar import Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter

from crmkit.api.problems import problem_specs
from crmkit.api.schemas import RecordId
from crmkit.app import CRM
from crmkit.entities.organisation import User
from crmkit.services.webhooks import DeliveryInfo, SubscriptionInfo


class SubscriptionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new subscription: where to POST, which events (shell patterns, default all)."""

    url: str
    events: list[str] = msgspec.field(default_factory=lambda: ["*"])
    description: str = ""
    batch_size: int = 1


class Subscription(msgspec.Struct, kw_only=True):
    """A subscription (its secret is shown once, in the answer to its creation)."""

    id: int
    url: str
    events: list[str]
    description: str
    created_at: dt.datetime
    batch_size: int
    disabled_at: dt.datetime | None
    disabled_reason: str | None


class NewSubscription(Subscription, kw_only=True):
    """A subscription just created, with its signing secret."""

    secret: str


class WebhookDelivery(msgspec.Struct, kw_only=True):
    """One event's delivery to the subscription."""

    id: int
    event_id: str
    event: str
    status: Literal["pending", "in_flight", "delivered", "dead"]
    attempts: int
    next_attempt_at: dt.datetime
    delivered_at: dt.datetime | None
    last_error: str | None


def _subscription(info: SubscriptionInfo) -> Subscription:
    return Subscription(
        id=info.id,
        url=info.url,
        events=list(info.patterns),
        description=info.description,
        created_at=info.created_at,
        batch_size=info.batch_size,
        disabled_at=info.disabled_at,
        disabled_reason=info.disabled_reason,
    )


def _delivery(info: DeliveryInfo) -> WebhookDelivery:
    return WebhookDelivery(
        id=info.id,
        event_id=info.event_id,
        event=info.event,
        status=info.status,  # type: ignore[arg-type]
        attempts=info.attempts,
        next_attempt_at=info.next_attempt_at,
        delivered_at=info.delivered_at,
        last_error=info.last_error,
    )


def webhook_router(crm: CRM) -> Router:
    """``/webhooks`` routes."""

    @post(
        "/",
        summary="Subscribe a URL to events",
        description="Deliveries are POSTed by the relay worker (crmkit worker), signed with"
        " HMAC-SHA256 in X-Crmkit-Signature (t=<unix time>,v1=<hex>), at least once, with the"
        " event id as Idempotency-Key. batch_size (1-100) above 1 sends up to that many"
        " events per request, each signed on its own. A receiver answering 410 Gone"
        " disables the subscription. The secret is in this answer only.",
        sync_to_thread=True,
        operation_id="create_webhook",
        responses=problem_specs(400, 401, 403, 413, 422),
    )
    def create_webhook(
        data: JSONBody[SubscriptionCreate], actor: NamedDependency[User]
    ) -> NewSubscription:
        info, secret = crm.webhooks.create(
            data.url,
            data.events,
            description=data.description,
            batch_size=data.batch_size,
            actor=actor,
        )
        base = _subscription(info)
        return NewSubscription(**msgspec.structs.asdict(base), secret=secret)

    @get(
        "/",
        summary="List webhook subscriptions",
        sync_to_thread=True,
        operation_id="list_webhooks",
        responses=problem_specs(401, 403),
    )
    def list_webhooks(actor: NamedDependency[User]) -> list[Subscription]:
        return [_subscription(info) for info in crm.webhooks.list(actor=actor)]

    @get(
        "/{subscription_id:int}",
        summary="Get one webhook subscription",
        sync_to_thread=True,
        operation_id="get_webhook",
        responses=problem_specs(401, 403, 404),
    )
    def get_webhook(subscription_id: RecordId, actor: NamedDependency[User]) -> Subscription:
        return _subscription(crm.webhooks.get(subscription_id, actor=actor))

    @delete(
        "/{subscription_id:int}",
        summary="Delete a webhook subscription",
        description="Its undelivered events are parked as dead, never sent.",
        sync_to_thread=True,
        operation_id="delete_webhook",
        responses=problem_specs(401, 403, 404),
    )
    def delete_webhook(subscription_id: RecordId, actor: NamedDependency[User]) -> None:
        crm.webhooks.delete(subscription_id, actor=actor)

    @get(
        "/{subscription_id:int}/deliveries",
        summary="The latest deliveries of a subscription, newest first",
        sync_to_thread=True,
        operation_id="list_webhook_deliveries",
        responses=problem_specs(400, 401, 403, 404, 422),
    )
    def list_deliveries(
        subscription_id: RecordId,
        actor: NamedDependency[User],
        status: FromQuery[Literal["pending", "in_flight", "delivered", "dead"] | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
    ) -> list[WebhookDelivery]:
        found = crm.webhooks.deliveries(subscription_id, status=status, limit=limit, actor=actor)
        return [_delivery(info) for info in found]

    return Router(
        path="/webhooks",
        route_handlers=[
            create_webhook,
            list_webhooks,
            get_webhook,
            delete_webhook,
            list_deliveries,
        ],
        tags=["webhooks"],
    )
