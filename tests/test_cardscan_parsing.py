"""The card plugin's readers without a database: vCard/MeCard, the OCR-line parser and its
repairs, image loading and its refusals, deskew, and the sample-card generator."""

from __future__ import annotations

import io
import random
import zlib

import pytest
from crmkit_cardscan import images
from crmkit_cardscan.cardset import generate, make_person, render_card
from crmkit_cardscan.parsing import (
    _DISTRICTS_AFTER,
    normalise_line,
    normalise_linkedin,
    parse_card,
    reading_order,
    repair_chinese_address,
    repair_email,
    repair_latin,
    split_label,
    split_latin_words,
)
from crmkit_cardscan.vcard import read_contact_payload
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import crmkit

LIMITS = {"max_bytes": 20 * 2**20, "max_pixels": 50_000_000}


def lines(*texts: str, height: float = 30.0) -> list[crmkit.OcrLine]:
    """OCR lines stacked top to bottom, as an engine would report them."""
    return [
        crmkit.OcrLine(text, (10, 10 + i * 50, 400, 10 + i * 50 + height), 0.95)
        for i, text in enumerate(texts)
    ]


def values(fields: dict[str, crmkit.CardField]) -> dict[str, str]:
    return {name: field.value for name, field in fields.items()}


# -- QR payloads -----------------------------------------------------------------------


def test_vcard_21_reads_bare_types_and_keeps_the_extension() -> None:
    text = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Zhang;Wei\r\nFN:Zhang Wei\r\n"
        "TEL;CELL:+86 138 1234 5678\r\nTEL;WORK;VOICE:010-6512 3456 ext. 8001\r\n"
        "EMAIL;INTERNET:Wei@Example.COM\r\nORG:Cobalt Medical;Sales\r\nTITLE:Sales Director\r\n"
        "END:VCARD"
    )
    found = values(read_contact_payload(text, "CN"))
    assert found["full_name"] == "Zhang Wei"
    assert (found["family_name"], found["given_name"]) == ("Zhang", "Wei")
    assert found["mobile"] == "+8613812345678"
    assert found["office"] == "+861065123456;ext=8001"
    assert found["email"] == "wei@example.com"
    assert (found["company"], found["department"]) == ("Cobalt Medical", "Sales")


def test_vcard_30_chinese_address_reads_from_province_to_room() -> None:
    text = (
        "BEGIN:VCARD\nVERSION:3.0\nN:张;伟;;;\nFN:张伟\nORG:深圳市钴蓝医疗器械有限公司\n"
        "TEL;TYPE=WORK,FAX:0755-8888 1234\n"
        "ADR;TYPE=WORK:;;科技园南路88号A座1201室;深圳市;广东省;518057;中国\nEND:VCARD"
    )
    found = values(read_contact_payload(text, "CN"))
    assert found["address"] == "广东省深圳市科技园南路88号A座1201室"
    assert found["fax"] == "+8675588881234"
    assert found["family_name"] == "张"


def test_vcard_40_tel_uri_and_linkedin_url() -> None:
    text = (
        "BEGIN:VCARD\nVERSION:4.0\nFN:Amy Hsieh\nN:Hsieh;Amy;;;\n"
        'TEL;VALUE=uri;TYPE="cell,voice":tel:+886-912-345-678\n'
        "URL:https://www.linkedin.com/in/amyhsieh\nEND:VCARD"
    )
    found = values(read_contact_payload(text, "CN"))
    assert found["mobile"] == "+886912345678"
    assert found["linkedin"] == "https://www.linkedin.com/in/amyhsieh"


def test_mecard_with_escaped_semicolon() -> None:
    text = r"MECARD:N:李,娜;TEL:13912345678;EMAIL:li.na@example.com;ORG:Acme\; Ltd;;"
    found = values(read_contact_payload(text, "CN"))
    assert found["full_name"] == "李娜"
    assert found["company"] == "Acme; Ltd"
    assert found["mobile"] == "+8613912345678"


def test_a_vcard_without_contact_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="no contact fields"):
        read_contact_payload("BEGIN:VCARD\nVERSION:3.0\nEND:VCARD", "CN")


# -- the parser and its repairs -------------------------------------------------------------


def test_labels_glued_to_values_and_full_width_colons() -> None:
    found = values(
        parse_card(
            lines(
                "深圳市钴蓝医疗器械有限公司",
                "张伟",
                "销售总监",
                "手机：+86 138 1234 5678",
                "电话：0755-8888 1234转8001",
                "Email:zhang.wei@cobalt-med.cn",
                "网址：www.cobalt-med.cn",
                "地址：广东省深圳市南山区科技园南路88号A座1201室",
            ),
            "CN",
        )
    )
    assert found["company"] == "深圳市钴蓝医疗器械有限公司"
    assert found["full_name"] == "张伟"
    assert found["title"] == "销售总监"
    assert found["mobile"] == "+8613812345678"
    assert found["office"] == "+8675588881234;ext=8001"
    assert found["email"] == "zhang.wei@cobalt-med.cn"
    assert found["website"] == "www.cobalt-med.cn"
    assert found["address"] == "广东省深圳市南山区科技园南路88号A座1201室"
    assert (found["family_name"], found["given_name"]) == ("张", "伟")


def test_dropped_latin_spaces_are_put_back() -> None:
    assert split_latin_words("CobaltMedical DevicesCo., Ltd.") == "Cobalt Medical Devices Co., Ltd."
    assert split_latin_words("HRSupervisor") == "HR Supervisor"
    assert split_latin_words("IBMers") == "IBMers"
    assert split_latin_words("Ronald McDonald") == "Ronald McDonald"


def test_an_at_sign_read_as_o_is_repaired_from_the_cards_domain() -> None:
    assert repair_email("zhangweiocobalt-med.com", ["cobalt-med.com"]) == "zhangwei@cobalt-med.com"
    assert repair_email("tom.lio0acme.io", ["acme.io"]) == "tom.lio@acme.io"
    found = values(parse_card(lines("E: amy.linoacme-tech.com", "W: www.acme-tech.com"), "CN"))
    assert found["email"] == "amy.lin@acme-tech.com"


def test_an_english_card() -> None:
    found = values(
        parse_card(
            lines(
                "Cobalt Medical Devices Inc.",
                "Olivia Clark",
                "Senior Engineer",
                "M: +1 415 555 2671",
                "E: olivia@cobalt-med.io",
                "Suite 400, 1200 Market Street, San Francisco, CA 94103, USA",
            ),
            "US",
        )
    )
    assert found["full_name"] == "Olivia Clark"
    assert found["company"] == "Cobalt Medical Devices Inc."
    assert found["title"] == "Senior Engineer"
    assert found["address"].startswith("Suite 400, 1200 Market Street")
    assert (found["family_name"], found["given_name"]) == ("Clark", "Olivia")


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("地址 Add:四川省成都市高新区", "address", "四川省成都市高新区"),
        ("手机 Mobile: 138 1234 5678", "mobile", "138 1234 5678"),
        ("手機13812345678", "mobile", "13812345678"),
        ("電話：(02) 2345 6789", "office", "(02) 2345 6789"),
        ("M: +852 9123 4567", "mobile", "+852 9123 4567"),
        ("电话销售经理", None, "电话销售经理"),
        ("Add Value Trading Co.", None, "Add Value Trading Co."),
        (":www.acme.com", None, "www.acme.com"),
    ],
)
def test_labels_are_split_from_their_values(text: str, field: str | None, value: str) -> None:
    assert split_label(text) == (field, value)


def test_a_traditional_card_gets_its_simplified_readings_back() -> None:
    # PP-OCR reads 號 as 号 and 樓 as 楼, and has no 恆 at all: the card's script decides
    found = values(
        parse_card(
            lines(
                "恒達物流有限公司",
                "鄭娟",
                "客戶經理",
                "手機：+852 6549 5013",
                "地址：香港九龍觀塘區開源道163号34楼D室",
            ),
            "HK",
        )
    )
    assert found["company"] == "恆達物流有限公司"
    assert found["address"] == "香港九龍觀塘區開源道163號34樓D室"


def test_a_traditional_card_gets_the_words_the_recogniser_cannot_read() -> None:
    # PP-OCRv4 has no 軟, 項 or 採: 軟體 comes out as 體, 項目 as 填目, 採購 as 摇購;
    # and it answers the Japanese forms 産 and 豊 for 產 and 豐
    found = values(
        parse_card(
            lines("青松体有限公司", "鄭娟", "填目經理", "手機：+852 6549 5013", "瑞豊電子"), "HK"
        )
    )
    assert found["company"] == "青松軟體有限公司"
    assert found["title"] == "項目經理"
    card = lines("瑞豊産品有限公司", "陳明", "摇購主管", "電話：02-2345-6789")
    found = values(parse_card(card, "TW"))
    assert found["company"] == "瑞豐產品有限公司"
    assert found["title"] == "採購主管"


def test_other_words_ending_in_ti_keep_their_first_character() -> None:
    found = values(parse_card(lines("星河媒體有限公司", "鄭娟", "手機：+852 6549 5013"), "HK"))
    assert found["company"] == "星河媒體有限公司"


def test_a_card_read_as_simplified_is_traditional_by_its_hong_kong_number() -> None:
    # a badly photographed Hong Kong card: more characters came out Simplified than not
    card = ["星河貿易有限公司", "鄭勇", "地址：香港湾仔区港湾道285号9楼"]
    assert values(parse_card(lines(*card), "HK"))["address"] == "香港湾仔区港湾道285号9楼"
    found = values(parse_card(lines(*card, "手機：+852 5442 4315"), "HK"))
    assert found["address"] == "香港灣仔區港灣道285號9樓"


def test_a_web_address_after_a_misread_label_is_the_web_site() -> None:
    found = values(parse_card(lines("華信科技有限公司", "羅英", "细址：www.huaxin-tech.net"), "TW"))
    assert found["website"] == "www.huaxin-tech.net"


@pytest.mark.parametrize(
    ("text", "domains", "email"),
    [
        ("xiayu.1uo@tiancheng-mach.cn", [], "xiayu.luo@tiancheng-mach.cn"),
        ("csong@go1denbridge-soft.com", [], "csong@goldenbridge-soft.com"),
        ("jobs@51job.com", [], "jobs@51job.com"),
        ("li1990@163.com", [], "li1990@163.com"),
    ],
)
def test_digits_read_for_letters_in_an_email_are_put_back(
    text: str, domains: list[str], email: str
) -> None:
    assert repair_email(text, domains) == email


def test_digits_read_for_letters_in_a_web_site_are_put_back() -> None:
    found = values(parse_card(lines("Golden Bridge Ltd", "www.go1denbridge-soft.com"), "CN"))
    assert found["website"] == "www.goldenbridge-soft.com"


def test_a_simplified_card_stays_simplified() -> None:
    found = values(
        parse_card(lines("恒达物流有限公司", "郑娟", "地址：广东省深圳市南山区88号"), "CN")
    )
    assert found["company"] == "恒达物流有限公司"
    assert found["address"] == "广东省深圳市南山区88号"


def test_a_latin_address_gets_its_spaces_and_letters_back() -> None:
    assert repair_latin("Suite1645,1254CityR0ad,London") == "Suite 1645, 1254 City Road, London"


def test_a_number_glued_to_a_latin_word_stays_a_number() -> None:
    # 0 and 1 between letters are o and l, but not a room number read without its space
    assert repair_latin("Suite1101,88 Queensway") == "Suite 1101, 88 Queensway"
    assert repair_latin("F1oor 10") == "Floor 10"
    assert repair_latin("SanFrancisc0,CA94103") == "San Francisco, CA94103"
    assert repair_latin("London SW1A 2AA") == "London SW1A 2AA"  # a postcode, not "SWlA"


@pytest.mark.parametrize(
    ("read", "printed"),
    [
        ("台北市信羲區松仁路100號", "台北市信義區松仁路100號"),  # 義 read as 羲
        ("新北市板稿區文化路一段188號", "新北市板橋區文化路一段188號"),
        ("香港九龍塘區巧明街100號", "香港九龍觀塘區巧明街100號"),  # 觀 dropped
        ("香港灣仔畫軒尼詩道1號", "香港灣仔區軒尼詩道1號"),  # 區 read as 畫
        ("香港新界沙日區沙日正街3號", "香港新界沙田區沙田正街3號"),  # the street too
        ("新竹科學國區力行路1號", "新竹科學園區力行路1號"),
        ("上海市浦东新区张江高科技圆区碧波路690号", "上海市浦东新区张江高科技园区碧波路690号"),
    ],
)
def test_a_misread_district_or_park_is_put_back(read: str, printed: str) -> None:
    assert values(parse_card(lines("地址：" + read), "CN"))["address"] == printed


@pytest.mark.parametrize(
    "address",
    [
        "香港灣仔軒尼詩道1號",  # Hong Kong addresses often leave out 區
        "香港九龍灣宏照道38號",  # 九龍灣 is an area, not a misread district
        "台中市束屯區文心路100號",  # 西屯, 南屯 or 北屯: left to the reader
        "深圳市南山區科技園南路88號",  # a mainland district (one slip from Taipei's 中山區)
        "香港科技國際大廈",
    ],
)
def test_an_address_that_is_no_misread_district_is_left_as_read(address: str) -> None:
    assert repair_chinese_address(address) == address


@given(
    st.sampled_from(sorted(_DISTRICTS_AFTER)),
    st.data(),
    st.text(alphabet="中山路道街東西南北一二三段巷弄", min_size=1, max_size=8),
    st.integers(1, 999),
)
def test_a_district_read_right_is_never_changed(
    city: str, data: st.DataObject, street: str, number: int
) -> None:
    district = data.draw(st.sampled_from(_DISTRICTS_AFTER[city]))
    address = f"{city}{district}{street}{number}號"
    assert repair_chinese_address(address) == address


@pytest.mark.parametrize(
    ("read", "phone", "printed"),
    [
        # OCR drops letters of small print: the card's phone numbers say which country
        ("350 Fifth Avenue, New York, NY 10118, SA", "+1 212 736 3100", "USA"),
        ("10 Downing Street, London SW1A 2AA, nited Kingdom", "+44 20 7925 0918", "Kingdom"),
        ("1 Raffles Place, ingapore 048616, Singapre", "+65 6536 7000", "Singapore 048616"),
        ("221 Baker Stret, London NW1 6XE", "+44 20 7224 3688", "221 Baker Street"),
        ("Suit 2100, 100 King Street West, Toronto, ON M5X 1A9, anada", "+1 416 555 0100", ""),
    ],
)
def test_letters_dropped_from_a_latin_address_are_put_back(
    read: str, phone: str, printed: str
) -> None:
    found = values(parse_card(lines("Tel: " + phone, "Address: " + read), "US"))
    assert printed in found["address"]
    if "anada" in read:
        assert found["address"] == "Suite 2100, 100 King Street West, Toronto, ON M5X 1A9, Canada"


@pytest.mark.parametrize(
    "address", ["500 Main Street, Austin", "666 Walnut Street, Des Moines, IA", "1 Main Road, UK"]
)
def test_a_latin_address_ending_in_a_city_or_state_keeps_it(address: str) -> None:
    found = values(parse_card(lines("Tel: +1 512 555 0100", "Address: " + address), "US"))
    assert found["address"] == address


def test_digits_read_for_letters_in_a_latin_name_are_put_back() -> None:
    found = values(parse_card(lines("Paul A11en", "Sales Manager", "M: +1 415 555 2671"), "US"))
    assert found["full_name"] == "Paul Allen"


def test_a_director_read_as_zong_meng_is_a_director() -> None:
    # PP-OCRv4 has no 監: 總監 comes out as 總 or as 總盟
    found = values(parse_card(lines("鄭娟", "行銷總盟", "手機：+886 912 345 678"), "TW"))
    assert found["title"] == "行銷總監"


def test_a_hong_kong_number_printed_without_spaces_says_traditional() -> None:
    card = ["星河貿易有限公司", "鄭勇", "地址：香港湾仔区港湾道285号9楼", "手機：+85254424315"]
    assert values(parse_card(lines(*card), "HK"))["address"] == "香港灣仔區港灣道285號9樓"


def test_reading_order_puts_a_row_left_to_right() -> None:
    right = crmkit.OcrLine("B", (300, 100, 400, 130), 1.0)
    left = crmkit.OcrLine("A", (10, 104, 100, 134), 1.0)
    top = crmkit.OcrLine("T", (10, 10, 100, 40), 1.0)
    assert [line.text for line in reading_order([right, left, top])] == ["T", "A", "B"]


@given(st.lists(st.text(max_size=60), max_size=12))
@settings(max_examples=200, deadline=None)
def test_the_parser_takes_any_text(texts: list[str]) -> None:
    fields = parse_card(lines(*texts), "CN")
    for field in fields.values():
        assert 0.0 <= field.confidence <= 1.0
        assert field.value == field.value.strip()


@given(st.text(max_size=80))
def test_normalising_a_line_is_idempotent(text: str) -> None:
    assert normalise_line(normalise_line(text)) == normalise_line(text)


@given(st.text(alphabet="abcdefghijklmno0.@-", max_size=40))
def test_a_repaired_email_has_one_at_sign(text: str) -> None:
    email = repair_email(text, ["example.com"])
    assert email is None or email.count("@") == 1


# -- images ----------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(images.CardError, match=r"card.jpg: the file is empty \(0 bytes\)"):
        images.load_pages(b"", "card.jpg", **LIMITS)


def test_not_an_image_is_refused() -> None:
    with pytest.raises(images.CardError, match=r"notes\.txt: not an image or PDF"):
        images.load_pages(b"hello, this is text", "notes.txt", **LIMITS)


def test_a_truncated_image_is_refused() -> None:
    data = _png(300, 200)
    with pytest.raises(images.CardError, match="truncated or corrupt"):
        images.load_pages(data[: len(data) // 2], "cut.png", **LIMITS)


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    # a small PNG whose header announces 40 000 x 40 000 pixels (with a valid checksum)
    small = _png(8, 8)
    header = b"IHDR" + (40_000).to_bytes(4, "big") * 2 + small[24:29]
    data = small[:12] + header + zlib.crc32(header).to_bytes(4, "big") + small[33:]
    with pytest.raises(images.CardError, match=r"bomb\.png: the image is too large to decode"):
        images.load_pages(data, "bomb.png", **LIMITS)


def test_a_file_over_the_size_limit_is_refused() -> None:
    with pytest.raises(images.CardError, match=r"the limit is 1 MiB \(setting max_upload_mb\)"):
        images.load_pages(b"\xff" * (2 * 2**20), "big.jpg", max_bytes=2**20, max_pixels=10**8)


def test_an_unsupported_format_is_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50)).save(buffer, format="GIF")
    with pytest.raises(images.CardError, match="GIF images are not supported"):
        images.load_pages(buffer.getvalue(), "anim.gif", **LIMITS)


def test_pdf_pages_become_cards() -> None:
    buffer = io.BytesIO()
    first, second = Image.new("RGB", (350, 200), "white"), Image.new("RGB", (350, 200), "gray")
    first.save(buffer, format="PDF", save_all=True, append_images=[second])
    pages = images.load_pages(buffer.getvalue(), "cards.pdf", **LIMITS)
    assert len(pages) == 2
    assert all(page.mode == "RGB" for page in pages)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (300, 100), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    (page,) = images.load_pages(buffer.getvalue(), "phone.jpg", **LIMITS)
    assert page.size == (100, 300)


@pytest.mark.parametrize("angle", [-4.0, 3.0])
def test_deskew_finds_the_rotation_of_a_card(angle: float) -> None:
    rng = random.Random(7)
    card = render_card(rng, make_person(rng, "sc") | {"qr_share": 0.0})
    turned = card.rotate(angle, expand=True, fillcolor="white")
    assert images.skew_angle(turned) == pytest.approx(-angle, abs=1.0)


def test_the_card_generator_is_deterministic() -> None:
    ((_, first),) = list(generate(3, 1))
    ((_, again),) = list(generate(3, 1))
    assert first == again
    assert first["full_name"]


def test_a_chinese_name_that_disagrees_with_its_pinyin_is_put_up_for_review() -> None:
    lost = parse_card(lines("宋宏", "Jiehong Song", "手机：13812345678"), "CN")
    assert lost["full_name"].value == "宋宏"
    assert lost["full_name"].confidence <= 0.5
    whole = parse_card(lines("宋傑宏", "Jiehong Song", "手机：13812345678"), "CN")
    assert whole["full_name"].confidence > 0.8
    english = parse_card(lines("謝美玲", "Amy Hsieh", "手机：13812345678"), "CN")
    assert english["full_name"].confidence > 0.8


# -- social handles: WeChat ID and LinkedIn ---------------------------------------------------

#: Every way the parser must take a WeChat label: Chinese, English, bilingual; colon, full-width
#: colon, space, or glued to the ID.
WECHAT_LABELS = [
    "微信号：",
    "微信号:",
    "微信号 ",
    "微信号",
    "微信號：",
    "微信：",
    "微信 ",
    "微信",
    "WeChat ID: ",
    "WeChat ID：",
    "WeChat ID:",
    "WeChat ID ",
    "WeChatID:",
    "WeChat: ",
    "WeChat:",
    "WeChat：",
    "Wechat: ",
    "WECHAT: ",
    "wechat ",
    "WeChat ",
    "WeChat No.: ",
    "微信 WeChat: ",
    "微信号 WeChat ID：",
    "微信WeChat ",
]


@pytest.mark.parametrize("label", WECHAT_LABELS)
def test_a_wechat_id_is_read_under_every_label(label: str) -> None:
    assert split_label(f"{label}wangwei88") == ("wechat", "wangwei88")
    found = parse_card(lines("王伟", f"{label}wangwei88"), "CN")
    assert found["wechat"].value == "wangwei88"
    assert found["wechat"].confidence >= 0.9
    assert "address" not in found


def test_a_wechat_id_is_never_taken_for_the_address() -> None:
    # 号 ends Chinese addresses: 微信号 made the ID an address, confidently (0.855)
    found = parse_card(lines("地址：广东省深圳市南山区科技园南路88号", "微信号：wangwei88"), "CN")
    assert found["wechat"].value == "wangwei88"
    assert found["address"].value == "广东省深圳市南山区科技园南路88号"


def test_a_wechat_label_glued_to_the_id_by_ocr_is_split() -> None:
    assert split_label("WeChatxumingqiang37") == ("wechat", "xumingqiang37")
    assert split_label("Wechat Technologies") == (None, "Wechat Technologies")


def test_ocr_slips_in_a_wechat_id_are_put_back() -> None:
    # a WeChat ID starts with a letter: a leading 1 is an l; so is a 1 between letters
    assert values(parse_card(lines("WeChat: 1inwenjia20"), "CN"))["wechat"] == "linwenjia20"
    assert values(parse_card(lines("微信：t1in66"), "CN"))["wechat"] == "tlin66"


def test_an_odd_wechat_id_is_put_up_for_review() -> None:
    found = parse_card(lines("微信：王伟的微信"), "CN")
    assert found["wechat"].confidence < 0.8


@pytest.mark.parametrize(
    "text",
    [
        "LinkedIn: linkedin.com/in/lina",
        "LinkedIn：linkedin.com/in/lina",
        "LinkedIn linkedin.com/in/lina",
        "linkedin.com/in/lina",
        "www.linkedin.com/in/lina",
        "https://www.linkedin.com/in/lina/",
        "https://cn.linkedin.com/in/Lina",
        "领英：linkedin.com/in/lina",
        "領英：linkedin.com/in/lina",
        "领英 LinkedIn: linkedin.com/in/lina",
        "LinkedIn: lina",
        "LinkedIn: in/lina",
        "LinkedIn lina",
        # OCR reads the I of LinkedIn as l and its l as 1
        "Linkedln: linkedin.com/in/lina",
        "1inkedin.com/in/lina",
        "www.1inkedin.com/in/lina",
        "LinkedIn: linkedin.com/ in/lina",
    ],
)
def test_a_linkedin_profile_is_kept_whole(text: str) -> None:
    found = parse_card(lines("Lina Wang", text), "US")
    assert found["linkedin"].value == "https://www.linkedin.com/in/lina"
    assert found["linkedin"].confidence >= 0.9
    assert "website" not in found


@pytest.mark.parametrize(
    ("text", "profile"),
    [
        ("LinkedIn:1inkedin.com/in/james-hal1-407", "james-hall-407"),
        ("Linkedlnlinkedin.com/in/taoting-han-631", "taoting-han-631"),  # the label glued
        ("1inkedin.com/in/olivia-ne1son-948", "olivia-nelson-948"),
    ],
)
def test_ocr_slips_in_a_linkedin_profile_are_put_back(text: str, profile: str) -> None:
    found = values(parse_card(lines(text), "US"))
    assert found["linkedin"] == f"https://www.linkedin.com/in/{profile}"


def test_a_linkedin_company_page_keeps_its_path() -> None:
    assert normalise_linkedin("linkedin.com/company/cobalt-med") == (
        "https://www.linkedin.com/company/cobalt-med"
    )
    assert normalise_linkedin("not a profile") is None


#: WeChat IDs as WeChat allows them (a letter, then 5 to 19 letters, digits, _ or -), lower
#: case as cards print them; without the digit 1, which the parser reads as the letter l
#: where OCR puts it for one (between letters, first).
wechat_ids = st.from_regex(r"[a-z][a-z02-9_-]{5,19}", fullmatch=True)
linkedin_handles = st.from_regex(r"[a-z0-9][a-z02-9-]{2,29}", fullmatch=True).filter(
    lambda handle: not handle.startswith("1") or not handle[1:2].isalpha()
)
LINKEDIN_FORMS = [
    "LinkedIn: linkedin.com/in/{}",
    "LinkedIn：linkedin.com/in/{}",
    "LinkedIn linkedin.com/in/{}",
    "linkedin.com/in/{}",
    "www.linkedin.com/in/{}",
    "https://www.linkedin.com/in/{}/",
    "领英：linkedin.com/in/{}",
    "領英: www.linkedin.com/in/{}",
    "领英 LinkedIn: linkedin.com/in/{}",
    "LinkedIn: {}",
    "LinkedIn: in/{}",
    "LinkedIn {}",
]


@given(wechat_ids, st.sampled_from(WECHAT_LABELS))
@settings(max_examples=300, deadline=None)
def test_any_wechat_id_under_any_label_parses_back_to_itself(handle: str, label: str) -> None:
    assert split_label(normalise_line(f"{label}{handle}")) == ("wechat", handle)
    assert parse_card(lines(f"{label}{handle}"), "CN")["wechat"].value == handle


@given(linkedin_handles, st.sampled_from(LINKEDIN_FORMS))
@settings(max_examples=300, deadline=None)
def test_any_linkedin_handle_in_any_form_parses_back_to_its_profile(handle: str, form: str) -> None:
    found = parse_card(lines(form.format(handle)), "US")
    assert found["linkedin"].value == f"https://www.linkedin.com/in/{handle}"
    assert normalise_linkedin(found["linkedin"].value) == found["linkedin"].value


# -- WebP and HEIC -----------------------------------------------------------------------------


@pytest.mark.parametrize("format_name", ["WEBP", "HEIF"])
def test_webp_and_heic_photos_are_read_upright(format_name: str) -> None:
    image = Image.new("RGB", (300, 100), "white")
    image.paste(Image.new("RGB", (100, 100), "black"), (0, 0))  # the left third is black
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise
    buffer = io.BytesIO()
    image.save(buffer, format=format_name, exif=exif.tobytes(), quality=90)
    (page,) = images.load_pages(buffer.getvalue(), f"phone.{format_name.lower()}", **LIMITS)
    assert page.mode == "RGB"
    assert page.size == (100, 300)
    assert page.getpixel((50, 20))[0] < 60  # the black end is now on top
    assert page.getpixel((50, 280))[0] > 200


# -- vCard and MeCard: property tests ----------------------------------------------------------

#: Text a card field may hold, with the characters vCard and MeCard must escape.
field_text = st.text(
    alphabet=st.sampled_from("abcXYZ 李娜張偉 .,;:\\-&'()é0123"), min_size=1, max_size=24
).filter(lambda text: text.strip() == text and text.strip(" .,;:-") != "")
emails = st.from_regex(r"[a-z][a-z0-9.]{0,10}@[a-z]{2,8}\.(com|cn|io)", fullmatch=True)
mobiles = st.from_regex(r"1[3589][0-9]{9}", fullmatch=True).filter(
    lambda number: parse_card_phone(number) is not None
)


def parse_card_phone(number: str) -> str | None:
    import phonenumbers

    parsed = phonenumbers.parse(number, "CN")
    if phonenumbers.number_type(parsed) != phonenumbers.PhoneNumberType.MOBILE:
        return None
    return crmkit.normalise_phone(number, "CN") if phonenumbers.is_valid_number(parsed) else None


def _vcard_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")


def _mecard_escape(text: str) -> str:
    return "".join(f"\\{ch}" if ch in '\\;,:"' else ch for ch in text)


@given(
    family=field_text,
    given_name=field_text,
    company=field_text,
    title=field_text,
    email=emails,
    mobile=mobiles,
    version=st.sampled_from(["3.0", "4.0"]),
)
@settings(max_examples=150, deadline=None)
def test_a_vcard_gives_back_the_fields_it_was_made_of(
    family: str, given_name: str, company: str, title: str, email: str, mobile: str, version: str
) -> None:
    text = "\r\n".join(
        [
            "BEGIN:VCARD",
            f"VERSION:{version}",
            f"N:{_vcard_escape(family)};{_vcard_escape(given_name)};;;",
            f"FN:{_vcard_escape(given_name)} {_vcard_escape(family)}",
            f"ORG:{_vcard_escape(company)}",
            f"TITLE:{_vcard_escape(title)}",
            f"TEL;TYPE=CELL:{mobile}",
            f"EMAIL:{email}",
            "END:VCARD",
        ]
    )
    found = values(read_contact_payload(text, "CN"))
    assert found["family_name"] == family
    assert found["given_name"] == given_name
    assert found["full_name"] == f"{given_name} {family}"
    assert found["company"] == company
    assert found["title"] == title
    assert found["email"] == email
    assert found["mobile"] == parse_card_phone(mobile)


@given(family=field_text, given_name=field_text, company=field_text, email=emails, mobile=mobiles)
@settings(max_examples=150, deadline=None)
def test_a_mecard_gives_back_the_fields_it_was_made_of(
    family: str, given_name: str, company: str, email: str, mobile: str
) -> None:
    text = (
        f"MECARD:N:{_mecard_escape(family)},{_mecard_escape(given_name)};TEL:{mobile};"
        f"EMAIL:{email};ORG:{_mecard_escape(company)};;"
    )
    found = values(read_contact_payload(text, "CN"))
    assert found["family_name"] == family
    assert found["given_name"] == given_name
    assert found["company"] == company
    assert found["email"] == email
    assert found["mobile"] == parse_card_phone(mobile)


@given(
    st.sampled_from(["BEGIN:VCARD\r\nVERSION:3.0\r\n", "BEGIN:VCARD\n", "MECARD:", "mecard:"]),
    st.text(max_size=200),
)
@settings(max_examples=300, deadline=None)
def test_a_qr_payload_never_crashes_the_reader(head: str, body: str) -> None:
    try:
        found = read_contact_payload(head + body, "CN")
    except ValueError:
        return
    assert found
    for field in found.values():
        assert isinstance(field.value, str)
        assert field.value == field.value.strip()
        assert field.value
        assert field.confidence == 1.0
