"""Normalisation for duplicate detection: the canonical forms two records are compared in.

Every function here is pure and cheap (the converters are built once). The forms are for
*matching*, never for display: the stored record keeps what the user typed.

* :func:`fold` — Unicode NFKC (full-width letters and digits become plain), case folding,
  Traditional → Simplified Chinese (OpenCC ``t2s``), accents dropped, white space folded.
* :func:`person_name` — a :class:`PersonName`: the Simplified Chinese form and the pinyin of a
  Chinese name (family name first, compound surnames such as 欧阳 and surname readings such as
  单 → shan kept), and an order-free token key so that 張偉, 张伟, "Zhang Wei" and "Wei Zhang"
  meet (``key`` is ``"wei zhang"`` for all four).
* :func:`canonical_email` — lower case, plus-tags dropped, dots dropped where the provider
  ignores them (Gmail), ``googlemail.com`` → ``gmail.com``.
* :func:`canonical_phone` — E.164 through ``crmkit.normalise_phone`` with a default region.
* :func:`company_key` — a company name without legal suffixes (有限公司, 股份有限公司, Co., Ltd.,
  Inc., GmbH, ...), without a leading city or province (上海, 北京市, 广东省深圳市 ...) and
  without a bracketed region ("（中国）", "(Shanghai)").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

from attrs import frozen

import crmkit

# -- text ------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)


@functools.lru_cache(maxsize=1)
def _t2s() -> object:
    import opencc

    return opencc.OpenCC("t2s")


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a Chinese character."""
    return _CJK.search(text) is not None


def simplified(text: str) -> str:
    """``text`` with Traditional Chinese characters turned into Simplified ones (OpenCC)."""
    if not has_cjk(text):
        return text
    converter = _t2s()
    return str(converter.convert(text))  # type: ignore[attr-defined]


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    )


@functools.lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """NFKC, case-folded, Simplified Chinese, accents dropped, white space folded."""
    value = unicodedata.normalize("NFKC", text).casefold()
    value = simplified(value)
    if not value.isascii():
        value = _strip_accents(value)
    return _SPACE.sub(" ", value).strip()


# -- person names ----------------------------------------------------------------------------

#: Two-character family names (Simplified): the rest of the name is the given name.
COMPOUND_SURNAMES = frozenset(
    [
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "夏侯",
        "长孙",
        "宇文",
        "司徒",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "百里",
        "呼延",
        "轩辕",
        "澹台",
        "公冶",
        "太史",
        "申屠",
        "闻人",
        "万俟",
        "钟离",
        "宗政",
        "濮阳",
        "淳于",
        "单于",
        "赫连",
        "拓跋",
    ]
)
#: Family names whose reading as a surname differs from pypinyin's everyday reading.
SURNAME_READINGS = {
    "单": "shan",
    "曾": "zeng",
    "解": "xie",
    "区": "ou",
    "仇": "qiu",
    "朴": "piao",
    "查": "zha",
    "覃": "qin",
    "缪": "miao",
    "乐": "yue",
    "翟": "zhai",
    "盖": "ge",
    "尉": "yu",
    "繁": "po",
    "秘": "bi",
    "种": "chong",
    "重": "chong",
    "长": "chang",
    "华": "hua",
    "任": "ren",
    "沈": "shen",
    "柏": "bai",
    "藏": "zang",
    "卜": "bu",
    "员": "yun",
    "召": "shao",
    "折": "she",
    "贲": "ben",
    "车": "che",
    "隗": "wei",
}
_NAME_NOISE = re.compile(r"[\s·・.,'’\-_()（）]+")


@frozen(cache_hash=True)
class PersonName:
    """A person's name in the forms matching needs.

    ``cjk`` is the Simplified Chinese spelling (``""`` for a Latin-script name); ``family`` and
    ``given`` are pinyin (or folded Latin) without spaces, ``None`` when the order is unknown
    (a Latin name); ``tokens`` the sorted name parts; ``key`` the tokens joined with a space:
    the blocking key, equal for 張偉, 张伟, "Zhang Wei" and "WEI Zhang".
    """

    cjk: str
    family: str | None
    given: str | None
    tokens: tuple[str, ...]
    #: The parts in the order written (for a Chinese name: family, given).
    ordered: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The order-free blocking key (``""`` for an empty name)."""
        return " ".join(self.tokens)

    @property
    def joined(self) -> str:
        """All letters without spaces, in sorted-token order (for edit-distance scoring)."""
        return "".join(self.tokens)

    @property
    def written(self) -> str:
        """All letters without spaces in the order written: "Jame sGarcia" and "James
        Garcia" are both ``jamesgarcia`` (a letter typed across the space)."""
        return "".join(self.ordered)

    @property
    def swapped(self) -> str:
        """:attr:`written` with the parts in reverse order ("Garcia James" → ``jamesgarcia``)."""
        return "".join(reversed(self.ordered))


@functools.lru_cache(maxsize=65536)
def pinyin(text: str) -> tuple[str, ...]:
    """The toneless pinyin syllables of Chinese ``text`` (other characters are kept as
    lower-case runs)."""
    from pypinyin import Style, lazy_pinyin

    return tuple(
        syllable.lower()
        for syllable in lazy_pinyin(text, style=Style.NORMAL, errors="default")
        if syllable.strip()
    )


@functools.lru_cache(maxsize=65536)
def person_name(text: str) -> PersonName:
    """Parse a person's name (Chinese or Latin script, either order) for matching."""
    value = fold(text)
    if has_cjk(value):
        han = "".join(_CJK.findall(value))
        family_len = 2 if han[:2] in COMPOUND_SURNAMES and len(han) > 2 else 1
        family_han, given_han = han[:family_len], han[family_len:]
        family = "".join(SURNAME_READINGS.get(ch, "") or "".join(pinyin(ch)) for ch in family_han)
        given = "".join(pinyin(given_han))
        parts = tuple(p for p in (family, given) if p)
        return PersonName(
            cjk=han, family=family, given=given or None, tokens=tuple(sorted(parts)), ordered=parts
        )
    parts = tuple(p for p in _NAME_NOISE.split(value) if p)
    return PersonName(cjk="", family=None, given=None, tokens=tuple(sorted(parts)), ordered=parts)


def _token_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Syllable by syllable: each token's best Jaro-Winkler partner on the other side,
    averaged, in both directions (the smaller wins, so it is symmetric and a repeated
    syllable cannot stand in for a missing one), cubed: one different syllable (王静 /
    杨强) costs much and a typo little."""
    from rapidfuzz.distance import JaroWinkler

    def directed(x: tuple[str, ...], y: tuple[str, ...]) -> float:
        return sum(max(JaroWinkler.similarity(p, q) for q in y) for p in x) / len(x)

    return float(min(directed(a, b), directed(b, a)) ** 3)


#: What a Latin name scores against a fuller one it is part of ("White" / "Jacqueline
#: White": a given name left out), times how well its parts match. Chosen on the FEBRL2
#: development set (docs/benchmarks.md); a name is never evidence on its own, so this only
#: keeps a missing part from counting as a different name.
PART_OF_NAME = 0.9


def part_of_name(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """For Latin names with different numbers of parts: :data:`PART_OF_NAME` times the mean
    Jaro-Winkler of each part of the shorter name with its best partner in the longer one
    (0 when both have as many parts: then they are compared whole)."""
    from rapidfuzz.distance import JaroWinkler

    if len(a) == len(b) or not a or not b:
        return 0.0
    short, long = (a, b) if len(a) < len(b) else (b, a)
    best = sum(max(JaroWinkler.similarity(p, q) for q in long) for p in short)
    return PART_OF_NAME * best / len(short)


def name_similarity(a: PersonName, b: PersonName) -> float:
    """How alike two names are, in [0, 1], whatever their script and order.

    Equal Chinese spellings (after Traditional → Simplified) score 1; the same pinyin in
    either order or spacing ("Xiao Wei" / 晓伟) 0.97; the same sound written with other
    characters (伟 / 玮) 0.9. Otherwise Latin names are compared with Jaro-Winkler (typos)
    or, when one has fewer parts, by :func:`part_of_name`, whichever is higher; names in or
    against Chinese syllable by syllable (a different syllable is a different name)."""
    from rapidfuzz.distance import JaroWinkler

    if not a.tokens or not b.tokens:
        return 0.0
    if a.cjk and b.cjk:
        if a.cjk == b.cjk:
            return 1.0
        if a.key == b.key:
            return 0.9  # same sound, different characters
        return 0.9 * _token_similarity(a.tokens, b.tokens)
    if a.key == b.key or a.joined == b.joined:
        return 1.0 if not (a.cjk or b.cjk) else 0.97
    if a.cjk or b.cjk:
        if a.written in (b.written, b.swapped):  # pinyin run together: "zhoujie" / 周杰
            return 0.97
        return 0.97 * _token_similarity(a.tokens, b.tokens)
    return max(
        JaroWinkler.similarity(a.key, b.key),
        JaroWinkler.similarity(a.joined, b.joined),
        written_similarity(a, b),
        part_of_name(a.tokens, b.tokens),
    )


def written_similarity(a: PersonName, b: PersonName) -> float:
    """Jaro-Winkler of two Latin names' letters in the order written, either also with its
    parts reversed: a letter across the space ("Jame sGarcia" / "James Garcia") and the
    other order ("Garcia James") cost nothing, a swapped letter ("Mooer") little."""
    from rapidfuzz.distance import JaroWinkler

    return max(
        JaroWinkler.similarity(a.written, b.written),
        JaroWinkler.similarity(a.written, b.swapped),
        JaroWinkler.similarity(a.swapped, b.written),
    )


# -- e-mail ----------------------------------------------------------------------------------

#: Providers that ignore dots in the local part.
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


def canonical_email(address: str) -> str:
    """The canonical form of an e-mail address for matching: lower case, ``+tag`` dropped
    (sub-addressing, RFC 5233), dots dropped for providers that ignore them, known domain
    aliases unified. Returns ``""`` for something that is not an address."""
    if address.isascii():  # NFKC leaves ASCII as it is, and casefold() is lower() there
        text = address.strip().lower()
    else:
        text = unicodedata.normalize("NFKC", address).strip().casefold()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return ""
    domain = DOMAIN_ALIASES.get(domain, domain)
    local = local.split("+", 1)[0]
    if domain in DOTLESS_DOMAINS:
        local = local.replace(".", "")
    if not local:
        return ""
    return f"{local}@{domain}"


#: Local parts of role addresses (RFC 2142's and those common in Chinese companies, such as
#: kefu 客服): an address a team shares says nothing about which person wrote it.
ROLE_LOCAL_PARTS = frozenset(
    {
        "abuse",
        "admin",
        "bd",
        "billing",
        "contact",
        "enquiries",
        "enquiry",
        "hello",
        "help",
        "hostmaster",
        "hr",
        "info",
        "jobs",
        "kefu",
        "marketing",
        "noc",
        "noreply",
        "no-reply",
        "office",
        "postmaster",
        "sales",
        "security",
        "service",
        "support",
        "team",
        "webmaster",
    }
)
_TRAILING_DIGITS = re.compile(r"[0-9._-]+$")


def is_role_address(address: str) -> bool:
    """Whether a canonical address is a role's (``sales@``, ``info2@``, ``kefu88@``) rather
    than a person's: its local part, without trailing digits, is a known role."""
    local = address.partition("@")[0]
    return _TRAILING_DIGITS.sub("", local) in ROLE_LOCAL_PARTS


# -- phone -----------------------------------------------------------------------------------


#: A Chinese mobile number already in E.164, as the core stores it (the numbers the core's
#: own fast path accepts: 13x-16x, 170-178, 18x, 19x).
_E164_CN_MOBILE = re.compile(r"\+861(?:[3-68-9][0-9]|7[0-8])[0-9]{8}")


def canonical_phone(value: str, region: str = "CN") -> str:
    """E.164 (``+8613812345678``), extension dropped; ``""`` when it is not a phone number.

    A Chinese mobile number that is already in E.164 (what the core stores) is returned as
    it is, with no parsing: ``crmkit.normalise_phone`` gives it back unchanged."""
    if _E164_CN_MOBILE.fullmatch(value) is not None and _region_known(region):
        return value
    try:
        number = crmkit.normalise_phone(value, region)
    except ValueError:
        return ""
    return number.split(";", 1)[0]


def phone_with_extension(value: str, region: str = "CN") -> str:
    """:func:`canonical_phone` keeping the extension (``+861065432100;ext=808``, RFC 3966's
    form): two desks behind one switchboard are two people."""
    if _E164_CN_MOBILE.fullmatch(value) is not None and _region_known(region):
        return value
    try:
        return crmkit.normalise_phone(value, region)
    except ValueError:
        return ""


#: What :func:`phone_kind` calls a number: a switchboard is a landline with an extension.
MOBILE, LANDLINE, SWITCHBOARD, ANY_KIND = "mobile", "landline", "switchboard", "any"


@functools.lru_cache(maxsize=65536)
def phone_kind(number: str) -> str:
    """``"mobile"``, ``"landline"``, ``"switchboard"`` (a number with an extension) or
    ``"any"`` (a kind the numbering plan does not tell, such as the United States'
    numbers) for an E.164 number. A Chinese mobile is known by its prefix; others are
    asked of ``phonenumbers``' numbering plans."""
    if ";ext=" in number:
        return SWITCHBOARD
    if _E164_CN_MOBILE.fullmatch(number) is not None:
        return MOBILE
    if number.startswith("+86"):
        return LANDLINE
    import phonenumbers

    try:
        kind = phonenumbers.number_type(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return ANY_KIND
    if kind == phonenumbers.PhoneNumberType.MOBILE:
        return MOBILE
    if kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.VOIP):
        return LANDLINE
    return ANY_KIND


@functools.lru_cache(maxsize=64)
def _region_known(region: str) -> bool:
    """Whether ``crmkit.normalise_phone`` takes ``region`` (it refuses an unknown one)."""
    try:
        crmkit.normalise_phone("+8613800000000", region)
    except ValueError:
        return False
    return True


# -- companies -------------------------------------------------------------------------------

#: Legal-form suffixes, longest first (Simplified Chinese; Traditional input is converted).
CJK_LEGAL_SUFFIXES = (
    "股份有限公司",
    "有限责任公司",
    "集团有限公司",
    "有限公司",
    "集团公司",
    "分公司",
    "总公司",
    "公司",
    "集团",
    "工作室",
    "商行",
    "厂",
)
#: Latin legal forms and filler words (folded, without dots).
LATIN_LEGAL_WORDS = frozenset(
    [
        "co",
        "company",
        "corp",
        "corporation",
        "inc",
        "incorporated",
        "ltd",
        "limited",
        "llc",
        "llp",
        "plc",
        "gmbh",
        "ag",
        "kg",
        "sa",
        "sarl",
        "srl",
        "spa",
        "bv",
        "nv",
        "oy",
        "ab",
        "as",
        "kk",
        "pte",
        "pty",
        "group",
        "holdings",
        "holding",
        "the",
        "and",
    ]
)
#: Provinces, municipalities and big cities that prefix Chinese company names.
PLACES = tuple(
    sorted(
        [
            "北京",
            "上海",
            "天津",
            "重庆",
            "广东",
            "江苏",
            "浙江",
            "山东",
            "河南",
            "河北",
            "湖南",
            "湖北",
            "四川",
            "福建",
            "安徽",
            "江西",
            "辽宁",
            "吉林",
            "黑龙江",
            "山西",
            "陕西",
            "甘肃",
            "青海",
            "云南",
            "贵州",
            "海南",
            "台湾",
            "香港",
            "澳门",
            "内蒙古",
            "广西",
            "西藏",
            "宁夏",
            "新疆",
            "深圳",
            "广州",
            "杭州",
            "南京",
            "苏州",
            "武汉",
            "成都",
            "西安",
            "厦门",
            "宁波",
            "青岛",
            "大连",
            "沈阳",
            "长沙",
            "郑州",
            "济南",
            "合肥",
            "福州",
            "东莞",
            "佛山",
            "无锡",
            "昆明",
            "哈尔滨",
            "长春",
            "石家庄",
            "太原",
            "南昌",
            "南宁",
            "贵阳",
            "兰州",
            "珠海",
            "中山",
            "温州",
            "台北",
            "台中",
            "高雄",
            "新北",
            "桃园",
            "台南",
            "中国",
        ],
        key=len,
        reverse=True,
    )
)
_PLACE_SUFFIX = ("特别行政区", "自治区", "省", "市", "区", "县")
_BRACKETED = re.compile(r"[(（\[【][^)）\]】]*[)）\]】]")


def _strip_place(text: str) -> str:
    changed = True
    while changed:
        changed = False
        for place in PLACES:
            if text.startswith(place) and len(text) > len(place) + 1:
                rest = text[len(place) :]
                for suffix in _PLACE_SUFFIX:
                    if rest.startswith(suffix) and len(rest) > len(suffix) + 1:
                        rest = rest[len(suffix) :]
                        break
                text = rest
                changed = True
                break
    return text


@functools.lru_cache(maxsize=65536)
def company_key(name: str) -> str:
    """A company name reduced to what identifies it: 上海华为技术有限公司, 華為技術有限公司 and
    "Huawei Technologies Co., Ltd." give ``华为技术`` / ``huawei technologies``."""
    text = _BRACKETED.sub(" ", fold(name))
    if has_cjk(text):
        text = re.sub(r"[\s\W_]+", "", text)
        text = _strip_place(text)
        for _ in range(2):
            for suffix in CJK_LEGAL_SUFFIXES:
                if text.endswith(suffix) and len(text) > len(suffix) + 1:
                    text = text[: -len(suffix)]
                    break
        return text
    words = [w for w in _PUNCT.sub(" ", text.replace(".", "")).split() if w]
    kept = [w for w in words if w not in LATIN_LEGAL_WORDS]
    return " ".join(kept or words)


def domain_of(value: str) -> str:
    """The registrable-looking host of a web site or e-mail (``www.`` dropped)."""
    text = fold(value)
    text = text.rpartition("@")[2] if "@" in text else text
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].split(":", 1)[0]
    return text.removeprefix("www.")


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """The non-empty values, first occurrence first."""
    return tuple(dict.fromkeys(v for v in values if v))
