"""Plugins from the command line: ``crmkit plugins ...`` and the commands a plugin adds.

Run through click's CliRunner against this test's database, with the installed
examples/crmkit-referrals distribution.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import crmkit
from crmkit.cli import cli

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run ``crmkit --database-url <this test's database> ARGS...``."""
    monkeypatch.chdir(tmp_path)  # no stray ./crmkit.toml
    monkeypatch.delenv("CRMKIT_CONFIG", raising=False)
    monkeypatch.delenv("CRMKIT_DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--database-url", database_url, *args], catch_exceptions=False)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def plugin_row(run: Run, name: str) -> dict[str, Any]:
    rows = json.loads(ok(run("plugins", "list", "--json")))
    (row,) = [row for row in rows if row["name"] == name]
    return dict(row)


def add_referral(make_crm: Callable[..., crmkit.CRM]) -> None:
    """Wang Fang refers Liu Yang, written through the Python API on the same database."""
    crm = make_crm(discover=True)
    wang = crm.contacts.create({"full_name": "王芳", "wechat_id": "wangfang88"})
    liu = crm.contacts.create({"full_name": "刘洋"})
    crm.records("referral").create(
        {"referrer_contact_id": wang.id, "referred_contact_id": liu.id, "channel": "wechat"}
    )
    crm.close()


def test_plugins_enable_enables_the_plugin_and_list_shows_it(run: Run) -> None:
    assert plugin_row(run, "referrals")["enabled"] is False
    assert ok(run("plugins", "enable", "referrals")) == "Enabled referrals (migrated: referrals)\n"
    row = plugin_row(run, "referrals")
    assert row["enabled"] is True
    assert row["distribution"] == "crmkit-referrals"
    assert row["error"] is None


def test_plugins_info_lists_hooks_entities_fields_and_settings(run: Run) -> None:
    text = ok(run("plugins", "info", "referrals"))
    for expected in (
        "crmkit_before_create",
        "referral",
        "contact.vip_level (choice)",
        "blocked_domains (list, default [])",
        "reward_points (int, default 100)",
    ):
        assert expected in text
    info = json.loads(ok(run("plugins", "info", "referrals", "--json")))
    assert info["entities"] == ["referral"]
    assert info["commands"] == ["referrals"]


def test_the_plugin_command_group_exists_only_while_enabled(run: Run) -> None:
    assert run("referrals", "list").exit_code == 2  # no such command
    ok(run("plugins", "enable", "referrals"))
    assert "Referrals: who referred whom" in ok(run("referrals", "--help"))
    ok(run("plugins", "disable", "referrals"))
    assert run("referrals", "list").exit_code == 2


def test_root_help_lists_the_commands_of_enabled_plugins(run: Run) -> None:
    def listed_commands() -> set[str]:
        lines = ok(run("--help")).split("Commands:", 1)[1].splitlines()
        return {line.split()[0] for line in lines if line.startswith("  ")}

    assert "referrals" not in listed_commands()
    ok(run("plugins", "enable", "referrals"))
    assert "referrals" in listed_commands()


def test_the_plugin_lists_referrals_from_its_own_command(
    run: Run, make_crm: Callable[..., crmkit.CRM]
) -> None:
    ok(run("plugins", "enable", "referrals"))
    assert ok(run("referrals", "list")) == "No referrals yet.\n"
    add_referral(make_crm)
    assert "王芳 → 刘洋  [wechat]  100 points" in ok(run("referrals", "list"))
    (row,) = json.loads(ok(run("referrals", "list", "--json", "--channel", "wechat")))
    assert (row["referrer"], row["referred"], row["reward_points"]) == ("王芳", "刘洋", 100)


def test_the_plugin_reports_stats_from_its_own_command(
    run: Run, make_crm: Callable[..., crmkit.CRM]
) -> None:
    ok(run("plugins", "enable", "referrals"))
    add_referral(make_crm)
    stats = json.loads(ok(run("referrals", "stats", "--json")))
    assert stats["referrals"] == 1
    assert stats["reward_points"] == 100
    assert stats["by_channel"] == {"wechat": 1}
    assert [row["name"] for row in stats["top_referrers"]] == ["王芳"]


def test_plugin_settings_come_from_the_config_file(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRMKIT_DATABASE_URL", raising=False)
    config = tmp_path / "crmkit.toml"
    config.write_text(
        f'[crmkit]\ndatabase_url = "{database_url}"\n\n'
        '[plugins.referrals]\nblocked_domains = ["spam.example"]\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    ok(runner.invoke(cli, ["--config", str(config), "plugins", "enable", "referrals"]))
    refused = runner.invoke(
        cli,
        ["--config", str(config), "contacts", "create", "full_name=张伟", "email=zw@spam.example"],
    )
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: refused by plugin 'referrals': e-mail domain spam.example is blocked for new"
        " contacts\n"
    )


def test_enabling_an_unknown_plugin_fails_with_one_line_and_no_traceback(run: Run) -> None:
    result = run("plugins", "enable", "nope")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: plugin 'nope' is not installed (installed: ")
    assert line.endswith("pip install crmkit-nope")
    assert "Traceback" not in result.output
