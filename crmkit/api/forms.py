"""Public lead-capture routes: ``POST /forms/{key}`` (no token) and the HTML snippet.

Submissions are rate-limited per client address, in process (:class:`RateLimiter`): several
API processes behind a load balancer each count on their own, so the effective limit is the
setting times the number of processes; put a limit in the proxy in front too for hard caps.

The client address is the connection's peer. Only when the peer is one of the trusted proxies
(``crmkit.api.trusted_proxies``, ``crmkit serve --trusted-proxy``; none by default) is
``X-Forwarded-For`` read, from the right, skipping trusted hops: a client cannot choose its own
address by sending the header.
"""

from __future__ import annotations

import codecs
import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import msgspec
from litestar import MediaType, Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException
from litestar.params import FromPath

from crmkit.api.problems import problem_response, problem_specs
from crmkit.app import CRM
from crmkit.errors import FieldError, ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window)."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str, now: float | None = None) -> float:
        """0 if ``key`` may go ahead now (the hit is counted), else seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._forget_idle(now)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:  # refused: never 0, however the floats round
                return max(hits[0] + self.window - now, 1e-6)
            hits.append(now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        idle = [
            key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self.window
        ]
        for key in idle:
            del self._hits[key]


class FormAccepted(msgspec.Struct):
    """The answer to a submission (the same whether or not the honeypot caught it)."""

    status: str
    message: str


async def _submission(request: Request[Any, Any, Any], max_chars: int) -> dict[str, object]:
    """The submitted fields, each a string of at most ``max_chars`` characters (JSON numbers
    and booleans are taken as they are), decoded by the charset the request declares."""
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    media_type = media_type.strip().lower()
    charset = _charset(parameters)
    if media_type == "application/json":
        if charset not in (None, "utf-8", "utf8"):
            raise ClientException("a JSON body must be UTF-8", status_code=415)
        data = await request.json()
        if not isinstance(data, dict):
            raise ClientException("the JSON body must be an object of field: value")
        fields = {str(key): value for key, value in data.items()}
    elif media_type == RequestEncodingType.URL_ENCODED:
        fields = _url_encoded(await request.body(), charset or "utf-8")
    elif media_type == RequestEncodingType.MULTI_PART:
        try:
            form = await request.form()
        except UnicodeDecodeError:
            raise ClientException("a form field is not valid text in its charset") from None
        fields = {key: form.getall(key)[-1] for key in form}
    else:
        raise ClientException(
            "send the form as application/x-www-form-urlencoded, multipart/form-data or JSON",
            status_code=415,
        )
    for key, value in fields.items():
        if isinstance(value, dict | list):
            raise ClientException(f"field {key[:50]!r}: expected text, got {type(value).__name__}")
        if isinstance(value, str | bytes) and len(value) > max_chars:
            raise ValidationError(
                [FieldError(key[:50], f"is longer than {max_chars} characters")], "lead"
            )
    return fields


def _charset(parameters: str) -> str | None:
    """The ``charset`` parameter of a Content-Type (lower case), or ``None``."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or None
    return None


def _url_encoded(body: bytes, charset: str) -> dict[str, object]:
    """``a=1&b=%E4%B8%AD`` decoded strictly by ``charset``: bytes that are not valid in it
    are refused (400), never replaced or read as another charset."""
    try:
        codecs.lookup(charset)
    except LookupError:
        raise ClientException(f"unknown charset {charset[:40]!r}", status_code=415) from None
    try:
        text = body.decode(charset)
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ClientException(f"the form body is not valid {charset}") from None
    return dict(pairs)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the
    right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy (the
    left-most entries are whatever the client chose to send)."""
    if not trusted or not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def form_router(crm: CRM, trusted_proxies: Sequence[str] | None = None) -> Router:
    """The public form routes (excluded from token authentication); ``trusted_proxies``
    replaces the setting ``crmkit.api.trusted_proxies`` when given."""
    settings = crm.settings.api
    limiter = RateLimiter(settings.form_rate_limit, settings.form_rate_window_seconds)
    proxies = settings.trusted_proxies if trusted_proxies is None else trusted_proxies
    trusted = [ipaddress.ip_network(proxy, strict=False) for proxy in proxies]

    @post(
        "/{key:str}",
        summary="Submit a lead-capture form (public, no token)",
        description="Form-encoded (as a browser posts it) or JSON. Creates a lead owned by the"
        " form's owner (or assigned by the rules), emits lead.captured. Rate-limited per"
        " client address (crmkit.api.form_rate_limit per form_rate_window_seconds).",
        exclude_from_auth=True,
        security=[],
        status_code=201,
        operation_id="submit_form",
        responses=problem_specs(400, 404, 413, 415, 422, 429),
    )
    async def submit_form(key: FromPath[str], request: Request[Any, Any, Any]) -> FormAccepted:
        peer = request.client.host if request.client else "unknown"
        client = client_address(peer, request.headers.get("x-forwarded-for"), trusted)
        wait = limiter.retry_after(client)
        if wait > 0:
            return problem_response(  # type: ignore[return-value]
                429,
                f"too many submissions from {client}: try again in {math.ceil(wait)} s",
                slug="rate-limited",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        data = await _submission(request, settings.form_max_field_chars)
        result = await anyio.to_thread.run_sync(crm.forms.submit, key, data)
        return FormAccepted(status="received", message=result.message)

    @get(
        "/{key:str}/snippet",
        summary="The embeddable HTML form (public)",
        exclude_from_auth=True,
        security=[],
        media_type=MediaType.HTML,
        sync_to_thread=True,
        operation_id="form_snippet",
        responses=problem_specs(404),
    )
    def form_snippet(key: FromPath[str]) -> str:
        # never the request's Host header: a caller could make the snippet post elsewhere
        return crm.forms.snippet(key, settings.base_url)

    return Router(path="/forms", route_handlers=[submit_form, form_snippet], tags=["forms"])


__all__ = ["FormAccepted", "RateLimiter", "client_address", "form_router"]
