"""What users do with cards: scan (read, check for duplicates, keep or save), review,
confirm, discard, and fetch a card's image. The CLI and the API call these; permissions are
checked here, once, on every path.

Permissions: ``cards:scan`` to scan (saving also needs ``contact:create``, and
``account:create`` when the company is new); a user sees and decides their own scans,
``cards:review`` lets them see and decide everyone's. A saved card's image is served to
whoever may read its contact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select

import crmkit
from crmkit_cardscan import images
from crmkit_cardscan.models import STATUSES, CardScan
from crmkit_cardscan.reading import Draft, read_file

#: What a person may choose on confirming a scan.
CHOICES = ("new", "link", "update")

__all__ = ["CHOICES", "STATUSES", "confirm", "discard", "get", "image", "scan_file", "scans"]


def _actor_name(op: crmkit.Operation) -> str:
    return op.actor.username if op.actor is not None else "the system"


def _contact_values(fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    def value(name: str) -> Any:
        entry = fields.get(name)
        return entry.get("value") if entry else None

    phones = [value(n) for n in ("mobile", "office") if value(n)]
    social = {k: value(k) for k in ("wechat", "linkedin") if value(k)}
    notes = [
        f"{label}: {value(name)}"
        for name, label in (
            ("name_latin", "name (Latin)"),
            ("department", "department"),
            ("fax", "fax"),
            ("company_latin", "company (Latin)"),
        )
        if value(name)
    ]
    return {
        "full_name": value("full_name") or value("name_latin"),
        "family_name": value("family_name"),
        "given_name": value("given_name"),
        "title": value("title"),
        "company_name": value("company") or value("company_latin"),
        "email": value("email"),
        "phone": phones[0] if phones else None,
        "extra_phones": phones[1:],
        "address": value("address"),
        "social": social,
        "source_channel": "business card",
        "notes": "\n".join(notes) or None,
    }


def _fields_json(draft: Draft) -> dict[str, Any]:
    return {
        name: {"value": f.value, "confidence": f.confidence, "source": f.source}
        for name, f in draft.fields.items()
    }


def scan_file(
    crm: crmkit.CRM,
    data: bytes,
    filename: str,
    *,
    save: bool = False,
    where: str | None = None,
    actor: crmkit.User | None = None,
) -> list[dict[str, Any]]:
    """Read every card in one file and keep each as a scan; with ``save``, a card with no
    low-confidence field and no duplicate is saved at once as contact + account + activity
    (one transaction per card). Returns one summary per card. ``CardError`` when the file
    cannot be read (nothing is kept)."""
    with crm.transaction(actor, write=False) as op:
        op.access.require("cards:scan")
        if save:
            op.access.require("contact:create")
    drafts = read_file(crm, data, filename)
    return [_keep(crm, draft, save=save, where=where, actor=actor) for draft in drafts]


def _keep(
    crm: crmkit.CRM, draft: Draft, *, save: bool, where: str | None, actor: crmkit.User | None
) -> dict[str, Any]:
    stored, media_type = images.stored_copy(draft.image)
    fields = _fields_json(draft)
    with crm.transaction(actor) as op:
        values = _contact_values(fields)
        flags = list(draft.flags)
        check = crmkit.DuplicateCheck()
        checkable = _checkable(values)
        if checkable:
            try:
                check = crmkit.check_duplicates(op, "contact", checkable)
            except crmkit.ValidationError as error:
                flags.append(f"a field does not validate: {error}")
        for match in check.matches:
            owner = f", owned by {match.owner_name}" if match.owner_name else ""
            flags.append(f"looks like {match.describe()}{owner}")
        scan = CardScan(
            status="review",
            filename=draft.filename[:300],
            page=draft.page,
            media_type=media_type,
            image=stored,
            engine=draft.engine,
            fields=fields,
            flags=flags,
            duplicates=[match.as_dict() for match in check.matches],
            hidden_matches=check.hidden,
            scanned_by_id=op.actor_id,
            scanned_at=crmkit.utcnow(),
            location=(where or "").strip()[:300] or None,
        )
        op.session.add(scan)
        op.session.flush()
        if save and not flags:
            _save_new(op, scan, confirmed=False)
        return describe(scan)


def _checkable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in ("full_name", "company_name", "email", "phone") if values.get(k)}


def _save_new(op: crmkit.Operation, scan: CardScan, *, confirmed: bool) -> None:
    values = _contact_values(scan.fields)
    account_id = _account_for(op, scan.fields)
    contact = op.records("contact").create(
        {
            k: v
            for k, v in {**values, "account_id": account_id}.items()
            if v not in (None, "", [], {})
        }
    )
    scan.contact_id = contact.id
    scan.account_id = account_id
    _finish(op, scan, confirmed=confirmed)


def _account_for(op: crmkit.Operation, fields: Mapping[str, Mapping[str, Any]]) -> int | None:
    """The account of the card's company: an existing one the actor can see with the same
    name, else a new one."""
    company = (fields.get("company") or {}).get("value")
    if not company:
        return None
    found = op.records("account").list(filters={"name": company}, limit=1).items
    if found:
        return int(found[0].id)
    website = (fields.get("website") or {}).get("value")
    values = {"name": company, "source_channel": "business card"}
    if website:
        values["website"] = website
    address = (fields.get("address") or {}).get("value")
    if address:
        values["address"] = address
    return int(op.records("account").create(values).id)


def _finish(op: crmkit.Operation, scan: CardScan, *, confirmed: bool) -> None:
    """The "card scanned" activity: where, when and by whom the card was scanned (the scan's,
    not the confirmation's), and who confirmed it and when if it was under review."""
    now = crmkit.utcnow()
    place = f" at {scan.location}" if scan.location else ""
    scanner = op.session.get(crmkit.User, scan.scanned_by_id) if scan.scanned_by_id else None
    body = (
        f"Business card {scan.filename} scanned{place}"
        f" by {scanner.username if scanner else 'the system'}"
        f" on {scan.scanned_at:%Y-%m-%d %H:%M} UTC (card scan {scan.id})"
    )
    if confirmed:
        body += f"; confirmed by {_actor_name(op)} on {now:%Y-%m-%d %H:%M} UTC"
    activity = op.records("activity").create(
        {
            "kind": "note",
            "subject": "card scanned",
            "body": body,
            "contact_id": scan.contact_id,
            "account_id": scan.account_id,
            "occurred_at": scan.scanned_at,
        }
    )
    scan.activity_id = activity.id
    scan.status = "saved"
    scan.decided_at = now


def describe(scan: CardScan) -> dict[str, Any]:
    """A scan as JSON-ready data (without the image)."""
    return {
        "id": scan.id,
        "status": scan.status,
        "filename": scan.filename,
        "page": scan.page,
        "engine": scan.engine,
        "fields": scan.fields,
        "flags": list(scan.flags),
        "duplicates": list(scan.duplicates),
        "hidden_matches": scan.hidden_matches,
        "contact_id": scan.contact_id,
        "account_id": scan.account_id,
        "activity_id": scan.activity_id,
        "scanned_by_id": scan.scanned_by_id,
        "scanned_at": scan.scanned_at.isoformat(),
        "location": scan.location,
    }


def _sees_all(op: crmkit.Operation) -> bool:
    return op.access.unrestricted or op.access.scope("cards:review") is not None


#: The largest id a scan can have (the column is a 32-bit integer on PostgreSQL).
MAX_ID = 2**31 - 1


def _load(op: crmkit.Operation, scan_id: int) -> CardScan:
    scan = op.session.get(CardScan, scan_id) if 1 <= scan_id <= MAX_ID else None
    if scan is None or (not _sees_all(op) and scan.scanned_by_id != op.actor_id):
        raise crmkit.NotFoundError("card scan", scan_id)
    return scan


def scans(
    crm: crmkit.CRM,
    *,
    status: str | None = "review",
    limit: int = 50,
    actor: crmkit.User | None = None,
) -> list[dict[str, Any]]:
    """Scans, newest first: the actor's own, or everyone's with ``cards:review``."""
    if status is not None and status not in STATUSES:
        raise crmkit.CRMError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    with crm.transaction(actor, write=False) as op:
        if not _sees_all(op):
            op.access.require("cards:scan")
        query = select(CardScan).order_by(CardScan.id.desc()).limit(limit)
        if status:
            query = query.where(CardScan.status == status)
        if not _sees_all(op):
            query = query.where(CardScan.scanned_by_id == op.actor_id)
        return [describe(scan) for scan in op.session.scalars(query)]


def get(crm: crmkit.CRM, scan_id: int, *, actor: crmkit.User | None = None) -> dict[str, Any]:
    """One scan."""
    with crm.transaction(actor, write=False) as op:
        return describe(_load(op, scan_id))


def confirm(
    crm: crmkit.CRM,
    scan_id: int,
    *,
    choice: str = "new",
    contact_id: int | None = None,
    changes: Mapping[str, str] | None = None,
    where: str | None = None,
    actor: crmkit.User | None = None,
) -> dict[str, Any]:
    """Decide a scan under review, after correcting fields (``changes``): ``new`` saves a
    new contact (the core's duplicate check still applies), ``link`` attaches the card to
    an existing contact, ``update`` also fills that contact's empty fields and adds the
    card's phones and e-mail. One transaction."""
    if choice not in CHOICES:
        raise crmkit.CRMError(f"unknown choice {choice!r}: one of {', '.join(CHOICES)}")
    if choice != "new" and contact_id is None:
        raise crmkit.CRMError(f"choice {choice!r} needs the contact to link to (contact_id)")
    with crm.transaction(actor) as op:
        scan = _load(op, scan_id)
        if scan.status != "review":
            raise crmkit.ConflictError(f"card scan {scan_id} is already {scan.status}")
        fields = dict(scan.fields)
        for name, value in (changes or {}).items():
            fields[name] = {"value": value, "confidence": 1.0, "source": "person"}
        scan.fields = fields
        if where and where.strip():
            scan.location = where.strip()[:300]
        if choice == "new":
            _save_new(op, scan, confirmed=True)
        else:
            assert contact_id is not None
            contact = op.records("contact").get(contact_id)
            if choice == "update":
                _update_contact(op, contact, fields)
            scan.contact_id = contact.id
            scan.account_id = contact.account_id or _account_for(op, fields)
            _finish(op, scan, confirmed=True)
        return describe(scan)


def _update_contact(op: crmkit.Operation, contact: Any, fields: Mapping[str, Any]) -> None:
    values = _contact_values(fields)
    changes: dict[str, Any] = {}
    for name in ("title", "email", "phone", "address", "family_name", "given_name"):
        if values.get(name) and not getattr(contact, name, None):
            changes[name] = values[name]
    phones = [p for p in [values.get("phone"), *values["extra_phones"]] if p]
    extra = [p for p in phones if p != contact.phone and p not in (contact.extra_phones or [])]
    if extra and "phone" not in changes:
        changes["extra_phones"] = [*(contact.extra_phones or []), *extra]
    email = values.get("email")
    if email and contact.email and email != contact.email and email not in contact.extra_emails:
        changes["extra_emails"] = [*(contact.extra_emails or []), email]
    social = {**(contact.social or {}), **values["social"]}
    if social != (contact.social or {}):
        changes["social"] = social
    if changes:
        op.records("contact").update(contact.id, changes)


def discard(crm: crmkit.CRM, scan_id: int, *, actor: crmkit.User | None = None) -> dict[str, Any]:
    """Discard a scan under review (its image goes with it)."""
    with crm.transaction(actor) as op:
        scan = _load(op, scan_id)
        if scan.status != "review":
            raise crmkit.ConflictError(f"card scan {scan_id} is already {scan.status}")
        scan.status = "discarded"
        scan.image = b""
        scan.decided_at = crmkit.utcnow()
        return describe(scan)


def image(crm: crmkit.CRM, scan_id: int, *, actor: crmkit.User | None = None) -> tuple[bytes, str]:
    """A card's image and media type: a saved card's to whoever may read its contact, a
    card under review to its scanner (or a ``cards:review`` holder)."""
    with crm.transaction(actor, write=False) as op:
        scan = op.session.get(CardScan, scan_id) if 1 <= scan_id <= MAX_ID else None
        if scan is None or not scan.image:
            raise crmkit.NotFoundError("card image", scan_id)
        if scan.contact_id is not None:
            try:
                op.records("contact").get(scan.contact_id)
            except crmkit.CRMError:
                raise crmkit.NotFoundError("card image", scan_id) from None
        elif not _sees_all(op) and scan.scanned_by_id != op.actor_id:
            raise crmkit.NotFoundError("card image", scan_id)
        return bytes(scan.image), scan.media_type


ProgressCallback = Callable[[int], None]
