"""Synthetic business cards with their truth: for the demo, the tests and the accuracy
benchmark (bench/cards_bench.py).

Cards are rendered with Debian's fonts (Noto Sans CJK, WenQuanYi Micro Hei, AR PL UMing,
DejaVu/Liberation) in Simplified Chinese, Traditional Chinese (Taiwan, Hong Kong), English
and bilingual layouts, some with a vCard or MeCard QR code, then photographed badly:
rotation up to ±5°, perspective, uneven light, blur, noise and JPEG compression. Everything
is drawn from one ``random.Random(seed)``: a seed gives the same cards on every machine with
the same fonts.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

import crmkit

# -- fonts ---------------------------------------------------------------------------------

_CJK_FONTS = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", {"sc": 2, "tc": 3, "hk": 4}),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", {"sc": 2, "tc": 3, "hk": 4}),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", {"sc": 0, "tc": 0, "hk": 0}),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", {"sc": 0, "tc": 0, "hk": 0}),
)
_LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
)


def _available(paths: tuple[str, ...]) -> list[str]:
    return [p for p in paths if Path(p).exists()]


def cjk_fonts() -> list[tuple[str, dict[str, int]]]:
    """The CJK fonts installed (path, face index per script)."""
    return [(p, faces) for p, faces in _CJK_FONTS if Path(p).exists()]


def _need_fonts() -> None:
    if not cjk_fonts():
        raise crmkit.ConfigError(
            "no CJK font to render sample cards: apt-get install fonts-noto-cjk"
        )


# -- data ----------------------------------------------------------------------------------

SURNAMES = [
    ("王", "王", "Wang"),
    ("李", "李", "Li"),
    ("张", "張", "Zhang"),
    ("刘", "劉", "Liu"),
    ("陈", "陳", "Chen"),
    ("杨", "楊", "Yang"),
    ("黄", "黃", "Huang"),
    ("赵", "趙", "Zhao"),
    ("吴", "吳", "Wu"),
    ("周", "周", "Zhou"),
    ("徐", "徐", "Xu"),
    ("孙", "孫", "Sun"),
    ("马", "馬", "Ma"),
    ("朱", "朱", "Zhu"),
    ("胡", "胡", "Hu"),
    ("郭", "郭", "Guo"),
    ("林", "林", "Lin"),
    ("何", "何", "He"),
    ("高", "高", "Gao"),
    ("罗", "羅", "Luo"),
    ("郑", "鄭", "Zheng"),
    ("梁", "梁", "Liang"),
    ("谢", "謝", "Xie"),
    ("宋", "宋", "Song"),
    ("唐", "唐", "Tang"),
    ("许", "許", "Xu"),
    ("韩", "韓", "Han"),
    ("冯", "馮", "Feng"),
    ("邓", "鄧", "Deng"),
    ("曹", "曹", "Cao"),
    ("欧阳", "歐陽", "Ouyang"),
    ("司马", "司馬", "Sima"),
]
GIVEN = [
    ("伟", "偉", "wei"),
    ("芳", "芳", "fang"),
    ("娜", "娜", "na"),
    ("敏", "敏", "min"),
    ("静", "靜", "jing"),
    ("丽", "麗", "li"),
    ("强", "強", "qiang"),
    ("磊", "磊", "lei"),
    ("军", "軍", "jun"),
    ("洋", "洋", "yang"),
    ("勇", "勇", "yong"),
    ("艳", "艷", "yan"),
    ("杰", "傑", "jie"),
    ("娟", "娟", "juan"),
    ("涛", "濤", "tao"),
    ("明", "明", "ming"),
    ("超", "超", "chao"),
    ("秀", "秀", "xiu"),
    ("霞", "霞", "xia"),
    ("平", "平", "ping"),
    ("刚", "剛", "gang"),
    ("英", "英", "ying"),
    ("华", "華", "hua"),
    ("建", "建", "jian"),
    ("国", "國", "guo"),
    ("文", "文", "wen"),
    ("志", "志", "zhi"),
    ("宏", "宏", "hong"),
    ("晓", "曉", "xiao"),
    ("佳", "佳", "jia"),
    ("婷", "婷", "ting"),
    ("雪", "雪", "xue"),
    ("慧", "慧", "hui"),
    ("鹏", "鵬", "peng"),
    ("宇", "宇", "yu"),
    ("浩", "浩", "hao"),
    ("思", "思", "si"),
    ("嘉", "嘉", "jia"),
    ("欣", "欣", "xin"),
    ("凯", "凱", "kai"),
]
FIRST_NAMES = [
    "John",
    "Emily",
    "Michael",
    "Sarah",
    "David",
    "Laura",
    "James",
    "Anna",
    "Robert",
    "Olivia",
    "Daniel",
    "Sophie",
    "Thomas",
    "Grace",
    "Peter",
    "Helen",
    "Mark",
    "Julia",
    "Kevin",
    "Rachel",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Miller",
    "Wilson",
    "Moore",
    "Clark",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Carter",
    "Mitchell",
    "Turner",
    "Parker",
    "Collins",
    "Morgan",
]
TITLES = [
    ("销售总监", "銷售總監", "Sales Director"),
    ("总经理", "總經理", "General Manager"),
    ("市场经理", "市場經理", "Marketing Manager"),
    ("高级工程师", "高級工程師", "Senior Engineer"),
    ("采购主管", "採購主管", "Purchasing Supervisor"),
    ("技术总监", "技術總監", "Technical Director"),
    ("财务总监", "財務總監", "Chief Financial Officer"),
    ("客户经理", "客戶經理", "Account Manager"),
    ("产品经理", "產品經理", "Product Manager"),
    ("区域销售代表", "區域銷售代表", "Regional Sales Representative"),
    ("首席执行官", "首席執行官", "Chief Executive Officer"),
    ("人力资源主管", "人力資源主管", "HR Supervisor"),
    ("项目经理", "項目經理", "Project Manager"),
    ("董事长", "董事長", "Chairman"),
    ("业务经理", "業務經理", "Business Manager"),
    ("研发工程师", "研發工程師", "R&D Engineer"),
]
CORES = [
    ("钴蓝", "鈷藍", "Cobalt", "cobalt"),
    ("华信", "華信", "Huaxin", "huaxin"),
    ("金桥", "金橋", "Golden Bridge", "goldenbridge"),
    ("远航", "遠航", "Voyager", "voyager"),
    ("天成", "天成", "Tiancheng", "tiancheng"),
    ("博睿", "博睿", "Borui", "borui"),
    ("星河", "星河", "Galaxy", "galaxy"),
    ("瑞丰", "瑞豐", "Ruifeng", "ruifeng"),
    ("恒达", "恆達", "Hengda", "hengda"),
    ("中科", "中科", "Zhongke", "zhongke"),
    ("青松", "青松", "Evergreen", "evergreen"),
    ("海纳", "海納", "Haina", "haina"),
    ("银河", "銀河", "Silver River", "silverriver"),
    ("盛源", "盛源", "Shengyuan", "shengyuan"),
]
INDUSTRIES = [
    ("医疗器械", "醫療器械", "Medical Devices", "med"),
    ("科技", "科技", "Technology", "tech"),
    ("电子", "電子", "Electronics", "elec"),
    ("贸易", "貿易", "Trading", "trade"),
    ("机械设备", "機械設備", "Machinery", "mach"),
    ("新能源", "新能源", "New Energy", "energy"),
    ("软件", "軟體", "Software", "soft"),
    ("生物科技", "生物科技", "Biotech", "bio"),
    ("物流", "物流", "Logistics", "logistics"),
    ("食品", "食品", "Foods", "foods"),
]
SUFFIXES = [
    ("有限公司", "有限公司", "Co., Ltd."),
    ("股份有限公司", "股份有限公司", "Holdings Co., Ltd."),
    ("集团有限公司", "集團有限公司", "Group Co., Ltd."),
]
LATIN_SUFFIXES = ["Inc.", "Ltd", "LLC", "GmbH", "Corporation"]
CN_PLACES = [
    ("广东省", "深圳市", "南山区", "755", ["科技园南路", "深南大道", "高新南一道"]),
    ("广东省", "广州市", "天河区", "20", ["天河路", "珠江新城华夏路", "体育西路"]),
    ("浙江省", "杭州市", "西湖区", "571", ["文三路", "天目山路", "古墩路"]),
    ("江苏省", "苏州市", "工业园区", "512", ["星湖街", "现代大道", "金鸡湖大道"]),
    ("", "北京市", "朝阳区", "10", ["建国路", "东三环中路", "酒仙桥路"]),
    ("", "上海市", "浦东新区", "21", ["世纪大道", "张江路", "陆家嘴环路"]),
    ("四川省", "成都市", "高新区", "28", ["天府大道", "益州大道", "交子大道"]),
    ("湖北省", "武汉市", "洪山区", "27", ["珞喻路", "光谷大道", "民族大道"]),
]
TW_PLACES = [
    ("台北市", "信義區", "2", ["信義路五段", "松仁路", "忠孝東路四段"]),
    ("新竹市", "東區", "3", ["光復路二段", "科學園路", "園區二路"]),
    ("台中市", "西屯區", "4", ["台灣大道三段", "市政北二路"]),
]
HK_PLACES = [
    ("香港", "九龍觀塘區", ["觀塘道", "開源道", "鴻圖道"]),
    ("香港", "灣仔區", ["港灣道", "告士打道"]),
]
LATIN_PLACES = [
    ("San Francisco, CA", "94103", "USA", "+1 415", ["Market Street", "Mission Street"]),
    ("Austin, TX", "78701", "USA", "+1 512", ["Congress Avenue", "Lamar Boulevard"]),
    ("Munich", "80331", "Germany", "+49 89", ["Leopoldstrasse", "Maximilianstrasse"]),
    ("Singapore", "018989", "Singapore", "+65", ["Marina Boulevard", "Robinson Road"]),
    ("London", "EC2A 4BX", "United Kingdom", "+44 20", ["Old Street", "City Road"]),
]
KINDS = ("sc", "tc", "hk", "en", "bilingual")


def _phone_digits(rng: random.Random, count: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(count))


def _valid_phone(rng: random.Random, make: Any, region: str, mobile: bool) -> str:
    """A number from ``make(rng)`` that phonenumbers finds valid (and of the right type)."""
    import phonenumbers

    for _ in range(200):
        text = make(rng)
        number = phonenumbers.parse(text, region)
        kind = phonenumbers.number_type(number)
        is_mobile = kind == phonenumbers.PhoneNumberType.MOBILE
        if phonenumbers.is_valid_number(number) and is_mobile == mobile:
            return str(text)
    raise RuntimeError(f"no valid {region} number from the generator")  # pragma: no cover


def make_person(rng: random.Random, kind: str) -> dict[str, Any]:
    """The truth of one card: who, where, and how it is printed."""
    script = 1 if kind in ("tc", "hk") else 0
    card: dict[str, Any] = {"kind": kind}
    core = rng.choice(CORES)
    industry = rng.choice(INDUSTRIES)
    endings = {"sc": ["com", "cn", "com.cn"], "bilingual": ["com", "cn", "com.cn"]}.get(
        kind, ["com", "io", "net"] if kind == "en" else ["com", "com.tw", "com.hk", "net"]
    )
    domain = f"{core[3]}-{industry[3]}.{rng.choice(endings)}"
    title = rng.choice(TITLES)
    if kind == "en":
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        card["full_name"] = f"{first} {last}"
        card["title"] = title[2]
        card["company"] = f"{core[2]} {industry[2]} {rng.choice(LATIN_SUFFIXES)}"
        local = rng.choice([f"{first}.{last}", f"{first[0]}{last}", first]).lower()
        city, postcode, country, prefix, streets = rng.choice(LATIN_PLACES)
        number = rng.randint(10, 2400)
        street = rng.choice(streets)
        suite = rng.choice(
            ["", f"Suite {rng.randint(100, 1900)}, ", f"Floor {rng.randint(2, 40)}, "]
        )
        card["address"] = f"{suite}{number} {street}, {city} {postcode}, {country}"
        card["region"] = {"USA": "US", "Germany": "DE", "Singapore": "SG", "United Kingdom": "GB"}[
            country
        ]
        local_mobile = {
            "US": lambda r: f"{prefix} {r.randint(200, 989)} {_phone_digits(r, 4)}",
            "DE": lambda r: f"+49 15{r.randint(1, 9)} {_phone_digits(r, 4)} {_phone_digits(r, 4)}",
            "SG": lambda r: f"+65 {r.choice('89')}{_phone_digits(r, 3)} {_phone_digits(r, 4)}",
            "GB": lambda r: f"+44 7{r.randint(400, 999)} {_phone_digits(r, 6)}",
        }[card["region"]]
        local_office = {
            "US": lambda r: f"{prefix} {r.randint(200, 989)} {_phone_digits(r, 4)}",
            "DE": lambda r: (
                f"{prefix} {r.randint(2, 9)}{_phone_digits(r, 3)} {_phone_digits(r, 4)}"
            ),
            "SG": lambda r: f"+65 6{_phone_digits(r, 3)} {_phone_digits(r, 4)}",
            "GB": lambda r: (
                f"{prefix} {r.choice('378')}{_phone_digits(r, 3)} {_phone_digits(r, 4)}"
            ),
        }[card["region"]]
        us = card["region"] == "US"
        card["mobile"] = _valid_phone(rng, local_mobile, card["region"], not us)
        card["office"] = _valid_phone(rng, local_office, card["region"], False)
    else:
        surname = rng.choice(SURNAMES)
        given = [rng.choice(GIVEN) for _ in range(rng.choice([1, 2, 2]))]
        card["full_name"] = surname[script] + "".join(g[script] for g in given)
        card["family_name"] = surname[script]
        pinyin_given = "".join(g[2] for g in given)
        card["name_latin"] = f"{pinyin_given.capitalize()} {surname[2]}"
        card["title"] = title[script]
        card["title_latin"] = title[2]
        suffix = rng.choice(SUFFIXES)
        local = rng.choice(
            [
                f"{pinyin_given}.{surname[2]}",
                f"{surname[2]}{pinyin_given}",
                f"{pinyin_given[0]}{surname[2]}",
            ]
        ).lower()
        if kind in ("sc", "bilingual"):
            province, city, district, area, streets = rng.choice(CN_PLACES)
            card["company"] = f"{city}{core[0]}{industry[0]}{suffix[0]}"
            card["company_latin"] = f"{city[:-1] and ''}{core[2]} {industry[2]} {suffix[2]}".strip()
            number = rng.randint(1, 999)
            building = rng.choice(["", f"{rng.choice('ABCD')}座", f"{core[0]}大厦"])
            room = rng.choice(
                [f"{rng.randint(2, 30)}{rng.randint(1, 20):02d}室", f"{rng.randint(2, 30)}楼"]
            )
            card["address"] = (
                f"{province}{city}{district}{rng.choice(streets)}{number}号{building}{room}"
            )
            card["mobile"] = _valid_phone(
                rng,
                lambda r: (
                    f"+86 1{r.choice('3589')}{r.randint(0, 9)}"
                    f" {_phone_digits(r, 4)} {_phone_digits(r, 4)}"
                ),
                "CN",
                True,
            )
            card["office"] = _valid_phone(
                rng,
                lambda r: (
                    f"+86 {area} {r.randint(2, 8)}{_phone_digits(r, 3)} {_phone_digits(r, 4)}"
                ),
                "CN",
                False,
            )
            card["region"] = "CN"
        elif kind == "tc":
            city, district, area, streets = rng.choice(TW_PLACES)
            card["company"] = (
                f"{core[1]}{industry[1]}{'股份有限公司' if rng.random() < 0.6 else '有限公司'}"
            )
            card["company_latin"] = f"{core[2]} {industry[2]} Co., Ltd."
            card["address"] = (
                f"{city}{district}{rng.choice(streets)}"
                f"{rng.randint(1, 300)}號{rng.randint(2, 25)}樓"
            )
            card["mobile"] = _valid_phone(
                rng,
                lambda r: (
                    f"+886 9{_phone_digits(r, 2)} {_phone_digits(r, 3)} {_phone_digits(r, 3)}"
                ),
                "TW",
                True,
            )
            card["office"] = _valid_phone(
                rng,
                lambda r: (
                    f"+886 {area} {r.randint(2, 8)}"  # Hsinchu (3) numbers are one digit shorter
                    f"{_phone_digits(r, 3 if area != '3' else 2)} {_phone_digits(r, 4)}"
                ),
                "TW",
                False,
            )
            card["region"] = "TW"
        else:
            city, district, streets = rng.choice(HK_PLACES)
            card["company"] = f"{core[1]}{industry[1]}有限公司"
            card["company_latin"] = f"{core[2]} {industry[2]} Limited"
            card["address"] = (
                f"{city}{district}{rng.choice(streets)}"
                f"{rng.randint(1, 400)}號{rng.randint(2, 40)}樓{rng.choice('ABCDE')}室"
            )
            card["mobile"] = _valid_phone(
                rng,
                lambda r: f"+852 {r.choice('569')}{_phone_digits(r, 3)} {_phone_digits(r, 4)}",
                "HK",
                True,
            )
            card["office"] = _valid_phone(
                rng,
                lambda r: f"+852 {r.choice('23')}{_phone_digits(r, 3)} {_phone_digits(r, 4)}",
                "HK",
                False,
            )
            card["region"] = "HK"
    card["email"] = f"{local}@{domain}"
    card["website"] = f"www.{domain}"
    if kind != "en" and rng.random() < 0.3:
        card["wechat"] = f"{local.replace('.', '_')}{rng.randint(10, 99)}"
    # Drawn from the card's own generator, not ``rng``: adding the LinkedIn line left every
    # other card of a seed as it was.
    social = _social_rng(card, "linkedin")
    if kind in ("en", "bilingual") and social.random() < 0.35:
        handle = (
            card["full_name"].replace(" ", "-")
            if kind == "en"
            else card["name_latin"].replace(" ", "-")
        ).lower()
        if social.random() < 0.5:
            handle += f"-{social.randint(1, 999)}"
        card["linkedin"] = f"https://www.linkedin.com/in/{handle}"
    return card


def _social_rng(card: dict[str, Any], what: str) -> random.Random:
    """A generator of the card's own (seeded by its e-mail address) for the social lines:
    their labels and the LinkedIn profile, drawn without disturbing the set's generator."""
    return random.Random(f"{what} {card['email']}")


#: How cards label a WeChat ID: Chinese (Simplified, Traditional), English, bilingual.
WECHAT_LABELS_ZH = ("微信", "微信号", "微信：", "微信号：", "微信號：")
WECHAT_LABELS_EN = ("WeChat: ", "WeChat:", "WeChat ID: ", "WeChat ID：", "Wechat: ", "WeChat ")
WECHAT_LABELS_BOTH = ("微信 WeChat: ", "微信号 WeChat ID: ", "微信 WeChat ID：")
#: How cards print a LinkedIn profile (``{}``: the profile without ``https://www.``).
LINKEDIN_FORMS = (
    "LinkedIn: {}",
    "LinkedIn {}",
    "{}",
    "www.{}",
    "LinkedIn: in/{handle}",
)
LINKEDIN_FORMS_ZH = ("领英：{}", "领英 LinkedIn: {}")


def _phone_text(rng: random.Random, number: str, region: str) -> str:
    """A phone number the way cards print it (with the country code, or national)."""
    parts = number.split(" ")
    if region == "CN" and rng.random() < 0.5:
        rest = parts[1:]
        if rest[0].startswith("1") and len(rest[0]) == 3:
            return rng.choice([" ".join(rest), "-".join(rest), "".join(rest)])
        return f"0{rest[0]}-{''.join(rest[1:])}"
    if region in ("TW",) and rng.random() < 0.4:
        rest = parts[1:]
        return f"0{rest[0]}-{'-'.join(rest[1:])}"
    return number if rng.random() < 0.7 else number.replace(" ", "-", 1)


# -- rendering ------------------------------------------------------------------------------


def _font(path: str, size: int, index: int = 0) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, index=index)


def _qr_payload(rng: random.Random, card: dict[str, Any]) -> str:
    style = rng.choice(["vcard3", "vcard21", "vcard4", "mecard"])
    name = card["full_name"]
    if style == "mecard":
        family = card.get("family_name") or name.split()[-1]
        given = name[len(family) :] if card.get("family_name") else " ".join(name.split()[:-1])
        return (
            f"MECARD:N:{family},{given};TEL:{card['mobile'].replace(' ', '')};"
            f"EMAIL:{card['email']};ORG:{card['company']};URL:http://{card['website']};"
            f"ADR:{card['address'].replace(',', ' ')};;"
        )
    version = {"vcard3": "3.0", "vcard21": "2.1", "vcard4": "4.0"}[style]
    cell = (
        "TEL;CELL"
        if style == "vcard21"
        else "TEL;TYPE=CELL"
        if style == "vcard3"
        else "TEL;TYPE=cell"
    )
    work = (
        "TEL;WORK"
        if style == "vcard21"
        else "TEL;TYPE=WORK"
        if style == "vcard3"
        else "TEL;TYPE=work"
    )
    lines = [
        "BEGIN:VCARD",
        f"VERSION:{version}",
        f"FN:{name}",
        f"ORG:{card['company']}",
        f"TITLE:{card['title']}",
        f"{cell}:{card['mobile']}",
        f"{work}:{card['office']}",
        f"EMAIL:{card['email']}",
        f"URL:http://{card['website']}",
        f"ADR:;;{card['address']};;;;",
        "END:VCARD",
    ]
    if style == "vcard21" and not card["full_name"].isascii():
        lines = [
            line.replace(":", ";CHARSET=UTF-8:", 1)
            if line.startswith(("FN", "ORG", "TITLE", "ADR"))
            else line
            for line in lines
        ]
    return "\r\n".join(lines)


def _wechat_label(card: dict[str, Any], usual: str) -> str:
    """The WeChat label of a card: half keep the card's label style (``微信：``,
    ``WeChat: ``), the others one of the variants cards print."""
    social = _social_rng(card, "wechat label")
    if social.random() < 0.5:
        return usual
    if card["kind"] == "bilingual" and social.random() < 0.5:
        return social.choice(WECHAT_LABELS_BOTH)
    label = social.choice(WECHAT_LABELS_ZH + WECHAT_LABELS_EN)
    if card["kind"] in ("tc", "hk"):
        label = label.replace("微信号", "微信號")
    return label


def _linkedin_text(card: dict[str, Any]) -> str:
    """The LinkedIn line of a card, in one of the forms cards print."""
    social = _social_rng(card, "linkedin line")
    profile = card["linkedin"].removeprefix("https://www.")
    forms = LINKEDIN_FORMS + (LINKEDIN_FORMS_ZH if card["kind"] == "bilingual" else ())
    form = social.choice(forms)
    return form.format(profile, handle=profile.removeprefix("linkedin.com/in/"))


def render_card(rng: random.Random, card: dict[str, Any]) -> Image.Image:
    """The clean card (1050 x 600 px: 3.5 x 2 in at 300 dpi)."""
    _need_fonts()
    width, height = 1050, 600
    paper = tuple(rng.randint(235, 255) for _ in range(3))
    image = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(image)
    kind = card["kind"]
    face_key = {"sc": "sc", "bilingual": "sc", "tc": "tc", "hk": "hk", "en": "sc"}[kind]
    fonts = cjk_fonts()
    bold_path, bold_faces = rng.choice(fonts)
    body_path, body_faces = rng.choice(fonts)
    latin = _available(_LATIN_FONTS)
    ink = tuple(rng.randint(0, 60) for _ in range(3))
    accent = tuple(rng.randint(0, 160) for _ in range(3))
    if rng.random() < 0.6:
        draw.rectangle((0, 0, width, rng.randint(12, 28)), fill=accent)

    def cjk(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
        path, faces = (bold_path, bold_faces) if bold else (body_path, body_faces)
        return _font(path, size, faces[face_key])

    def latin_font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
        if latin and rng.random() < 0.6:
            return _font(rng.choice(latin), size)
        return cjk(size, bold)

    region = card["region"]
    labels_zh = rng.random() < 0.8
    tc = kind in ("tc", "hk")
    lines: list[tuple[str, ImageFont.FreeTypeFont]] = []
    if kind == "en":
        head = [
            (card["company"], latin_font(rng.randint(30, 36), True)),
        ]
        name_block = [
            (card["full_name"], latin_font(rng.randint(50, 60), True)),
            (card["title"], latin_font(rng.randint(26, 30))),
        ]
        labels = rng.choice(
            [
                ("M: ", "T: ", "E: ", "W: ", ""),
                ("Mobile: ", "Tel: ", "Email: ", "Web: ", "Address: "),
                ("", "", "", "", ""),
            ]
        )
        small = rng.randint(22, 26)
        lines = [
            (labels[0] + _phone_text(rng, card["mobile"], region), latin_font(small)),
            (labels[1] + _phone_text(rng, card["office"], region), latin_font(small)),
            (labels[2] + card["email"], latin_font(small)),
            (labels[3] + card["website"], latin_font(small)),
            (labels[4] + card["address"], latin_font(small - 2)),
        ]
    else:
        head = [(card["company"], cjk(rng.randint(30, 36), True))]
        if kind == "bilingual" or (kind in ("tc", "hk") and rng.random() < 0.5):
            head.append((card["company_latin"], latin_font(rng.randint(20, 24))))
        name_block = [(card["full_name"], cjk(rng.randint(54, 66), True))]
        if kind == "bilingual" or rng.random() < 0.3:
            name_block.append((card["name_latin"], latin_font(rng.randint(26, 30))))
        name_block.append((card["title"], cjk(rng.randint(26, 30))))
        if kind == "bilingual":
            name_block.append((card["title_latin"], latin_font(rng.randint(22, 26))))
        if labels_zh:
            zh = (
                ("手機", "電話", "郵箱", "網址", "地址", "微信")
                if tc
                else ("手机", "电话", "邮箱", "网址", "地址", "微信")
            )
            sep = rng.choice(["：", ": ", " "])
            if kind == "bilingual" and rng.random() < 0.5:
                zh = (
                    "手机 Mobile",
                    "电话 Tel",
                    "邮箱 Email",
                    "网址 Web",
                    "地址 Add",
                    "微信 WeChat",
                )
            labels6 = tuple(f"{z}{sep}" for z in zh)
        else:
            labels6 = ("M: ", "T: ", "E: ", "W: ", "A: ", "WeChat: ")
        small = rng.randint(22, 26)
        lines = [
            (labels6[0] + _phone_text(rng, card["mobile"], region), cjk(small)),
            (labels6[1] + _phone_text(rng, card["office"], region), cjk(small)),
            # a label in Chinese needs a CJK font (a Latin font draws missing-glyph boxes)
            (labels6[2] + card["email"], latin_font(small) if labels6[2].isascii() else cjk(small)),
            (
                labels6[3] + card["website"],
                latin_font(small) if labels6[3].isascii() else cjk(small),
            ),
            (labels6[4] + card["address"], cjk(small - 2)),
        ]
        if card.get("wechat"):
            lines.insert(3, (_wechat_label(card, labels6[5]) + card["wechat"], cjk(small)))
    if card.get("linkedin"):
        lines.insert(len(lines) - 1, (_linkedin_text(card), cjk(small)))
    rng.shuffle(lines[:2]) if False else None
    qr = None
    if rng.random() < card.get("qr_share", 0.3):
        payload = _qr_payload(rng, card)
        barcode = __import__("zxingcpp").create_barcode(
            payload, __import__("zxingcpp").BarcodeFormat.QRCode
        )
        qr = barcode.to_image(scale=4, add_quiet_zones=True)
        qr = Image.fromarray(np.asarray(qr)).convert("RGB")
        side = min(220, qr.width)
        qr = qr.resize((side, side), Image.Resampling.NEAREST)
        card["qr"] = payload.split(":")[0] if payload.startswith("MECARD") else "vcard"
    layout = rng.choice(["left", "left", "split", "centre"])
    margin = rng.randint(40, 60)
    y: float = rng.randint(40, 60)

    def text_width(text: str, font: ImageFont.FreeTypeFont) -> float:
        return draw.textlength(text, font=font)

    def place(
        text: str, font: ImageFont.FreeTypeFont, x: float, y: float, colour: Any = ink
    ) -> float:
        draw.text((x, y), text, font=font, fill=colour)
        box = draw.textbbox((x, y), text, font=font)
        return box[3] - y

    max_text = width - 2 * margin - (qr.width + 20 if qr is not None else 0)
    for text, font in head:
        x = margin if layout != "centre" else (width - text_width(text, font)) / 2
        y += place(text, font, x, y, accent if rng.random() < 0.5 else ink) + 10
    y += rng.randint(12, 30)
    if layout == "split":
        name_y = y
        for text, font in name_block:
            name_y += place(text, font, margin, name_y) + 8
        y = max(y + 10, name_y + 10)
    else:
        for text, font in name_block:
            x = margin if layout != "centre" else (width - text_width(text, font)) / 2
            y += place(text, font, x, y) + 8
        y += 12
    remaining = height - y - 20
    # each line's real height (a CJK font's box is taller than its size): with the size alone
    # a crowded card's last lines (its address) fell off the bottom while the truth kept them
    needed = sum(draw.textbbox((0, 0), text, font=font)[3] + 10 for text, font in lines)
    scale = min(1.0, remaining / needed) if needed else 1.0
    for text, font in lines:
        if scale < 1.0:
            font = font.font_variant(size=max(14, int(font.size * scale)))
        while text_width(text, font) > max_text and font.size > 14:
            font = font.font_variant(size=font.size - 1)
        x = margin if layout != "centre" else (width - text_width(text, font)) / 2
        y += place(text, font, x, y) + int(10 * scale)
    if qr is not None:
        image.paste(qr, (width - qr.width - 30, height - qr.height - 30))
    return image


def photograph(rng: random.Random, card: Image.Image) -> Image.Image:
    """The card as a phone photographs it: on a table, turned up to ±5°, in perspective,
    under uneven light, a little blurred and noisy."""
    background = tuple(rng.randint(60, 200) for _ in range(3))
    canvas = Image.new("RGB", (card.width + 160, card.height + 160), background)
    canvas.paste(card, (80, 80))
    angle = rng.uniform(-5, 5)
    canvas = canvas.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=background)
    w, h = canvas.size
    d = 0.04
    quad = [
        rng.uniform(0, d) * w,
        rng.uniform(0, d) * h,
        rng.uniform(0, d) * w,
        h - rng.uniform(0, d) * h,
        w - rng.uniform(0, d) * w,
        h - rng.uniform(0, d) * h,
        w - rng.uniform(0, d) * w,
        rng.uniform(0, d) * h,
    ]
    canvas = canvas.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    pixels = np.asarray(canvas).astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xs * math.cos(direction) + ys * math.sin(direction)) / max(w, h)
    light = 1.0 - rng.uniform(0.0, 0.35) * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    pixels *= light[..., None]
    pixels += rng.uniform(0, 8) * np.random.default_rng(rng.randint(0, 2**31)).standard_normal(
        pixels.shape
    )
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    blur = rng.uniform(0, 1.2)
    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=rng.randint(45, 90))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def generate(
    seed: int, count: int, *, qr_share: float = 0.3
) -> Iterator[tuple[Image.Image, dict[str, Any]]]:
    """``count`` photographed cards and their truth, from ``seed``."""
    rng = random.Random(seed)
    for index in range(count):
        kind = KINDS[index % len(KINDS)] if index < len(KINDS) else rng.choice(KINDS)
        card = make_person(rng, kind)
        card["qr_share"] = qr_share
        clean = render_card(rng, card)
        card.pop("qr_share")
        yield photograph(rng, clean), card


def write_set(
    folder: Path, seed: int, count: int, *, qr_share: float = 0.3, truth: Path | None = None
) -> list[dict[str, Any]]:
    """Write ``count`` cards as ``card-NNN.jpg`` into ``folder`` and what each says as JSON
    to ``truth`` (default ``folder/truth.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    truths = []
    for index, (image, card) in enumerate(generate(seed, count, qr_share=qr_share), start=1):
        name = f"card-{index:03d}.jpg"
        image.save(folder / name, format="JPEG", quality=92)
        truths.append({"file": name, **card})
    truth = truth if truth is not None else folder / "truth.json"
    truth.parent.mkdir(parents=True, exist_ok=True)
    truth.write_text(json.dumps(truths, ensure_ascii=False, indent=1), "utf-8")
    return truths
