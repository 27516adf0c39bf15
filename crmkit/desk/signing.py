"""Sign-in, sign-out and the UI language: the desk's pages before and around a session."""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from crmkit.app import CRM
from crmkit.desk.i18n import translations
from crmkit.desk.render import public_page
from crmkit.desk.session import (
    CSRF_FIELD,
    CSRF_MESSAGE,
    DESK_PATH,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    Cookies,
    anonymous_locale,
    current_desk,
)
from crmkit.services.sign_in import SignInRefused

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def safe_next(target: object) -> str:
    """Where to go after signing in: a desk path only (never another site)."""
    if not isinstance(target, str):
        return DESK_PATH
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith(DESK_PATH) or "\\" in target:
        return DESK_PATH
    return target


def text(form: dict[str, Any], name: str) -> str:
    """A form field as text (the last value if it was sent more than once)."""
    value = form.get(name)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value if isinstance(value, str) else ""


def sign_in_handlers(crm: CRM, cookies: Cookies) -> list[Any]:
    """The handlers of ``/desk/sign-in``, ``/desk/sign-out`` and ``/desk/language``."""

    def form_page(
        request: Request[Any, Any, Any],
        *,
        next_path: str,
        username: str = "",
        error: str | None = None,
        status: int = 200,
        notice: str | None = None,
    ) -> Template:
        locale = anonymous_locale(request, crm)
        _ = translations(locale).gettext
        token, cookie_value = cookies.new_pre_session()
        response = public_page(
            locale,
            "sign_in.html",
            _("Sign in"),
            status=status,
            csrf_token=token,
            next_path=next_path,
            username=username,
            error=error,
            notice=notice,
        )
        response.cookies.append(
            Cookie(key=PRE_SESSION_COOKIE, value=cookie_value, **cookies.cookie_options())
        )
        return response

    @get("/sign-in", sync_to_thread=True, include_in_schema=False, name="desk-sign-in")
    def sign_in_page(request: Request[Any, Any, Any]) -> Template:
        locale = anonymous_locale(request, crm)
        _ = translations(locale).gettext
        query = request.query_params
        notice = None
        if query.get("expired"):
            notice = _("Your session has expired: sign in again.")
        elif query.get("signed_out"):
            notice = _("You have signed out.")
        return form_page(request, next_path=safe_next(query.get("next")), notice=notice)

    @post("/sign-in", sync_to_thread=True, include_in_schema=False, status_code=303)
    def sign_in_submit(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
        locale = anonymous_locale(request, crm)
        _ = translations(locale).gettext
        next_path = safe_next(text(data, "next"))
        username = text(data, "username").strip()[:150]
        expected = cookies.pre_session_token(request.cookies.get(PRE_SESSION_COOKIE))
        sent = text(data, CSRF_FIELD)
        if expected is None or not secrets.compare_digest(sent.encode(), expected.encode()):
            return form_page(
                request,
                next_path=next_path,
                username=username,
                error=_(CSRF_MESSAGE),
                status=403,
            )
        password = text(data, "password")
        if not username or not password:
            return form_page(
                request,
                next_path=next_path,
                username=username,
                error=_("Enter your user name and password."),
                status=400,
            )
        remote = request.client.host if request.client else ""
        try:
            signed_in = crm.sign_in.sign_in(username, password, remote=remote)
        except SignInRefused as refused:
            return form_page(
                request,
                next_path=next_path,
                username=username,
                error=_(str(refused)) if str(refused) else _("Sign-in refused."),
                status=401,
            )
        response: Response[Any] = Redirect(next_path, status_code=303)
        response.cookies.append(
            Cookie(
                key=SESSION_COOKIE,
                value=cookies.session_value(signed_in.token),
                max_age=cookies.max_age,
                **cookies.cookie_options(),
            )
        )
        response.cookies.append(
            Cookie(key=PRE_SESSION_COOKIE, value="", max_age=0, **cookies.cookie_options())
        )
        return response

    @post("/sign-out", sync_to_thread=True, include_in_schema=False, status_code=303)
    def sign_out(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
        desk = current_desk(request, crm, cookies)
        desk.check_csrf(data)
        token, _broken = cookies.token(request.cookies.get(SESSION_COOKIE))
        if token is not None:
            crm.sign_in.sign_out(token)
        response: Response[Any] = Redirect(f"{DESK_PATH}/sign-in?signed_out=1", status_code=303)
        response.cookies.append(
            Cookie(key=SESSION_COOKIE, value="", max_age=0, **cookies.cookie_options())
        )
        return response

    @post("/language", sync_to_thread=True, include_in_schema=False, status_code=303)
    def set_language(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
        desk = current_desk(request, crm, cookies)
        desk.check_csrf(data)
        crm.sign_in.set_locale(desk.user, text(data, "locale"))
        back = safe_next(text(data, "next"))
        separator = "&" if "?" in back else "?"
        return Redirect(f"{back}{separator}notice=language", status_code=303)

    return [sign_in_page, sign_in_submit, sign_out, set_language]


def sign_in_redirect(path: str, expired: bool) -> Redirect:
    """Send a browser without a live session to the sign-in page, then back to ``path``."""
    query = f"next={quote(safe_next(path))}"
    if expired:
        query += "&expired=1"
    return Redirect(f"{DESK_PATH}/sign-in?{query}", status_code=303)
