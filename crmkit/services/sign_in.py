"""Desk sign-in: passwords, lock-out, browser sessions, and the audit of every attempt.

An administrator sets a password (``crmkit users set-password``); a user signs in with it and
gets a session: a random token whose SHA-256 hash is stored with an expiry and a CSRF token.
Every request of the desk checks its session (:meth:`SignInService.session_check`, inside the
request's first operation), so signing out, a password reset or deactivating the user ends
it at once. After
``[crmkit.desk] max_failed_sign_ins`` wrong passwords in a row the user is locked out for
``lockout_minutes``; every attempt, good or bad, is written to the audit log
(``desk.sign_in``, ``desk.sign_in_failed``, ``desk.sign_in_locked``, ``desk.sign_out``,
``desk.password_set``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING

from attrs import frozen
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from crmkit.db.base import utcnow
from crmkit.entities.organisation import User
from crmkit.errors import CRMError, FieldError, ValidationError
from crmkit.permissions.models import AuditEntry
from crmkit.permissions.passwords import (
    DeskAccount,
    DeskKey,
    DeskSession,
    hash_password,
    needs_rehash,
    new_csrf_token,
    new_session_token,
    password_matches,
    session_token_hash,
)
from crmkit.services.desk_sessions import DeskSessionCheck, KnownSessions
from crmkit.services.users import find_user

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation

#: The UI languages of the desk.
LOCALES = ("zh_CN", "en")
#: What a wrong user name and a wrong password both say (which one it was is not told).
WRONG_CREDENTIALS = "wrong user name or password"
#: Longest password accepted (Argon2 takes any length; this bounds the work per attempt).
MAX_PASSWORD_LENGTH = 1024


class SignInRefused(CRMError):
    """A sign-in was refused: wrong credentials, a locked or inactive user."""

    title = "Sign-in refused"


@frozen
class SignedIn:
    """A new session: the token for the cookie (shown only here) and its CSRF token."""

    user: User
    token: str
    csrf_token: str
    expires_at: dt.datetime


@frozen
class SessionInfo:
    """A live session as the desk sees it on each request."""

    user: User
    csrf_token: str
    locale: str | None
    expires_at: dt.datetime


def _audit(
    op: Operation, operation: str, user_id: int | None, detail: str, *, sensitive: bool = False
) -> None:
    op.session.add(
        AuditEntry(
            occurred_at=utcnow(),
            actor_id=user_id,
            operation=operation,
            entity="user" if user_id is not None else None,
            record_id=user_id,
            changes={},
            sensitive=sensitive,
            detail=detail,
        )
    )


def _account(op: Operation, user_id: int) -> DeskAccount:
    account = op.session.get(DeskAccount, user_id, with_for_update=True)
    if account is None:
        account = DeskAccount(user_id=user_id, failed_sign_ins=0)
        op.session.add(account)
    return account


class SignInService:
    """Passwords and desk sessions; ``crm.sign_in``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        self._known = KnownSessions()

    # -- passwords -------------------------------------------------------------------------

    def check_password_rules(self, username: str, password: str) -> None:
        """Refuse a password too short, too long, blank or equal to the user name."""
        minimum = self.crm.settings.desk.min_password_length
        problems = []
        if len(password) < minimum:
            problems.append(f"must be at least {minimum} characters long")
        if len(password) > MAX_PASSWORD_LENGTH:
            problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters long")
        if password.strip().casefold() == username.casefold():
            problems.append("must not be the user name")
        if problems:
            raise ValidationError([FieldError("password", "; ".join(problems))])

    def set_password(self, username: str, password: str, *, actor: User | None = None) -> None:
        """Set ``username``'s desk password (an administrator's act: needs ``user:manage``):
        unlocks the user and ends every session they had."""
        with self.crm.transaction(actor) as op:
            op.access.require("user:manage")
            user = find_user(op.session, username)
            self.check_password_rules(user.username, password)
            account = _account(op, user.id)
            account.password_hash = hash_password(password)
            account.password_set_at = utcnow()
            account.failed_sign_ins = 0
            account.locked_until = None
            op.session.execute(delete(DeskSession).where(DeskSession.user_id == user.id))
            _audit(op, "desk.password_set", user.id, f"password of {user.username} set")

    def has_password(self, username: str) -> bool:
        """Whether ``username`` can sign in to the desk (a password was set)."""
        with self.crm.transaction(write=False) as op:
            user = find_user(op.session, username)
            account = op.session.get(DeskAccount, user.id)
            return account is not None and account.password_hash is not None

    # -- signing in and out ----------------------------------------------------------------

    def sign_in(self, username: str, password: str, *, remote: str = "") -> SignedIn:
        """A new session for ``username`` if ``password`` is theirs; :class:`SignInRefused`
        otherwise, with the failure counted (and written down) before it is raised."""
        settings = self.crm.settings.desk
        refusal: str | None = None
        signed_in: SignedIn | None = None
        now = utcnow()
        where = f" from {remote}" if remote else ""
        with self.crm.transaction() as op:
            user = None
            if "\x00" not in username and len(username) <= 150:  # else no user has that name
                user = op.session.scalar(select(User).where(User.username == username))
            if user is None or not user.is_active:
                password_matches(None, password[:MAX_PASSWORD_LENGTH])  # same time as a miss
                known = "an inactive user" if user is not None else "an unknown user name"
                _audit(
                    op,
                    "desk.sign_in_failed",
                    user.id if user is not None else None,
                    f"sign-in as {username[:150]!r} ({known}){where}",
                )
                refusal = WRONG_CREDENTIALS
            else:
                account = _account(op, user.id)
                if account.locked_until is not None and account.locked_until > now:
                    _audit(op, "desk.sign_in_locked", user.id, f"locked user tried{where}")
                    refusal = (
                        "too many wrong passwords: sign-in is locked until "
                        f"{account.locked_until:%H:%M} UTC (an administrator can reset the "
                        "password to unlock it)"
                    )
                elif not password_matches(account.password_hash, password[:MAX_PASSWORD_LENGTH]):
                    account.failed_sign_ins += 1
                    detail = f"wrong password ({account.failed_sign_ins} in a row){where}"
                    if account.failed_sign_ins >= settings.max_failed_sign_ins:
                        account.locked_until = now + dt.timedelta(minutes=settings.lockout_minutes)
                        account.failed_sign_ins = 0
                        detail += f"; locked until {account.locked_until.isoformat()}"
                    _audit(op, "desk.sign_in_failed", user.id, detail, sensitive=False)
                    refusal = WRONG_CREDENTIALS
                else:
                    assert account.password_hash is not None
                    if needs_rehash(account.password_hash):
                        account.password_hash = hash_password(password)
                    account.failed_sign_ins = 0
                    account.locked_until = None
                    op.session.execute(
                        delete(DeskSession).where(
                            DeskSession.user_id == user.id, DeskSession.expires_at <= now
                        )
                    )
                    token = new_session_token()
                    expires_at = now + dt.timedelta(hours=settings.session_hours)
                    csrf = new_csrf_token()
                    op.session.add(
                        DeskSession(
                            token_hash=session_token_hash(token),
                            user_id=user.id,
                            csrf_token=csrf,
                            created_at=now,
                            expires_at=expires_at,
                            remote=remote[:100],
                        )
                    )
                    _audit(op, "desk.sign_in", user.id, f"signed in{where}")
                    signed_in = SignedIn(user, token, csrf, expires_at)
        if signed_in is None:
            raise SignInRefused(refusal or WRONG_CREDENTIALS)
        return signed_in

    def session(self, token: str) -> SessionInfo | None:
        """The live session of ``token``, or ``None`` if it expired, was ended, or its user
        was deactivated."""
        now = utcnow()
        with self.crm.transaction(write=False) as op:
            row = op.session.execute(
                select(DeskSession, User, DeskAccount.locale)
                .join(User, User.id == DeskSession.user_id)
                .outerjoin(DeskAccount, DeskAccount.user_id == User.id)
                .where(DeskSession.token_hash == session_token_hash(token))
            ).first()
            if row is None:
                return None
            desk_session, user, locale = row
            if desk_session.expires_at <= now or not user.is_active:
                return None
            op.session.expunge(user)
            return SessionInfo(user, desk_session.csrf_token, locale, desk_session.expires_at)

    def session_check(self, token: str) -> DeskSessionCheck | None:
        """The check of ``token``'s session for one desk request, to run in the request's
        first operation (:mod:`crmkit.services.desk_sessions`); ``None`` if the session is
        not live. A token this process has not seen is looked up now."""
        return self._known.check(self.crm, token)

    def sign_out(self, token: str) -> None:
        """End the session of ``token`` (nothing happens if it already ended)."""
        self._known.forget(token)
        with self.crm.transaction() as op:
            desk_session = op.session.scalar(
                select(DeskSession).where(DeskSession.token_hash == session_token_hash(token))
            )
            if desk_session is not None:
                op.session.delete(desk_session)
                _audit(op, "desk.sign_out", desk_session.user_id, "signed out")

    def set_locale(self, user: User, locale: str) -> None:
        """Remember ``user``'s UI language (one of :data:`LOCALES`)."""
        if locale not in LOCALES:
            raise ValidationError(
                [FieldError("locale", f"must be one of {', '.join(LOCALES)}, not {locale!r}")]
            )
        with self.crm.transaction() as op:
            _account(op, user.id).locale = locale
        self._known.set_locale(user.id, locale)

    # -- the cookie key --------------------------------------------------------------------

    def cookie_key(self) -> str:
        """The key desk cookies are signed with: made once per database, then shared by
        every process serving the desk."""
        with self.crm.transaction(write=False) as op:
            key = op.session.get(DeskKey, "cookie")
            if key is not None:
                return key.value
        try:
            with self.crm.transaction() as op:
                op.session.add(DeskKey(name="cookie", value=secrets.token_urlsafe(48)))
        except IntegrityError:
            pass  # another process made it first: use theirs
        with self.crm.transaction(write=False) as op:
            key = op.session.get(DeskKey, "cookie")
            assert key is not None
            return key.value
