"""The contract between the card-scanning plugin and the plugins that extend it.

An OCR engine (``crmkit_ocr_engine``) turns a card image into :class:`OcrLine` objects; field
parsers (``crmkit_card_fields``) turn lines into :class:`CardField` values. Both are plain
value types so an engine or a country-specific parser can live in any plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from attrs import field, frozen


def _box(values: Sequence[float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


@frozen
class OcrLine:
    """One line of text an OCR engine read: the text, its box ``(left, top, right, bottom)``
    in pixels of the image it was given, and the engine's confidence in [0, 1]."""

    text: str
    box: tuple[float, float, float, float] = field(converter=_box)
    confidence: float = 1.0

    @property
    def height(self) -> float:
        """The box's height in pixels (the text's size, roughly)."""
        return self.box[3] - self.box[1]


@frozen
class CardField:
    """One field read from a card: its value, a confidence in [0, 1] and where it came from
    (``"qr"``, ``"ocr"``, or a plugin's name)."""

    value: str
    confidence: float
    source: str = "ocr"


@runtime_checkable
class OcrEngine(Protocol):
    """What ``crmkit_ocr_engine`` returns: a named engine that reads an image.

    ``read`` receives a ``PIL.Image.Image`` in RGB mode (already rotated upright by its
    EXIF orientation, deskewed and contrast-stretched) and returns the lines it found, in
    any order. It must not download anything at run time.
    """

    name: str

    def read(self, image: object) -> Sequence[OcrLine]:
        """The text lines of ``image``."""
        ...


__all__ = ["CardField", "OcrEngine", "OcrLine"]
