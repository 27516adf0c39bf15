"""API tokens: issue, list, revoke, and authenticate a bearer token.

A token is shown once, when it is issued; only its SHA-256 hash is stored (see
:mod:`crmkit.permissions.tokens`). Every authentication reads the database, so a revoked or
expired token, or the token of a deactivated user, fails at once: there is no cache to wait
out.

The REST API checks a request's token inside the first operation the request opens
(:mod:`crmkit.services.bearer`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from attrs import frozen
from sqlalchemy import select, update

from crmkit.db.base import utcnow
from crmkit.entities.organisation import User
from crmkit.errors import (
    CRMError,
    FieldError,
    NotFoundError,
    TokenRejected,
    ValidationError,
)
from crmkit.permissions.audit import audit_rows
from crmkit.permissions.models import ApiToken
from crmkit.permissions.tokens import (
    UNKNOWN_TOKEN,
    TokenState,
    check_token,
    display_prefix,
    is_expired,
    last_use_due,
    new_token,
    token_hash,
)
from crmkit.services.users import find_user

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation


@frozen
class TokenInfo:
    """A token as listings show it: never the token itself, only its first characters."""

    id: int
    username: str
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    status: str  # active, expired or revoked


def token_status(token: ApiToken, now: dt.datetime) -> str:
    """``revoked``, ``expired`` or ``active``."""
    if token.revoked_at is not None:
        return "revoked"
    if is_expired(token.expires_at, now):
        return "expired"
    return "active"


class TokenService:
    """Bearer tokens of users, for the REST API and scripts.

    A user issues, lists and revokes their own tokens; doing so for somebody else needs
    ``user:manage``.
    """

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def issue(
        self,
        username: str,
        name: str,
        *,
        expires_in: dt.timedelta | None = None,
        actor: User | None = None,
    ) -> tuple[ApiToken, str]:
        """Issue a token for ``username``, named ``name`` (say what uses it), valid for
        ``expires_in`` (``None``: until revoked). Returns the stored token and the plain
        token, which is never shown again."""
        name = name.strip()
        if not name:
            raise ValidationError([FieldError("name", "is required (say what uses it)")], "token")
        if expires_in is not None and expires_in <= dt.timedelta(0):
            raise ValidationError([FieldError("expires_in", "must be positive")], "token")
        with self.crm.transaction(actor) as op:
            user = find_user(op.session, username)
            _require_own_or_manage(op, actor, user)
            if not user.is_active:
                raise CRMError(f"user {user.username!r} is deactivated: no tokens can be issued")
            plain = new_token()
            now = utcnow()
            token = ApiToken(
                user_id=user.id,
                name=name,
                token_hash=token_hash(plain),
                prefix=display_prefix(plain),
                created_at=now,
                expires_at=now + expires_in if expires_in is not None else None,
            )
            op.session.add(token)
            op.session.flush()
            audit_rows(
                op,
                "token.issue",
                "api_token",
                [
                    (
                        token.id,
                        {
                            "username": user.username,
                            "name": [None, name],
                            "prefix": [None, token.prefix],
                            "expires_at": [None, token.expires_at],
                        },
                    )
                ],
            )
            op.emit(
                "token.issued",
                {
                    "username": user.username,
                    "name": name,
                    "prefix": token.prefix,
                    "expires_at": token.expires_at,
                },
                record_type="api_token",
                record_id=token.id,
            )
            return token, plain

    def list(self, username: str, *, actor: User | None = None) -> list[TokenInfo]:
        """The user's tokens, newest first, with their status (active, expired, revoked)."""
        with self.crm.transaction(actor, write=False) as op:
            user = find_user(op.session, username)
            _require_own_or_manage(op, actor, user)
            tokens = op.session.scalars(
                select(ApiToken)
                .where(ApiToken.user_id == user.id)
                .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
            )
            now = utcnow()
            return [
                TokenInfo(
                    id=token.id,
                    username=user.username,
                    name=token.name,
                    prefix=token.prefix,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                    last_used_at=token.last_used_at,
                    status=token_status(token, now),
                )
                for token in tokens
            ]

    def revoke(self, token_id: int, *, actor: User | None = None) -> ApiToken:
        """Revoke a token at once; revoking it twice is an error saying when it was."""
        with self.crm.transaction(actor) as op:
            token = op.session.get(ApiToken, token_id)
            if token is None:
                raise NotFoundError("token", token_id)
            owner = op.session.get(User, token.user_id)
            assert owner is not None  # a foreign key
            _require_own_or_manage(op, actor, owner)
            if token.revoked_at is not None:
                raise CRMError(
                    f"token {token_id} ({token.name}) was already revoked at"
                    f" {token.revoked_at:%Y-%m-%d %H:%M} UTC"
                )
            token.revoked_at = utcnow()
            op.session.flush()
            audit_rows(
                op,
                "token.revoke",
                "api_token",
                [(token.id, {"username": owner.username, "revoked_at": [None, token.revoked_at]})],
            )
            op.emit(
                "token.revoked",
                {"username": owner.username, "name": token.name, "prefix": token.prefix},
                record_type="api_token",
                record_id=token.id,
            )
            return token

    def authenticate(self, token: str) -> User:
        """The active user ``token`` belongs to; ``TokenRejected`` (a ``PermissionDenied``)
        saying why not for an unknown token, a deactivated user's token (checked first:
        deactivation also revokes every token), and a revoked or expired one."""
        # A read transaction: on SQLite a write one takes the database's write lock, and
        # every API request authenticates, so requests would queue behind each other.
        with self.crm.transaction(write=False) as op:
            row = op.session.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == token_hash(token.strip()))
            ).one_or_none()
            if row is None:
                raise TokenRejected(UNKNOWN_TOKEN)
            stored, user = row
            now = utcnow()
            check_token(
                TokenState(
                    stored.id,
                    stored.prefix,
                    stored.name,
                    user.username,
                    user.is_active,
                    stored.revoked_at,
                    stored.expires_at,
                    stored.last_used_at,
                ),
                now,
            )
            last = stored.last_used_at
        if last_use_due(last, now):
            self.mark_used(stored.id, now)
        return user

    def mark_used(self, token_id: int, when: dt.datetime) -> None:
        """Record that a token was used at ``when`` (its own short write transaction)."""
        with self.crm.transaction() as op:
            op.session.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id)
                .values(last_used_at=when)
                .execution_options(synchronize_session=False)
            )


def _require_own_or_manage(op: Operation, actor: User | None, user: User) -> None:
    """A user manages their own tokens; somebody else's need ``user:manage``."""
    if actor is not None and actor.id == user.id:
        return
    op.access.require("user:manage")
