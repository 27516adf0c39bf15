"""``crmkit rules|assign|pool`` through click's CliRunner against real databases."""

from __future__ import annotations

import json

import pytest
from cli_support import Run, failed, ok

from crmkit.cli.assignment import parse_when


@pytest.fixture
def run(cli_run: Run) -> Run:
    """``crmkit`` on this test's database, with sales reps alice and bob."""
    for name in ("alice", "bob"):
        assert cli_run("users", "create", name, "--role", "sales_rep").exit_code == 0
    return cli_run


def test_add_list_test_and_remove_a_rule(run: Run) -> None:
    ok(
        run(
            "rules",
            "add",
            "lead",
            "web",
            "--strategy",
            "round_robin",
            "--member",
            "alice",
            "--member",
            "bob",
            "--when",
            "source_channel=web",
        )
    )
    [row] = json.loads(ok(run("rules", "list", "--json")))
    assert (row["name"], row["members"], row["when"]) == (
        "web",
        "alice; bob",
        "source_channel = web",
    )
    output = ok(run("rules", "test", "lead", "--set", "source_channel=web"))
    assert "→ alice (rule 'web', round_robin)" in output
    output = ok(run("rules", "test", "lead", "--set", "source_channel=phone"))
    assert "source_channel = web does not hold" in output
    ok(run("rules", "remove", "lead", "web"))
    assert json.loads(ok(run("rules", "list", "--json"))) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "nope", "--member", "alice"), "unknown assignment strategy 'nope'"),
        (("--strategy", "fixed", "--member", "zoe"), "user 'zoe' does not exist"),
        (
            ("--strategy", "fixed", "--member", "alice", "--when", "colour=red"),
            "colour: is not a field of lead",
        ),
        (
            ("--strategy", "territory", "--territory-field", "status", "--territory", "new=alice"),
            "the territory map has gaps",
        ),
        (
            ("--strategy", "weighted", "--member", "alice", "--weight", "alice=x"),
            "is not a whole number",
        ),
    ],
)
def test_bad_rules_are_one_line_errors_and_nothing_is_added(
    run: Run, args: tuple[str, ...], message: str
) -> None:
    result = run("rules", "add", "lead", "bad", *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert message in result.output
    assert json.loads(ok(run("rules", "list", "--json"))) == []


def test_assign_run_and_the_pool_from_the_cli(run: Run) -> None:
    ok(run("rules", "add", "lead", "all", "--strategy", "fixed", "--member", "bob"))
    output = ok(run("assign", "run", "--entity", "lead"))
    assert "lead: 0 assigned, 0 matched no rule" in output
    ok(
        run(
            "pool",
            "policy",
            "add",
            "account",
            "30 days",
            "--days",
            "30",
            "--when",
            "value_tier in b,c",
        )
    )
    [policy] = json.loads(ok(run("pool", "policy", "list", "--json")))
    assert policy["when"] == {"value_tier__in": ["b", "c"]}
    assert "account:30 days: 0 would be released" in ok(run("pool", "release", "--dry-run"))
    assert "The account pool is empty." in ok(run("pool", "list", "account", "--as", "alice"))
    line = failed(run("pool", "claim", "account", "99", "--as", "alice"))
    assert line == "Error: account 99 not found"


def test_away_and_back(run: Run) -> None:
    ok(
        run(
            "rules",
            "add",
            "lead",
            "all",
            "--strategy",
            "round_robin",
            "--member",
            "alice",
            "--member",
            "bob",
        )
    )
    ok(run("rules", "away", "alice", "--until", "2099-01-01"))
    assert "alice (away until 2099-01-01 00:00)" in ok(run("rules", "test", "lead"))
    ok(run("rules", "back", "alice"))
    assert "skipped" not in ok(run("rules", "test", "lead"))


@pytest.mark.parametrize(
    ("text", "condition"),
    [
        ("source_channel=web", {"source_channel": "web"}),
        ("amount>=1000", {"amount__gte": "1000"}),
        ("amount < 5", {"amount__lt": "5"}),
        ("region in 华东, 华南", {"region__in": ["华东", "华南"]}),
        ("company_name contains 科技", {"company_name__contains": "科技"}),
        ("email empty", {"email__empty": True}),
    ],
)
def test_when_syntax(text: str, condition: dict) -> None:
    assert parse_when([text]) == condition
