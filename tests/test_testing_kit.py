"""crmkit.testing, the test kit crmkit ships as a pytest plugin, works as its docs say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

import crmkit
from crmkit.testing import CRMFactory, TestDatabases, command_line_for

ROOT = Path(__file__).resolve().parent.parent
REFERRALS = ROOT / "examples" / "crmkit-referrals"
TICKETS = ROOT / "examples" / "crmkit-tickets"


class Greeter:
    """A throwaway plugin with one command."""

    @crmkit.hookimpl
    def crmkit_cli_commands(self) -> list[click.Command]:
        @click.command(name="greet")
        @click.argument("name")
        def greet(name: str) -> None:
            """Greet someone, or refuse the unknown."""
            if name == "nobody":
                raise crmkit.CRMError("nobody is not a name")
            count = crmkit.cli_crm().contacts.count()
            click.echo(f"你好 {name}, {count} contacts")

        return [greet]


@pytest.mark.parametrize("example", [REFERRALS, TICKETS], ids=lambda path: path.name)
def test_a_plugins_own_test_suite_runs_on_the_kit(example: Path) -> None:
    """examples/crmkit-referrals/tests and examples/crmkit-tickets/tests (the plugin written
    from the docs alone) use only the kit's fixtures, as a third party would, on this run's
    engine (the kit reads CRMKIT_TEST_DB and CRMKIT_TEST_POSTGRES_URL from the environment
    they inherit)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=example,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_make_crm_enables_an_installed_plugin_with_its_settings(make_crm: CRMFactory) -> None:
    crm = make_crm(enable=["referrals"], plugin_settings={"referrals": {"reward_points": 7}})
    assert crm.enabled_plugin_names() == ["referrals"]
    assert crm.plugin_settings("referrals")["reward_points"] == 7
    assert crm.records("referral").count() == 0  # the plugin's migration ran


def test_make_crm_discovers_nothing_unless_asked(make_crm: CRMFactory) -> None:
    assert make_crm().installed == {}


def test_the_cli_runs_an_embedded_plugins_command_on_the_same_database(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    crm = make_crm(plugins={"greeter": Greeter()})
    crm.contacts.create({"full_name": "张伟"})
    cli = command_line_for(crm, monkeypatch, tmp_path)
    assert cli.ok("greet", "李娜") == "你好 李娜, 1 contacts\n"
    assert cli.fails("greet", "nobody") == "Error: nobody is not a name"


def test_api_client_users_get_their_own_tokens(make_crm: CRMFactory) -> None:
    from crmkit.testing import api_client

    crm = make_crm()
    with api_client(crm) as api:
        api.user("li.na", roles=["sales_rep"])
        assert api.as_user("admin").get("/webhooks").status_code == 200
        denied: Any = api.as_user("li.na").get("/webhooks")
        assert denied.status_code == 403
        assert api.tokens["li.na"] != api.tokens["admin"]


def test_an_unknown_engine_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(pytest.UsageError, match="must be sqlite or postgresql, not 'mysql'"):
        TestDatabases("mysql", "", tmp_path, "master")


def test_an_unreachable_postgres_names_the_option(tmp_path: Path) -> None:
    databases = TestDatabases(
        "postgresql", "postgresql+psycopg://postgres@127.0.0.1:1/postgres", tmp_path, "master"
    )
    with (
        pytest.raises(pytest.UsageError, match="--crmkit-postgres-url"),
        databases.database(tmp_path),
    ):
        pass
