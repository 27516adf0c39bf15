"""The dedupe plugin's normalisers: examples from the data, and properties (hypothesis)."""

from __future__ import annotations

import datetime as dt

import pytest
from crmkit_dedupe import matching, places
from crmkit_dedupe import normalise as nz
from hypothesis import given
from hypothesis import strategies as st
from rapidfuzz.distance import JaroWinkler

import crmkit

NAMES = st.text(
    alphabet=st.sampled_from("张偉伟王李娜陈静欧阳單雄信abcdefghijklmnopqrstuvwxyz ABCXYZ-'·"),
    max_size=12,
)


@pytest.mark.parametrize(
    "name", ["張偉", "张伟", "Zhang Wei", "WEI ZHANG", "zhang  wei", "Ｚｈａｎｇ Ｗｅｉ"]
)
def test_scripts_and_orders_of_one_name_meet(name: str) -> None:
    assert nz.person_name(name).key == "wei zhang"


def test_compound_surnames_and_surname_readings() -> None:
    assert (nz.person_name("歐陽娜娜").family, nz.person_name("欧阳娜娜").given) == (
        "ouyang",
        "nana",
    )
    assert nz.person_name("單雄信").family == "shan"
    assert nz.person_name("曾国藩").family == "zeng"


def test_name_similarity_is_high_across_scripts_and_low_for_other_names() -> None:
    same = nz.name_similarity(nz.person_name("張偉"), nz.person_name("Wei Zhang"))
    other = nz.name_similarity(nz.person_name("张伟"), nz.person_name("李娜"))
    assert same > 0.95
    assert other < 0.7


def test_a_latin_name_missing_a_part_is_not_a_different_name() -> None:
    def alike(a: str, b: str) -> float:
        return nz.name_similarity(nz.person_name(a), nz.person_name(b))

    assert alike("White", "Jacqueline White") == pytest.approx(nz.PART_OF_NAME)
    assert alike("Jacqueline White", "White") == pytest.approx(nz.PART_OF_NAME)
    typo = JaroWinkler.similarity("whyte", "white")
    assert alike("Whyte", "Mary Ann White") == pytest.approx(nz.PART_OF_NAME * typo)
    # as many parts: compared whole, as before (another given name is another person)
    assert alike("Kyle Bullock", "Kyle Novotny") < 0.7
    # Chinese names keep their syllable-by-syllable comparison
    assert alike("王", "王伟") < 0.5


@given(NAMES, NAMES)
def test_a_name_scores_at_least_its_part_of_name_score(a: str, b: str) -> None:
    left, right = nz.person_name(a), nz.person_name(b)
    if not left.cjk and not right.cjk:
        assert nz.name_similarity(left, right) >= nz.part_of_name(left.tokens, right.tokens)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("John.Smith+crm@GoogleMail.com", "johnsmith@gmail.com"),
        ("j.smith+news@corp.cn", "j.smith@corp.cn"),
        ("ＺＷ@Example.CN", "zw@example.cn"),
        ("not an address", ""),
    ],
)
def test_canonical_email(raw: str, canonical: str) -> None:
    assert nz.canonical_email(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("138 1234 5678", "+8613812345678"),
        ("+86 (138) 1234-5678", "+8613812345678"),
        ("０２１－５８８８ １２３４", "+862158881234"),
        ("banana", ""),
    ],
)
def test_canonical_phone(raw: str, e164: str) -> None:
    assert nz.canonical_phone(raw, "CN") == e164


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("上海华为技术有限公司", "华为技术"),
        ("華為技術有限公司", "华为技术"),
        ("北京市字节跳动科技有限公司", "字节跳动科技"),
        ("深圳市腾讯计算机系统有限公司", "腾讯计算机系统"),
        ("腾讯（深圳）有限公司", "腾讯"),
        ("广东省深圳市大疆创新科技股份有限公司", "大疆创新科技"),
        ("Huawei Technologies Co., Ltd.", "huawei technologies"),
        ("ACME GmbH", "acme"),
        ("Apple Inc.", "apple"),
    ],
)
def test_company_key(raw: str, key: str) -> None:
    assert nz.company_key(raw) == key


@given(NAMES)
def test_name_key_ignores_order_case_and_script(name: str) -> None:
    parsed = nz.person_name(name)
    assert parsed.key == nz.person_name(name.upper()).key
    assert parsed.key == nz.person_name(" ".join(reversed(name.split()))).key or nz.has_cjk(name)
    assert list(parsed.tokens) == sorted(parsed.tokens)


@given(NAMES, NAMES)
def test_name_similarity_is_symmetric_and_bounded(a: str, b: str) -> None:
    left, right = nz.person_name(a), nz.person_name(b)
    value = nz.name_similarity(left, right)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(nz.name_similarity(right, left))
    if left.tokens:
        assert nz.name_similarity(left, left) == 1.0


@given(st.text(max_size=30))
def test_fold_is_idempotent(text: str) -> None:
    assert nz.fold(nz.fold(text)) == nz.fold(text)


@given(st.text(max_size=30))
def test_company_key_never_grows(text: str) -> None:
    key = nz.company_key(text)
    assert len(key) <= len(nz.fold(text)) + 1


@given(
    st.from_regex(r"[a-z][a-z0-9.]{0,10}[a-z0-9]", fullmatch=True),
    st.sampled_from(["gmail.com", "qq.com", "corp.cn"]),
    st.from_regex(r"[a-z0-9]{0,6}", fullmatch=True),
)
def test_canonical_email_drops_tags_and_case(local: str, domain: str, tag: str) -> None:
    plain = nz.canonical_email(f"{local}@{domain}")
    assert nz.canonical_email(f"{local.upper()}+{tag}@{domain.upper()}") == plain
    assert nz.canonical_email(plain) == plain


@given(st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True))
def test_mobile_formats_meet(digits: str) -> None:
    spaced = f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    wide = "".join(chr(ord(c) + 0xFEE0) for c in digits)
    assert nz.canonical_phone(spaced) == nz.canonical_phone(f"+86-{digits}")
    assert nz.canonical_phone(wide) == nz.canonical_phone(digits)


def _parsed_phone(value: str, region: str) -> str:
    """canonical_phone without its E.164 shortcut: what crmkit.normalise_phone gives."""
    try:
        return crmkit.normalise_phone(value, region).split(";", 1)[0]
    except ValueError:
        return ""


@given(
    st.one_of(
        st.from_regex(r"\+861[0-9]{10}", fullmatch=True),
        st.from_regex(r"\+86[0-9]{9,12}", fullmatch=True),
        st.from_regex(r"\+[0-9 ]{6,16}", fullmatch=True),
    ),
    st.sampled_from(["CN", "HK", "US", "ZZ"]),
)
def test_the_e164_shortcut_gives_what_parsing_gives(value: str, region: str) -> None:
    assert nz.canonical_phone(value, region) == _parsed_phone(value, region)


@given(st.text(max_size=12), st.text(max_size=12))
def test_the_ascii_email_shortcut_gives_what_nfkc_gives(local: str, domain: str) -> None:
    address = f" {local}@{domain} "
    expected = nz.canonical_email(address + "\u00a0")  # not ASCII: the NFKC path
    assert nz.canonical_email(address) == expected


@given(st.dates())
def test_a_date_and_its_text_normalise_alike(day: dt.date) -> None:
    from crmkit_dedupe import matching

    assert matching.normalised("date", day, "CN") == matching.normalised(
        "date", day.isoformat(), "CN"
    )


@pytest.mark.parametrize(
    ("spellings", "key"),
    [
        (["北京", "北京市", "Beijing", "beijing shi", "Beijing, China", "BEIJING"], "beijing"),
        (["广州", "廣州市", "Guangzhou", "guangzhou"], "guangzhou"),
        (["上海市", "上海", "Shanghai"], "shanghai"),
        (["臺北市", "台北", "Taipei", "taibei"], "taipei"),
        (["香港", "Hong Kong"], "hongkong"),
        (["厦门", "廈門", "Xiamen"], "xiamen"),
    ],
)
def test_a_city_in_any_script_has_one_key(spellings: list[str], key: str) -> None:
    assert {places.city_key(spelling) for spelling in spellings} == {key}


def test_cities_apart_stay_apart_and_unknown_places_fall_back_to_pinyin() -> None:
    assert places.city_key("北京") != places.city_key("Shanghai")
    assert places.city_key("闵行区") == places.city_key("minhang")  # a district: pinyin
    assert places.city_key("   ") == ""


@pytest.fixture(scope="module", autouse=True)
def _gazetteer_loaded() -> None:
    """GeoNames loads once, in seconds: before the property tests, not inside a deadline."""
    places.gazetteer()


CITY_TEXT = st.text(alphabet=st.sampled_from("北京上海广州臺台湾市区县 ,abcijngshBE"), max_size=8)


@given(CITY_TEXT)
def test_a_city_key_ignores_script_case_and_suffix(text: str) -> None:
    key = places.city_key(text)
    assert key == key.lower()
    assert key.isascii()
    assert places.city_key(nz.fold(text)) == key
    assert places.city_key(text.upper()) == key


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+8613812345678", nz.MOBILE),
        ("+8619912345678", nz.MOBILE),
        ("+861065432100", nz.LANDLINE),
        ("+861065432100;ext=808", nz.SWITCHBOARD),
        ("+862158881234", nz.LANDLINE),
        ("+85291234567", nz.MOBILE),  # Hong Kong mobile
        ("+4930123456", nz.LANDLINE),  # Berlin
        ("+12015550123", nz.ANY_KIND),  # the US plan does not tell
    ],
)
def test_phone_kind(number: str, kind: str) -> None:
    assert nz.phone_kind(number) == kind


@pytest.mark.parametrize(
    ("address", "role"),
    [
        ("sales@huawei.com", True),
        ("info2@example.cn", True),
        ("kefu88@shop.cn", True),
        ("zhang.wei@huawei.com", False),
        ("salesman.li@huawei.com", False),
        ("12345678@qq.com", False),
    ],
)
def test_role_addresses(address: str, role: bool) -> None:
    assert nz.is_role_address(address) is role


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Jame sGarcia", "James Garcia"),
        ("JamesG arcia", "James Garcia"),
        ("Garcia James", "Jame sGarcia"),
        ("zhoujie", "周杰"),
        ("jiezhou", "周杰"),
    ],
)
def test_a_letter_across_the_space_or_a_run_together_name_is_the_same_name(a: str, b: str) -> None:
    assert nz.name_similarity(nz.person_name(a), nz.person_name(b)) >= 0.97


def test_a_swapped_letter_costs_little_and_another_name_much() -> None:
    def alike(a: str, b: str) -> float:
        return nz.name_similarity(nz.person_name(a), nz.person_name(b))

    assert alike("Jessica Mooer", "Jessica Moore") > 0.95
    assert alike("zhaojie", "周杰") < 0.9  # 赵杰 is not 周杰
    assert alike("Kyle Bullock", "Kyle Novotny") < 0.7


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("010-6543 2100 转 808", "+861065432100;ext=808"),
        ("+86 10 6543 2100 ext. 808", "+861065432100;ext=808"),
        ("010-65432100", "+861065432100"),
        ("+8613812345678", "+8613812345678"),
        ("banana", ""),
    ],
)
def test_phone_with_extension(raw: str, number: str) -> None:
    assert nz.phone_with_extension(raw, "CN") == number


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("石嘴山科诚贸易有限公司", "科诚贸易"),  # a city only the gazetteer knows
        ("石嘴山市科诚贸易有限公司", "科诚贸易"),
        ("海口九聚建材有限责任公司", "九聚建材"),
        ("科诚贸易", "科诚贸易"),
        ("东方电气", "东方电气"),  # 东方 is a city, but 电气 alone names no company
        ("Shihai Building Materials Co., Ltd.", "shihai building materials"),
    ],
)
def test_a_company_key_drops_any_known_city_prefix(raw: str, key: str) -> None:
    assert places.company_key(raw) == key


@pytest.mark.parametrize(
    ("chinese", "english"),
    [
        ("世海建材", "Shihai Building Materials Co., Ltd."),
        ("青岛新卓医疗器械股份有限公司", "Xinzhuo Medical Devices Co., Ltd."),
        ("華為技術有限公司", "Huawei Technologies Co., Ltd."),
    ],
)
def test_a_company_meets_its_pinyin_english_name_by_brand(chinese: str, english: str) -> None:
    a, b = places.company_key(chinese), places.company_key(english)
    assert places.brand_key(a) == places.brand_key(b) != ""
    assert matching.company_similarity(a, b) == 0.9


def test_companies_of_other_brands_do_not_meet_across_scripts() -> None:
    a = places.company_key("世海建材")
    assert matching.company_similarity(a, places.company_key("Tencent Holdings Ltd.")) == 0.0
    assert matching.company_similarity(a, places.company_key("Xinzhuo Building Materials")) == 0.0


COMPANY_TEXT = st.text(
    alphabet=st.sampled_from("石嘴山海口市科诚贸易有限公司东方电气 Co.,Ltdab"), max_size=14
)


@given(COMPANY_TEXT)
def test_a_company_key_never_grows_and_its_brand_is_plain_letters(text: str) -> None:
    key = places.company_key(text)
    assert len(key) <= len(nz.fold(text))
    brand = places.brand_key(key)
    assert brand == "" or (brand.isascii() and brand.isalpha() and brand == brand.lower())
    assert places.company_key(key) == key  # a key is its own key
