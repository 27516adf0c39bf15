"""A plugin's own desk text: ``crmkit.desk_gettext`` reads the catalogue in the plugin's
package, then the desk's; every catalogue keeps the placeholders of the text it translates."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from babel.messages.pofile import read_po

import crmkit
from crmkit.desk.i18n import translations

CATALOGUES = {
    "desk": files("crmkit.desk") / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po",
    "dedupe": files("crmkit_dedupe") / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po",
    "loyalty": files("crmkit_loyalty") / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po",
    "reminders": files("crmkit_reminders") / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po",
    "referrals": files("crmkit_referrals") / "locale" / "zh_CN" / "LC_MESSAGES" / "messages.po",
}


def test_a_plugins_text_comes_from_its_own_catalogue() -> None:
    _ = crmkit.desk_gettext("crmkit_loyalty", "zh_CN")
    assert _("Points expiring soon") == "积分即将过期"
    assert _("%(points)s points, the first on %(date)s") % {
        "points": 800,
        "date": "2027-01-31",
    } == ("800 积分，最早 2027-01-31 到期")
    # a module of the plugin finds its package's catalogue
    assert crmkit.desk_gettext("crmkit_loyalty.views", "zh_CN")("Loyalty") == "会员卡"


def test_the_desks_words_are_found_when_the_plugin_has_none_of_its_own() -> None:
    desk = translations("zh_CN").gettext
    assert desk("Contacts") != "Contacts"  # the desk's catalogue has it
    assert crmkit.desk_gettext("crmkit_loyalty", "zh_CN")("Contacts") == desk("Contacts")
    # a plugin without a catalogue gets the desk's
    assert crmkit.desk_gettext("crmkit_cardscan", "zh_CN")("Contacts") == desk("Contacts")


def test_a_plugins_text_is_not_in_the_desks_catalogue() -> None:
    """The desk's catalogue holds the desk's text only: a plugin installed later must bring
    its own, and does not get another plugin's by accident."""
    assert translations("zh_CN").gettext("Points expiring soon") == "Points expiring soon"
    assert crmkit.desk_gettext("crmkit_referrals", "zh_CN")("Points expiring soon") == (
        "Points expiring soon"
    )


@pytest.mark.parametrize(
    ("module", "locale"),
    [
        ("crmkit_loyalty", "en"),  # English is the source text
        ("crmkit_loyalty", "fr"),  # a language the desk does not speak
        ("no_such_plugin", "zh_CN"),
        ("no_such_package.module", "zh_CN"),
    ],
)
def test_english_an_unknown_language_or_module_leaves_the_text(module: str, locale: str) -> None:
    _ = crmkit.desk_gettext(module, locale)
    if locale == "zh_CN":  # an unknown module still gets the desk's words
        assert _("Contacts") == translations("zh_CN").gettext("Contacts")
    assert _("Points expiring soon") == "Points expiring soon"


@pytest.mark.parametrize("name", list(CATALOGUES))
def test_every_translation_keeps_the_placeholders_of_its_text(name: str) -> None:
    with CATALOGUES[name].open("rb") as source:
        catalogue = read_po(source, locale="zh_CN")
    placeholders = re.compile(r"%\(\w+\)s")
    checked = 0
    for message in catalogue:
        if not message.id:
            continue
        assert message.string, f"{name}: {message.id!r} has no translation"
        assert sorted(placeholders.findall(str(message.id))) == sorted(
            placeholders.findall(str(message.string))
        ), message.id
        checked += 1
    assert checked >= 5
