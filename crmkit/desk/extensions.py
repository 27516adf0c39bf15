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


def _cells(
    value: Iterable[Sequence[str | DeskLink]],
) -> tuple[tuple[str | DeskLink, ...], ...]:
    return tuple(tuple(row) for row in value)


def _links(value: Iterable[DeskLink]) -> tuple[DeskLink, ...]:
    return tuple(value)


@frozen
class DeskPanel:
    """A box of content: a title, then any of ``rows`` (label, value pairs), ``text`` (a
    paragraph), ``table`` (``columns`` over ``cells``: a cell is text or a :class:`DeskLink`),
    ``links``, and ``html`` (trusted markup the plugin built)."""

    title: str
    rows: Sequence[tuple[str, str]] = field(default=(), converter=_pairs)
    text: str = ""
    columns: Sequence[str] = field(default=(), converter=_texts)
    cells: Sequence[Sequence[str | DeskLink]] = field(default=(), converter=_cells)
    links: Sequence[DeskLink] = field(default=(), converter=_links)
    html: Markup | None = None


@frozen
class DeskView:
    """What a plugin page's ``render`` gets: the CRM, the signed-in user (pass ``actor=`` to
    every service call, so the page shows only what they may see), the query parameters,
    and ``gettext`` for the user's UI language."""

    crm: CRM
    actor: User
    query: Mapping[str, str]
    locale: str
    gettext: Callable[[str], str]


@frozen
class DeskPage:
    """A page of a plugin at ``/desk/plugins/<plugin>/<path>``: ``render`` returns the
    panels shown under ``title``; with ``menu`` it also gets an entry in the menu."""

    path: str
    title: str
    render: Callable[[DeskView], Sequence[DeskPanel]]
    menu: bool = True


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
