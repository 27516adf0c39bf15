"""``crmkit segments`` through click's CliRunner against real databases."""

from __future__ import annotations

import json

import pytest
from cli_support import Run, failed, ok


@pytest.fixture
def run(cli_run: Run) -> Run:
    """``crmkit`` on this test's database with two accounts and three contacts."""
    ok(cli_run("accounts", "create", "name=星辰贸易", "city=上海"))
    ok(cli_run("accounts", "create", "name=北方机械", "city=北京"))
    for name, account in (("张伟", 1), ("王芳", 1), ("李娜", 2)):
        ok(cli_run("contacts", "create", f"full_name={name}", f"account_id={account}"))
    return cli_run


def test_add_show_count_members_edit_and_remove(run: Run) -> None:
    out = ok(run("segments", "add", "上海联系人", "contact", "--when", "account.city=上海"))
    assert out == "Saved segment '上海联系人' of contact: 2 record(s) now\n"
    assert ok(run("segments", "count", "上海联系人")) == "2\n"
    shown = json.loads(ok(run("segments", "show", "上海联系人", "--json")))
    assert (shown["entity"], shown["filters"], shown["count"]) == (
        "contact",
        {"account.city": "上海"},
        2,
    )
    page = json.loads(ok(run("segments", "members", "上海联系人", "--json", "--limit", "1")))
    assert [item["full_name"] for item in page["items"]] == ["张伟"]
    table = ok(run("segments", "members", "上海联系人", "--fields", "id,full_name"))
    assert "王芳" in table
    assert "李娜" not in table
    ok(
        run(
            "segments",
            "edit",
            "上海联系人",
            "--when",
            "account.city=北京",
            "--rename",
            "北京联系人",
        )
    )
    assert ok(run("segments", "count", "北京联系人")) == "1\n"
    [row] = json.loads(ok(run("segments", "list", "--json")))
    assert (row["name"], row["version"]) == ("北京联系人", 2)
    assert ok(run("segments", "remove", "北京联系人")) == "Removed segment '北京联系人'\n"
    assert "No segments" in ok(run("segments", "list"))


def test_a_nested_definition_as_json(run: Run) -> None:
    ok(
        run(
            "segments",
            "add",
            "有上海公司",
            "contact",
            "--filters-json",
            '{"account": {"city__in": ["上海", "广州"]}}',
        )
    )
    assert ok(run("segments", "count", "有上海公司")) == "2\n"


def test_list_filters_speak_the_segment_language(run: Run) -> None:
    ok(run("segments", "add", "上海联系人", "contact", "--when", "account.city=上海"))
    page = json.loads(ok(run("contacts", "list", "--filter", "segment=上海联系人", "--json")))
    assert len(page["items"]) == 2
    page = json.loads(ok(run("contacts", "list", "--filter", "account.city=北京", "--json")))
    assert [item["full_name"] for item in page["items"]] == ["李娜"]


def test_rules_and_pool_policies_take_a_segment(run: Run) -> None:
    ok(run("users", "create", "alice", "--role", "sales_rep"))
    ok(run("segments", "add", "上海客户", "account", "--when", "city=上海"))
    ok(
        run(
            "pool", "policy", "add", "account", "上海", "--days", "30", "--when", "segment=上海客户"
        )
    )
    ok(
        run(
            "rules",
            "add",
            "account",
            "上海归 alice",
            "--strategy",
            "fixed",
            "--member",
            "alice",
            "--when",
            "segment=上海客户",
        )
    )
    [rule] = json.loads(ok(run("rules", "list", "--json")))
    assert rule["when"] == "segment=上海客户"
    line = failed(run("segments", "remove", "上海客户"))
    assert line.startswith("Error: segment '上海客户' is used by pool policy '上海' of account")


def test_fields_lists_what_a_segment_can_filter_on(run: Run) -> None:
    known = json.loads(ok(run("segments", "fields", "deal", "--json")))
    assert {"stage_kind", "stage", "pipeline"} <= set(known["measures"])
    assert "contact" in known["relations"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "x", "contact", "--when", "shoe_size=40"), "shoe_size: unknown field of contact"),
        (("add", "x", "customer"), "entity: unknown entity 'customer'; known: account"),
        (("add", "x", "contact", "--when", "firm.city=上海"), "firm: unknown relation of contact"),
        (("add", "x", "contact", "--when", "segment=nope"), "there is no segment named 'nope'"),
        (("add", "x", "contact", "--filters-json", "[1]"), "must be a JSON object"),
        (("add", "x", "contact", "--filters-json", "{"), "not JSON"),
        (("add", "a/b", "contact"), "name: may not contain '/' or ','"),
        (("show", "nope"), "segment 'nope' not found"),
        (("count", "nope"), "segment 'nope' not found"),
        (("remove", "nope"), "segment 'nope' not found"),
        (("fields", "nope"), "unknown entity 'nope'"),
    ],
)
def test_bad_input_is_one_line(run: Run, args: tuple[str, ...], message: str) -> None:
    result = run("segments", *args)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    assert message in result.output


def test_a_cycle_is_one_line(run: Run) -> None:
    ok(run("segments", "add", "a", "contact", "--when", "full_name=张伟"))
    ok(run("segments", "add", "b", "contact", "--when", "segment=a"))
    line = failed(run("segments", "edit", "a", "--when", "segment=b"))
    assert "segments refer to each other in a cycle: a → b → a" in line
