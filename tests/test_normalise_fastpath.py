"""The fast paths of the normalisers give exactly the answers of the slow ones, on generated
inputs: ``normalise_phone`` for Chinese mobile and landline numbers in clean common formats
(against the full parser, ``phonenumbers``) and ``normalise_text`` for text with nothing to
fold."""

from __future__ import annotations

import random
import re
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crmkit.entities import normalise
from crmkit.entities.normalise import _parse_phone, normalise_phone, normalise_text

REGIONS = ("CN", "HK", "TW", "MO", "US", "GB", "SG", "JP", "DE", "XX")
FULL_WIDTH = str.maketrans("0123456789+()-. ", "０１２３４５６７８９＋（）－．\u3000")


def outcome(function: object, value: str, region: str) -> tuple[str, str]:
    """``("ok", result)`` or ``("error", message)``: the two paths must agree on both."""
    try:
        return "ok", function(value, region)  # type: ignore[operator]
    except ValueError as error:
        return "error", str(error)


digits = st.text(alphabet="0123456789", min_size=4, max_size=4)


def dressed(draw: st.DrawFn, text: str) -> str:
    """``text`` maybe in full-width characters, maybe padded with white space."""
    if draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    padding = st.sampled_from(["", " ", "\t", "\u3000", "\n"])
    return draw(padding) + text + draw(padding)


@st.composite
def clean_mobiles(draw: st.DrawFn) -> str:
    """Numbers in the formats the fast path takes (about half) and near misses."""
    if draw(st.booleans()):  # the fast path's own grammar
        prefix = draw(st.sampled_from(["", "+86", "(+86)", "0086"]))
        after_prefix = draw(st.sampled_from(["", " ", "-"])) if prefix else ""
        head = "1" + draw(st.sampled_from("3456789")) + draw(st.sampled_from("0123456789"))
        separators = st.sampled_from(["", " ", "-", "."])
        suffix = ""
    else:
        prefix = draw(st.sampled_from(["", "+86", "(+86)", "0086", "86", "+852", "+8 6", "00 86"]))
        after_prefix = draw(st.sampled_from(["", " ", "-", "  ", "."])) if prefix else ""
        head = "1" + draw(st.sampled_from("0123456789")) + draw(st.sampled_from("0123456789"))
        separators = st.sampled_from(["", " ", "-", ".", "  ", "/", " - "])
        suffix = draw(st.sampled_from(["", "0", " ext. 12", "转8", "x"]))
    text = (
        prefix
        + after_prefix
        + head
        + draw(separators)
        + draw(digits)
        + draw(separators)
        + draw(digits)
        + suffix
    )
    return dressed(draw, text)


def test_every_mobile_prefix_agrees_with_phonenumbers() -> None:
    """Each three-digit prefix 130-199, with many random subscriber numbers."""
    rng = random.Random(20240601)
    for head in range(130, 200):
        for _ in range(200):
            number = f"{head}{rng.randrange(10**8):08d}"
            for text in (number, f"+86 {number}"):
                assert outcome(normalise_phone, text, "CN") == outcome(_parse_phone, text, "CN")


@st.composite
def clean_landlines(draw: st.DrawFn) -> str:
    """Landlines in the formats the fast path takes (about half) and near misses."""
    if draw(st.booleans()):  # the fast path's own grammar
        area = draw(
            st.just("10")
            | st.builds("2{}".format, st.sampled_from("0123456789"))
            | st.builds(
                "{}{}".format,
                st.sampled_from("3456789"),
                st.text(alphabet="0123456789", min_size=2, max_size=2),
            )
        )
        trunk = draw(
            st.sampled_from(["0{}", "(0{})", "+86{}", "+86 {}", "+86-{}", "(+86) {}", "0086 {}"])
        )
        separators = st.sampled_from(["", " ", "-"])
        local_head = draw(st.sampled_from("23456789")) + draw(
            st.text(alphabet="0123456789", min_size=2, max_size=3)
        )
        local_tail = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
        suffix = ""
    else:
        area = draw(
            st.sampled_from(["10", "11", "20", "21", "29", "30", "311", "571", "755", "999", "1"])
            | st.text(alphabet="0123456789", min_size=1, max_size=4)
        )
        trunk = draw(
            st.sampled_from(["0{}", "(0{})", "+86 {}", "(+86) {}", "0086 {}", "{}", "00{}", "(0{}"])
        )
        separators = st.sampled_from(["", " ", "-", ".", "  ", ")", "/"])
        local_head = draw(st.text(alphabet="0123456789", min_size=2, max_size=5))
        local_tail = draw(st.text(alphabet="0123456789", min_size=3, max_size=5))
        suffix = draw(st.sampled_from(["", " 转 123", " ext. 9", "x12"]))
    text = (
        trunk.format(area) + draw(separators) + local_head + draw(separators) + local_tail + suffix
    )
    return dressed(draw, text)


@settings(max_examples=3000, deadline=None)
@given(value=clean_mobiles(), region=st.sampled_from(REGIONS))
@example(value="13812345678", region="CN")
@example(value="+86 138 1234 5678", region="US")
@example(value="0086 13812345678", region="HK")
@example(value="１３８１２３４５６７８", region="CN")
@example(value="(+86) 138-1234-5678", region="XX")
def test_fast_path_equals_phonenumbers_on_clean_mobiles(value: str, region: str) -> None:
    assert outcome(normalise_phone, value, region) == outcome(_parse_phone, value, region)


@settings(max_examples=4000, deadline=None)
@given(value=clean_landlines(), region=st.sampled_from(REGIONS))
@example(value="010-6552 1234", region="CN")
@example(value="(021) 58881234", region="CN")
@example(value="+86 755 8888 6666", region="US")
@example(value="0086-21-5888-1234", region="CN")
@example(value="0571 8828 9341", region="HK")
@example(value="(0755) 888 6666", region="CN")
def test_fast_path_equals_phonenumbers_on_clean_landlines(value: str, region: str) -> None:
    assert outcome(normalise_phone, value, region) == outcome(_parse_phone, value, region)


@settings(max_examples=3000, deadline=None)
@given(
    value=st.text(alphabet="0123456789０１２３ +-.()（）x转 \u3000", max_size=22),
    region=st.sampled_from(REGIONS),
)
def test_fast_path_equals_phonenumbers_on_any_text(value: str, region: str) -> None:
    assert outcome(normalise_phone, value, region) == outcome(_parse_phone, value, region)


@pytest.mark.parametrize(
    ("value", "region"),
    [
        ("13812345678", "CN"),
        ("138 1234 5678", "CN"),
        ("138-1234-5678", "CN"),
        (" 138.1234.5678 ", "CN"),
        ("+86 138 1234 5678", "US"),
        ("+86-13812345678", "CN"),
        ("0086 13812345678", "CN"),
        ("(+86) 138-1234-5678", "TW"),
        ("１３８１２３４５６７８", "CN"),
    ],
)
def test_clean_mobiles_skip_the_full_parser(
    value: str, region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(value: str, region: str) -> str:
        raise AssertionError(f"{value!r} should have taken the fast path")

    monkeypatch.setattr(normalise, "_parse_phone", refuse)
    assert normalise_phone(value, region) == "+8613812345678"


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("010-6552 1234", "CN", "+861065521234"),
        ("(021) 58881234", "CN", "+862158881234"),
        ("0755 8888 6666", "CN", "+8675588886666"),
        ("+86 10 6552 1234", "US", "+861065521234"),
        ("0086-21-5888-1234", "CN", "+862158881234"),
        ("０５７１-８８２８ ９３４１", "CN", "+8657188289341"),
    ],
)
def test_clean_landlines_skip_the_full_parser(
    value: str, region: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(value: str, region: str) -> str:
        raise AssertionError(f"{value!r} should have taken the fast path")

    monkeypatch.setattr(normalise, "_parse_phone", refuse)
    assert normalise_phone(value, region) == expected


# -- normalise_text skips its regex for printable text without double spaces -----------------


def test_no_printable_character_but_the_space_is_white_space() -> None:
    """The premise of ``normalise_text``'s fast path, checked for every code point."""
    others = [
        hex(point)
        for point in range(sys.maxunicode + 1)
        if chr(point).isspace() and chr(point).isprintable() and chr(point) != " "
    ]
    assert others == []


@settings(max_examples=2000, deadline=None)
@given(
    value=st.text(
        alphabet=st.sampled_from([" ", "\u3000", "\t", "\n", "\xa0", "a", "张", "Ａ", "\u2003"]),
        max_size=12,
    )
    | st.text(max_size=20)
)
def test_normalise_text_equals_folding_with_the_regex(value: str) -> None:
    assert normalise_text(value) == re.sub(r"\s+", " ", value).strip()
