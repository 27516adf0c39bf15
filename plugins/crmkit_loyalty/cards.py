"""Card numbers and their images.

A card number is the program's prefix, random digits and a Luhn check digit (the check
digit of bank cards: one mistyped digit, or two neighbours swapped, is caught):
16 digits in all. Random rather than sequential, so a number cannot be guessed from
another. The image is a QR code (segno) or a Code 128 barcode (python-barcode) of the
number, as SVG or PNG.
"""

from __future__ import annotations

import io
import secrets

import barcode
import segno
from barcode.writer import SVGWriter

import crmkit

LENGTH = 16
IMAGE_KINDS = ("qr", "barcode")
IMAGE_FORMATS = ("svg", "png")


_PLAIN = {str(d): d for d in range(10)}
_DOUBLED = {str(d): (2 * d if d < 5 else 2 * d - 9) for d in range(10)}


def luhn_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits`` (``digits`` must be all digits)."""
    # doubled: the digit next to the check digit, then every other one going left
    total = sum(map(_DOUBLED.__getitem__, digits[::-2])) + sum(
        map(_PLAIN.__getitem__, digits[-2::-2])
    )
    return str((10 - total % 10) % 10)


def is_valid(number: str) -> bool:
    """Whether ``number`` is all digits with a correct Luhn check digit."""
    return len(number) >= 2 and number.isdigit() and luhn_digit(number[:-1]) == number[-1]


def new_number(prefix: str) -> str:
    """A fresh random card number with ``prefix`` and its check digit."""
    body = prefix + "".join(secrets.choice("0123456789") for _ in range(LENGTH - 1 - len(prefix)))
    return body + luhn_digit(body)


def clean_number(number: str) -> str:
    """A typed or scanned number without spaces and dashes; a clear error when it is not a
    card number at all (its check digit wrong: a typo)."""
    cleaned = str(number).replace(" ", "").replace("-", "").strip()
    if not is_valid(cleaned):
        raise crmkit.ValidationError(
            [
                crmkit.FieldError(
                    "card",
                    f"{number!r} is not a card number (digits with a check digit): mistyped?",
                )
            ],
            "card",
        )
    return cleaned


def card_image(number: str, kind: str = "qr", image_format: str = "svg") -> bytes:
    """The card number as a QR code or a Code 128 barcode, SVG or PNG."""
    if kind not in IMAGE_KINDS:
        raise crmkit.ValidationError(
            [crmkit.FieldError("kind", f"must be one of {', '.join(IMAGE_KINDS)}")], "card"
        )
    if image_format not in IMAGE_FORMATS:
        raise crmkit.ValidationError(
            [crmkit.FieldError("format", f"must be one of {', '.join(IMAGE_FORMATS)}")], "card"
        )
    out = io.BytesIO()
    if kind == "qr":
        segno.make(number, error="m", micro=False).save(out, kind=image_format, scale=4)
        return out.getvalue()
    if image_format == "png":
        raise crmkit.ValidationError(
            [crmkit.FieldError("format", "a barcode is drawn as svg only (qr has png too)")],
            "card",
        )
    code = barcode.get("code128", number, writer=SVGWriter())
    code.write(out)
    return out.getvalue()
