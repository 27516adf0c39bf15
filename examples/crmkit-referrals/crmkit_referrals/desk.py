"""What the plugin adds to the web desk: a panel on contacts, a page, a menu entry to it, a
button that gives a contact a referral code, and a "my day" tile.

Every read and write goes through crmkit's record services with ``actor=actor``, so the desk
shows and changes only what the signed-in user may: a user without ``referral:read`` gets no
menu entry and no tile, and a contact outside their scope is a 404 before the button's code
runs. Everything returned here is data (``crmkit.DeskPanel``, ``crmkit.DeskLink``, ...): the
desk escapes it, so a contact named ``<script>`` is shown as text.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import crmkit

#: The plugin's page, under /desk/plugins/referrals/.
PAGE_PATH = "latest"
PAGE_HREF = f"/desk/plugins/referrals/{PAGE_PATH}"
#: Where the menu entry goes: after the built-in Activities (60), before Tasks (70).
MENU_ORDER = 65
#: The tile counts referrals made within this many days.
TILE_DAYS = 30
#: Letters of a referral code (no 0/O, 1/I: read out over the phone).
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 6


def contact_links(
    crm: crmkit.CRM, ids: Iterable[int], actor: crmkit.User
) -> dict[int, crmkit.DeskLink | str]:
    """Each contact id as a link labelled with the contact's name, for the contacts ``actor``
    may read (one query); any other as ``#id`` text, with no link."""
    wanted = sorted(set(ids))
    found: dict[int, crmkit.DeskLink | str] = {i: f"#{i}" for i in wanted}
    if not wanted:
        return found
    try:
        page = crm.contacts.list({"id__in": wanted}, limit=len(wanted), actor=actor)
    except crmkit.PermissionDenied:
        return found
    for contact in page.items:
        name = contact.get("full_name") or f"#{contact['id']}"
        found[contact["id"]] = crmkit.DeskLink(name, f"/desk/contacts/{contact['id']}")
    return found


def may_read_referrals(crm: crmkit.CRM, actor: crmkit.User) -> bool:
    """Whether ``actor`` holds ``referral:read`` (in any scope)."""
    with crm.transaction(actor, write=False) as op:
        return op.access.scope("referral:read") is not None


def record_panels(
    crm: crmkit.CRM, record: Mapping[str, Any], actor: crmkit.User, locale: str = "en"
) -> list[crmkit.DeskPanel]:
    """The "Referrals" panel of a contact: whom they referred, by name (as ``actor`` may
    see them), in the user's ``locale`` (the plugin's catalogue, crmkit_referrals/locale)."""
    _ = crmkit.desk_gettext(__name__, locale)
    try:
        page = crm.records("referral").list(
            {"referrer_contact_id": record["id"]}, sort="-id", limit=20, actor=actor
        )
    except crmkit.PermissionDenied:
        return []
    links = contact_links(crm, (item["referred_contact_id"] for item in page.items), actor)
    rows = [
        (
            links[item["referred_contact_id"]],
            item.get("channel") or "—",
            str(item.get("reward_points", 0)),
        )
        for item in page.items
    ]
    code = record.get("referral_code")
    return [
        crmkit.DeskPanel(
            title=_("Referrals"),
            rows=[(_("Referral code"), code)] if code else [],
            text="" if rows else _("No referrals yet."),
            columns=((_("Referred"), _("Channel"), _("Reward points")) if rows else ()),
            cells=rows,
        )
    ]


def latest_page(view: crmkit.DeskView) -> list[crmkit.DeskPanel]:
    """The page: the latest referrals ``view.actor`` may read, referrer and referred by
    name."""
    page = view.crm.records("referral").list(sort="-id", limit=50, actor=view.actor)
    ids = [
        item[key] for item in page.items for key in ("referrer_contact_id", "referred_contact_id")
    ]
    links = contact_links(view.crm, ids, view.actor)
    _ = view.gettext
    return [
        crmkit.DeskPanel(
            title=_("Latest referrals"),
            columns=("#", _("Referrer"), _("Referred"), _("Channel")),
            cells=[
                (
                    str(item["id"]),
                    links[item["referrer_contact_id"]],
                    links[item["referred_contact_id"]],
                    item.get("channel") or "—",
                )
                for item in page.items
            ],
            text="" if page.items else _("No referrals yet."),
        )
    ]


def menu_entries(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskMenuEntry]:
    """ "Referrals" in the menu, for users who may read referrals (the page itself is left
    out of the menu, so the others see no entry leading to an empty page)."""
    if not may_read_referrals(crm, actor):
        return []
    return [crmkit.DeskMenuEntry("Referrals", PAGE_HREF, order=MENU_ORDER)]


def tiles(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskTile]:
    """ "Referrals, last 30 days": how many ``actor`` may read, and the latest (by name)."""
    since = crmkit.utcnow() - dt.timedelta(days=TILE_DAYS)
    referrals = crm.records("referral")
    try:
        recent = referrals.list({"created_at__gte": since}, sort="-id", limit=1, actor=actor)
        count = referrals.count({"created_at__gte": since}, actor=actor)
    except crmkit.PermissionDenied:
        return []
    note = ""
    if recent.items:
        latest = recent.items[0]
        links = contact_links(
            crm, (latest["referrer_contact_id"], latest["referred_contact_id"]), actor
        )
        names = [
            link.label if isinstance(link, crmkit.DeskLink) else link
            for link in (
                links[latest["referrer_contact_id"]],
                links[latest["referred_contact_id"]],
            )
        ]
        note = f"{names[0]} → {names[1]}"
    return [
        crmkit.DeskTile(
            title="Referrals, last 30 days", value=str(count), note=note, href=PAGE_HREF
        )
    ]


def issue_referral_code(
    crm: crmkit.CRM, contact_id: int, actor: crmkit.User, locale: str = "en"
) -> str:
    """The "Give a referral code" button: set the contact's ``referral_code`` to a new random
    code, through the contact service as ``actor`` (so it needs ``contact:update`` on this
    contact, and is audited and versioned like any edit). A contact that already has a code
    keeps it (``ConflictError``: nothing changes). What it says is in the user's ``locale``."""
    _ = crmkit.desk_gettext(__name__, locale)
    contact = crm.contacts.get(contact_id, actor=actor)
    name = contact.get("full_name") or _("this contact")
    existing = contact.get("referral_code")
    if existing:
        raise crmkit.ConflictError(
            _("%(name)s already has referral code %(code)s") % {"name": name, "code": existing}
        )
    code = "".join(secrets.choice(CODE_ALPHABET) for _position in range(CODE_LENGTH))
    crm.contacts.update(
        contact_id, {"referral_code": code}, expected_version=contact["version"], actor=actor
    )
    return _("Referral code %(code)s given to %(name)s.") % {"code": code, "name": name}


def issue_code_action(locale: str) -> crmkit.DeskAction:
    """The button on contact pages; its outcome speaks the user's ``locale`` (the desk
    calls ``run(crm, record_id, actor)``: the locale is bound here). The label is English:
    the desk looks it up in the plugin's catalogue."""
    return crmkit.DeskAction(
        name="issue-code",
        label="Give a referral code",
        entity="contact",
        run=functools.partial(issue_referral_code, locale=locale),
    )
