"""Rendering desk pages: the shared layout's context (menu, language, CSRF token, notices)
around each page's own."""

from __future__ import annotations

from typing import Any

from litestar.enums import MediaType
from litestar.response import Template
from markupsafe import Markup, escape

from crmkit.desk.contributions import collected
from crmkit.desk.extensions import DeskLink, DeskMenuEntry, DeskPage
from crmkit.desk.i18n import translations
from crmkit.desk.session import CSRF_FIELD, DESK_PATH, Desk

#: The built-in menu: (order, label, path under /desk).
BUILT_IN_MENU = (
    (10, "My day", ""),
    (20, "Contacts", "/contacts"),
    (30, "Accounts", "/accounts"),
    (40, "Leads", "/leads"),
    (50, "Deals", "/deals"),
    (55, "Pipeline", "/board"),
    (60, "Activities", "/activities"),
    (70, "Tasks", "/tasks"),
    (80, "Shared pool", "/pool"),
)

#: Notices a redirect may name (``?notice=saved``): fixed texts, so a link cannot make the
#: desk show words of its own.
NOTICES = {
    "saved": "Saved.",
    "created": "Created.",
    "logged": "Logged.",
    "moved": "Deal moved.",
    "claimed": "Claimed: the records are yours now.",
    "signed_out": "You have signed out.",
    "language": "Language changed.",
    "done": "Done.",
}


def menu(desk: Desk) -> list[DeskMenuEntry]:
    """The built-in entries, the plugins' menu entries and their pages shown in the menu."""
    _ = desk.gettext
    entries = [
        DeskMenuEntry(_(label), f"{DESK_PATH}{path}", order) for order, label, path in BUILT_IN_MENU
    ]
    # a plugin's labels are looked up in its own catalogue, then the desk's
    entries += [
        DeskMenuEntry(desk.plugin_gettext(plugin)(entry.label), entry.href, entry.order)
        for plugin, entry in collected(
            desk.crm, "crmkit_desk_menu", DeskMenuEntry, actor=desk.user, locale=desk.locale
        )
    ]
    for plugin, page in collected(desk.crm, "crmkit_desk_pages", DeskPage):
        if page.menu:
            title = desk.plugin_gettext(plugin)(page.title)
            entries.append(DeskMenuEntry(title, plugin_page_path(plugin, page), 100))
    return sorted(entries, key=lambda entry: entry.order)


def plugin_page_path(plugin: str, page: DeskPage) -> str:
    """Where a plugin's page is served."""
    return f"{DESK_PATH}/plugins/{plugin}/{page.path.strip('/')}"


def page(
    desk: Desk,
    template: str,
    title: str,
    *,
    status: int = 200,
    notice: str | None = None,
    error: str | None = None,
    **context: Any,
) -> Template:
    """A desk page for the signed-in user (whose session is checked first, if the page
    opened no operation that did)."""
    desk.ensure_checked()
    _ = desk.gettext
    return Template(
        template_name=template,
        status_code=status,
        media_type=MediaType.HTML,  # else guessed from the template's name on every page
        context={
            "_": _,
            "desk": desk,
            "user": desk.user,
            "locale": desk.locale,
            "menu": menu(desk),
            "csrf_field": CSRF_FIELD,
            "csrf_token": desk.csrf_token,
            "title": title,
            "notice": _(NOTICES[notice]) if notice in NOTICES else None,
            "error": error,
            "desk_path": DESK_PATH,
            **context,
        },
    )


def public_page(
    locale: str, template: str, title: str, *, status: int = 200, **context: Any
) -> Template:
    """A page for a browser that is not signed in (sign-in, errors)."""
    _ = translations(locale).gettext
    return Template(
        template_name=template,
        status_code=status,
        media_type=MediaType.HTML,  # else guessed from the template's name on every page
        context={
            "_": _,
            "desk": None,
            "user": None,
            "locale": locale,
            "menu": [],
            "csrf_field": CSRF_FIELD,
            "title": title,
            "desk_path": DESK_PATH,
            **context,
        },
    )


def table_rows(rows: list[tuple[object, str, list[str | DeskLink]]]) -> Markup:
    """The ``<tr>`` rows of a list table, escaped: each row is ``(id, href, cells)``; its
    first cell is the id linking to the record ``href``, the next links there too unless
    it is a link itself. Built here rather than in the template: a 50-row page has hundreds
    of cells, and a Jinja macro call per cell, then the template's own per-row lookups and
    escaping, were most of the page's rendering time (bench/desk_bench.py --profile)."""
    parts = []
    for record_id, href, cells in rows:
        link = escape(href)
        parts.append(f'<tr><td><a href="{link}">{escape(record_id)}</a></td>')
        for index, value in enumerate(cells):
            if isinstance(value, DeskLink):
                inner = f'<a href="{escape(value.href)}">{escape(value.label)}</a>'
            elif index == 0:
                inner = f'<a href="{link}">{escape(value)}</a>'
            else:
                inner = escape(value)
            parts.append(f"<td>{inner}</td>")
        parts.append("</tr>\n")
    return Markup("".join(parts))
