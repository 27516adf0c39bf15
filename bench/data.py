"""Deterministic, realistic contact rows for the benchmarks.

Names mix Simplified/Traditional Chinese and Latin script; phone numbers come in the many
formats people type (spaces, dashes, brackets, ``+86``/``0086`` prefixes, full-width digits,
landlines with extensions, Hong Kong, Taiwan and US numbers) and all of them normalise.
Only contact fields are generated (companies would be accounts, a different entity).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

FIELDS = (
    "full_name",
    "email",
    "phone",
    "city",
    "address",
    "title",
    "source_channel",
    "notes",
)

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧蔡潘田董袁"
_TRAD_SURNAMES = "陳黃劉楊趙吳張鄭謝蕭許馮鄧蔡"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕"
_PINYIN = {
    "王": "wang", "李": "li", "张": "zhang", "刘": "liu", "陈": "chen", "杨": "yang",
    "黄": "huang", "赵": "zhao", "吴": "wu", "周": "zhou", "徐": "xu", "孙": "sun",
}  # fmt: skip
_LATIN_FIRST = (
    "David", "Amy", "Kevin", "Grace", "Tony", "Linda", "Jason", "Cindy", "Eric", "Vivian",
    "Michael", "Sophie", "Peter", "Helen", "Frank",
)  # fmt: skip
_LATIN_LAST = ("Smith", "Müller", "Tan", "Lim", "Wong", "Chan", "Garcia", "Nguyen", "Ng")
_CITIES = (
    "上海", "北京", "深圳", "广州", "杭州", "成都", "南京", "武汉", "台北", "香港",
    "Shanghai", "Beijing", "Shenzhen", "苏州", "厦门", "重庆",
)  # fmt: skip
_STREETS = ("南京西路", "中山路", "人民路", "解放路", "建国门外大街", "深南大道", "天河路")
_TITLES = (
    "销售经理", "采购总监", "总经理", "Purchasing Manager", "CEO", "市场专员", "財務經理",
    "Sales Director", "技术负责人", "Office Manager",
)  # fmt: skip
_CHANNELS = ("wechat", "展会", "website", "referral", "cold call", "抖音", "trade show", "百度")
_NOTES = (
    "对价格敏感，要求报价单",
    "Asked for a demo next week",
    "展会上认识，  对新产品有兴趣",
    "老客户介绍",
    "Wants samples shipped to Shenzhen office",
    "",
    "",
    "跟进：下周二回电",
)
_DOMAINS = ("qq.com", "163.com", "gmail.com", "126.com", "outlook.com", "example.cn")
_MOBILE_PREFIXES = ("138", "139", "135", "136", "150", "158", "186", "187", "177", "199")
_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _mobile(rng: random.Random) -> str:
    number = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    a, b, c = number[:3], number[3:7], number[7:]
    style = rng.randrange(10)
    return (
        number,
        f"{a} {b} {c}",
        f"{a}-{b}-{c}",
        f"+86 {a} {b} {c}",
        f"+86-{number}",
        f"0086 {number}",
        f"(+86) {a}-{b}-{c}",
        number.translate(_FULL_WIDTH),
        f"+86{number}",
        f" {a}.{b}.{c} ",
    )[style]


def _phone(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.75:
        return _mobile(rng)
    if kind < 0.88:
        area, digits = rng.choice((("010", 8), ("021", 8), ("0755", 8), ("020", 8), ("0571", 8)))
        local = f"{rng.randrange(2, 10)}{rng.randrange(10 ** (digits - 1)):0{digits - 1}d}"
        return rng.choice(
            (
                f"{area}-{local[:4]} {local[4:]}",
                f"({area}) {local}",
                f"+86 {area[1:]} {local}",
                f"{area}-{local} 转 {rng.randrange(100, 999)}",
            )
        )
    if kind < 0.94:
        return f"+852 {rng.choice('5679')}{rng.randrange(1000):03d} {rng.randrange(10**4):04d}"
    if kind < 0.97:
        return f"+886 9{rng.randrange(100):02d} {rng.randrange(1000):03d} {rng.randrange(1000):03d}"
    return f"+1 (415) {rng.randrange(200, 999)}-{rng.randrange(10**4):04d}"


def _name(rng: random.Random) -> tuple[str, str]:
    """A display name and a Latin handle for the e-mail address."""
    kind = rng.random()
    if kind < 0.55:
        surname = rng.choice(_SURNAMES)
        given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
        handle = _PINYIN.get(surname, "zh") + f"{rng.randrange(10000)}"
        return surname + given, handle
    if kind < 0.65:
        surname = rng.choice(_TRAD_SURNAMES)
        return surname + rng.choice(_GIVEN) + rng.choice(_GIVEN), f"tw{rng.randrange(100000)}"
    if kind < 0.8:
        first = rng.choice(_LATIN_FIRST)
        return f"{first} {rng.choice(_SURNAMES)}{rng.choice(_GIVEN)}", first.lower()
    first, last = rng.choice(_LATIN_FIRST), rng.choice(_LATIN_LAST)
    spacing = rng.choice((" ", "  ", "\u3000"))
    return f"{first}{spacing}{last}", f"{first}.{last}".lower().replace("ü", "u")


def contact_rows(count: int, seed: int = 20240601) -> Iterator[dict[str, str]]:
    """``count`` contact rows as CSV cells (strings; an empty cell is no value)."""
    rng = random.Random(seed)
    for index in range(count):
        name, handle = _name(rng)
        email = f"{handle}{index}@{rng.choice(_DOMAINS)}"
        if rng.random() < 0.1:
            email = email.upper()
        city = rng.choice(_CITIES)
        address = f"{city}{rng.choice(_STREETS)}{rng.randrange(1, 2000)}号"
        yield {
            "full_name": name,
            "email": email if rng.random() < 0.9 else "",
            "phone": _phone(rng),
            "city": city,
            "address": address if rng.random() < 0.7 else "",
            "title": rng.choice(_TITLES),
            "source_channel": rng.choice(_CHANNELS),
            "notes": rng.choice(_NOTES),
        }


def write_csv(path: Path, count: int, seed: int = 20240601) -> Path:
    """Write ``count`` rows (with a header) to ``path`` as UTF-8 CSV; return the path."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(contact_rows(count, seed))
    return path
