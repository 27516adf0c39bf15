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
    if value.isprintable() and "  " not in value:
        # Printable text has no white space but the ASCII space (tabs, new lines and
        # ideographic spaces are not printable), so there is no run to fold: skip the regex.
        return value.strip()
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


#: A Chinese mobile number in an already-clean common format: ``13812345678``,
#: ``138 1234 5678``, ``138-1234-5678``, ``+86 138 1234 5678``, ``(+86) 138-1234-5678``,
#: ``0086 13812345678``, ... (groups 3-4-4, one optional separator between groups). Not
#: 179: ``phonenumbers`` may read 179xx as a carrier prefix (IP dialling), not a mobile.
_CN_MOBILE = re.compile(
    r"(?:(?P<prefix>\+86|\(\+86\)|0086)[ -]?)?"
    r"(?P<a>1(?:[3-68-9][0-9]|7[0-8]))[ .-]?(?P<b>[0-9]{4})[ .-]?(?P<c>[0-9]{4})"
)
#: A Chinese landline in an already-clean common format: ``010-6552 1234``,
#: ``(021) 58881234``, ``0755 8888 6666``, ``+86 10 6552 1234``, ``0086-21-5888-1234``, ...
#: (area code 10, 2x or a three-digit one from 3xx-9xx; a local number of 7 or 8 digits not
#: starting with 0 or 1; one optional separator between parts).
_CN_FIXED = re.compile(
    r"(?:(?P<prefix>\+86|\(\+86\)|0086)[ -]?(?P<area>10|2[0-9]|[3-9][0-9]{2})"
    r"|\(0(?P<trunk_area>10|2[0-9]|[3-9][0-9]{2})\)|0(?P<plain_area>10|2[0-9]|[3-9][0-9]{2}))"
    r"[ -]?(?P<a>[2-9][0-9]{2,3})[ -]?(?P<b>[0-9]{4})"
)
_EXTENSION = re.compile(r"\s*(?:转|分机|ext\.?|x)\s*(\d+)$", flags=re.IGNORECASE)


def normalise_phone(value: str, region: str = "CN") -> str:
    """A phone number in E.164 (``+8613812345678``), read with ``region`` as the default.

    Accepts the formats people type: spaces, dashes, dots, brackets, full-width digits,
    ``00``/``+`` international prefixes, trunk prefixes and extensions (``ext. 12``, ``转12``).
    Extensions are kept after an ``;ext=``.

    Chinese mobile and landline numbers in the common clean formats take a fast path that
    gives the same answer as the full parser (``phonenumbers``), which reads everything else.
    """
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    text = text.strip()
    match = _CN_MOBILE.fullmatch(text)
    if match is not None:
        prefix = match["prefix"]
        # National (and 0086) forms are Chinese only when read as Chinese; +86 always is.
        if region == "CN" or (prefix is not None and prefix != "0086"):
            _region_prefix(region)  # an unknown region is an error here too
            return f"+86{match['a']}{match['b']}{match['c']}"
    else:
        match = _CN_FIXED.fullmatch(text)
        if match is not None:
            prefix = match["prefix"]
            if region == "CN" or (prefix is not None and prefix != "0086"):
                _region_prefix(region)
                area = match["area"] or match["trunk_area"] or match["plain_area"]
                return f"+86{area}{match['a']}{match['b']}"
    return _parse_phone(value, region)


def _parse_phone(value: str, region: str) -> str:
    """``normalise_phone`` through ``phonenumbers`` (every format it reads)."""
    text = unicodedata.normalize("NFKC", value).strip()
    text = _EXTENSION.sub(r" ext. \1", text)
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
