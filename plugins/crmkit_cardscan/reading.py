"""One card image to one draft: QR codes first, then OCR, then the parsers."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence

from attrs import frozen
from PIL import Image

import crmkit
from crmkit_cardscan import PLUGIN_NAME, images
from crmkit_cardscan.parsing import parse_card
from crmkit_cardscan.vcard import is_contact_payload, read_contact_payload

#: The fields the accuracy benchmark scores and a draft shows first.
MAIN_FIELDS = ("full_name", "title", "company", "email", "mobile", "office", "website", "address")

#: Fields taken from another field (flagged through it, not on their own).
DERIVED_FIELDS = ("family_name", "given_name")

_engines: weakref.WeakKeyDictionary[crmkit.CRM, crmkit.OcrEngine] = weakref.WeakKeyDictionary()


@frozen
class Draft:
    """What was read from one card image (one PDF page)."""

    filename: str
    page: int
    fields: Mapping[str, crmkit.CardField]
    flags: tuple[str, ...]
    engine: str
    image: Image.Image


def settings_of(crm: crmkit.CRM) -> dict[str, object]:
    """The plugin's validated settings."""
    return crm.plugin_settings(PLUGIN_NAME)


def region_of(crm: crmkit.CRM) -> str:
    """The region phone numbers without a country code are read in."""
    return str(settings_of(crm).get("default_region") or crm.settings.default_region)


def engine_of(crm: crmkit.CRM) -> crmkit.OcrEngine:
    """The OCR engine named by the ``engine`` setting, from ``crmkit_ocr_engine`` (made once
    per CRM)."""
    engine = _engines.get(crm)
    if engine is None:
        name = str(settings_of(crm)["engine"])
        engine = crm.host.call("crmkit_ocr_engine", crm=crm, name=name)
        if engine is None:
            raise crmkit.ConfigError(
                f"no OCR engine called {name!r}: the bundled ones are rapidocr and tesseract"
                " (setting [plugins.cardscan] engine)"
            )
        _engines[crm] = engine
    return engine


def read_file(crm: crmkit.CRM, data: bytes, filename: str) -> list[Draft]:
    """The drafts of every card in a file (one per PDF page); ``CardError`` when the file
    cannot be read or a card holds no text."""
    settings = settings_of(crm)
    pages = images.load_pages(
        data,
        filename,
        max_bytes=int(settings["max_upload_mb"]) * 2**20,  # type: ignore[call-overload]
        max_pixels=int(settings["max_pixels"]),  # type: ignore[call-overload]
    )
    drafts = []
    for number, page in enumerate(pages, start=1):
        label = filename if len(pages) == 1 else f"{filename} page {number}"
        drafts.append(read_image(crm, page, label, number))
    return drafts


def read_image(crm: crmkit.CRM, image: Image.Image, filename: str, page: int = 1) -> Draft:
    """The draft of one upright card image, with the CRM's engine, region, threshold and
    the plugins' field parsers."""

    def more_fields(
        lines: Sequence[crmkit.OcrLine], fields: Mapping[str, crmkit.CardField]
    ) -> list[Mapping[str, crmkit.CardField]]:
        if not crm.host.implemented("crmkit_card_fields"):
            return []
        answers = crm.host.call(
            "crmkit_card_fields", lines=lines, fields=dict(fields), region=region_of(crm)
        )
        return [answer for answer in answers if answer]

    return read_card(
        image,
        engine_of(crm),
        filename=filename,
        page=page,
        region=region_of(crm),
        threshold=float(settings_of(crm)["review_below"]),  # type: ignore[arg-type]
        more_fields=more_fields,
    )


FieldParsers = Callable[
    [Sequence[crmkit.OcrLine], Mapping[str, crmkit.CardField]],
    list[Mapping[str, crmkit.CardField]],
]


def read_card(
    image: Image.Image,
    engine: crmkit.OcrEngine,
    *,
    filename: str = "card",
    page: int = 1,
    region: str = "CN",
    threshold: float = 0.8,
    more_fields: FieldParsers | None = None,
) -> Draft:
    """The draft of one upright card image: QR codes (vCard, MeCard) first, then OCR and
    the built-in parser for the fields the QR code did not give, then ``more_fields``."""
    fields: dict[str, crmkit.CardField] = {}
    for text in images.decode_qr_codes(image):
        if is_contact_payload(text):
            try:
                found = read_contact_payload(text, region)
            except ValueError:
                continue
            for name, value in found.items():
                fields.setdefault(name, value)
    prepared = images.prepare_for_reading(image)
    lines = list(engine.read(prepared))
    if not lines and not fields:
        raise images.CardError(f"{filename}: no text found on the card")
    for name, value in parse_card(lines, region).items():
        if name not in fields:  # a QR code wins over OCR
            fields[name] = value
    for answer in more_fields(lines, fields) if more_fields else []:
        for name, value in answer.items():
            if name not in fields or fields[name].confidence < value.confidence:
                fields[name] = value
    flags = []
    if "full_name" not in fields:
        flags.append("no name found")
    if not any(name in fields for name in ("email", "mobile", "office")):
        flags.append("no e-mail or phone found")
    for name, value in sorted(fields.items()):
        if value.confidence < threshold and name not in DERIVED_FIELDS:
            flags.append(f"{name} read with low confidence ({value.confidence:.2f})")
    return Draft(filename, page, fields, tuple(flags), engine.name, image)
