"""``crmkit loyalty ...`` on a real database: the cashier's commands, one-line errors,
statements as CSV, card images and the periodic jobs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loyalty_support import TEA_CLUB, loyalty_crm

import crmkit
from crmkit.testing import CommandLine, command_line_for


@pytest.fixture
def cli(
    make_crm: Callable[..., crmkit.CRM], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> CommandLine:
    crm = loyalty_crm(make_crm)
    crm.contacts.create({"full_name": "张伟"})
    return command_line_for(crm, monkeypatch, tmp_path)


def test_a_cashier_session_on_the_command_line(cli: CommandLine, tmp_path: Path) -> None:
    card = json.loads(cli.ok("loyalty", "cards", "issue", "1", "--json"))["card"]
    out = cli.ok("loyalty", "purchase", card, "300", "--receipt", "R1", "--item", "T1:tea:300")
    assert out == "Receipt R1: +600 points, balance 600\n"
    assert "balance 500" in cli.ok("loyalty", "redeem", card, "100")
    assert cli.fails("loyalty", "redeem", card, "9999") == (
        f"Error: invalid redemption: points: card {card} has 500 points; cannot redeem 9999"
    )
    csv_text = cli.ok("loyalty", "statement", card, "--csv")
    assert csv_text.splitlines()[0] == "at,card,kind,points,pending,balance,receipt_id,note"
    assert len(csv_text.splitlines()) == 3
    assert "balance 500" in cli.ok("loyalty", "cards", "show", card)
    image = tmp_path / "card.png"
    cli.ok("loyalty", "cards", "image", card, "--format", "png", "--out", str(image))
    assert image.read_bytes().startswith(b"\x89PNG")
    assert "R1" in cli.ok("loyalty", "member", "1")
    assert "expired 0" in cli.ok("loyalty", "expire")
    assert "reviewed 1" in cli.ok("loyalty", "review-tiers")


def test_bad_input_is_one_line_and_a_non_zero_exit(cli: CommandLine) -> None:
    card = json.loads(cli.ok("loyalty", "cards", "issue", "1", "--json"))["card"]
    assert "amount: must be a number" in cli.fails("loyalty", "purchase", card, "abc")
    assert "does not take 'USD'" in cli.fails("loyalty", "purchase", card, "5", "--currency", "USD")
    assert "not found" in cli.fails("loyalty", "refund", "R404")
    assert "mistyped" in cli.fails("loyalty", "redeem", "12345", "1")


def test_a_program_is_added_from_a_toml_file(cli: CommandLine, tmp_path: Path) -> None:
    path = tmp_path / "wine.toml"
    path.write_text('name = "wine-club"\nrates = { CNY = 2 }\n', encoding="utf-8")
    assert cli.ok("loyalty", "programs", "add", "--file", str(path)) == "Program wine-club saved.\n"
    listed = json.loads(cli.ok("loyalty", "programs", "--json"))
    assert [p["name"] for p in listed] == ["tea-club", "wine-club"]
    path.write_text('name = "bad"\nrates = { CNY = "x" }\n', encoding="utf-8")
    assert "rates.CNY: must be a number" in cli.fails(
        "loyalty", "programs", "add", "--file", str(path)
    )
    assert TEA_CLUB["name"] == "tea-club"


text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)


def test_any_argument_gives_a_result_or_one_line_never_a_traceback(cli: CommandLine) -> None:
    card = json.loads(cli.ok("loyalty", "cards", "issue", "1", "--json"))["card"]

    @settings(max_examples=25, deadline=None, derandomize=True, database=None)
    @given(
        command=st.sampled_from(["purchase", "redeem", "refund", "statement", "coupons"]),
        first=text,
        second=text,
    )
    def check(command: str, first: str, second: str) -> None:
        arguments = {
            "purchase": ["purchase", card, first, "--receipt", second or "r"],
            "redeem": ["redeem", card, first],
            "refund": ["refund", first, "--amount", second or "1"],
            "statement": ["statement", first],
            "coupons": ["coupons", "redeem", first, "--receipt", second],
        }[command]
        result = cli.run("loyalty", *arguments)
        assert result.exit_code in (0, 1, 2), result.output
        assert "Traceback" not in result.output
        if result.exit_code == 1:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    check()
