"""``crmkit forms`` and ``crmkit serve`` on the command line."""

from __future__ import annotations

import json

from click.testing import CliRunner
from test_cli import failed, ok

from crmkit.cli import cli


def test_forms_add_list_snippet_remove(database_url: str) -> None:
    runner = CliRunner()

    def run(*args: str) -> object:
        return runner.invoke(cli, ["--database-url", database_url, *args])

    added = json.loads(
        ok(run("forms", "add", "官网询价", "--fields", "company_name,phone", "--json"))
    )
    assert added["fields"] == ["full_name", "company_name", "phone"]
    listed = json.loads(ok(run("forms", "list", "--json")))
    assert [form["key"] for form in listed] == [added["key"]]
    snippet = ok(run("forms", "snippet", added["key"], "--base-url", "https://crm.example.com"))
    assert f'action="https://crm.example.com/forms/{added["key"]}"' in snippet
    assert ok(run("forms", "remove", "官网询价")).startswith("Removed form")
    assert "No forms" in ok(run("forms", "list"))


def test_a_bad_form_is_one_line_naming_the_field(database_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--database-url", database_url, "forms", "add", "x", "--fields", "shoe_size"]
    )
    assert "shoe_size" in failed(result)


def test_serve_documents_its_options() -> None:
    output = ok(CliRunner().invoke(cli, ["serve", "--help"]))
    for option in ("--host", "--port", "--workers", "--no-access-log"):
        assert option in output
