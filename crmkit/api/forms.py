"""Public lead-capture routes: ``POST /forms/{key}`` (no token) and the HTML snippet.

Submissions are rate-limited per client address, in process (:class:`RateLimiter`): several
API processes behind a load balancer each count on their own, so the effective limit is the
setting times the number of processes; put a limit in the proxy in front too for hard caps.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any

import anyio.to_thread
import msgspec
from litestar import MediaType, Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException
from litestar.params import FromPath

from crmkit.api.problems import problem_response, problem_specs
from crmkit.app import CRM


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


async def _submission(request: Request[Any, Any, Any]) -> dict[str, object]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        data = await request.json()
        if not isinstance(data, dict):
            raise ClientException("the JSON body must be an object of field: value")
        return {str(key): value for key, value in data.items()}
    if content_type in (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART):
        form = await request.form()
        return {key: form.getall(key)[-1] for key in form}
    raise ClientException(
        "send the form as application/x-www-form-urlencoded, multipart/form-data or JSON",
        status_code=415,
    )


def form_router(crm: CRM) -> Router:
    """The public form routes (excluded from token authentication)."""
    settings = crm.settings.api
    limiter = RateLimiter(settings.form_rate_limit, settings.form_rate_window_seconds)

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
        client = request.client.host if request.client else "unknown"
        wait = limiter.retry_after(client)
        if wait > 0:
            return problem_response(  # type: ignore[return-value]
                429,
                f"too many submissions from {client}: try again in {math.ceil(wait)} s",
                slug="rate-limited",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        data = await _submission(request)
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
    def form_snippet(key: FromPath[str], request: Request[Any, Any, Any]) -> str:
        base = settings.public_url or str(request.base_url)
        return crm.forms.snippet(key, base)

    return Router(path="/forms", route_handlers=[submit_form, form_snippet], tags=["forms"])


__all__ = ["FormAccepted", "RateLimiter", "form_router"]
