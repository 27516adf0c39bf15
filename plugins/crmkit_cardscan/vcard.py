"""Contact data printed as a QR code: vCard 2.1, 3.0 and 4.0 (read with vobject) and
MeCard (``MECARD:N:...;TEL:...;;``, read here: it is a one-line format vobject does not
know). Both give card fields with confidence 1.0: a QR code is exact where OCR guesses."""

from __future__ import annotations

import re
from collections.abc import Iterable

import vobject

import crmkit
from crmkit_cardscan.parsing import normalise_linkedin, phone_kind

SOURCE = "qr"

_MECARD_FIELD = re.compile(r"((?:[^;\\]|\\.)*);")
_MECARD_NAME = re.compile(r"((?:[^,\\]|\\.)*)(,?)(.*)", re.DOTALL)
_LINKEDIN = re.compile(r"linkedin\.com/", re.IGNORECASE)


def is_contact_payload(text: str) -> bool:
    """Whether a QR code's text is a vCard or a MeCard."""
    head = text.lstrip().upper()
    return head.startswith("BEGIN:VCARD") or head.startswith("MECARD:")


def read_contact_payload(text: str, region: str) -> dict[str, crmkit.CardField]:
    """The card fields of a vCard or MeCard text; ``ValueError`` naming the problem when
    it is neither or cannot be read."""
    if text.lstrip().upper().startswith("MECARD:"):
        return read_mecard(text, region)
    return read_vcard(text, region)


def _field(value: str) -> crmkit.CardField:
    return crmkit.CardField(value.strip(), 1.0, SOURCE)


def _put(fields: dict[str, crmkit.CardField], name: str, value: str | None) -> None:
    if value and value.strip() and name not in fields:
        fields[name] = _field(value)


def _phone(
    fields: dict[str, crmkit.CardField], kinds: Iterable[str], number: str, region: str
) -> None:
    kinds = {kind.lower() for kind in kinds}
    if "fax" in kinds:
        name = "fax"
    elif kinds & {"cell", "mobile", "iphone"}:
        name = "mobile"
    elif kinds & {"work", "office"}:
        name = "office"
    else:
        name = ""
    try:
        value = crmkit.normalise_phone(number, region)
    except ValueError:
        return
    kind = name or phone_kind(value)
    if kind == "either":
        kind = "mobile" if "mobile" not in fields else "office"
    _put(fields, kind, value)


def _website(fields: dict[str, crmkit.CardField], url: str) -> None:
    if _LINKEDIN.search(url):
        _put(fields, "linkedin", normalise_linkedin(url) or url)
    else:
        _put(fields, "website", url)


def read_vcard(text: str, region: str) -> dict[str, crmkit.CardField]:
    """The fields of one vCard (2.1, 3.0 or 4.0)."""
    # vCard 2.1 folds nothing and may carry bare type parameters (TEL;CELL:...), which
    # vobject reads as they are.
    try:
        card = vobject.readOne(text.strip(), ignoreUnreadable=True)
    except Exception as error:  # noqa: BLE001 - vobject raises many kinds for bad input
        raise ValueError(f"the QR code's vCard cannot be read: {error}") from None
    fields: dict[str, crmkit.CardField] = {}
    contents = card.contents
    for item in contents.get("fn", []):
        _put(fields, "full_name", str(item.value))
    for item in contents.get("n", []):
        name = item.value
        family = name.family if isinstance(name.family, str) else " ".join(name.family)
        given = name.given if isinstance(name.given, str) else " ".join(name.given)
        _put(fields, "family_name", family)
        _put(fields, "given_name", given)
        if "full_name" not in fields and (family or given):
            cjk = any("\u4e00" <= ch <= "\u9fff" for ch in family + given)
            _put(fields, "full_name", f"{family}{given}" if cjk else f"{given} {family}".strip())
    for item in contents.get("title", []):
        _put(fields, "title", str(item.value))
    for item in contents.get("org", []):
        parts = item.value if isinstance(item.value, list) else [str(item.value)]
        _put(fields, "company", parts[0] if parts else "")
        if len(parts) > 1:
            _put(fields, "department", " ".join(p for p in parts[1:] if p))
    for item in contents.get("tel", []):
        kinds = [k for param in ("TYPE",) for k in item.params.get(param, [])]
        kinds += list(item.singletonparams)
        kinds = [part for kind in kinds for part in str(kind).split(",")]
        number = str(item.value)
        if number.lower().startswith("tel:"):
            number = number[4:]
        _phone(fields, kinds, number, region)
    for item in contents.get("email", []):
        _put(fields, "email", str(item.value).lower())
    for item in contents.get("url", []):
        _website(fields, str(item.value))
    for item in contents.get("adr", []):
        _put(fields, "address", _address(item.value))
    for item in contents.get("x-socialprofile", []):
        profile = {str(k).lower() for k in item.params.get("TYPE", [])}
        target = "linkedin" if "linkedin" in profile else "wechat" if "wechat" in profile else None
        if target == "linkedin":
            _put(fields, target, normalise_linkedin(str(item.value)) or str(item.value))
        elif target:
            _put(fields, target, str(item.value))
    for key in ("x-wechat", "x-weixin"):
        for item in contents.get(key, []):
            _put(fields, "wechat", str(item.value))
    for item in contents.get("impp", []):
        value = str(item.value)
        scheme, _, handle = value.partition(":")
        if scheme.lower() in {"wechat", "weixin"}:
            _put(fields, "wechat", handle)
    if not fields:
        raise ValueError("the QR code's vCard holds no contact fields")
    return fields


def _address(value: object) -> str:
    """One line from a vCard address: Chinese from the province down, else Latin order."""
    parts = {
        key: (" ".join(v) if isinstance(v, list) else str(v or "")).strip()
        for key in ("box", "extended", "street", "city", "region", "code", "country")
        for v in [getattr(value, key, "")]
    }
    text = "".join(parts.values())
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        return "".join(
            parts[k] for k in ("region", "city", "street", "extended", "box") if parts[k]
        )
    street = ", ".join(p for p in (parts["extended"], parts["street"], parts["box"]) if p)
    locality = " ".join(p for p in (parts["city"], parts["region"], parts["code"]) if p)
    return ", ".join(p for p in (street, locality, parts["country"]) if p)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def read_mecard(text: str, region: str) -> dict[str, crmkit.CardField]:
    """The fields of a MeCard (keys N, SOUND, TEL, EMAIL, NOTE, ADR, BDAY, URL, ORG, plus
    the common TITLE)."""
    body = text.strip()[len("MECARD:") :]
    if not body.endswith(";"):
        body += ";"
    fields: dict[str, crmkit.CardField] = {}
    for match in _MECARD_FIELD.finditer(body):
        entry = match.group(1)
        key, sep, raw = entry.partition(":")
        if not sep:
            continue
        key = key.strip().upper()
        value = _unescape(raw).strip()
        if not value:
            continue
        if key == "N":  # family,given: split at the first comma not escaped (\,)
            parts = _MECARD_NAME.fullmatch(raw.strip())
            family = _unescape(parts.group(1)).strip() if parts else value
            comma = parts.group(2) if parts else ""
            given = _unescape(parts.group(3)).strip() if parts else ""
            _put(fields, "family_name", family)
            _put(fields, "given_name", given)
            cjk = any("\u4e00" <= ch <= "\u9fff" for ch in value)
            full = f"{family}{given}" if cjk else (f"{given} {family}".strip() if comma else value)
            _put(fields, "full_name", full)
        elif key == "TEL":
            _phone(fields, (), value, region)
        elif key == "EMAIL":
            _put(fields, "email", value.lower())
        elif key == "URL":
            _website(fields, value)
        elif key == "ORG":
            _put(fields, "company", value)
        elif key == "TITLE":
            _put(fields, "title", value)
        elif key == "ADR":
            _put(fields, "address", value.replace(",", " ").strip())
    if not fields:
        raise ValueError("the QR code's MeCard holds no contact fields")
    return fields
