"""The two bundled OCR engines, provided through ``crmkit_ocr_engine`` like any plugin's.

* ``rapidocr`` (default): PP-OCRv4 detection and recognition models run by onnxruntime
  (rapidocr-onnxruntime ships them inside its wheel: nothing is downloaded). Reads
  Simplified and Traditional Chinese and Latin text.
* ``tesseract``: Debian's tesseract-ocr with the chi_sim, chi_tra and eng data, through
  pytesseract, grouped into lines. Slower and weaker on Chinese cards
  (docs/benchmarks.md, cards), kept for comparison and as a fallback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

import crmkit

ENGINES = ("rapidocr", "tesseract")


class RapidOcrEngine:
    """PP-OCR through onnxruntime (rapidocr-onnxruntime); the models are loaded once."""

    name = "rapidocr"

    def __init__(self, threads: int = 2) -> None:
        self._threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._engine is None:
                from rapidocr_onnxruntime import RapidOCR

                self._engine = RapidOCR(intra_op_num_threads=self._threads, inter_op_num_threads=1)
            return self._engine

    def read(self, image: object) -> Sequence[crmkit.OcrLine]:
        """The lines PP-OCR finds (boxes as axis-aligned rectangles)."""
        import numpy as np  # on the first card, not when the plugin loads

        array = np.asarray(image)[:, :, ::-1]  # RGB -> BGR, as OpenCV reads
        engine = self._loaded()
        with self._lock:  # one onnxruntime session: one image at a time
            result, _ = engine(np.ascontiguousarray(array))
            del array
            release_free_memory()
        lines = []
        for points, text, score in result or []:
            xs = [float(p[0]) for p in points]
            ys = [float(p[1]) for p in points]
            lines.append(
                crmkit.OcrLine(str(text), (min(xs), min(ys), max(xs), max(ys)), float(score))
            )
        return lines


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` on another C library (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Give the memory freed after a card back to the system (glibc; elsewhere nothing).

    One card's OCR allocates and frees a few hundred MiB (onnxruntime's tensors, whose
    sizes change with every image and every batch of text lines). glibc keeps what was
    freed in its heaps, scattered, so a long folder scan's resident memory crept up from
    about 450 MiB to 750 MiB under each card's own peak, and a folder of 200 cards peaked at
    830-1010 MiB against the 1 GB goal. ``malloc_trim(0)`` returns the free pages at once,
    so every card starts from the memory of the loaded models (docs/decisions.md, "Cards:
    the OCR engine gives freed memory back after each card")."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class TesseractEngine:
    """Tesseract (Debian packages) with Simplified, Traditional Chinese and English."""

    name = "tesseract"

    def __init__(self, languages: str = "chi_sim+chi_tra+eng") -> None:
        self.languages = languages

    def read(self, image: object) -> Sequence[crmkit.OcrLine]:
        """Words grouped into the lines Tesseract reports."""
        import pytesseract

        try:
            data = pytesseract.image_to_data(
                image, lang=self.languages, config="--psm 11", output_type=pytesseract.Output.DICT
            )
        except pytesseract.TesseractNotFoundError:
            raise crmkit.ConfigError(
                "the tesseract engine needs Debian's tesseract-ocr, tesseract-ocr-chi-sim and"
                " tesseract-ocr-chi-tra: apt-get install them"
            ) from None
        except pytesseract.TesseractError as error:
            raise crmkit.ConfigError(f"tesseract failed: {error}") from None
        grouped: dict[tuple[int, int, int], list[int]] = {}
        for index, word in enumerate(data["text"]):
            if word.strip() and float(data["conf"][index]) >= 0:
                key = (data["block_num"][index], data["par_num"][index], data["line_num"][index])
                grouped.setdefault(key, []).append(index)
        lines = []
        for indexes in grouped.values():
            words = [data["text"][i].strip() for i in indexes]
            left = min(data["left"][i] for i in indexes)
            top = min(data["top"][i] for i in indexes)
            right = max(data["left"][i] + data["width"][i] for i in indexes)
            bottom = max(data["top"][i] + data["height"][i] for i in indexes)
            confidence = sum(float(data["conf"][i]) for i in indexes) / len(indexes) / 100
            lines.append(crmkit.OcrLine(_join_words(words), (left, top, right, bottom), confidence))
        return lines


def _join_words(words: list[str]) -> str:
    """Tesseract splits Chinese into one word per character: join CJK without spaces."""
    text = ""
    for word in words:
        if text and not (_is_cjk(text[-1]) and _is_cjk(word[0])):
            text += " "
        text += word
    return text


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def bundled_engine(name: str) -> crmkit.OcrEngine | None:
    """A new bundled engine called ``name``, or ``None``."""
    if name == "rapidocr":
        return RapidOcrEngine()
    if name == "tesseract":
        import importlib.util

        if importlib.util.find_spec("pytesseract") is None:
            raise crmkit.ConfigError(
                "the tesseract engine needs pytesseract: pip install 'crmkit[cardscan]'"
            )
        return TesseractEngine()
    return None
