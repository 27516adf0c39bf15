"""The desk's session, checked inside the first operation a desk request opens, as the API's
bearer token is (:mod:`crmkit.services.bearer`): one transaction per page, not two.

A session this process has not seen is looked up on its own, to learn whose it is; after
that the process remembers the user, CSRF token and language of each session token (by its
hash) and each request hands a :class:`DeskSessionCheck` to its first operation, whose one
statement reads the session, its user's active flag and language, and the access stamp. A
session signed out, expired, ended by a password reset or belonging to a deactivated user
fails that operation with :class:`SessionEnded` before it does anything.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from attrs import define
from sqlalchemy import bindparam, select

from crmkit.db.base import utcnow
from crmkit.entities.organisation import User
from crmkit.errors import CRMError
from crmkit.permissions.access import run_compiled
from crmkit.permissions.models import AccessStamp
from crmkit.permissions.passwords import DeskAccount, DeskSession, session_token_hash
from crmkit.services.bearer import datetime_processor

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation

#: How many sessions a process remembers (it forgets them all when full).
KNOWN_SESSIONS = 10_000
SESSION_ENDED = "your session has ended or expired: sign in again"


class SessionEnded(CRMError):
    """The desk session of the request ended (signed out, expired, its password reset or
    its user deactivated): the desk sends the browser to the sign-in page."""

    title = "Sign in"


@define(eq=False)
class KnownSession:
    """What this process last read of a session: its user (and the access stamp the user
    was read at), CSRF token, language and expiry."""

    user: User
    user_stamp: int | None
    csrf_token: str
    locale: str | None
    expires_at: dt.datetime


@define(eq=False)
class DeskSessionCheck:
    """The session of one desk request, checked by the first operation the request opens
    (see :mod:`crmkit.services.request_check`). The user, CSRF token and language are the
    session's as last read; a check that passes refreshes them."""

    crm: CRM
    token_hash: str
    known: KnownSession
    verified: bool = False

    @property
    def user(self) -> User:
        """The session's user (the actor of the request's service calls)."""
        return self.known.user

    @property
    def csrf_token(self) -> str:
        """The CSRF token the session's forms carry."""
        return self.known.csrf_token

    @property
    def locale(self) -> str | None:
        """The user's UI language, if they chose one."""
        return self.known.locale

    def verify(self, op: Operation) -> None:
        """Check the session in ``op``'s transaction: :class:`SessionEnded` unless it is
        live. Hands the access stamp it read to ``op`` and replaces a stale actor (the
        user changed since it was read) with the current user row."""
        row = run_compiled(op.session, _session_query, {"token_hash": self.token_hash}).first()
        if row is None:
            raise SessionEnded(SESSION_ENDED)
        user_id, active, expires_at, locale, stamp = row
        expires_at = datetime_processor(op.session.get_bind().dialect)(expires_at)
        if not active or expires_at <= utcnow():
            raise SessionEnded(SESSION_ENDED)
        op.stamp = None if stamp is None else int(stamp)
        known = self.known
        if op.stamp is None or op.stamp != known.user_stamp:
            fresh = op.session.get(User, user_id)
            if fresh is not None:
                # detached, as the actor always was: a rollback of this operation must not
                # expire the copy the next requests start from
                op.session.expunge(fresh)
                if op.actor is known.user:
                    op.actor = fresh
                known.user, known.user_stamp = fresh, op.stamp
        known.locale = locale
        known.expires_at = expires_at
        self.verified = True


class KnownSessions:
    """The sessions this process has seen, by token hash."""

    def __init__(self) -> None:
        self._known: dict[str, KnownSession] = {}

    def check(self, crm: CRM, token: str) -> DeskSessionCheck | None:
        """The check of ``token``'s session for one request; ``None`` when it is not live.
        A session this process has not seen is read now (the check has then passed)."""
        hashed = session_token_hash(token)
        known = self._known.get(hashed)
        if known is not None:
            if known.expires_at > utcnow():
                return DeskSessionCheck(crm, hashed, known)
            del self._known[hashed]
        info = crm.sign_in.session(token)
        if info is None:
            return None
        if len(self._known) >= KNOWN_SESSIONS:
            self._known.clear()
        known = KnownSession(info.user, None, info.csrf_token, info.locale, info.expires_at)
        self._known[hashed] = known
        return DeskSessionCheck(crm, hashed, known, verified=True)

    def forget(self, token: str) -> None:
        """Forget ``token``'s session (it was signed out)."""
        self._known.pop(session_token_hash(token), None)

    def set_locale(self, user_id: int, locale: str) -> None:
        """The language ``user_id`` chose, for their sessions this process remembers."""
        for known in list(self._known.values()):
            if known.user.id == user_id:
                known.locale = locale


def _session_query() -> Any:
    sessions, users = DeskSession.__table__, User.__table__
    accounts, stamp = DeskAccount.__table__, AccessStamp.__table__
    return (
        select(
            users.c.id, users.c.is_active, sessions.c.expires_at, accounts.c.locale, stamp.c.version
        )
        .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
        .outerjoin(accounts, accounts.c.user_id == users.c.id)
        .outerjoin(stamp, stamp.c.id == 1)
        .where(sessions.c.token_hash == bindparam("token_hash", type_=sessions.c.token_hash.type))
    )
