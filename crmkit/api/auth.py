"""Bearer-token authentication: every request (except the public form and schema routes)
carries ``Authorization: Bearer <token>``; the token's user is the actor of every service call.

The token is checked against the database on every request, so a revoked or expired token,
or the token of a deactivated user, fails at once with 401. The check runs inside the first
operation the request opens (one transaction per request; see
:class:`crmkit.services.bearer.BearerCheck`); a request that opens none is checked on its own
before its response starts. Only the first request with a token this process has not seen
yet is checked up front, to learn whose token it is.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from crmkit.api.problems import CHALLENGE, PROBLEM_MEDIA_TYPE, problem_body
from crmkit.app import CRM
from crmkit.entities.organisation import User
from crmkit.errors import PermissionDenied, TokenRejected
from crmkit.permissions.tokens import token_hash
from crmkit.services.bearer import BearerCheck, checking_bearer

#: How many tokens a process remembers the user of (it forgets them all when full).
KNOWN_TOKENS = 10_000


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header; 401 naming what is wrong."""
    if not header:
        raise NotAuthorizedException(
            "this route needs an API token: send Authorization: Bearer <token>"
            " (issue one with: crmkit tokens issue USER NAME)",
            headers=CHALLENGE,
        )
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException(
            "the Authorization header must be 'Bearer <token>'", headers=CHALLENGE
        )
    return token.strip()


class TokenAuthentication(AbstractAuthenticationMiddleware):
    """Authenticates the bearer token of each request inside the request's own operation.

    Litestar's own ``__call__`` decides which requests skip authentication (the excluded
    paths, routes with the ``exclude_from_auth`` opt, ``OPTIONS``, other scope types),
    authenticates the others with :meth:`authenticate_request` and then calls the app it
    was given: :meth:`_authenticated`, which runs the request under its token's check."""

    def __init__(self, app: ASGIApp, crm: CRM, **options: Any) -> None:
        super().__init__(self._authenticated, **options)
        self.next_app = app
        self.crm = crm
        #: token hash -> the token's user and the access stamp it was read at
        self._known: dict[str, tuple[User, int | None]] = {}

    async def _authenticated(self, scope: Scope, receive: Receive, send: Send) -> None:
        check = scope.get("user")
        if not isinstance(check, BearerCheck):  # a request that skipped authentication
            await self.next_app(scope, receive, send)
            return
        scope["user"] = check.user
        with checking_bearer(check):
            await self.next_app(scope, receive, self._checked_send(check, send))
        if check.verified:
            if len(self._known) >= KNOWN_TOKENS:
                self._known.clear()
            self._known[check.token_hash] = (check.user, check.user_stamp)
        if check.used_at is not None and check.token_id is not None:
            await anyio.to_thread.run_sync(self.crm.tokens.mark_used, check.token_id, check.used_at)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """A :class:`BearerCheck` of the request's token (as ``user``); a token this process
        has not seen is checked here, in a worker thread (the check reads the database)."""
        token = bearer_token(connection.headers.get("authorization"))
        hashed = token_hash(token)
        known = self._known.get(hashed)
        if known is not None:
            user, stamp = known
            return AuthenticationResult(BearerCheck(self.crm, hashed, user, stamp), token)
        try:
            user = await anyio.to_thread.run_sync(self.crm.tokens.authenticate, token)
        except PermissionDenied as error:
            raise NotAuthorizedException(str(error), headers=CHALLENGE) from None
        check = BearerCheck(self.crm, hashed, user, None, verified=True)
        return AuthenticationResult(check, token)

    def _checked_send(self, check: BearerCheck, send: Send) -> Send:
        """``send``, which checks the token on its own before a response starts if no
        operation of the request did, and answers 401 instead if it is rejected."""
        rejected = False

        async def checked(message: Message) -> None:
            nonlocal rejected
            if message["type"] == "http.response.start" and not check.verified:
                try:
                    await anyio.to_thread.run_sync(self._check_alone)
                except TokenRejected as error:
                    rejected = True
                    await _send_401(send, str(error))
            if not rejected:
                await send(message)

        return checked

    def _check_alone(self) -> None:
        """An empty read operation: its transaction runs the context's pending check."""
        with self.crm.transaction(write=False):
            pass


async def _send_401(send: Send, detail: str) -> None:
    body = msgspec.json.encode(problem_body(401, detail))
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in CHALLENGE.items()),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def provide_actor(request: ASGIConnection[Any, Any, Any, Any]) -> User:
    """The ``actor`` dependency: the authenticated user."""
    user = request.scope.get("user")
    if not isinstance(user, User):
        raise NotAuthorizedException("this route needs an API token", headers=CHALLENGE)
    return user
