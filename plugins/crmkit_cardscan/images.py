"""From uploaded bytes to upright card images: format check, size limits, EXIF orientation,
PDF pages, contrast, deskew; and the stored copy of a card image.

Every refusal is a :class:`CardError` whose text names the file and the problem, so the CLI
prints it as one line and the API as problem+json.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

import crmkit

try:  # HEIC/HEIF photos (iPhones) through libheif, when the wheel is installed
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIC = True
except ImportError:  # pragma: no cover - pillow-heif is in the extra
    HEIC = False

#: The formats a card may come in (Pillow's format names), and PDF.
IMAGE_FORMATS = {"JPEG", "PNG", "WEBP", "HEIF", "MPO", "BMP", "TIFF"}
SUPPORTED = "JPEG, PNG, WebP, HEIC, BMP, TIFF or PDF"
#: The longest side OCR gets: a card photographed at 12 MP reads no better than at 1600 px
#: and takes several times longer.
WORK_SIDE = 1600
#: The longest side of the stored copy of the card image.
STORED_SIDE = 1600


class CardError(crmkit.CRMError):
    """A card that cannot be read: the message names the file and why."""


def load_pages(
    data: bytes, filename: str, *, max_bytes: int, max_pixels: int, max_pages: int = 20
) -> list[Image.Image]:
    """The card images in ``data`` (one per PDF page), upright (EXIF) and in RGB.

    Refuses an empty file, one over ``max_bytes``, an image over ``max_pixels`` (a
    decompression bomb is refused before it is decoded), a truncated or corrupt file and
    any format not in :data:`SUPPORTED`."""
    if not data:
        raise CardError(f"{filename}: the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise CardError(
            f"{filename}: the file is {len(data) / 2**20:.1f} MiB; the limit is"
            f" {max_bytes / 2**20:.0f} MiB (setting max_upload_mb)"
        )
    if data[:5] == b"%PDF-":
        return _pdf_pages(data, filename, max_pixels=max_pixels, max_pages=max_pages)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise CardError(
                    f"{filename}: the image is {image.width}x{image.height} pixels; the limit"
                    f" is {max_pixels:,} pixels (setting max_pixels)"
                )
            if image.format not in IMAGE_FORMATS:
                raise CardError(
                    f"{filename}: {image.format} images are not supported; send {SUPPORTED}"
                )
            image.load()
    except CardError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CardError(
            f"{filename}: the image is too large to decode safely (a decompression bomb?)"
        ) from None
    except UnidentifiedImageError:
        raise CardError(f"{filename}: not an image or PDF; send {SUPPORTED}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise CardError(f"{filename}: the image is truncated or corrupt ({error})") from None
    upright = ImageOps.exif_transpose(image)
    return [upright.convert("RGB")]


def _pdf_pages(data: bytes, filename: str, *, max_pixels: int, max_pages: int) -> list[Image.Image]:
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as error:
        raise CardError(f"{filename}: the PDF is truncated or corrupt ({error})") from None
    try:
        if len(document) == 0:
            raise CardError(f"{filename}: the PDF has no pages")
        if len(document) > max_pages:
            raise CardError(
                f"{filename}: the PDF has {len(document)} pages; at most {max_pages} cards per PDF"
            )
        pages = []
        for page in document:
            width, height = page.get_size()  # points
            scale = min(300 / 72, WORK_SIDE / max(width, height, 1))
            if width * height * scale * scale > max_pixels:
                raise CardError(f"{filename}: a PDF page is too large to render")
            pages.append(page.render(scale=scale).to_pil().convert("RGB"))
        return pages
    finally:
        document.close()


def prepare_for_reading(image: Image.Image) -> Image.Image:
    """The image OCR reads: scaled to at most :data:`WORK_SIDE`, contrast stretched,
    deskewed."""
    work = image
    if max(work.size) > WORK_SIDE:
        work = work.copy()
        work.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    work = ImageOps.autocontrast(work, cutoff=1)
    angle = skew_angle(work)
    if abs(angle) >= 0.5:
        work = work.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white")
    return work


def skew_angle(image: Image.Image, limit: float = 8.0, step: float = 0.5) -> float:
    """The small rotation (degrees, counter-clockwise positive as ``Image.rotate`` takes
    it) that makes the text lines horizontal: the angle whose horizontal projection of dark
    pixels is sharpest (the classic projection-profile method), searched within
    ``±limit``."""
    gray = ImageOps.grayscale(image)
    gray.thumbnail((600, 600))
    pixels = np.asarray(gray, dtype=np.float32)
    dark = pixels < min(128.0, float(pixels.mean()) - 30.0)
    ys, xs = np.nonzero(dark)
    if len(xs) < 200:
        return 0.0
    xs = xs - xs.mean()
    ys = ys - ys.mean()
    best, best_score = 0.0, -1.0
    for angle in np.arange(-limit, limit + step / 2, step):
        theta = math.radians(float(angle))
        rows = np.round(ys * math.cos(theta) + xs * math.sin(theta)).astype(np.int64)
        counts = np.bincount(rows - rows.min())
        score = float((counts.astype(np.float64) ** 2).sum())
        if score > best_score:
            best, best_score = float(angle), score
    return -best


def stored_copy(image: Image.Image) -> tuple[bytes, str]:
    """The card image as kept with the scan: JPEG, at most :data:`STORED_SIDE` pixels."""
    copy = image.copy()
    copy.thumbnail((STORED_SIDE, STORED_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, format="JPEG", quality=85, optimize=True)
    return buffer.getvalue(), "image/jpeg"


def decode_qr_codes(image: Image.Image) -> Sequence[str]:
    """The texts of the QR codes on the card (zxing-cpp), in reading order."""
    import zxingcpp

    try:
        found = zxingcpp.read_barcodes(
            image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        )
    except (ValueError, RuntimeError):  # pragma: no cover - zxing rejects odd buffers
        return []
    return [result.text for result in found if result.valid and result.text]
