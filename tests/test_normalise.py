"""Normalisers for phone numbers, e-mail addresses and names: the formats people type in
mainland China, Taiwan, Hong Kong and the US all end up in one canonical form."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crmkit import normalise_email, normalise_name, normalise_phone

REGIONS = ["CN", "TW", "HK", "US"]
E164 = re.compile(r"^\+[1-9]\d{3,14}(;ext=\d+)?$")
FUZZ = settings(max_examples=300, deadline=None)


def full_width(text: str) -> str:
    """``text`` with ASCII letters, digits and punctuation typed on a CJK keyboard."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def digits(count: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=count, max_size=count)


# -- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "region", "expected"),
    [
        ("138 1234 5678", "CN", "+8613812345678"),
        ("138-1234-5678", "CN", "+8613812345678"),
        ("+86 138 1234 5678", "CN", "+8613812345678"),
        ("0086 13812345678", "CN", "+8613812345678"),
        ("(+86) 138.1234.5678", "CN", "+8613812345678"),
        ("１３８１２３４５６７８", "CN", "+8613812345678"),
        ("021-6234 5678", "CN", "+862162345678"),
        ("(021) 62345678", "CN", "+862162345678"),
        ("0755-8888 6666", "CN", "+8675588886666"),
        ("021-62345678转801", "CN", "+862162345678;ext=801"),
        ("010 8888 6666 分机 12", "CN", "+861088886666;ext=12"),
        ("+86 21 6234 5678 ext. 9", "US", "+862162345678;ext=9"),
        ("0912-345-678", "TW", "+886912345678"),
        ("(02) 2345-6789", "TW", "+886223456789"),
        ("+886 2 2345 6789", "CN", "+886223456789"),
        ("2345 6789", "HK", "+85223456789"),
        ("9123-4567", "HK", "+85291234567"),
        ("+852 9123 4567", "TW", "+85291234567"),
        ("(212) 555-0123", "US", "+12125550123"),
        ("1-212-555-0123", "US", "+12125550123"),
        ("212.555.0123 x45", "US", "+12125550123;ext=45"),
        ("+1 212 555 0123 ext 45", "HK", "+12125550123;ext=45"),
    ],
)
def test_a_typed_phone_number_becomes_e164(typed: str, region: str, expected: str) -> None:
    assert normalise_phone(typed, region) == expected


def groups(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.tuples(*parts).map(list)


def starting(first: str, count: int) -> st.SearchStrategy[str]:
    """``count`` digits, the first one of ``first``."""
    return st.tuples(st.sampled_from(first), digits(count - 1)).map("".join)


# Per region: its country code, its international prefixes, and number plans as
# (trunk prefix, groups of the national number, whether the first group is an area code).
PLANS: dict[str, tuple[str, list[str], st.SearchStrategy[tuple[str, list[str], bool]]]] = {
    "CN": (
        "86",
        ["+86", "0086"],
        st.one_of(
            # mobiles: 13x-19x (not 179, the IP-dialling prefix)
            groups(starting("3456", 2), digits(4), digits(4)).map(
                lambda g: ("", ["1" + g[0], g[1], g[2]], False)
            ),
            groups(
                st.sampled_from(["10", "20", "21", "22", "25", "28", "755", "571", "512"]),
                starting("2345678", 4),
                digits(4),
            ).map(lambda g: ("0", g, True)),
        ),
    ),
    "TW": (
        "886",
        ["+886"],
        st.one_of(
            groups(starting("9", 3), digits(3), digits(3)).map(lambda g: ("0", g, False)),
            groups(st.just("2"), digits(4), digits(4)).map(lambda g: ("0", g, True)),
        ),
    ),
    "HK": (
        "852",
        ["+852"],  # "00" is no international prefix on its own in HK
        groups(starting("235689", 4), digits(4)).map(lambda g: ("", g, False)),
    ),
    "US": (
        "1",
        ["+1"],
        st.tuples(
            st.sampled_from(["", "1"]),
            groups(starting("23456789", 3), starting("23456789", 3), digits(4)),
        ).map(lambda t: (t[0], t[1], True)),
    ),
}
EXTENSION_MARKERS = [" 转 ", "转", " 分机", "分机 ", " ext. ", " ext ", "ext.", " x", "x"]


@st.composite
def typed_numbers(draw: st.DrawFn) -> tuple[str, str, str]:
    """A real-looking number as a person might type it: ``(typed, region, e164)``.

    The typed form has a trunk or an international prefix, separators, maybe brackets
    around the area code, maybe an extension, maybe full-width characters and padding.
    """
    region = draw(st.sampled_from(REGIONS))
    code, international, plan = PLANS[region]
    trunk, parts, has_area = draw(plan)
    separator = draw(st.sampled_from(["", " ", "-", ".", " - "]))
    style = draw(st.sampled_from(["national", "brackets", "international"]))
    if style == "international":
        joiner = draw(st.sampled_from(["", " ", "-"]))
        typed = draw(st.sampled_from(international)) + joiner + separator.join(parts)
    elif style == "brackets" and has_area and region == "US":
        typed = (f"{trunk} " if trunk else "") + f"({parts[0]}) " + separator.join(parts[1:])
    elif style == "brackets" and has_area:
        typed = f"({trunk}{parts[0]}) " + separator.join(parts[1:])
    elif region == "US":
        typed = separator.join([trunk, *parts] if trunk else parts)
    else:
        typed = separator.join([trunk + parts[0], *parts[1:]])
    expected = "+" + code + "".join(parts)
    extension = draw(st.none() | digits(draw(st.integers(1, 4))))
    if extension is not None:
        typed += draw(st.sampled_from(EXTENSION_MARKERS)) + extension
        expected += f";ext={extension}"
    if draw(st.booleans()):
        typed = full_width(typed)
    typed = draw(st.sampled_from(["", " ", "\u3000"])) + typed + draw(st.sampled_from(["", " "]))
    return typed, region, expected


@settings(max_examples=300, deadline=None)
@given(typed_numbers())
def test_every_common_way_of_typing_a_number_gives_its_e164_form(
    case: tuple[str, str, str],
) -> None:
    typed, region, expected = case

    assert normalise_phone(typed, region) == expected


@settings(max_examples=300, deadline=None)
@given(typed_numbers())
def test_normalising_a_normalised_phone_number_changes_nothing(
    case: tuple[str, str, str],
) -> None:
    typed, region, _ = case
    once = normalise_phone(typed, region)

    assert normalise_phone(once, region) == once


@settings(max_examples=100, deadline=None)
@given(typed_numbers(), st.sampled_from(REGIONS))
def test_an_e164_number_reads_the_same_in_every_region(
    case: tuple[str, str, str], other_region: str
) -> None:
    _, _, expected = case

    assert normalise_phone(expected, other_region) == expected


@pytest.mark.parametrize(
    "typed", ["", "   ", "hello", "12", "+", "---", "1" * 40, "138 1234 5678 999"]
)
def test_something_that_is_not_a_phone_number_raises_value_error(typed: str) -> None:
    with pytest.raises(ValueError, match=r"phone number|not a|empty"):
        normalise_phone(typed, "CN")


def test_an_unknown_region_raises_value_error_with_the_fix() -> None:
    with pytest.raises(ValueError, match="use an ISO code such as CN"):
        normalise_phone("138 1234 5678", "China")


@FUZZ
@given(st.text(), st.sampled_from(REGIONS))
@example("+86 138 1234 5678 转", "CN")
@example("转123", "CN")
@example("\x00", "US")
@example("0" * 300, "TW")
def test_any_text_is_either_a_phone_number_or_a_value_error(text: str, region: str) -> None:
    try:
        result = normalise_phone(text, region)
    except ValueError:
        return
    assert E164.match(result), result
    assert normalise_phone(result, region) == result


@FUZZ
@given(
    st.text(alphabet=st.sampled_from("0123456789０１２３ +-()（）.转分机ext;=x\u3000"), max_size=30)
)
def test_any_phone_like_text_is_either_a_phone_number_or_a_value_error(text: str) -> None:
    try:
        result = normalise_phone(text, "CN")
    except ValueError:
        return
    assert E164.match(result), result
    assert normalise_phone(result, "CN") == result


# -- e-mail addresses ------------------------------------------------------------------------

LOCAL = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-",
    min_size=1,
    max_size=20,
)
LABEL = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
    min_size=1,
    max_size=12,
)


@st.composite
def email_addresses(draw: st.DrawFn) -> str:
    labels = draw(st.lists(LABEL, min_size=2, max_size=4))
    return f"{draw(LOCAL)}@{'.'.join(labels)}"


@settings(max_examples=200, deadline=None)
@given(email_addresses())
def test_an_email_address_is_lower_cased(address: str) -> None:
    assert normalise_email(address) == address.lower()


@settings(max_examples=200, deadline=None)
@given(email_addresses(), st.sampled_from(["", " ", "\t", "\u3000"]))
def test_an_email_address_typed_full_width_or_padded_becomes_plain(address: str, pad: str) -> None:
    assert normalise_email(pad + full_width(address) + pad) == address.lower()


@pytest.mark.parametrize(
    "typed",
    ["", "zhang", "zhang@", "@example.com", "zhang@example", "zhang wei@example.com",
     "zhang@@example.com", "zhang@exa mple.com", "a@b@c.com"],
)  # fmt: skip
def test_something_that_is_not_an_email_address_raises_value_error(typed: str) -> None:
    with pytest.raises(ValueError, match="is not an e-mail address"):
        normalise_email(typed)


@FUZZ
@given(st.text())
@example("İ@example.com")
@example("ǅ@example.com")
def test_any_text_is_either_an_email_address_or_a_value_error(text: str) -> None:
    try:
        result = normalise_email(text)
    except ValueError:
        return
    assert result.count("@") == 1
    assert normalise_email(result) == result


# -- names -----------------------------------------------------------------------------------

ASCII_NAME = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)


@settings(max_examples=200, deadline=None)
@given(st.lists(ASCII_NAME, min_size=1, max_size=4))
def test_a_full_width_name_becomes_ascii(words: list[str]) -> None:
    typed = "\u3000".join(full_width(word) for word in words)

    assert normalise_name(typed) == " ".join(words)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1))
def test_chinese_characters_are_kept_as_written(name: str) -> None:
    assert normalise_name(name) == name


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("  张伟  ", "张伟"),
        ("Wang\u3000\u3000Fang", "Wang Fang"),
        ("陳 \t 美玲", "陳 美玲"),
        ("ＡＢＣ貿易有限公司", "ABC貿易有限公司"),
        ("ｶﾀｶﾅ", "カタカナ"),
        ("Ⅻ Corp", "XII Corp"),
    ],
)
def test_a_name_is_nfkc_normalised_and_its_spaces_folded(typed: str, expected: str) -> None:
    assert normalise_name(typed) == expected


@FUZZ
@given(st.text())
def test_normalising_a_normalised_name_changes_nothing(text: str) -> None:
    once = normalise_name(text)

    assert normalise_name(once) == once
    assert unicodedata.is_normalized("NFKC", once)
