"""Who is signed in to the desk: the signed session cookie, the CSRF check, and the
:class:`Desk` context every desk page is handed.

The cookie holds a random session token signed with the database's desk key
(itsdangerous); the session is checked on every request, inside the first operation the page
opens (:mod:`crmkit.services.desk_sessions`), so a session ends the moment it is signed
out, its password is reset or its user deactivated. A page that opened no operation checks
the session on its own before it is rendered (:meth:`Desk.ensure_checked`).
Forms carry the session's CSRF token; a POST without the right one changes nothing.
Before signing in, the sign-in form's CSRF token is a second signed cookie of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from litestar import Request

from crmkit.app import CRM
from crmkit.desk.i18n import negotiate, plugin_translations, translations
from crmkit.entities.organisation import User
from crmkit.errors import CRMError
from crmkit.services.desk_sessions import DeskSessionCheck
from crmkit.services.request_check import check_rest_of_context

DESK_PATH = "/desk"
SESSION_COOKIE = "crmkit_desk"
PRE_SESSION_COOKIE = "crmkit_desk_pre"
CSRF_FIELD = "csrf_token"


class SignInRequired(CRMError):
    """The request has no live session: the desk sends the browser to the sign-in page."""

    title = "Sign in"

    def __init__(self, expired: bool) -> None:
        super().__init__("your session has expired: sign in again" if expired else "sign in")
        self.expired = expired


class CsrfRejected(CRMError):
    """A form came without the CSRF token of the session that showed it."""

    title = "Form rejected"


CSRF_MESSAGE = (
    "this form was not sent from the desk page you opened (its CSRF token is missing or "
    "wrong, or your session changed): nothing was changed; reload the page and try again"
)


@frozen
class Desk:
    """The signed-in user of a desk request, their CSRF token and UI language (as the
    request's session check last read them)."""

    crm: CRM
    session: DeskSessionCheck

    @property
    def user(self) -> User:
        """The signed-in user: the actor of every service call of the page."""
        return self.session.user

    @property
    def csrf_token(self) -> str:
        """The CSRF token of the session's forms."""
        return self.session.csrf_token

    @property
    def locale(self) -> str:
        """The user's UI language."""
        return self.session.locale or self.crm.settings.desk.default_locale

    @property
    def gettext(self) -> Callable[[str], str]:
        """``_`` for the user's language."""
        return translations(self.locale).gettext

    def plugin_gettext(self, plugin: str) -> Callable[[str], str]:
        """``_`` for the user's language with ``plugin``'s own catalogue first (for the
        titles and labels it gives the desk), then the desk's."""
        installed = self.crm.installed.get(plugin)
        if installed is None:
            return self.gettext
        return plugin_translations(installed.module_name, self.locale).gettext

    def check_csrf(self, form: Mapping[str, Any]) -> None:
        """Refuse a form without this session's CSRF token (:class:`CsrfRejected`)."""
        sent = form.get(CSRF_FIELD)
        # compared as bytes: compare_digest refuses str with non-ASCII characters (a forged
        # token of any text must be a 403, not a 500; tests/test_desk_fuzz.py found it)
        if not isinstance(sent, str) or not secrets.compare_digest(
            sent.encode(), self.csrf_token.encode()
        ):
            raise CsrfRejected(CSRF_MESSAGE)

    def ensure_checked(self) -> None:
        """Check the session now if no operation of the request has (a page that read
        nothing): :class:`crmkit.services.desk_sessions.SessionEnded` if it ended."""
        if not self.session.verified:
            with self.crm.transaction(write=False):
                pass


class Cookies:
    """Signing and reading the desk's cookies with the database's desk key."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm
        key = crm.sign_in.cookie_key()
        self.max_age = int(crm.settings.desk.session_hours * 3600)
        self.session_signer = TimestampSigner(key, salt="crmkit.desk.session")
        self.pre_signer = TimestampSigner(key, salt="crmkit.desk.pre-session")

    def session_value(self, token: str) -> str:
        """The cookie value carrying ``token``."""
        return self.session_signer.sign(token).decode()

    def token(self, cookie: str | None) -> tuple[str | None, bool]:
        """The session token in ``cookie`` and whether a cookie was there but expired or
        forged (then the token is ``None``)."""
        if not cookie:
            return None, False
        try:
            return self.session_signer.unsign(cookie, max_age=self.max_age).decode(), False
        except (SignatureExpired, BadSignature):
            return None, True

    def new_pre_session(self) -> tuple[str, str]:
        """A sign-in form's CSRF token and the cookie value that vouches for it."""
        token = secrets.token_urlsafe(24)
        return token, self.pre_signer.sign(token).decode()

    def pre_session_token(self, cookie: str | None) -> str | None:
        """The sign-in CSRF token a pre-session cookie vouches for (valid for an hour)."""
        if not cookie:
            return None
        try:
            return self.pre_signer.unsign(cookie, max_age=3600).decode()
        except (SignatureExpired, BadSignature):
            return None

    def cookie_options(self) -> dict[str, Any]:
        """Attributes of every desk cookie."""
        return {
            "path": DESK_PATH,
            "httponly": True,
            "samesite": "lax",
            "secure": self.crm.settings.desk.secure_cookies,
        }


def current_desk(request: Request[Any, Any, Any], crm: CRM, cookies: Cookies) -> Desk:
    """The :class:`Desk` of a request; :class:`SignInRequired` without a live session."""
    token, broken = cookies.token(request.cookies.get(SESSION_COOKIE))
    if token is None:
        raise SignInRequired(expired=broken)
    check = crm.sign_in.session_check(token)
    if check is None:
        raise SignInRequired(expired=True)
    # each desk handler runs in a copy of the request's context (Litestar's worker thread):
    # the check stays with this request
    check_rest_of_context(check)
    return Desk(crm, check)


def anonymous_locale(request: Request[Any, Any, Any], crm: CRM) -> str:
    """The UI language for a request without a session."""
    return negotiate(request.headers.get("accept-language"), crm.settings.desk.default_locale)
