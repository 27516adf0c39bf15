"""The loyalty plugin on the web desk, besides the card panel on contacts (in
:mod:`crmkit_loyalty.views`): a "my day" tile and a page of the signed-in user's members whose
points expire soon, and the menu entry to that page.

"Members of theirs" are the contacts the user owns (and may read: the same permission filter
as every read of contacts); "soon" is the ``expiring_notice_days`` setting, the window in which
``points.expiring`` goes out. Only spendable points of active cards count (pending points
cannot expire before they are released).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, select

import crmkit
from crmkit_loyalty.ledger import CARDS, CONTACTS, LOTS
from crmkit_loyalty.registry import PLUGIN_NAME

#: The page, under /desk/plugins/loyalty/.
PAGE_PATH = "expiring"
PAGE_HREF = f"/desk/plugins/{PLUGIN_NAME}/{PAGE_PATH}"
#: The menu entry's place: after the built-in Shared pool (80).
MENU_ORDER = 85
#: Members listed on the page.
PAGE_SIZE = 100


def _expiring_lots(op: crmkit.Operation, owner_id: int, days: int) -> Any:
    """The conditions and joins of the lots of ``owner_id``'s members (as ``op``'s actor may
    read them) whose spendable points expire within ``days``."""
    access = op.access
    scope = access.condition(crmkit.Contact, access.require("contact:read"))
    conditions = [
        CONTACTS.c.owner_id == owner_id,
        CONTACTS.c.deleted_at.is_(None),
        CARDS.c.status == "active",
        LOTS.c.remaining > 0,
        LOTS.c.pending.is_(False),
        LOTS.c.expires_at.is_not(None),
        LOTS.c.expires_at <= crmkit.utcnow() + dt.timedelta(days=days),
    ]
    if scope is not None:
        conditions.append(scope)
    joined = LOTS.join(CARDS, CARDS.c.id == LOTS.c.card_id).join(
        CONTACTS, CONTACTS.c.id == CARDS.c.contact_id
    )
    return joined, and_(*conditions)


def expiring_summary(crm: crmkit.CRM, actor: crmkit.User) -> tuple[int, int, dt.datetime | None]:
    """``actor``'s members with points expiring soon: how many, how many points, and the
    first expiry."""
    days = int(crm.plugin_settings(PLUGIN_NAME)["expiring_notice_days"])
    with crm.transaction(actor, write=False) as op:
        joined, where = _expiring_lots(op, actor.id, days)
        row = (
            op.session.connection()
            .execute(
                select(
                    func.count(func.distinct(CONTACTS.c.id)),
                    func.coalesce(func.sum(LOTS.c.remaining), 0),
                    func.min(LOTS.c.expires_at),
                )
                .select_from(joined)
                .where(where)
            )
            .one()
        )
        return int(row[0]), int(row[1]), row[2]


def expiring_members(
    crm: crmkit.CRM, actor: crmkit.User, *, limit: int = PAGE_SIZE
) -> list[dict[str, Any]]:
    """``actor``'s members with points expiring soon, the soonest first: per card, the
    contact (its name unless a field rule hides it), the card, the points and the first
    expiry."""
    days = int(crm.plugin_settings(PLUGIN_NAME)["expiring_notice_days"])
    with crm.transaction(actor, write=False) as op:
        joined, where = _expiring_lots(op, actor.id, days)
        first = func.min(LOTS.c.expires_at)
        rows = op.session.connection().execute(
            select(
                CONTACTS.c.id,
                CONTACTS.c.full_name,
                CARDS.c.number,
                func.sum(LOTS.c.remaining),
                first,
            )
            .select_from(joined)
            .where(where)
            .group_by(CONTACTS.c.id, CONTACTS.c.full_name, CARDS.c.number)
            .order_by(first, CONTACTS.c.id)
            .limit(limit)
        )
        name_hidden = "full_name" in op.access.hidden_fields("contact")
        return [
            {
                "contact_id": row[0],
                "contact": None if name_hidden else row[1],
                "card": row[2],
                "points": int(row[3]),
                "expires_at": row[4],
            }
            for row in rows
        ]


def tiles(crm: crmkit.CRM, actor: crmkit.User, locale: str = "en") -> list[crmkit.DeskTile]:
    """ "Points expiring soon": how many of ``actor``'s members have points expiring, how many
    points and from when (in the user's ``locale``); nothing for a user who may not read
    contacts."""
    try:
        members, points, first = expiring_summary(crm, actor)
    except crmkit.PermissionDenied:
        return []
    _ = crmkit.desk_gettext(__name__, locale)
    note = ""
    if first is not None:
        note = _("%(points)s points, the first on %(date)s") % {
            "points": points,
            "date": f"{first:%Y-%m-%d}",
        }
    return [
        crmkit.DeskTile(title="Points expiring soon", value=str(members), note=note, href=PAGE_HREF)
    ]


def expiring_page(view: crmkit.DeskView) -> list[crmkit.DeskPanel]:
    """The page: the signed-in user's members with points expiring soon, linked to their
    contact pages."""
    _ = view.gettext
    found = expiring_members(view.crm, view.actor)
    # DeskPanel's fields convert with ``tuple``, whose generic __init__ mypy cannot match
    # against a list argument: build the panel through an untyped name
    panel: Any = crmkit.DeskPanel
    return [
        panel(
            title=_("Members of mine with points expiring soon"),
            columns=(_("Member"), _("Card"), _("Points"), _("Expires")),
            cells=[
                (
                    crmkit.DeskLink(
                        item["contact"] or f"#{item['contact_id']}",
                        f"/desk/contacts/{item['contact_id']}",
                    ),
                    item["card"],
                    str(item["points"]),
                    f"{item['expires_at']:%Y-%m-%d}",
                )
                for item in found
            ],
            text="" if found else _("No points of your members expire soon."),
        )
    ]


def menu_entries(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskMenuEntry]:
    """ "Points expiring" in the menu, for users who may read contacts (members are
    contacts)."""
    with crm.transaction(actor, write=False) as op:
        if op.access.scope("contact:read") is None:
            return []
    return [crmkit.DeskMenuEntry("Points expiring", PAGE_HREF, order=MENU_ORDER)]
