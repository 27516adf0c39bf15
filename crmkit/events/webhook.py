"""The webhook sink: POSTs each event as JSON, signed with HMAC-SHA256.

Receivers verify ``X-Crmkit-Signature: t=<unix time>,v1=<hex>`` where ``v1`` is
``HMAC_SHA256(secret, f"{t}.{body}")``, reject stale timestamps, and drop repeats by the
``Idempotency-Key`` header (the event id): delivery is at least once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from attrs import define, field

from crmkit.events.types import Event
from crmkit.outbound import UnsafeDestination, check_destination
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


@define
class WebhookSink:
    """Delivers events to ``url``; a non-2xx answer or a network error is a failed attempt."""

    name: str
    url: str
    secret: str
    patterns: Sequence[str] = field(default=("*",))
    timeout_seconds: float = 10.0
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
            allow_internal=allow_internal,
        )

    def deliver(self, event: Event) -> None:
        """POST the event; raise ``WebhookError`` unless the receiver answers 2xx, and
        ``WebhookRefused`` when the URL's host resolves to an internal address."""
        import httpx

        try:
            check_destination(self.url, allow_internal=self.allow_internal)
        except UnsafeDestination as error:
            raise WebhookRefused(str(error)) from None

        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout_seconds)
        body = json.dumps(event.to_json(), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "crmkit-webhook",
            "Idempotency-Key": str(event.id),
            "X-Crmkit-Event": event.name,
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise WebhookError(f"{self.url}: {type(error).__name__}: {error}") from None
        if not 200 <= response.status_code < 300:
            raise WebhookError(f"{self.url} answered {response.status_code}")
