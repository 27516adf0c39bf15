"""What plugins hand the desk through its hooks (``crmkit_desk_*`` in the hook reference):
pages, record panels, menu entries, actions and dashboard tiles.

Everything a plugin returns is text the desk escapes when it renders it; only
:attr:`DeskPanel.html`, which must be a ``markupsafe.Markup`` the plugin built (escaping
what it put in), is inserted as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from attrs import field, frozen
from markupsafe import Markup

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.entities.organisation import User


@frozen
class DeskLink:
    """A link: ``label`` to ``href`` (a desk path such as ``/desk/contacts/3``)."""

    label: str
    href: str


def _texts(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _pairs(value: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(value)


def _values(value: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(name), str(text)) for name, text in items)


@frozen
class DeskButton:
    """A button in a table cell of a plugin page's panel: a click POSTs ``values`` (hidden
    fields) and the session's CSRF token to the page, which calls its action named
    ``action`` (see :class:`DeskPage`). ``confirm`` asks first (with JavaScript on)."""

    label: str
    action: str
    values: Sequence[tuple[str, str]] = field(default=(), converter=_values)
    confirm: str = ""


#: What a table cell of a panel may hold.
Cell = str | DeskLink | DeskButton


def _cells(value: Iterable[Sequence[Cell]]) -> tuple[tuple[Cell, ...], ...]:
    return tuple(tuple(row) for row in value)


def _links(value: Iterable[DeskLink]) -> tuple[DeskLink, ...]:
    return tuple(value)


@frozen
class DeskPanel:
    """A box of content: a title, then any of ``rows`` (label, value pairs), ``text`` (a
    paragraph), ``table`` (``columns`` over ``cells``: a cell is text, a :class:`DeskLink`
    or, on a plugin page, a :class:`DeskButton`), ``links``, and ``html`` (trusted markup
    the plugin built)."""

    title: str
    rows: Sequence[tuple[str, str]] = field(default=(), converter=_pairs)
    text: str = ""
    columns: Sequence[str] = field(default=(), converter=_texts)
    cells: Sequence[Sequence[Cell]] = field(default=(), converter=_cells)
    links: Sequence[DeskLink] = field(default=(), converter=_links)
    html: Markup | None = None


@frozen
class DeskView:
    """What a plugin page's ``render`` gets: the CRM, the signed-in user (pass ``actor=`` to
    every service call, so the page shows only what they may see), the query parameters,
    and ``gettext`` for the user's UI language (the plugin's own catalogue first, then the
    desk's: see ``crmkit.desk_gettext``)."""

    crm: CRM
    actor: User
    query: Mapping[str, str]
    locale: str
    gettext: Callable[[str], str]


#: A plugin page's action: called with the page's view and the submitted form's fields (the
#: button's ``values``; each a string), it does its work through services with
#: ``actor=view.actor`` and returns the outcome shown to the user.
PageAction = Callable[[DeskView, Mapping[str, str]], str]


@frozen
class DeskPage:
    """A page of a plugin at ``/desk/plugins/<plugin>/<path>``: ``render`` returns the
    panels shown under ``title``; with ``menu`` it also gets an entry in the menu.

    ``actions`` are what the page's :class:`DeskButton` cells do: a click POSTs to the page
    (checked against the session's CSRF token) and calls ``actions[button.action]``; the page
    is then shown again with the text it returned, or with the message of a
    ``crmkit.CRMError`` it raised (its transaction rolled back: nothing changed)."""

    path: str
    title: str
    render: Callable[[DeskView], Sequence[DeskPanel]]
    menu: bool = True
    actions: Mapping[str, PageAction] = field(factory=dict)


@frozen
class DeskMenuEntry:
    """An entry of the desk's menu: ``label`` linking to ``href``; lower ``order`` first
    (the built-in entries use 10-90)."""

    label: str
    href: str
    order: int = 100


@frozen
class DeskAction:
    """A button on the record pages of ``entity``: a click POSTs (with the CSRF check) and
    calls ``run(crm, record_id, actor)``, whose return value is shown as the outcome; a
    ``crmkit.CRMError`` it raises is shown as the error. Do the work through services with
    ``actor=actor`` so the user's permissions hold. ``confirm`` asks first."""

    name: str
    label: str
    entity: str
    run: Callable[[CRM, int, User], str]
    confirm: str = ""


@frozen
class DeskTile:
    """A tile of the "my day" dashboard: a ``title``, a short ``value`` (a count, an amount)
    and optionally a ``note`` and a link."""

    title: str
    value: str
    note: str = ""
    href: str = ""
