"""Bearer-token authentication: every request (except the public form and schema routes)
carries ``Authorization: Bearer <token>``; the token's user is the actor of every service call.

The token is checked against the database on every request (``crm.tokens.authenticate``), so
a revoked or expired token, or the token of a deactivated user, fails at once with 401.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from crmkit.app import CRM
from crmkit.entities.organisation import User
from crmkit.errors import PermissionDenied

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="crmkit"'}


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
    """Authenticates the bearer token in a worker thread (the check reads the database)."""

    def __init__(self, app: ASGIApp, crm: CRM, **options: Any) -> None:
        super().__init__(app, **options)
        self.crm = crm

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = bearer_token(connection.headers.get("authorization"))
        try:
            user = await anyio.to_thread.run_sync(self.crm.tokens.authenticate, token)
        except PermissionDenied as error:
            raise NotAuthorizedException(str(error), headers=CHALLENGE) from None
        return AuthenticationResult(user=user, auth=token)


def provide_actor(request: ASGIConnection[Any, Any, Any, Any]) -> User:
    """The ``actor`` dependency: the authenticated user."""
    user = request.scope.get("user")
    if not isinstance(user, User):
        raise NotAuthorizedException("this route needs an API token", headers=CHALLENGE)
    return user
