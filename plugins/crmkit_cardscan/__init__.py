"""Business-card scanning for crmkit: Chinese, English and mixed cards, QR codes and vCards.

A bundled plugin (``crmkit plugins enable cardscan``) that uses only crmkit's public API:

* ``crmkit cards scan FILE|FOLDER...`` and ``POST /plugins/cardscan/scans`` read JPEG, PNG,
  WebP, HEIC, BMP, TIFF and PDF pages: QR codes first (vCard 2.1/3.0/4.0, MeCard), then OCR
  (:mod:`crmkit_cardscan.engines`), then the layout-aware parser
  (:mod:`crmkit_cardscan.parsing`) into a draft with a confidence per field;
* every draft goes through the core's duplicate check (``crmkit.check_duplicates``: the
  dedupe plugin answers when enabled); a low-confidence field or a duplicate puts the card
  up for review (``crmkit cards review|confirm|discard``), never silently saved;
* a saved card becomes a contact, its account (found or created) and a "card scanned"
  activity, with the card image kept and served under the contact's permissions;
* the OCR engine and the field parsers are hooks (``crmkit_ocr_engine``,
  ``crmkit_card_fields``).

Needs the ``cardscan`` extra (``pip install "crmkit[cardscan]"``) and Debian's libgl1 and
libglib2.0-0 (tesseract-ocr with chi-sim/chi-tra for the optional Tesseract engine); without
them the plugin is listed as failed to load and the rest of crmkit works.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

import crmkit

# The libraries of the extra: a missing one fails the plugin's import (``crmkit plugins
# list`` shows it) without importing them here; they load where they are used (OpenCV,
# onnxruntime and the models on the first card, pypdfium2 on the first PDF). pytesseract
# matters only to the tesseract engine, which checks it when it is chosen.
crmkit.require_modules(
    "numpy",
    "opencc",
    "PIL",
    "pypinyin",
    "vobject",
    "zxingcpp",
    "rapidocr_onnxruntime",
    "onnxruntime",
    "cv2",
    "pypdfium2",
    "phonenumbers",
    install="pip install 'crmkit[cardscan]'",
)

#: The system libraries OpenCV's wheel (opencv-python, which rapidocr needs) loads when it is
#: imported, and the Debian packages that have them: without them ``import cv2`` fails, and
#: it is imported only on the first card. (The headless wheel needs none of them.)
OPENCV_SYSTEM_LIBRARIES = {
    "libGL.so.1": "libgl1",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libX11.so.6": "libx11-6",
    "libXext.so.6": "libxext6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libxcb.so.1": "libxcb1",
}
#: Where the dynamic loader finds libraries besides ``LD_LIBRARY_PATH`` and its cache.
_DEFAULT_LIBRARY_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")


def missing_system_libraries(
    names: Iterable[str],
    *,
    cache: Path = Path("/etc/ld.so.cache"),
    directories: Iterable[str] | None = None,
) -> list[str]:
    """The shared libraries among ``names`` the dynamic loader would not find: looked up in
    its cache (``/etc/ld.so.cache``, a 40 kB read), ``LD_LIBRARY_PATH`` and the default
    folders, without loading any. Empty where there is no loader cache to read (not glibc
    Linux): there the import on the first card is the check."""
    try:
        known = cache.read_bytes()
    except OSError:
        return []
    if directories is None:
        directories = [
            *filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)),
            *_DEFAULT_LIBRARY_DIRS,
        ]
    folders = list(directories)
    return [
        name
        for name in names
        if b"/" + name.encode() + b"\x00" not in known
        and b"\x00" + name.encode() + b"\x00" not in known
        and not any(os.path.exists(os.path.join(folder, name)) for folder in folders)
    ]


def require_system_libraries(libraries: Mapping[str, str], **where: Any) -> None:
    """Fail the plugin's import, naming the libraries and the Debian packages to install,
    when the system lacks one of ``libraries`` (name -> Debian package)."""
    missing = missing_system_libraries(libraries, **where)
    if missing:
        packages = " ".join(dict.fromkeys(libraries[name] for name in missing))
        one = len(missing) == 1
        raise ModuleNotFoundError(
            f"missing system librar{'y' if one else 'ies'} {', '.join(missing)}"
            f" (OpenCV needs {'it' if one else 'them'}): apt-get install {packages}",
            name="cv2",
        )


def _opencv_needs_system_libraries() -> bool:
    """Whether the installed OpenCV is the wheel built with its GUI (``opencv-python``,
    which loads libGL and GLib), not the headless one; found from the folder of libraries
    the wheel ships beside ``cv2``, without importing it."""
    if not sys.platform.startswith("linux"):
        return False
    import importlib.util

    spec = importlib.util.find_spec("cv2")
    if spec is None or not spec.origin:
        return False
    return Path(spec.origin).parent.with_name("opencv_python.libs").is_dir()


if _opencv_needs_system_libraries():
    require_system_libraries(OPENCV_SYSTEM_LIBRARIES)

# (the plugin's own modules after the check: a missing library fails before they load)
from crmkit_cardscan.engines import ENGINES, bundled_engine  # noqa: E402
from crmkit_cardscan.models import CardScan  # noqa: E402

#: The plugin's name (its settings table, ``[plugins.cardscan]``). The reading modules
#: (Pillow, OpenCC, pinyin, vCard) load when a card is read, not with the plugin.
PLUGIN_NAME = "cardscan"


crmkit_plugin = crmkit.PluginSpec(
    description="Business-card scanning: Chinese, English and mixed cards, QR codes and vCards",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={"cards": "Business-card scanning (bundled plugin cardscan)."},
)

__all__ = ["PLUGIN_NAME", "CardScan", "crmkit_plugin"]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's Alembic branch (``cardscan``)."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_permissions() -> list[str]:
    """``cards:scan`` scans cards and decides one's own scans; ``cards:review`` sees and
    decides everyone's."""
    return ["cards:scan", "cards:review"]


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.cardscan]`` in ``crmkit.toml``."""
    return [
        crmkit.SettingSpec(
            "engine",
            str,
            default="rapidocr",
            description=f"The OCR engine: {' or '.join(ENGINES)}, or one a plugin provides",
        ),
        crmkit.SettingSpec(
            "max_upload_mb", int, default=20, description="Largest card file accepted, in MiB"
        ),
        crmkit.SettingSpec(
            "max_pixels",
            int,
            default=50_000_000,
            description="Largest image accepted, in pixels (refused before decoding)",
        ),
        crmkit.SettingSpec(
            "review_below",
            float,
            default=0.8,
            description="A field read with a lower confidence puts the card up for review",
        ),
        crmkit.SettingSpec(
            "default_region",
            str,
            default="",
            description="Region of phone numbers without a country code (empty: the core's)",
        ),
    ]


@crmkit.hookimpl(trylast=True)
def crmkit_ocr_engine(crm: crmkit.CRM, name: str) -> crmkit.OcrEngine | None:
    """The bundled engines (``rapidocr``, ``tesseract``); a plugin's engine answers first."""
    return bundled_engine(name)


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit cards scan|review|show|confirm|discard|image``."""
    from crmkit_cardscan.cli import cards_group

    return [cards_group]


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """The REST routes, mounted by the core under ``/plugins/cardscan``."""
    from crmkit_cardscan.api import routes

    return routes(crm)
