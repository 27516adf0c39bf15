"""The desk's UI text in Simplified Chinese and English, with Babel.

Templates and desk code write English text in ``_("...")``; the Chinese catalogue is
``crmkit/desk/locale/zh_CN/LC_MESSAGES/messages.po``, read (and compiled in memory) once per
process, so no build step is needed. Refresh it after changing UI text with::

    pybabel extract -F crmkit/desk/babel.cfg -o messages.pot crmkit/desk
    pybabel update -i messages.pot -d crmkit/desk/locale
"""

from __future__ import annotations

import gettext as gettext_module
import io
from functools import cache
from importlib.resources import files

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from crmkit.services.sign_in import LOCALES

DOMAIN = "messages"


@cache
def translations(locale: str) -> gettext_module.NullTranslations:
    """The UI text of ``locale`` (English, the source language, needs no catalogue)."""
    if locale not in LOCALES or locale == "en":
        return gettext_module.NullTranslations()
    catalogue = files("crmkit.desk") / "locale" / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with catalogue.open("rb") as source:
        parsed = read_po(source, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def negotiate(accept_language: str | None, default: str) -> str:
    """The UI language for a browser that is not signed in, from its Accept-Language."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return default
