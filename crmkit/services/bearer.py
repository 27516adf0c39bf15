"""The bearer token of a REST API request, checked inside the first operation the request
opens: one transaction per request, the token's statement also reading the access stamp the
operation's permission cache needs (see docs/decisions.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from attrs import define
from sqlalchemy import Dialect, bindparam, select

from crmkit.db.base import utcnow
from crmkit.entities.organisation import User
from crmkit.errors import TokenRejected
from crmkit.permissions.access import run_compiled
from crmkit.permissions.models import AccessStamp, ApiToken
from crmkit.permissions.tokens import UNKNOWN_TOKEN, TokenState, check_token, last_use_due
from crmkit.services.request_check import checking

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation


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
        convert = datetime_processor(op.session.get_bind().dialect)
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
        check_token(state, now)
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
        if last_use_due(state.last_used_at, now):
            self.used_at = now


@contextmanager
def checking_bearer(check: BearerCheck) -> Iterator[BearerCheck]:
    """Within the block, the first operation ``check.crm`` opens (in this context: the
    request's task and the worker threads it runs code in) checks the bearer token first,
    in its own transaction; a rejected token fails that operation with ``TokenRejected``
    before it does anything (:mod:`crmkit.services.request_check`)."""
    with checking(check):
        yield check


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


def datetime_processor(dialect: Dialect) -> Any:
    """Turns a raw driver value of a timestamp column (crmkit's UTC timestamps, read through
    :func:`crmkit.permissions.access.run_compiled`) into what the ORM would return."""
    processor = _PROCESSORS.get(dialect)
    if processor is None:
        column_type = ApiToken.__table__.c.revoked_at.type
        raw = column_type._cached_result_processor(dialect, None)

        def convert(value: Any) -> Any:
            return None if value is None else (raw(value) if raw is not None else value)

        processor = _PROCESSORS[dialect] = convert
    return processor
