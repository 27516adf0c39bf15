"""Normalisers for the values every CRM stores: names, phone numbers, e-mail addresses.

Each returns the canonical stored form or raises ``ValueError`` with a reason a user can act on.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

_SPACE = re.compile(r"\s+")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_text(value: str) -> str:
    """Trim and fold runs of white space (including ideographic spaces) to one space."""
    return _SPACE.sub(" ", value).strip()


def normalise_name(value: str) -> str:
    """A person's or company's name: Unicode NFKC (full-width letters and digits become plain
    ones) and folded white space. Chinese characters are kept as written; Traditional and
    Simplified forms are matched by the dedupe plugin, not rewritten here."""
    return normalise_text(unicodedata.normalize("NFKC", value))


def normalise_email(value: str) -> str:
    """An e-mail address: NFKC, trimmed, lower-cased (domain and, in practice, local part)."""
    text = unicodedata.normalize("NFKC", value).strip().lower()
    if not _EMAIL.match(text):
        raise ValueError(f"{value!r} is not an e-mail address")
    return text


@functools.lru_cache(maxsize=64)
def _region_prefix(region: str) -> str:
    code = phonenumbers.country_code_for_region(region)
    if not code:
        raise ValueError(f"unknown phone region {region!r}: use an ISO code such as CN, TW, HK, US")
    return f"+{code}"


def normalise_phone(value: str, region: str = "CN") -> str:
    """A phone number in E.164 (``+8613812345678``), read with ``region`` as the default.

    Accepts the formats people type: spaces, dashes, dots, brackets, full-width digits,
    ``00``/``+`` international prefixes, trunk prefixes and extensions (``ext. 12``, ``转12``).
    Extensions are kept after an ``;ext=``.
    """
    text = unicodedata.normalize("NFKC", value).strip()
    text = re.sub(r"\s*(?:转|分机|ext\.?|x)\s*(\d+)$", r" ext. \1", text, flags=re.IGNORECASE)
    if not text:
        raise ValueError("empty phone number")
    _region_prefix(region)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{value!r} is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{value!r} is not a possible phone number (read with region {region})")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"{e164};ext={number.extension}" if number.extension else e164
