"""API tokens: issue, list, revoke, and authenticate a bearer token.

A token is shown once, when it is issued; only its SHA-256 hash is stored (see
:mod:`crmkit.permissions.tokens`). Every authentication reads the database, so a revoked or
expired token, or the token of a deactivated user, fails at once: there is no cache to wait
out.

The REST API checks a request's token inside the first operation the request opens
(:class:`BearerCheck`, :func:`checking_bearer`): one transaction per request, the token's
statement also reading the access stamp the operation's permission cache needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from attrs import define, frozen
from sqlalchemy import Dialect, bindparam, select, update

from crmkit.db.base import utcnow
from crmkit.entities.organisation import User
from crmkit.errors import (
    CRMError,
    FieldError,
    NotFoundError,
    TokenRejected,
    ValidationError,
)
from crmkit.permissions.access import run_compiled
from crmkit.permissions.audit import audit_rows
from crmkit.permissions.models import AccessStamp, ApiToken
from crmkit.permissions.tokens import display_prefix, is_expired, new_token, token_hash
from crmkit.services.users import find_user

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation

#: ``last_used_at`` is written at most this often per token: an API client making many
#: calls a second costs one UPDATE a minute, not one per call.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


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
            _check_token(
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
        if _use_due(last, now):
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


UNKNOWN_TOKEN = (
    "unknown API token: check that it was copied whole, or issue a new one"
    " (crmkit tokens issue USER NAME)"
)


@frozen
class TokenState:
    """What deciding whether a token is valid needs: the token and its user's state."""

    id: int
    prefix: str
    name: str
    username: str
    user_active: bool
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


def _check_token(state: TokenState, now: dt.datetime) -> None:
    """``TokenRejected`` saying why, unless the token is valid at ``now``."""
    label = f"API token {state.prefix}… ({state.name})"
    if not state.user_active:
        raise TokenRejected(f"{label} belongs to {state.username!r}, who is deactivated")
    if state.revoked_at is not None:
        raise TokenRejected(
            f"{label} was revoked at {state.revoked_at:%Y-%m-%d %H:%M} UTC; issue a new one"
        )
    if state.expires_at is not None and is_expired(state.expires_at, now):
        raise TokenRejected(
            f"{label} expired at {state.expires_at:%Y-%m-%d %H:%M} UTC; issue a new one"
        )


def _use_due(last: dt.datetime | None, now: dt.datetime) -> bool:
    return last is None or now - last >= LAST_USED_RESOLUTION


# -- the bearer token of an API request, checked inside its operation ----------------------


@define(eq=False)
class BearerCheck:
    """The bearer token of one API request, to be checked in the first operation the request
    opens (see :func:`checking_bearer`).

    ``user`` is who the token belonged to when this process last saw it (the request's
    actor); the check reads the token again, in the operation's transaction, together with
    the access stamp. ``verified`` turns true once a check passed; ``used_at`` is set when
    the token's ``last_used_at`` is due to be written (by the caller, after the request)."""

    crm: CRM
    token_hash: str
    user: User
    user_stamp: int | None  # the access stamp ``user`` was read at (None: unknown)
    verified: bool = False
    token_id: int | None = None
    used_at: dt.datetime | None = None

    def verify(self, op: Operation) -> None:
        """Check the token in ``op``'s transaction: ``TokenRejected`` unless it is valid.
        Hands the access stamp it read to ``op``, and replaces a stale actor (the user's
        team, flags or name changed since ``user`` was read) with the current user row."""
        row = run_compiled(op.session, _bearer_query, {"token_hash": self.token_hash}).first()
        if row is None:
            raise TokenRejected(UNKNOWN_TOKEN)
        convert = _datetime_processor(op.session.get_bind().dialect)
        token_id, prefix, name, user_id, username, active, revoked, expires, last, stamp = row
        state = TokenState(
            token_id,
            prefix,
            name,
            username,
            bool(active),
            convert(revoked),
            convert(expires),
            convert(last),
        )
        now = utcnow()
        _check_token(state, now)
        op.stamp = None if stamp is None else int(stamp)
        if op.actor is self.user and (op.stamp is None or op.stamp != self.user_stamp):
            fresh = op.session.get(User, user_id)
            if fresh is not None:
                # detached, as the actor always was: a rollback of this operation must not
                # expire the copy the next requests start from
                op.session.expunge(fresh)
                op.actor = self.user = fresh
                self.user_stamp = op.stamp
        self.verified = True
        self.token_id = token_id
        if _use_due(state.last_used_at, now):
            self.used_at = now


_BEARER: ContextVar[BearerCheck | None] = ContextVar("crmkit_bearer_check", default=None)


@contextmanager
def checking_bearer(check: BearerCheck) -> Iterator[BearerCheck]:
    """Within the block, the first operation ``check.crm`` opens (in this context: the
    request's task and the worker threads it runs code in) checks the bearer token first,
    in its own transaction; a rejected token fails that operation with ``TokenRejected``
    before it does anything."""
    reset = _BEARER.set(check)
    try:
        yield check
    finally:
        _BEARER.reset(reset)


def pending_bearer_check(crm: CRM) -> BearerCheck | None:
    """The unverified bearer check of the current context for ``crm``, if any."""
    check = _BEARER.get()
    if check is None or check.verified or check.crm is not crm:
        return None
    return check


def _bearer_query() -> Any:
    tokens, users, stamp = ApiToken.__table__, User.__table__, AccessStamp.__table__
    return (
        select(
            tokens.c.id,
            tokens.c.prefix,
            tokens.c.name,
            users.c.id,
            users.c.username,
            users.c.is_active,
            tokens.c.revoked_at,
            tokens.c.expires_at,
            tokens.c.last_used_at,
            stamp.c.version,
        )
        .select_from(tokens.join(users, users.c.id == tokens.c.user_id))
        .outerjoin(stamp, stamp.c.id == 1)
        .where(tokens.c.token_hash == bindparam("token_hash", type_=tokens.c.token_hash.type))
    )


_PROCESSORS: dict[Dialect, Any] = {}


def _datetime_processor(dialect: Dialect) -> Any:
    """Turns a raw driver value of a timestamp column into what the ORM would return."""
    processor = _PROCESSORS.get(dialect)
    if processor is None:
        column_type = ApiToken.__table__.c.revoked_at.type
        raw = column_type._cached_result_processor(dialect, None)

        def convert(value: Any) -> Any:
            return None if value is None else (raw(value) if raw is not None else value)

        processor = _PROCESSORS[dialect] = convert
    return processor


def _require_own_or_manage(op: Operation, actor: User | None, user: User) -> None:
    """A user manages their own tokens; somebody else's need ``user:manage``."""
    if actor is not None and actor.id == user.id:
        return
    op.access.require("user:manage")
