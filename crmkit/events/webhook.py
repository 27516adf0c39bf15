"""The webhook sink: POSTs events as JSON, signed with HMAC-SHA256.

Receivers verify ``X-Crmkit-Signature: t=<unix time>,v1=<hex>`` where ``v1`` is
``HMAC_SHA256(secret, f"{t}.{body}")``, reject stale timestamps, and drop repeats by the
``Idempotency-Key`` header (the event id): delivery is at least once.

With ``batch_size`` above 1 one request carries up to that many events::

    {"batch": 2, "events": [
        {"id": "...", "name": "...", "body": "<JSON>", "signature": "t=...,v1=..."}, ...]}

Each ``body`` is exactly the JSON a one-event request would carry and ``signature`` its
signature, so every event stays verifiable on its own (store it, forward it, verify it
later); the request as a whole is signed in the header as usual. A 2xx answer delivers the
whole batch, unless its JSON body lists event ids under ``"failed"``: those are retried.
410 Gone from the receiver means "never again": the deliveries go dead at once and a
subscription made through the API is disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from attrs import define, field

from crmkit.events.types import Event
from crmkit.outbound import UnsafeDestination, check_url_host, guarded_client
from crmkit.settings import WebhookConfig

if TYPE_CHECKING:  # httpx is imported by the relay when it first delivers, not at start-up
    import httpx

SIGNATURE_HEADER = "X-Crmkit-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, body: bytes, header: str, *, tolerance_seconds: int = 300, now: float | None = None
) -> bool:
    """Whether ``header`` is a valid, fresh signature of ``body`` (for receivers and tests)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp)
    return hmac.compare_digest(expected, header)


class WebhookError(Exception):
    """The receiver did not accept the delivery. ``permanent`` ones (an internal address
    refused) are not retried."""

    permanent = False


class WebhookRefused(WebhookError):
    """The destination is an internal address (crmkit.outbound): never delivered."""

    permanent = True


class WebhookGone(WebhookError):
    """The receiver answered 410 Gone: it wants no more events (never retried)."""

    permanent = True
    gone = True


class WebhookUnreachable(WebhookError):
    """No answer at all (connection refused, time-out): the rest of the batch is not tried
    (nor after a :class:`WebhookGone`)."""


#: The largest ``batch_size`` a webhook may have (events per request).
MAX_BATCH = 100


@define
class WebhookSink:
    """Delivers events to ``url``; a non-2xx answer or a network error is a failed attempt."""

    name: str
    url: str
    secret: str
    patterns: Sequence[str] = field(default=("*",))
    timeout_seconds: float = 10.0
    batch_size: int = 1
    #: deliver to internal addresses too (``crmkit.relay.allow_internal_addresses``)
    allow_internal: bool = False
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(cls, config: WebhookConfig, *, allow_internal: bool = False) -> WebhookSink:
        """A sink from a ``[[webhooks]]`` config entry."""
        return cls(
            name=config.name,
            url=config.url,
            secret=config.secret,
            patterns=config.patterns,
            timeout_seconds=config.timeout_seconds,
            batch_size=config.batch_size,
            allow_internal=allow_internal,
        )

    def _post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST ``body`` signed now; raise ``WebhookError`` unless the answer is 2xx, and
        ``WebhookRefused`` when the URL's host resolves to an internal address."""
        import httpx

        try:  # the host name is checked as it is resolved to connect (crmkit.outbound)
            check_url_host(self.url, allow_internal=self.allow_internal)
        except UnsafeDestination as error:
            raise WebhookRefused(str(error)) from None

        if self._client is None:
            self._client = guarded_client(self.timeout_seconds, allow_internal=self.allow_internal)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "crmkit-webhook",
            **headers,
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except UnsafeDestination as error:
            raise WebhookRefused(str(error)) from None
        except httpx.HTTPError as error:
            raise WebhookUnreachable(f"{self.url}: {type(error).__name__}: {error}") from None
        if response.status_code == 410:
            raise WebhookGone(f"{self.url} answered 410 Gone")
        if not 200 <= response.status_code < 300:
            raise WebhookError(f"{self.url} answered {response.status_code}")
        return response

    def deliver(self, event: Event) -> None:
        """POST the event; raise ``WebhookError`` unless the receiver answers 2xx."""
        body = event_body(event)
        self._post(body, {"Idempotency-Key": str(event.id), "X-Crmkit-Event": event.name})

    def deliver_batch(self, events: Sequence[Event]) -> list[BaseException | None]:
        """POST the events, ``batch_size`` per request (one per request when it is 1); an
        outcome per event."""
        outcomes: list[BaseException | None] = []
        size = max(1, min(self.batch_size, MAX_BATCH))
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            try:
                if size == 1:
                    self.deliver(chunk[0])
                    outcomes.append(None)
                else:
                    outcomes += self._deliver_chunk(chunk)
            except (WebhookUnreachable, WebhookGone) as error:
                # down, or gone for good (410: the subscription is disabled): the rest of the
                # batch is not sent, each of its events gets the same outcome
                return outcomes + [error] * (len(events) - len(outcomes))
            except WebhookError as error:
                outcomes += [error] * len(chunk)
        return outcomes

    def _deliver_chunk(self, events: Sequence[Event]) -> list[BaseException | None]:
        now = int(time.time())
        items = []
        for event in events:
            body = event_body(event)
            items.append(
                {
                    "id": str(event.id),
                    "name": event.name,
                    "body": body.decode(),
                    "signature": sign(self.secret, body, now),
                }
            )
        payload = json.dumps({"batch": len(items), "events": items}, ensure_ascii=False)
        response = self._post(
            payload.encode(),
            {"Idempotency-Key": f"batch:{events[0].id}", "X-Crmkit-Batch": str(len(items))},
        )
        failed = _failed_ids(response)
        return [
            WebhookError(f"{self.url} listed event {event.id} as failed")
            if str(event.id) in failed
            else None
            for event in events
        ]


def event_body(event: Event) -> bytes:
    """The JSON a webhook POSTs for one event (and signs)."""
    return json.dumps(event.to_json(), ensure_ascii=False).encode()


def _failed_ids(response: httpx.Response) -> set[str]:
    """The event ids a 2xx answer to a batch lists under ``"failed"`` (none if it has no
    JSON body or no such list)."""
    if not response.content:
        return set()
    try:
        answer: Any = response.json()
    except ValueError:
        return set()
    failed = answer.get("failed") if isinstance(answer, dict) else None
    return {str(item) for item in failed} if isinstance(failed, list) else set()
