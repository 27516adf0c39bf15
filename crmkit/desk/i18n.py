"""The desk's UI text in Simplified Chinese and English, with Babel.

Templates and desk code write English text in ``_("...")``; the Chinese catalogue is
``crmkit/desk/locale/zh_CN/LC_MESSAGES/messages.po``, read (and compiled in memory) once per
process, so no build step is needed. Refresh it after changing UI text with::

    pybabel extract -F crmkit/desk/babel.cfg -o messages.pot crmkit/desk
    pybabel update -i messages.pot -d crmkit/desk/locale

A plugin keeps the text of its own desk pages, panels, tiles, menu entries and actions in a
catalogue of its own, ``<its package>/locale/<locale>/LC_MESSAGES/messages.po``, read the same
way (:func:`plugin_translations`, public as ``crmkit.desk_gettext``): the desk's catalogue
holds only the desk's text, so a plugin installed later translates itself.
"""

from __future__ import annotations

import gettext as gettext_module
import importlib.util
import io
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

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
    return _compiled(catalogue, locale)


@cache
def plugin_translations(module: str, locale: str) -> gettext_module.NullTranslations:
    """The UI text of the plugin whose hooks live in ``module`` (``"crmkit_loyalty"``): its
    package's own catalogue for ``locale`` first, then the desk's, so a plugin may use the
    desk's words ("Points", "Card") without repeating them. A plugin without a catalogue, or
    without one for ``locale``, gets the desk's."""
    desk = translations(locale)
    if locale not in LOCALES or locale == "en":
        return desk
    catalogue = _plugin_catalogue(module, locale)
    if catalogue is None:
        return desk
    own = _compiled(catalogue, locale)
    own.add_fallback(desk)
    return own


def _plugin_catalogue(module: str, locale: str) -> Traversable | None:
    """``locale/<locale>/LC_MESSAGES/messages.po`` beside ``module`` (in its package, or in
    the package a plain module belongs to), if there is one."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):  # a parent package that is not there
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations is None:  # a module, not a package: its package's
        if not spec.parent:
            return None
        module = spec.parent
    catalogue = files(module) / "locale" / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    return catalogue if catalogue.is_file() else None


def _compiled(catalogue: Traversable, locale: str) -> Translations:
    """A ``.po`` catalogue compiled in memory (no ``.mo`` build step)."""
    with catalogue.open("rb") as source:
        parsed = read_po(source, locale=locale, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, parsed)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def desk_gettext(module: str, locale: str) -> Callable[[str], str]:
    """``_`` for a plugin's own desk text in ``locale`` (``"zh_CN"`` or ``"en"``, as the
    ``crmkit_desk_*`` hooks and ``DeskView.locale`` give it): the catalogue
    ``locale/<locale>/LC_MESSAGES/messages.po`` in the plugin's package, then the desk's.

    Pass the module that holds the plugin's hooks (``__name__`` there, or the package)::

        _ = crmkit.desk_gettext(__name__, locale)
        return [crmkit.DeskTile(title=_("Points expiring soon"), value=str(members))]

    Put placeholders in the text as ``%(name)s`` and fill them after translating, so the
    catalogue can move them: ``_("%(points)s points") % {"points": 120}``.
    """
    return plugin_translations(module, locale).gettext


def negotiate(accept_language: str | None, default: str) -> str:
    """The UI language for a browser that is not signed in, from its Accept-Language."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return default
