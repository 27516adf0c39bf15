"""The desk's part of the one app ``crmkit serve`` runs: its routes under ``/desk``, its
templates (Jinja2 through Litestar's template engine), static files and error pages.

The desk needs no API token: the REST API's token check skips ``/desk``, and every desk
page instead requires a signed-in session (see :mod:`crmkit.desk.session`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router, get
from litestar.exceptions import HTTPException, NotFoundException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from crmkit.app import CRM
from crmkit.desk.i18n import translations
from crmkit.desk.records import record_handlers
from crmkit.desk.render import page, public_page
from crmkit.desk.session import (
    DESK_PATH,
    SESSION_COOKIE,
    Cookies,
    CsrfRejected,
    SignInRequired,
    anonymous_locale,
    current_desk,
)
from crmkit.desk.signing import safe_next, sign_in_handlers, sign_in_redirect
from crmkit.desk.work import work_handlers
from crmkit.errors import ConflictError, CRMError, NotFoundError, PermissionDenied, ValidationError
from crmkit.services.desk_sessions import SessionEnded

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

#: Status and what the page says, per kind of error a desk page can meet.
_STATUS_TEXT = {
    400: "The request was not understood.",
    403: "You may not do this.",
    404: "This page or record does not exist, or you may not see it.",
    405: "This page cannot be used that way.",
    409: "This could not be done as things are now.",
    413: "What you sent is larger than the desk accepts: nothing was saved.",
    422: "Nothing was saved: the input is not valid.",
    500: "The desk failed on this request; nothing was changed, and the error has been logged.",
}


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """The desk's Jinja2 templates (autoescaped: every value is HTML-escaped)."""
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


def desk_router(crm: CRM) -> Router:
    """Every route of the desk, under ``/desk``."""
    cookies = Cookies(crm)

    def error_page(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
        return render_error(crm, cookies, request, error)

    static = create_static_files_router(
        path="/static", directories=[HERE / "static"], include_in_schema=False, name="desk-static"
    )
    return Router(
        path=DESK_PATH,
        route_handlers=[
            *sign_in_handlers(crm, cookies),
            *work_handlers(crm, cookies),
            *record_handlers(crm, cookies),
            static,
        ],
        exception_handlers={Exception: error_page},
        include_in_schema=False,
    )


def with_desk_errors(crm: CRM, handlers: dict[Any, Any]) -> dict[Any, Any]:
    """The app's exception handlers, answering a desk page instead of problem+json for
    errors met before a desk route runs (an unknown ``/desk/...`` path, a wrong method)."""
    cookies = Cookies(crm)
    wrapped: dict[Any, Any] = {}
    for kind, handler in handlers.items():

        def choose(
            request: Request[Any, Any, Any], error: Exception, handler: Any = handler
        ) -> Response[Any]:
            path = request.url.path
            if path == DESK_PATH or path.startswith(DESK_PATH + "/"):
                return render_error(crm, cookies, request, error)
            return handler(request, error)  # type: ignore[no-any-return]

        wrapped[kind] = choose
    return wrapped


def render_error(
    crm: CRM, cookies: Cookies, request: Request[Any, Any, Any], error: Exception
) -> Response[Any]:
    """The page for an error on a desk route: sign-in for a missing session, else a page
    saying what went wrong in words the user can act on (never a stack or SQL)."""
    if isinstance(error, SignInRequired | SessionEnded):
        expired = error.expired if isinstance(error, SignInRequired) else True
        if request.method == "GET":
            return sign_in_redirect(
                request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                expired,
            )
        return sign_in_redirect(safe_next(request.headers.get("referer", "")), expired)
    status, detail = _status_and_detail(error)
    if status >= 500:
        log.exception("desk error on %s %s", request.method, request.url.path, exc_info=error)
    try:
        desk = current_desk(request, crm, cookies) if request.cookies.get(SESSION_COOKIE) else None
        if desk is not None:
            desk.ensure_checked()
    except CRMError:
        desk = None
    if desk is None:
        locale = anonymous_locale(request, crm)
        _ = translations(locale).gettext
        return public_page(
            locale, "message.html", _("Not done"), status=status, error=_(detail), link=None
        )
    _ = desk.gettext
    return page(desk, "message.html", _("Not done"), status=status, error=_(detail), link=None)


def _status_and_detail(error: Exception) -> tuple[int, str]:
    if isinstance(error, CsrfRejected):
        return 403, str(error)
    if isinstance(error, NotFoundError):
        return 404, _STATUS_TEXT[404]
    if isinstance(error, PermissionDenied):
        return 403, str(error)
    if isinstance(error, ConflictError):
        return 409, str(error)
    if isinstance(error, ValidationError):
        return 422, str(error)
    if isinstance(error, CRMError):
        return 422, str(error)
    if isinstance(error, HTTPException):
        status = error.status_code
        if (
            status == 404
            and isinstance(error, NotFoundException)
            and error.detail not in ("", "Not Found")
        ):
            return 404, _STATUS_TEXT[404]
        if status == 400:
            return 400, _STATUS_TEXT[400] + " " + _plain(error.detail)
        return status, _STATUS_TEXT.get(
            status, _STATUS_TEXT[400] if status < 500 else _STATUS_TEXT[500]
        )
    return 500, _STATUS_TEXT[500]


def _plain(detail: str) -> str:
    """A Litestar validation message, without its internal parameter names."""
    return detail.split("\n")[0][:200]


@get("/", include_in_schema=False, sync_to_thread=False)
def root() -> Redirect:
    """The server's root sends a browser to the desk."""
    return Redirect(DESK_PATH, status_code=302)
