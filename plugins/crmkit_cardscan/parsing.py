"""From OCR lines to card fields: the layout-aware parser.

The lines are put in reading order, normalised (NFKC: full-width colons, digits and
letters become ASCII), split where a label is glued to its value (``手机：+86…``,
``Email:…``), and each line is given to the field it most looks like. OCR errors met on
real cards are repaired here: Latin word spaces dropped (``CobaltMedical DevicesCo.``),
``@`` read as ``o`` or ``0`` in e-mails, labels glued to values.

Every field gets a confidence: the OCR engine's confidence of its line times how sure the
rule that placed it is. Fields under the plugin's ``review_below`` are flagged for review.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import opencc
import phonenumbers

import crmkit

SOURCE = "ocr"

# -- labels ------------------------------------------------------------------------------

_LABELS: dict[str, tuple[str, ...]] = {
    "mobile": ("手机", "手機", "移动电话", "mobile", "mob", "cell", "m", "mp", "hp"),
    "office": ("电话", "電話", "座机", "tel", "te1", "phone", "office", "direct", "t", "o", "d"),
    "fax": ("传真", "傳真", "fax", "f"),
    "email": (
        "邮箱",
        "郵箱",
        "电子邮件",
        "電子郵件",
        "e-mail",
        "email",
        "mail",
        "e",
        "emai1",
        "e-mai1",
    ),
    "website": ("网址", "網址", "网站", "網站", "web", "website", "url", "w"),
    "address": ("地址", "address", "addr", "add", "a"),
    "wechat": (
        "微信号",
        "微信號",
        "微信",
        "wechat id",
        "wechatid",
        "wechat no",
        "wechat",
        "weixin",
        "wx",
    ),
    # OCR reads the I of LinkedIn as l and its l as 1
    "linkedin": ("linkedin", "linkedln", "1inkedin", "1inkedln", "领英", "領英"),
}
#: One word that is a handle or a profile address, not an English word (``wangwei88``,
#: ``li_na``, ``linkedin.com/in/lina``; not ``Technologies``).
_HANDLE_TEXT = re.compile(r"(?=\S*[\d_./-]|[a-z]+$)[A-Za-z0-9][\w.\-/:]{2,99}")
_LABEL_OF = {label: field for field, labels in _LABELS.items() for label in labels}
_LABEL = re.compile(
    r"^\s*(?P<label>"
    + "|".join(sorted((re.escape(k) for k in _LABEL_OF), key=len, reverse=True))
    + r")\s*(?P<sep>[:：.]\s*|(?=[+\d(（])|\s+(?=\S)|(?<=[\u4e00-\u9fff])(?=\S))(?P<value>.+)$",
    re.IGNORECASE,
)


_BILINGUAL_LABEL = re.compile(
    r"^\s*(?P<zh>"
    + "|".join(sorted((re.escape(k) for k in _LABEL_OF if not k.isascii()), key=len, reverse=True))
    + r")\s*(?P<en>"
    + "|".join(
        sorted(
            (re.escape(k) for k in _LABEL_OF if k.isascii() and len(k) > 1), key=len, reverse=True
        )
    )
    + r")\s*[:：.]?\s*(?P<value>.+)$",
    re.IGNORECASE,
)


def split_label(text: str) -> tuple[str | None, str]:
    """``(field, value)`` when ``text`` starts with a label (``手机：``, ``Email:``,
    ``M:``, ``电话 ``); a one-letter label counts only before a colon or a number. A
    bilingual label (``地址 Add:``, ``手机 Mobile:``) is taken whole, and a colon left
    before the value (its label lost by OCR) is dropped."""
    both = _BILINGUAL_LABEL.match(text)
    if both and _LABEL_OF[both.group("zh")] == _LABEL_OF[both.group("en").lower()]:
        return _LABEL_OF[both.group("zh")], both.group("value").lstrip(":：;|").strip()
    field, value = _split_one_label(text)
    if field is not None:
        again, rest = _split_one_label(value)
        if again == field:
            value = rest
    return field, value.lstrip(":：;|").strip()


#: ``WeChatxumingqiang37``: a WeChat label OCR glued to the ID (the space dropped).
_GLUED_WECHAT = re.compile(r"^\s*(?:wechat ?id|wechat|weixin)(?P<value>[a-z0-9][\w-]{5,19})$", re.I)


#: A Latin label of a social handle, with its separator: a colon or a space (``WeChat ID:
#: x``, ``WeChat id2abc`` is the ID ``id2abc``, ``LinkedIn lina``).
_LATIN_HANDLE_LABEL = re.compile(
    r"^\s*(?P<label>wechat ?id|wechat no|wechat|weixin|wx|[l1]inked[il1]n)"
    r"(?P<sep>\s*[:：.]\s*|\s+)(?P<value>\S.*)$",
    re.IGNORECASE,
)


def _split_one_label(text: str) -> tuple[str | None, str]:
    handle = _LATIN_HANDLE_LABEL.match(text)
    if handle:
        value, sep = handle.group("value").strip(), handle.group("sep").strip()
        field = "linkedin" if "inked" in handle.group("label").lower() else "wechat"
        if (
            sep == "."
            and not handle.group("sep").endswith(" ")
            and re.match(r"[A-Za-z]{2,}\b", value)
        ):
            return None, text  # "linkedin.com/in/lina": a domain, no label
        if sep or _HANDLE_TEXT.fullmatch(value):
            return field, value
        return None, text  # "Wechat Technologies" is a company
    glued = _GLUED_WECHAT.match(text)
    if glued:
        return "wechat", glued.group("value")
    match = _LABEL.match(text)
    if match is None:
        return None, text
    label, value = match.group("label"), match.group("value").strip()
    if match.group("sep") == "." and re.match(r"[A-Za-z]{2,}\b", value):
        return None, text  # "linkedin.com/in/lina", "mail.example.com": a domain, no label
    if len(label) == 1 and not (
        match.group("sep").strip() in (":", "：") or _PHONE_START.match(value)
    ):
        return None, text  # "F1oor 7" is no fax number, "A. Smith" no address
    field = _LABEL_OF[label.lower()]
    latin_label = label.replace(" ", "").isalpha() and label.isascii() and len(label) > 1
    bare = not match.group("sep").strip()
    email = field == "email" and "@" in value  # "Email li@x.com"
    if latin_label and bare and not (value[:1].isdigit() or value[:1] == "+" or email):
        return None, text  # "Add Value Co." is no address: a Latin label needs ":" or a number
    if bare and not label.isascii() and not _fits_label(field, value):
        again, rest = _split_one_label(value)  # "手机 Mobile: 138…", a bilingual label
        if again == field:
            return field, rest
        return None, text  # "电话销售经理" is a title, not a phone labelled 电话
    return field, value


def _fits_label(field: str, value: str) -> bool:
    """Whether ``value`` can be what a label glued to it without a separator announces."""
    if field in ("mobile", "office", "fax"):
        return value[:1] in "+0123456789(（"
    if field == "address":
        return bool(_ADDRESS_HAN.search(value)) or value[:1].isdigit()
    return value[:1].isascii()


# -- patterns ----------------------------------------------------------------------------

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_DOMAIN = re.compile(
    r"(?:https?://)?(?:www\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|cn|net|org|hk|tw|io|"
    r"co|biz|info|sg|jp|uk|de|us|edu|gov)(?:\.[a-z]{2})?(?:/[\w./-]*)?",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d")
_PHONE_START = re.compile(r"[+(]?\d[\d\s().\-/]{5,}(?:\D|$)")
_PHONE = re.compile(
    r"(?:\+|00)?\(?\d[\d\s().\-/]{5,}\d(?:\s*(?:ext\.?|x|转|轉|分机|分機)\s*\d{1,6})?",
    re.IGNORECASE,
)
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LOWER_UPPER = re.compile(
    r"(?<=[a-z])(?=[A-Z][a-z])|(?<=[a-z.,])(?=(?:Co|Ltd|Inc|LLC)\b)"
    r"|(?<=[A-Z]{2})(?=[A-Z][a-z]{4})"  # an acronym before a word: "HRSupervisor"
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Words of Chinese job titles, Simplified and Traditional.
_TITLE_WORDS = _words(
    """
    总经理 總經理 副总 副總 经理 經理 总监 總監 主管 工程师 工程師 总裁 總裁 董事 主任 顾问 顧問
    代表 专员 專員 助理 秘书 秘書 会计 會計 律师 律師 教授 医生 醫生 设计师 設計師 店长 店長
    合伙人 合夥人 创始人 創辦人 负责人 負責人 行长 行長 厂长 廠長 部长 部長 科长 科長 所长 所長
    院长 院長 架构师 架構師 执行官 執行官 主席 总工 總工 总经办 總經辦 经纪人 經紀人 领班 領班
    """
)
_TITLE_LATIN = re.compile(
    r"\b(?:manager|director|engineer|president|officer|consultant|representative|head|vp|"
    r"specialist|partner|founder|ceo|cto|cfo|coo|lead|architect|analyst|executive|assistant|"
    r"accountant|designer|chairman|supervisor|coordinator|advisor|adviser|secretary|"
    r"professor|lawyer|attorney|counsel|principal|owner)\b",
    re.IGNORECASE,
)
#: Words of Chinese organisation names (legal forms and kinds of organisation).
_COMPANY_WORDS = _words(
    """
    公司 集团 集團 有限 研究院 研究所 事务所 事務所 银行 銀行 大学 大學 医院 醫院 工厂 工廠 商行
    工作室 中心 协会 協會 股份 商会 商會 基金会 基金會
    """
)
_COMPANY_LATIN = re.compile(
    r"\b(?:co\.?|ltd\.?|limited|inc\.?|llc|corp\.?|corporation|gmbh|group|company|"
    r"technolog(?:y|ies)|holdings|bank|university|hospital|laborator(?:y|ies)|studio|"
    r"partners|associates|industries|international|trading|pte\.?|plc|s\.a\.|ag)(?=\W|$)",
    re.IGNORECASE,
)
_DEPARTMENT = re.compile(
    r"(?:部$|部门|部門|事业部|事業部|\bdepartment\b|\bdept\b|\bdivision\b)", re.I
)
_ADDRESS_HAN = re.compile(r"(?:省|市|区|區|县|縣|路|街|道|号|號|楼|樓|室|大厦|大廈|镇|鎮|村|巷|弄)")
_ADDRESS_LATIN = re.compile(
    r"\b(?:road|rd\.?|street|st\.?|avenue|ave\.?|boulevard|blvd\.?|lane|ln\.?|drive|dr\.?|"
    r"floor|fl\.?|suite|ste\.?|building|bldg\.?|tower|room|rm\.?|unit|district|park|plaza|"
    r"way|highway|square|centre|center|block|no\.)(?=\W|$)",
    re.IGNORECASE,
)
#: A Latin line ending in a country (or with a German street) is an address.
_COUNTRY_END = re.compile(
    r"(?:\w(?:strasse|straße|gasse|weg|platz)\b.*\d|\d.*,\s*(?:usa|u\.s\.a\.|united states|"
    r"united kingdom|uk|germany|deutschland|france|singapore|japan|canada|australia|china|"
    r"hong kong|taiwan|netherlands|switzerland|italy|spain|korea|malaysia|thailand|vietnam)\.?$)",
    re.IGNORECASE,
)
_SURNAMES = set(
    "王李张張刘劉陈陳杨楊黄黃赵趙吴吳周徐孙孫马馬朱胡郭何高林罗羅郑鄭梁谢謝宋唐许許韩韓冯馮邓鄧曹彭曾"
    "肖萧蕭田董袁潘于蒋蔣蔡余杜叶葉程苏蘇魏吕呂丁任沈姚卢盧姜崔钟鍾谭譚陆陸汪范金石廖贾賈夏韦韋付方白邹"
    "鄒孟熊秦邱江尹薛闫閻段雷侯龙龍史陶黎贺賀顾顧毛郝龚龔邵万萬钱錢严嚴覃武戴莫孔向汤湯常温溫康施文牛樊葛"
    "邢安齐齊易乔喬伍庞龐颜顏倪庄莊聂聶章鲁魯岳翟殷詹申欧歐耿关關兰蘭焦俞左柳甘祝包宁寧尚符舒阮柯纪紀梅童凌"
    "毕畢单單季裴霍涂成苗谷盛曲翁冉骆駱蓝藍路游辛靳管柴蒙鲍鮑华華喻祁蒲房滕屈饶饒解牟艾尤阳陽时時穆农農司卓"
    "古吉缪繆简簡车車项項连連芦蘆麦麥褚娄婁窦竇戚岑景党党宫宮费費卜冷晏席卫衛米柏宗瞿桂全佟应應臧闵閔苟邬鄔"
    "边邊卞姬师師和仇栾欒隋商刁沙荣榮巫寇桑郎甄丛叢仲虞敖巩鞏明佘池查麻苑迟遲邝鄺"
)
_COMPOUND_SURNAMES = (
    "欧阳",
    "歐陽",
    "司马",
    "司馬",
    "上官",
    "诸葛",
    "諸葛",
    "东方",
    "東方",
    "皇甫",
    "令狐",
    "慕容",
    "尉迟",
    "公孙",
    "公孫",
    "夏侯",
    "司徒",
)


_TO_SIMPLIFIED = opencc.OpenCC("t2s.json")
_TO_TRADITIONAL = opencc.OpenCC("s2t.json")
#: The fields whose Chinese text follows the card's script.
_SCRIPT_FIELDS = ("full_name", "title", "company", "department", "address")


#: Country codes and web domains of Taiwan, Hong Kong and Macau, where cards are printed in
#: Traditional characters.
#: (No word boundary after the code: OCR often drops a number's spaces, ``+85262860137``, and
#: country codes are prefix-free, so ``+852`` starts a Hong Kong number whatever follows.)
_TRADITIONAL_PHONE = re.compile(r"(?:\+|(?<!\d)00)\s*(?:886|852|853)")
_TRADITIONAL_DOMAIN = re.compile(r"\.(?:tw|hk|mo)\b", re.IGNORECASE)


def is_traditional(texts: Sequence[str]) -> bool:
    """Whether a card is printed in Traditional Chinese: more of its characters are
    Traditional-only than Simplified-only, counting a Taiwan, Hong Kong or Macau phone
    number or web domain as three more. (PP-OCR's dictionary lacks many Traditional
    characters and reads others as their Simplified forms: 號 as 号, 樓 as 楼; on a badly
    photographed card most of them can come out Simplified.)"""
    text = "".join(texts)
    if not _HAN.search(text):
        return False
    simple_text: str = _TO_SIMPLIFIED.convert(text)
    traditional = sum(a != b for a, b in zip(text, simple_text, strict=False))
    simplified = sum(a != b for a, b in zip(text, to_traditional(text), strict=False))
    if any(_TRADITIONAL_PHONE.search(t) or _TRADITIONAL_DOMAIN.search(t) for t in texts):
        traditional += 3
    return bool(traditional > simplified)


def to_traditional(text: str) -> str:
    """``text`` with Simplified characters written as Traditional (OpenCC ``s2t``), keeping
    台 where it was printed (台北, 台中: the usual spelling, which ``s2t`` makes 臺), and the
    Japanese forms PP-OCR sometimes answers (産, 豊) written as Taiwan and Hong Kong print
    them (產, 豐)."""
    converted = str(_TO_TRADITIONAL.convert(text))
    if len(converted) == len(text):
        converted = "".join(
            old if old == "台" else new for old, new in zip(text, converted, strict=True)
        )
    return converted.translate(_TRADITIONAL_FORMS)


_TRADITIONAL_FORMS = str.maketrans({"産": "產", "豊": "豐"})

#: Words of Traditional cards that PP-OCRv4 cannot read: its 6,623-character dictionary has
#: no 監 (總監 comes out as 總 or 總盟), no 採 (採購 comes out as 探購 or 摇購), no 項 (項目
#: comes out as 填目) and no 軟 (軟體, "software", the usual word in Taiwan and Hong Kong company
#: names, comes out as 體 alone; other words ending in 體 keep their first character, so
#: only a 體 right before a company's legal form or line of business is taken for 軟體).
_DICTIONARY_GAPS = (
    (re.compile(r"(?<!副)總盟?$"), "總監"),  # (or 盟, the look-alike it has)
    (re.compile("[探搖]購"), "採購"),
    (re.compile("填目"), "項目"),
    (
        re.compile(
            r"(?<![軟硬韌媒導晶實團載整集立固液氣人個主身字物])體"
            r"(?=(?:股份)?有限公司|科技|系統|開發|設計|工程|服務|集團|工作室)"
        ),
        "軟體",
    ),
)


def repair_traditional(text: str) -> str:
    """A line of a Traditional card as printed: Simplified readings made Traditional, and the
    words the recogniser's dictionary lacks put back (:data:`_DICTIONARY_GAPS`)."""
    if not _HAN.search(text):
        return text
    text = to_traditional(text)
    for pattern, word in _DICTIONARY_GAPS:
        text = pattern.sub(word, text)
    return text


def normalise_line(text: str) -> str:
    """NFKC (full-width forms to ASCII), ideographic space to space, runs of spaces to one."""
    text = unicodedata.normalize("NFKC", text).replace("\u3000", " ")
    return re.sub(r"\s+", " ", text).strip()


def reading_order(lines: Sequence[crmkit.OcrLine]) -> list[crmkit.OcrLine]:
    """Top to bottom, and left to right within a row (boxes whose centres lie within half a
    line height of each other share a row)."""
    ordered = sorted(lines, key=lambda line: (line.box[1] + line.box[3]) / 2)
    rows: list[list[crmkit.OcrLine]] = []
    for line in ordered:
        centre = (line.box[1] + line.box[3]) / 2
        if rows:
            last = rows[-1][-1]
            if abs(centre - (last.box[1] + last.box[3]) / 2) < max(last.height, 1) / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda item: item.box[0])]


def _regions(fields: dict[str, crmkit.CardField]) -> list[str]:
    """The regions of the card's phone numbers (``US``, ``SG``), mobile first."""
    regions = []
    for name in ("mobile", "office", "fax"):
        if name in fields:
            try:
                number = phonenumbers.parse(fields[name].value.split(";")[0], None)
            except phonenumbers.NumberParseException:
                continue
            region = phonenumbers.region_code_for_number(number)
            if region and region not in regions:
                regions.append(region)
    return regions


def phone_kind(e164: str) -> str:
    """``mobile``, ``office`` or ``either`` (a region whose numbers do not say, as in
    North America) from the number itself (phonenumbers' number type)."""
    try:
        number = phonenumbers.parse(e164.split(";")[0], None)
    except phonenumbers.NumberParseException:
        return "office"
    kind = phonenumbers.number_type(number)
    if kind == phonenumbers.PhoneNumberType.MOBILE:
        return "mobile"
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE:
        return "either"
    return "office"


def split_latin_words(text: str) -> str:
    """Put back the spaces OCR drops between Latin words (``CobaltMedical DevicesCo.`` →
    ``Cobalt Medical Devices Co.``); a ``Mc``/``Mac`` name prefix is kept whole."""
    return _LOWER_UPPER.sub(
        lambda m: "" if text[max(0, m.start() - 3) : m.start()].endswith(("Mc", "Mac")) else " ",
        text,
    )


def _letters_for_digits(match: re.Match[str]) -> str:
    """A word OCR wrote with ``0`` for ``o`` and ``1`` for ``l`` (``F1oor``, ``01d``); a short
    code in capitals (``SW1A``) is left as read."""
    word = match.group(0)
    if sum(ch.isalpha() for ch in word) < 1 or word.isdigit():
        return word
    if len(word) <= 4 and not any(ch.islower() for ch in word):
        return word  # a code in capitals, as a British postcode's SW1A or EC1A
    return word.replace("0", "o").replace("1", "l")


#: A number glued to the word before it: three digits or more, or any after an address word
#: that numbers follow (``Suite1101``, ``Floor10``).
_GLUED_NUMBER = re.compile(
    r"(?<=[A-Za-z]{3})(?=\d{3})|(?<=\b(?:suite|floor|level))(?=\d)|(?<=\b(?:room|unit))(?=\d)"
    r"|(?<=\bste)(?=\d)|(?<=\b(?:no|rm|fl))(?=\d)",
    re.IGNORECASE,
)


def repair_latin(text: str) -> str:
    """A Latin line with OCR's usual slips undone: ``0`` read for ``o`` inside a word
    (``R0ad``), spaces dropped after commas, between words and numbers and between words
    (``Suite1645,1254CityR0ad`` → ``Suite 1645, 1254 City Road``); a number glued to a word
    stays a number (``Suite1101``)."""
    # (a lower-case letter beside it: SW1A, a postcode in capitals, keeps its 1)
    text = re.sub(r"(?<=[a-z])0(?=[A-Za-z])|(?<=[A-Za-z])0(?=[a-z])", "o", text)
    text = re.sub(r"(?<=[a-z])1(?=[A-Za-z])|(?<=[A-Za-z])1(?=[a-z])", "l", text)
    # a number glued to a word is split off first, so that it stays a number: "Suite1101"
    # is "Suite 1101", not "Suitellol" (but "Francisc0" is "Francisco")
    text = _GLUED_NUMBER.sub(" ", text)
    text = re.sub(r"\b[A-Za-z01]{3,}\b", _letters_for_digits, text)
    text = re.sub(r",(?=\S)", ", ", text)
    text = re.sub(r"(?<=[A-Za-z]{3})(?=\d)|(?<=\d)(?=[A-Za-z]{3})", " ", text)
    text = re.sub(r"(?<=[a-z]{3})(?=[A-Z]{2})", " ", text)
    return split_latin_words(text)


def repair_email(text: str, domains: Sequence[str]) -> str | None:
    """An e-mail address from a line where OCR misread the ``@`` (as ``o``, ``0``, ``Q``,
    ``©``, ``®`` or a space): the card's web domain decides where the ``@`` was; else the
    first misreading before a domain. ``1`` read for ``l`` and ``0`` for ``o`` between
    letters (and ``1`` starting a word of the local part: ``xiayu.1uo``) are put back, and a
    domain one such slip away from the card's web domain is taken as that domain."""
    email = _find_email(text, domains)
    if email is None:
        return None
    local, _, domain = email.partition("@")
    local = re.sub(r"(?<=[a-z.])1(?=[a-z])|^1(?=[a-z])", "l", local)
    local = re.sub(r"(?<=[a-z])0(?=[a-z])", "o", local)
    domain = repair_domain(domain)
    for known in domains:
        if domain != known and _slips(domain) == _slips(known):
            domain = known.lower()
    return f"{local}@{domain}"


def repair_domain(text: str) -> str:
    """A web domain with ``1`` read for ``l`` and ``0`` for ``o`` between two letters put
    back (``go1denbridge.com``); digits elsewhere (``51job.com``, ``163.com``) stay."""
    text = re.sub(r"(?<=[a-z])1(?=[a-z])", "l", text)
    return re.sub(r"(?<=[a-z])0(?=[a-z])", "o", text)


def _slips(text: str) -> str:
    return text.lower().replace("1", "l").replace("0", "o")


def _find_email(text: str, domains: Sequence[str]) -> str | None:
    compact = text.replace(" ", "").strip(".,;")
    found = _EMAIL.search(compact)
    if found:
        return found.group(0).lower()
    for domain in domains:
        index = compact.lower().rfind(domain.lower())
        if index > 1 and compact[index - 1] in "o0Q©®a":
            return (compact[: index - 1] + "@" + compact[index:]).lower()
        if index > 0 and compact[:index] and compact[index - 1] not in "@.":
            return (compact[:index] + "@" + compact[index:]).lower()
    match = re.fullmatch(r"([A-Za-z0-9._%+-]+?)[o0Q©®]([A-Za-z0-9-]+\.[A-Za-z.]{2,})", compact)
    if match:
        return f"{match.group(1)}@{match.group(2)}".lower()
    return None


def _phones(text: str, region: str) -> list[str]:
    found = []
    for match in _PHONE.finditer(text):
        raw = match.group(0)
        if len(_DIGITS.findall(raw)) < 7:
            continue
        try:
            found.append(crmkit.normalise_phone(raw, region))
        except ValueError:
            continue
    return found


#: A Chinese label OCR misread (网址 as 细址): a few characters, no Latin, maybe a colon.
_MISREAD_LABEL = re.compile(r"^[^\x00-\x7f]{1,4}\s*[:：]?\s*")


def _is_web_line(text: str) -> bool:
    """Whether an unlabelled line is a web address, alone or after a misread Chinese label
    (``细址www.acme.com.tw``)."""
    compact = text.replace(" ", "")
    return bool(_DOMAIN.fullmatch(compact) or _DOMAIN.fullmatch(_MISREAD_LABEL.sub("", compact)))


#: A WeChat ID as WeChat allows it: 6 to 20 letters, digits, ``_`` and ``-``, starting
#: with a letter (older IDs and phone-number IDs are let through at a lower confidence).
_WECHAT_ID = re.compile(r"[A-Za-z][-_A-Za-z0-9]{5,19}")
_LINKEDIN_URL = re.compile(
    r"(?:https?:/+)?(?:[a-z]{2,3}\.|www\.)?[l1]inked[il1]n\.com/+(?P<path>[^?#\s]*)",
    re.IGNORECASE,
)
#: A LinkedIn address anywhere in a line (OCR reads ``linkedin`` as ``1inkedin`` or
#: ``linkedln``).
_LINKEDIN_IN_TEXT = re.compile(r"[l1]inked[il1]n\.com/", re.IGNORECASE)
_LINKEDIN_HANDLE = re.compile(r"[\w][\w-]{1,99}")


def normalise_linkedin(text: str) -> str | None:
    """A LinkedIn profile as ``https://www.linkedin.com/in/HANDLE`` (or ``/company/NAME``,
    any path the card prints), from a URL with or without scheme and ``www.``, or from a
    bare handle (``lina-wang``); spaces OCR put in are dropped and the address is written in
    lower case (LinkedIn's are case-insensitive). ``None`` when it is neither."""
    found = _LINKEDIN_URL.search(text.replace(" ", "").strip(".,;:|"))  # (after a glued label)
    if found:
        path = repair_handle(found.group("path").strip("/")).lower()
        path = re.sub(r"(?<=[a-z]l)1(?=-|$)", "l", path)  # "james-hal1-407": a name in ll
        return f"https://www.linkedin.com/{path}" if path else None
    handle = text.strip(" .,;:|").lstrip("@")
    if handle.lower().startswith("in/"):
        handle = handle[3:].strip()
    if _LINKEDIN_HANDLE.fullmatch(handle):
        return f"https://www.linkedin.com/in/{repair_handle(handle).lower()}"
    return None


def repair_handle(text: str) -> str:
    """A handle with OCR's ``1`` for ``l`` put back where a digit cannot be: first before a
    letter (WeChat IDs start with a letter) and between letters (``thomas-hal1-6``,
    ``t1in66``, ``jun_1in72``)."""
    return re.sub(r"(?<=[A-Za-z_.\-/])1(?=[A-Za-z])|^1(?=[A-Za-z])", "l", text)


def repair_latin_name(text: str) -> str:
    """A Latin name with OCR's ``1`` for ``l`` and ``0`` for ``o`` put back (``Emily Ha11``,
    ``James Mitchel1``): a word that starts with a letter has no digits in a name."""
    return re.sub(
        r"\b[A-Za-z][A-Za-z01'.-]*\b",
        lambda m: m.group(0).replace("1", "l").replace("0", "o"),
        text,
    )


def _name_score(text: str) -> float:
    """How much a line looks like a person's name (0: not at all)."""
    compact = text.replace(" ", "")
    if _HAN.search(compact):
        if not 2 <= len(compact) <= 4 or not all(_HAN.match(ch) for ch in compact):
            return 0.0
        if compact.startswith(_COMPOUND_SURNAMES) or compact[0] in _SURNAMES:
            return 0.95 if len(compact) <= 3 else 0.8
        return 0.3
    words = text.split()
    if not 2 <= len(words) <= 4 or any(not w[0].isupper() for w in words if w):
        return 0.0
    if not all(re.fullmatch(r"[A-Za-z][A-Za-z'.-]*", w) for w in words):
        return 0.0
    return 0.92


# -- addresses ---------------------------------------------------------------------------

#: The districts (區) of Hong Kong and of Taiwan's cities, by the city that comes before them
#: in an address: an address names its district right after its city, and a district read
#: one character wrong (信羲區 for 信義區, 戳塘區 for 觀塘區, 灣仔畫 for 灣仔區) or short of
#: one (塘區) is one of these. (Taiwan's townships, 鄉/鎮/市, are not listed: a card that
#: prints one is left as read.)
_HK_DISTRICTS = _words(
    """
    中西區 灣仔區 東區 南區 油尖旺區 深水埗區 九龍城區 黃大仙區 觀塘區 荃灣區 屯門區 元朗區 北區
    大埔區 西貢區 沙田區 葵青區 離島區
    """
)
_TW_DISTRICTS: dict[str, tuple[str, ...]] = {
    "臺北市": _words(
        "中正區 大同區 中山區 松山區 大安區 萬華區 信義區 士林區 北投區 內湖區 南港區 文山區"
    ),
    "新北市": _words(
        """
        板橋區 三重區 中和區 永和區 新莊區 新店區 樹林區 鶯歌區 三峽區 淡水區 汐止區 瑞芳區
        土城區 蘆洲區 五股區 泰山區 林口區 深坑區 石碇區 坪林區 三芝區 石門區 八里區 平溪區
        雙溪區 貢寮區 金山區 萬里區 烏來區
        """
    ),
    "桃園市": _words(
        "桃園區 中壢區 大溪區 楊梅區 蘆竹區 大園區 龜山區 八德區 龍潭區 平鎮區 新屋區 觀音區 復興區"
    ),
    "臺中市": _words(
        """
        中區 東區 南區 西區 北區 西屯區 南屯區 北屯區 豐原區 東勢區 大甲區 清水區 沙鹿區 梧棲區
        后里區 神岡區 潭子區 大雅區 新社區 石岡區 外埔區 大安區 烏日區 大肚區 龍井區 霧峰區
        太平區 大里區 和平區
        """
    ),
    "臺南市": _words(
        """
        中西區 東區 南區 北區 安平區 安南區 永康區 歸仁區 新化區 左鎮區 玉井區 楠西區 南化區
        仁德區 關廟區 龍崎區 官田區 麻豆區 佳里區 西港區 七股區 將軍區 學甲區 北門區 新營區
        後壁區 白河區 東山區 六甲區 下營區 柳營區 鹽水區 善化區 大內區 山上區 新市區 安定區
        """
    ),
    "高雄市": _words(
        """
        新興區 前金區 苓雅區 鹽埕區 鼓山區 旗津區 前鎮區 三民區 楠梓區 小港區 左營區 仁武區
        大社區 岡山區 路竹區 阿蓮區 田寮區 燕巢區 橋頭區 梓官區 彌陀區 永安區 湖內區 鳳山區
        大寮區 林園區 鳥松區 大樹區 旗山區 美濃區 六龜區 內門區 杉林區 甲仙區 桃源區 那瑪夏區
        茂林區 茄萣區
        """
    ),
    "基隆市": _words("仁愛區 信義區 中正區 中山區 安樂區 暖暖區 七堵區"),
    "新竹市": _words("東區 北區 香山區"),
    "嘉義市": _words("東區 西區"),
}
_DISTRICTS_AFTER: dict[str, tuple[str, ...]] = {
    **{city.replace("臺", "台"): names for city, names in _TW_DISTRICTS.items()},
    **_TW_DISTRICTS,
    # Hong Kong addresses name the territory, then maybe the area, then the district
    **dict.fromkeys(("香港", "九龍", "新界", "香港島"), _HK_DISTRICTS),
}
_DISTRICT_CITY = re.compile(
    "|".join(sorted(map(re.escape, _DISTRICTS_AFTER), key=len, reverse=True))
)


#: Characters PP-OCR answers for 區 at the end of a district (畫 and 画, 匡, 巨).
_QU_LOOKALIKES = "畫画匡匠巨臣医"


def _district_slip(read: str, name: str) -> bool:
    """Whether ``read`` is the district ``name`` with one character misread or dropped. Its
    final 區 only counts as misread when read as a look-alike, and never as dropped: Hong
    Kong addresses often leave it out (香港灣仔告士打道)."""
    if len(read) == len(name):
        slips = [i for i, (a, b) in enumerate(zip(read, name, strict=True)) if a != b]
        return len(slips) == 1 and (slips[0] < len(name) - 1 or read[-1] in _QU_LOOKALIKES)
    return len(read) == len(name) - 1 and any(
        name[:i] + name[i + 1 :] == read for i in range(len(name) - 1)
    )


def repair_district(address: str) -> str:
    """A Hong Kong or Taiwan address whose district, right after its city, is one OCR slip
    away from exactly one of that city's districts gets the district back (``台北市信羲區``
    → ``台北市信義區``, ``香港九龍塘區`` → ``香港九龍觀塘區``, ``香港灣仔畫`` → ``香港灣仔區``);
    the same misreading later in the line, a street named after its district (``戳塘道``),
    is repaired with it. A district read right, or a slot that could be two districts, is
    left as read."""
    for city in _DISTRICT_CITY.finditer(address):
        names = _DISTRICTS_AFTER[city.group(0)]
        rest = address[city.end() :]
        if rest.startswith(names):
            return address
        if _DISTRICT_CITY.match(rest):
            continue  # 香港九龍: the district comes after the area
        found = {
            (name, size)
            for name in names
            for size in (len(name), len(name) - 1)
            if len(name) >= 3 and _district_slip(rest[:size], name)
        }
        if len({name for name, _ in found}) != 1:
            continue
        name, size = max(found, key=lambda item: item[1])  # a misreading before a drop
        read, rest = rest[:size], rest[size:]
        if size == len(name) and read[-1] == name[-1]:
            rest = rest.replace(read[:-1], name[:-1])  # 戳塘區戳塘道: 觀塘道 too
        return address[: city.end()] + name + rest
    return address


#: Words of Chinese addresses with a character PP-OCR confuses with a look-alike: 園 ("park")
#: read as 圓 or 國 in 科學園 / 工業園 / 園區 and their Simplified forms.
_ADDRESS_LOOKALIKES = (
    (re.compile(r"(?<=科學|工業|產業|軟體|科技|物流)[圓國](?!際)|圓(?=區)"), "園"),
    (re.compile(r"(?<=科学|工业|产业|软件|科技|物流)[圆国](?!际)|圆(?=区)"), "园"),
)


def repair_chinese_address(address: str) -> str:
    """A Chinese address with its district (:func:`repair_district`) and park words
    (:data:`_ADDRESS_LOOKALIKES`) as printed."""
    for pattern, word in _ADDRESS_LOOKALIKES:
        address = pattern.sub(word, address)
    return repair_district(address)


#: Country names as Latin addresses end with them, by phone region.
_COUNTRIES: dict[str, tuple[str, ...]] = {
    "US": ("USA", "United States", "U.S.A."),
    "CA": ("Canada",),
    "GB": ("United Kingdom", "UK", "England"),
    "DE": ("Germany", "Deutschland"),
    "FR": ("France",),
    "SG": ("Singapore",),
    "CN": ("China", "P.R. China", "PRC"),
    "HK": ("Hong Kong", "Hong Kong SAR"),
    "TW": ("Taiwan",),
    "JP": ("Japan",),
    "KR": ("Korea", "South Korea"),
    "AU": ("Australia",),
    "NL": ("Netherlands", "The Netherlands"),
    "CH": ("Switzerland",),
    "IT": ("Italy",),
    "ES": ("Spain",),
    "MY": ("Malaysia",),
    "TH": ("Thailand",),
    "VN": ("Vietnam",),
}
_ALL_COUNTRIES = {
    re.sub(r"[^a-z]", "", name.lower()) for names in _COUNTRIES.values() for name in names
}
#: Words of Latin addresses OCR drops a letter from (``Suit``, ``Stret``, ``Avnue``).
_LATIN_ADDRESS_WORDS = _words(
    "Suite Street Avenue Boulevard Floor Building Tower Plaza Centre Center Square Highway"
    " Drive Road Lane"
)


def _subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(ch in letters for ch in short)


def repair_latin_address(address: str, regions: Sequence[str]) -> str:
    """A Latin address with the letters OCR dropped put back where the card says what they
    were: its country (the last part, when it is not a country's name), from the card's
    phone numbers' country, when what was read is that name with letters left out (``SA``,
    ``nited Kingdom``, ``ingapr``); Singapore's city, which is the country's name; and an
    address word one letter short (``Suit 1629``, ``Stret``)."""
    head, comma, last = address.rpartition(",")
    plain = re.sub(r"[^a-z]", "", last.lower())
    if comma and plain and plain not in _ALL_COUNTRIES and not _DIGITS.search(last):
        for region in regions:
            names = _COUNTRIES.get(region, ())
            # two letters or one are what is left of an abbreviation (SA, UA, A of USA), not of
            # a name ("Des Moines, IA" is no "United States")
            fitting = [
                name
                for name in names
                if _subsequence(plain, name.lower()) and (len(plain) > 2 or len(name) <= 3)
            ]
            if fitting:
                address = f"{head}, {fitting[0]}"
                if region == "SG":  # "Singapore 018989, Singapore": the city is the country
                    address = re.sub(
                        r"(?<=, )([A-Za-z]{4,9})(?= \d{6},)",
                        lambda m: (
                            "Singapore"
                            if _subsequence(m.group(1).lower(), "singapore")
                            else m.group(1)
                        ),
                        address,
                    )
                break

    def word(match: re.Match[str]) -> str:
        read = match.group(0)
        if read.lower() in (w.lower() for w in _LATIN_ADDRESS_WORDS):
            return read
        fitting = [
            w
            for w in _LATIN_ADDRESS_WORDS
            if len(w) == len(read) + 1
            and (
                read == w[1:]  # its capital lost: "treet"
                or (read[0].isupper() and any(w[:i] + w[i + 1 :] == read for i in range(len(w))))
            )
        ]
        return fitting[0] if len(fitting) == 1 else read

    return re.sub(r"\b[A-Za-z]{4,}\b", word, address)


def parse_card(lines: Sequence[crmkit.OcrLine], region: str = "CN") -> dict[str, crmkit.CardField]:
    """The card fields read from OCR ``lines``."""
    fields: dict[str, crmkit.CardField] = {}
    ordered = reading_order(lines)
    items: list[tuple[str, float, float, str | None]] = []  # text, confidence, height, label
    for line in ordered:
        text = normalise_line(line.text)
        if not text:
            continue
        label, text = split_label(text)
        items.append((text, line.confidence, line.height, label))

    if is_traditional([normalise_line(line.text) for line in ordered]):  # labels count too
        items = [(repair_traditional(text), c, h, label) for text, c, h, label in items]

    def put(name: str, value: str, confidence: float) -> None:
        value = value.strip(" ,;:|")
        if value and (name not in fields or fields[name].confidence < confidence):
            fields[name] = crmkit.CardField(value, round(min(confidence, 1.0), 3), SOURCE)

    domains = []
    for text, _, _, label in items:
        if "@" not in text and label in (None, "website"):
            for match in _DOMAIN.finditer(text):
                host = re.sub(r"^(?:https?://)?(?:www\.)?", "", match.group(0), flags=re.I)
                domains.append(host.split("/")[0])
    used: set[int] = set()
    address_parts: list[tuple[int, str, float]] = []
    for index, (text, confidence, _, label) in enumerate(items):
        if label == "wechat":
            handle = repair_handle(text.replace(" ", ""))
            put("wechat", handle, confidence * (1.0 if _WECHAT_ID.fullmatch(handle) else 0.7))
        elif label == "linkedin" or _LINKEDIN_IN_TEXT.search(text.replace(" ", "")):
            profile = normalise_linkedin(text)
            if profile:
                put("linkedin", profile, confidence)
            else:
                put("linkedin", text.replace(" ", ""), confidence * 0.7)
        elif label == "email" or "@" in text:
            email = repair_email(text, domains)
            if email:
                put("email", email, confidence * (1.0 if "@" in text else 0.85))
        elif label == "website" or (label is None and _is_web_line(text)):
            site = _DOMAIN.search(text.replace(" ", ""))
            if site:
                put(
                    "website",
                    repair_domain(site.group(0).lower()),
                    confidence * (1.0 if label else 0.9),
                )
        elif label in ("mobile", "office", "fax"):
            for number in _phones(text, region):
                kind = label if label != "office" else phone_kind(number)
                put("office" if kind == "either" else kind, number, confidence)
        elif label == "address":
            address_parts.append(
                (index, text if _HAN.search(text) else repair_latin(text), confidence)
            )
        elif label is None and len(_DIGITS.findall(text)) >= 7 and not _ADDRESS_HAN.search(text):
            numbers = _phones(text, region)
            for number in numbers:
                kind = phone_kind(number)
                if kind == "either":  # a North American number: the first is the mobile
                    kind = "mobile" if "mobile" not in fields else "office"
                put(kind, number, confidence * 0.9)
            if not numbers:
                continue
        elif label is None:
            continue
        used.add(index)
    # Unlabelled text: company, title, department, address, name.
    candidates = [(i, item) for i, item in enumerate(items) if i not in used]
    names: list[tuple[float, int, str, float]] = []
    for index, (text, confidence, height, _) in candidates:
        han = bool(_HAN.search(text))
        if (
            han
            and any(word in text for word in _COMPANY_WORDS)
            and not _ADDRESS_HAN.search(text.replace("有限公司", "").replace("公司", "")[-3:])
        ):
            put("company", text.replace(" ", ""), confidence * 0.95)
        elif not han and _COMPANY_LATIN.search(split_latin_words(text)):
            put("company_latin", split_latin_words(text), confidence * 0.9)
        elif _DEPARTMENT.search(text) and not _TITLE_LATIN.search(text):
            put("department", text if not han else text.replace(" ", ""), confidence * 0.85)
        elif (han and any(word in text for word in _TITLE_WORDS) and len(text) <= 16) or (
            not han and _TITLE_LATIN.search(split_latin_words(text))
        ):
            title = text.replace(" ", "") if han else split_latin_words(text)
            put("title" if han or "title" not in fields else "title_latin", title, confidence * 0.9)
        elif (han and _ADDRESS_HAN.search(text) and (len(text) >= 6)) or (
            not han
            and (_ADDRESS_LATIN.search(repair_latin(text)) or _COUNTRY_END.search(text))
            and _DIGITS.search(text)
        ):
            address_parts.append((index, text if han else repair_latin(text), confidence))
        else:
            if not han:
                text = repair_latin_name(split_latin_words(text))
            score = _name_score(text)
            if score:
                names.append((score * height, index, text, confidence * score))
    if address_parts:
        address_parts.sort()
        han = any(_HAN.search(text) for _, text, _ in address_parts)
        joined = ("" if han else ", ").join(
            text.replace(" ", "") if han else text for _, text, _ in address_parts
        )
        joined = (
            repair_chinese_address(joined)
            if han
            else repair_latin_address(joined, _regions(fields))
        )
        put("address", joined, min(c for _, _, c in address_parts) * 0.9)
    han_names = [n for n in names if _HAN.search(n[2])]
    latin_names = [n for n in names if not _HAN.search(n[2])]
    if han_names:
        best = max(han_names)
        put("full_name", best[2].replace(" ", ""), best[3])
    if latin_names:
        best = max(latin_names)
        put("name_latin" if han_names else "full_name", split_latin_words(best[2]), best[3])
    if "company" not in fields and "company_latin" in fields:
        fields["company"] = fields.pop("company_latin")
    if "title" not in fields and "title_latin" in fields:
        fields["title"] = fields.pop("title_latin")
    _split_name(fields)
    _check_name_against_pinyin(fields)
    return fields


def _check_name_against_pinyin(fields: dict[str, crmkit.CardField]) -> None:
    """A Chinese name printed with its pinyin (``宋傑宏`` / ``Jiehong Song``) is checked
    against it: when the surname's pinyin is there but the given name's is not, OCR has lost
    or misread a character (PP-OCR has no 傑), and the name is put up for review."""
    name, latin = fields.get("full_name"), fields.get("name_latin")
    if name is None or latin is None or not _HAN.search(name.value):
        return
    from pypinyin import lazy_pinyin

    size = 2 if name.value.startswith(_COMPOUND_SURNAMES) else 1
    surname = "".join(lazy_pinyin(name.value[:size]))
    given = "".join(lazy_pinyin(name.value[size:]))
    words = [word.lower() for word in re.findall(r"[A-Za-z]+", latin.value)]
    if surname not in words:
        return  # not pinyin (Wade-Giles, an English name): nothing to compare
    others = "".join(word for word in words if word != surname)
    if others and others != given:
        fields["full_name"] = crmkit.CardField(name.value, min(name.confidence, 0.5), name.source)


def _split_name(fields: dict[str, crmkit.CardField]) -> None:
    """Family and given names from the full name (Chinese: the surname first, compound
    surnames known; Latin: the last word is the family name, unless written in capitals
    first as in ``ZHANG Wei``)."""
    full = fields.get("full_name")
    if full is None or "family_name" in fields:
        return
    name = full.value
    if _HAN.search(name):
        size = 2 if name.startswith(_COMPOUND_SURNAMES) else 1
        family, given = name[:size], name[size:]
    else:
        words = name.split()
        if len(words) < 2:
            return
        if words[0].isupper() and not words[-1].isupper():
            family, given = words[0].title(), " ".join(words[1:])
        else:
            family, given = words[-1], " ".join(words[:-1])
    fields["family_name"] = crmkit.CardField(family, full.confidence, full.source)
    fields["given_name"] = crmkit.CardField(given, full.confidence, full.source)
