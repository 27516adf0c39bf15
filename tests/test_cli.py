"""The ``crmkit`` command line, run through click's CliRunner against real databases.

Plugin discovery is replaced per test (``installed`` fixture) so that what is installed in
the development environment does not change the results; tests/test_plugin_cli.py covers
the real example plugin.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import crmkit
from crmkit.cli import cli
from crmkit.cli.display import display_width, render_table
from crmkit.cli.root import all_core_commands
from crmkit.db import migrate
from crmkit.plugins import InstalledPlugin, in_memory_plugin

Run = Callable[..., Result]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> dict[str, InstalledPlugin]:
    """The plugins the CLI discovers in this test (none unless a test adds some)."""
    plugins: dict[str, InstalledPlugin] = {}
    monkeypatch.setattr("crmkit.app.discover_plugins", lambda: dict(plugins))
    monkeypatch.setattr("crmkit.cli.plugins.discover_plugins", lambda: dict(plugins))
    return plugins


@pytest.fixture
def runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: dict[str, InstalledPlugin]
) -> CliRunner:
    """A runner in an empty working directory, without crmkit variables in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("CRMKIT_CONFIG", "CRMKIT_DATABASE_URL", "CRMKIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def run(runner: CliRunner, database_url: str) -> Run:
    """Run ``crmkit --database-url <this test's database> ARGS...``."""

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, ["--database-url", database_url, *args], input=input)

    return invoke


@pytest.fixture
def with_pipeline(run: Run) -> None:
    ok(run("pipelines", "create", "Sales"))


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout


def failed(result: Result, code: int = 1) -> str:
    """The one line a failed command printed on stderr."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    return line


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def contact_names(crm: crmkit.CRM) -> list[str]:
    return [contact.full_name for contact in crm.contacts.list().items]


# -- init, database, errors ------------------------------------------------------------------


def test_init_writes_the_config_file_and_creates_the_database(
    runner: CliRunner, fresh_database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "crm" / "crmkit.toml"
    ok(runner.invoke(cli, ["--config", str(config), "init", "--database-url", fresh_database_url]))
    assert f'database_url = "{fresh_database_url}"' in config.read_text(encoding="utf-8")
    listed = runner.invoke(cli, ["--config", str(config), "contacts", "list"])
    assert ok(listed) == "No contacts found.\n"


def test_init_defaults_to_a_sqlite_file_next_to_the_config(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "crm" / "crmkit.toml"
    ok(runner.invoke(cli, ["--config", str(config), "init", "--region", "hk"]))
    assert (tmp_path / "crm" / "crmkit.db").is_file()
    text = config.read_text(encoding="utf-8")
    assert 'database_url = "sqlite:///crmkit.db"' in text
    assert 'default_region = "HK"' in text


def test_init_refuses_to_overwrite_a_config_file(runner: CliRunner, tmp_path: Path) -> None:
    write(tmp_path / "crmkit.toml", "[crmkit]\n")
    line = failed(runner.invoke(cli, ["init"]))
    assert line.startswith("Error: crmkit.toml already exists")
    assert (tmp_path / "crmkit.toml").read_text(encoding="utf-8") == "[crmkit]\n"


def test_a_database_that_cannot_be_reached_is_one_line_without_a_traceback(
    runner: CliRunner,
) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:9/nowhere"
    line = failed(runner.invoke(cli, ["--database-url", url, "contacts", "list"]))
    assert line.startswith("Error: cannot connect to the database postgresql+psycopg://nobody@")


def test_a_malformed_database_url_is_one_line(runner: CliRunner) -> None:
    line = failed(runner.invoke(cli, ["--database-url", "nosuchdb://x", "contacts", "list"]))
    assert line.startswith("Error: database URL 'nosuchdb://x'")


def test_a_missing_sqlite_database_says_to_run_init(runner: CliRunner, tmp_path: Path) -> None:
    line = failed(runner.invoke(cli, ["contacts", "list"]))
    assert line.startswith(
        "Error: the database crmkit.db does not exist: create it with 'crmkit init'"
    )
    assert not (tmp_path / "crmkit.db").exists()


def test_db_upgrade_creates_the_schema_of_an_empty_database(
    runner: CliRunner, fresh_database_url: str
) -> None:
    output = ok(runner.invoke(cli, ["--database-url", fresh_database_url, "db", "upgrade"]))
    assert output.startswith("Upgraded: crmkit")
    again = runner.invoke(cli, ["--database-url", fresh_database_url, "db", "upgrade"])
    assert ok(again) == "Already up to date: crmkit\n"


def core_head() -> str:
    """The core branch's newest revision (whichever issue's migration that is)."""
    config = migrate.alembic_config("sqlite://")
    return migrate.branch_heads(config)[migrate.CORE_BRANCH]


def test_db_current_shows_each_branch_and_whether_it_is_up_to_date(run: Run) -> None:
    lines = ok(run("db", "current")).splitlines()
    assert lines[0].split() == ["branch", "current", "head", "status"]
    head = core_head()
    assert lines[2].split() == ["crmkit", head, head, "up", "to", "date"]


def test_db_current_finds_a_plugin_branch_that_depends_on_the_core(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRMKIT_CONFIG", raising=False)
    runner = CliRunner()
    ok(runner.invoke(cli, ["--database-url", database_url, "plugins", "enable", "referrals"]))
    lines = ok(runner.invoke(cli, ["--database-url", database_url, "db", "current"]))
    rows = {line.split()[0]: line.split()[1:] for line in lines.splitlines()[2:]}
    assert rows["crmkit"] == [core_head(), core_head(), "up", "to", "date"]
    assert rows["referrals"] == ["referrals_0001", "referrals_0001", "up", "to", "date"]


def test_ctrl_c_exits_with_status_130_and_one_line(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("crmkit.cli.demo.load_demo_data", interrupted)
    assert failed(run("demo"), code=130) == "Interrupted."


def test_cli_crm_outside_a_command_is_a_clear_error() -> None:
    with pytest.raises(crmkit.CRMError, match="no running crmkit command"):
        crmkit.cli_crm()


# -- plugins ---------------------------------------------------------------------------------


class GreetingPlugin:
    """A plugin adding a ``hello`` command and, clashing with the core, a ``contacts`` one."""

    @staticmethod
    @crmkit.hookimpl
    def crmkit_cli_commands() -> list[click.Command]:
        @click.command("hello")
        def hello() -> None:
            count = crmkit.cli_crm().contacts.count()
            click.echo(f"hello, {count} contacts")

        @click.command("contacts")
        def contacts() -> None:
            click.echo("plugin contacts")

        return [hello, contacts]


def test_plugins_list_json_is_an_empty_list_without_plugins(run: Run) -> None:
    assert json.loads(ok(run("plugins", "list", "--json"))) == []


def test_plugins_list_shows_a_plugin_that_failed_to_import_with_its_error(
    run: Run, installed: dict[str, InstalledPlugin]
) -> None:
    installed["broken"] = InstalledPlugin(
        name="broken",
        version="0.3.0",
        distribution="crmkit-broken",
        module_name="crmkit_broken",
        load_error="ImportError: no module named libbroken",
    )
    lines = ok(run("plugins", "list")).splitlines()
    assert lines[2].split() == [
        "broken",
        "0.3.0",
        "no",
        "ImportError:",
        "no",
        "module",
        "named",
        "libbroken",
    ]


def test_plugins_list_works_on_a_database_that_is_not_initialised(
    runner: CliRunner, fresh_database_url: str, installed: dict[str, InstalledPlugin]
) -> None:
    installed["greeting"] = in_memory_plugin("greeting", GreetingPlugin)
    result = runner.invoke(cli, ["--database-url", fresh_database_url, "plugins", "list", "--json"])
    (row,) = json.loads(ok(result))
    assert (row["name"], row["enabled"]) == ("greeting", False)
    assert "not initialised" in result.stderr


def test_enabling_an_unknown_plugin_is_a_clear_error(run: Run) -> None:
    line = failed(run("plugins", "enable", "nope"))
    assert line == (
        "Error: plugin 'nope' is not installed (installed: none); install the distribution"
        " that provides it, e.g. pip install crmkit-nope"
    )


def test_an_enabled_plugin_adds_its_commands_which_get_the_open_crm(
    run: Run, installed: dict[str, InstalledPlugin]
) -> None:
    installed["greeting"] = in_memory_plugin("greeting", GreetingPlugin)
    assert run("hello").exit_code == 2  # installed, not enabled: no such command
    ok(run("plugins", "enable", "greeting"))
    ok(run("contacts", "create", "full_name=张伟"))
    assert ok(run("hello")) == "hello, 1 contacts\n"


def test_a_plugin_command_named_like_a_core_command_loses_with_a_warning(
    run: Run, installed: dict[str, InstalledPlugin]
) -> None:
    installed["greeting"] = in_memory_plugin("greeting", GreetingPlugin)
    ok(run("plugins", "enable", "greeting"))
    result = run("hello")
    assert ok(result) == "hello, 0 contacts\n"
    assert result.stderr == (
        "Warning: plugin 'greeting' adds a command 'contacts', which is a core command;"
        " the core one is used\n"
    )
    assert "plugin contacts" not in ok(run("contacts", "list"))


def test_root_help_lists_the_enabled_plugins_commands_after_the_core_ones(
    run: Run, installed: dict[str, InstalledPlugin]
) -> None:
    installed["greeting"] = in_memory_plugin("greeting", GreetingPlugin)
    ok(run("plugins", "enable", "greeting"))
    commands = ok(run("--help")).split("Commands:")[1].split()
    assert commands[-1] == "hello"
    assert commands.index("worker") < commands.index("hello")


# -- record commands -------------------------------------------------------------------------


def test_create_then_show_prints_the_normalised_record(run: Run) -> None:
    assert ok(run("contacts", "create", "full_name=张伟", "phone=138 1234 5678")) == (
        "Created contact 1\n"
    )
    shown = json.loads(ok(run("contacts", "show", "1", "--json")))
    assert (shown["full_name"], shown["phone"], shown["version"]) == ("张伟", "+8613812345678", 1)


def test_create_with_bad_values_names_every_bad_field(run: Run) -> None:
    line = failed(run("contacts", "create", "phone=123"))
    assert line == (
        "Error: invalid contact: full_name: is required; phone: '123' is not a possible phone"
        " number (read with region CN)"
    )


def test_list_filters_and_prints_an_aligned_table(run: Run) -> None:
    for name, city in (("张伟", "上海"), ("Grace Lin", "台北"), ("陳大文", "上海")):
        ok(run("contacts", "create", f"full_name={name}", f"city={city}"))
    lines = ok(run("contacts", "list", "--filter", "city=上海", "--fields", "id,full_name,city"))
    rows = lines.splitlines()
    assert [row.split() for row in rows] == [
        ["id", "full_name", "city"],
        ["--", "---------", "----"],
        ["1", "张伟", "上海"],
        ["3", "陳大文", "上海"],
    ]
    city_column = display_width(rows[0].split("city")[0])
    assert all(display_width(row.split("上海")[0]) == city_column for row in rows[2:])


def test_list_json_pages_with_the_cursor_it_prints(run: Run) -> None:
    for name in ("张伟", "李娜", "王芳"):
        ok(run("contacts", "create", f"full_name={name}"))
    first = json.loads(ok(run("contacts", "list", "--limit", "2", "--json")))
    second = json.loads(
        ok(run("contacts", "list", "--limit", "2", "--cursor", first["next_cursor"], "--json"))
    )
    assert [c["full_name"] for c in first["items"] + second["items"]] == ["张伟", "李娜", "王芳"]
    assert second["next_cursor"] is None


def test_update_changes_fields_and_bumps_the_version(run: Run) -> None:
    ok(run("accounts", "create", "name=上海锦程贸易有限公司"))
    assert ok(run("accounts", "update", "1", "city=上海", "--expected-version", "1")) == (
        "Updated account 1 (version 2)\n"
    )
    assert json.loads(ok(run("accounts", "show", "1", "--json")))["city"] == "上海"


def test_update_with_a_stale_expected_version_is_refused_with_the_conflict(run: Run) -> None:
    ok(run("contacts", "create", "full_name=张伟"))
    ok(run("contacts", "update", "1", "city=上海"))
    line = failed(run("contacts", "update", "1", "city=北京", "--expected-version", "1"))
    assert line == (
        "Error: contact 1 was changed by someone else since you read it (it is at version 2,"
        " you had 1): reload it and apply your change again"
    )
    assert json.loads(ok(run("contacts", "show", "1", "--json")))["city"] == "上海"


def test_delete_hides_the_record(run: Run) -> None:
    ok(run("tasks", "create", "title=发送报价单"))
    assert ok(run("tasks", "delete", "1")) == "Deleted task 1\n"
    assert failed(run("tasks", "show", "1")) == "Error: task 1 not found"


def test_a_bad_filter_is_one_line_naming_the_field(run: Run) -> None:
    line = failed(run("leads", "list", "--filter", "wechat=abc"))
    assert line == "Error: invalid lead: wechat: unknown field of lead"


@pytest.mark.usefixtures("with_pipeline")
def test_leads_convert_creates_contact_account_and_deal(run: Run) -> None:
    ok(run("leads", "create", "full_name=陳志明", "company_name=宏達資訊股份有限公司"))
    assert ok(run("leads", "convert", "1")) == "Converted lead 1: contact 1, account 1, deal 1\n"
    assert json.loads(ok(run("leads", "show", "1", "--json")))["status"] == "converted"


@pytest.mark.usefixtures("with_pipeline")
def test_deals_move_to_a_stage_by_name(run: Run) -> None:
    ok(run("deals", "create", "name=ERP 系统升级", "amount=120000"))
    assert ok(run("deals", "move", "1", "Won")) == "Moved deal 1 to Won\n"
    assert json.loads(ok(run("deals", "show", "1", "--json")))["closed_at"] is not None


def test_pipelines_create_with_stages_and_list_them(run: Run) -> None:
    ok(run("pipelines", "create", "Renewals", "--stage", "Due:50", "--stage", "Renewed:100:won"))
    (pipeline,) = json.loads(ok(run("pipelines", "list", "--json")))
    assert pipeline["default"] is True
    assert [(s["name"], s["probability"], s["kind"]) for s in pipeline["stages"]] == [
        ("Due", 50, "open"),
        ("Renewed", 100, "won"),
    ]


def test_users_are_created_in_teams_of_a_tree(run: Run) -> None:
    ok(run("teams", "create", "总部"))
    ok(run("teams", "create", "华东销售部", "--parent", "总部"))
    ok(run("users", "create", "li.na", "--team", "华东销售部", "--display-name", "李娜"))
    (user,) = json.loads(ok(run("users", "list", "--json")))
    assert (user["username"], user["display_name"], user["team_id"]) == ("li.na", "李娜", 2)


def test_a_team_under_a_parent_that_does_not_exist_is_refused(run: Run) -> None:
    assert (
        failed(run("teams", "create", "上海一组", "--parent", "华东"))
        == "Error: team '华东' not found (there are no teams yet)"
    )


# -- import and export -----------------------------------------------------------------------


def test_import_imports_good_rows_and_reports_bad_ones_with_exit_status_1(
    run: Run, make_crm: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    path = write(
        tmp_path / "contacts.csv", "full_name,phone\n张伟,138 1234 5678\n,139 0000 0000\n李娜,123\n"
    )
    result = run("import", str(path))
    assert result.exit_code == 1
    assert result.stdout == "imported 1 of 3 rows, 2 rejected\n"
    assert result.stderr.splitlines() == [
        "line 3, column full_name: is required",
        "line 4, column phone: '123' is not a possible phone number (read with region CN)",
    ]
    assert contact_names(make_crm()) == ["张伟"]


def test_import_of_a_clean_file_exits_0(run: Run, tmp_path: Path) -> None:
    path = write(tmp_path / "accounts.csv", "name,city\n上海锦程贸易有限公司,上海\n")
    assert ok(run("import", str(path))) == "imported 1 of 1 rows, 0 rejected\n"


def test_import_all_or_nothing_imports_nothing_when_a_row_is_bad(
    run: Run, make_crm: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    path = write(tmp_path / "contacts.csv", "full_name,email\n张伟,zw@example.cn\n李娜,nope\n")
    result = run("import", str(path), "--all-or-nothing")
    assert result.exit_code == 1
    assert result.stdout == (
        "imported 0 of 2 rows, 1 rejected (--all-or-nothing: nothing was imported)\n"
    )
    assert contact_names(make_crm()) == []


def test_import_with_an_unknown_column_imports_nothing_and_names_it(
    run: Run, make_crm: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    path = write(tmp_path / "contacts.csv", "full_name,微信\n张伟,zw88\n")
    line = failed(run("import", str(path)))
    assert "'微信' is not a field of contact: map each to a field (--map '微信=FIELD')" in line
    assert contact_names(make_crm()) == []


def test_import_maps_chinese_headers_and_skips_columns(
    run: Run, make_crm: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    path = write(tmp_path / "客户.csv", "姓名,手机,备注\n陳志明,+852 2345 6789,老客户\n")
    ok(
        run(
            "import",
            str(path),
            "-e",
            "contacts",
            "--map",
            "姓名=full_name",
            "--map",
            "手机=phone",
            "--skip",
            "备注",
        )
    )
    (contact,) = make_crm().contacts.list().items
    assert (contact.full_name, contact.phone) == ("陳志明", "+85223456789")


def test_import_reads_standard_input_in_the_named_encoding(
    runner: CliRunner, database_url: str, make_crm: Callable[..., crmkit.CRM]
) -> None:
    data = "full_name,city\n張志明,台北\n".encode("big5")
    arguments = ["--database-url", database_url, "import", "-", "-e", "contacts"]
    ok(runner.invoke(cli, [*arguments, "--encoding", "big5"], input=data))
    assert contact_names(make_crm()) == ["張志明"]


def test_import_without_an_entity_it_can_infer_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    path = write(tmp_path / "客户.csv", "full_name\n张伟\n")
    result = run("import", str(path))
    assert result.exit_code == 2
    assert "say it with --entity, e.g. --entity contacts" in result.stderr


def test_import_writes_every_rejected_row_to_the_errors_file_and_shows_the_first_20(
    run: Run, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "leads.csv", "full_name,email\n" + "".join(f"客户{i},bad\n" for i in range(25))
    )
    report = tmp_path / "rejected.csv"
    result = run("import", str(path), "--errors", str(report))
    assert result.exit_code == 1
    shown = result.stderr.splitlines()
    assert len(shown) == 21
    assert shown[-1] == f"... and 5 more problems (all are in {report})"
    with report.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["line", "column", "reason"]
    assert rows[1] == ["2", "email", "'bad' is not an e-mail address"]
    assert len(rows) == 26


def test_export_prints_csv_on_standard_output(run: Run) -> None:
    ok(run("contacts", "create", "full_name=张伟", "city=上海"))
    output = ok(run("export", "contacts", "--fields", "id,full_name,city"))
    assert output.splitlines() == ["id,full_name,city", "1,张伟,上海"]


def test_an_exported_file_imports_again_with_the_system_columns_skipped(
    run: Run, make_crm: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    ok(run("accounts", "create", "name=宏達資訊股份有限公司"))
    ok(
        run(
            "contacts", "create", "full_name=陳大文 Peter", "account_id=1",
            "extra_phones=+852 2345 6789;138 1234 5678", "social=wechat=pchan;line=peter",
            "birthday=1980-02-03", "notes=说 \"你好\", 然后离开",
        )
    )  # fmt: skip
    path = tmp_path / "all-contacts.csv"
    ok(run("export", "contacts", "-o", str(path)))
    ok(run("import", str(path), "--skip", "id,created_at,updated_at,version"))

    def fields(record: Any) -> dict[str, Any]:
        values = crm.contacts.snapshot(record)
        system = ("id", "created_at", "updated_at", "version")
        return {key: value for key, value in values.items() if key not in system}

    crm = make_crm()
    original, copy = crm.contacts.list().items
    assert fields(copy) == fields(original)


# -- demo, events, worker --------------------------------------------------------------------


def test_demo_loads_data_and_a_second_run_refuses(
    run: Run, make_crm: Callable[..., crmkit.CRM]
) -> None:
    output = ok(run("demo", "--contacts", "20"))
    assert "  contacts: " in output
    crm = make_crm()
    loaded = crm.contacts.count()
    assert loaded >= 20
    assert crm.deals.count() > 0
    line = failed(run("demo"))
    assert line.startswith("Error: the demo data is already loaded")
    assert crm.contacts.count() == loaded


class FailingSinkPlugin:
    """A plugin whose event sink always fails."""

    class Sink:
        name = "erp"
        patterns = ("contact.*",)

        def deliver(self, event: crmkit.Event) -> None:
            raise RuntimeError("ERP is down")

    @staticmethod
    @crmkit.hookimpl
    def crmkit_event_sinks(crm: crmkit.CRM) -> list[object]:
        return [FailingSinkPlugin.Sink()]


@pytest.fixture
def failing_sink(
    runner: CliRunner, database_url: str, tmp_path: Path, installed: dict[str, InstalledPlugin]
) -> Run:
    """A CRM whose one sink always fails, and deliveries that die at the first failure."""
    installed["failing"] = in_memory_plugin("failing", FailingSinkPlugin)
    config = write(
        tmp_path / "crmkit.toml",
        f'[crmkit]\ndatabase_url = "{database_url}"\n\n[crmkit.relay]\nmax_attempts = 1\n',
    )

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--config", str(config), *args])

    ok(invoke("plugins", "enable", "failing"))
    return invoke


def test_worker_once_delivers_and_reports_what_it_did(failing_sink: Run) -> None:
    ok(failing_sink("contacts", "create", "full_name=张伟"))
    output = ok(failing_sink("worker", "--once"))
    assert output.startswith("dispatched ")
    assert output.endswith("delivered 0, retried 0, dead 1\n")


def test_dead_deliveries_are_listed_and_can_be_retried(failing_sink: Run) -> None:
    ok(failing_sink("contacts", "create", "full_name=张伟"))
    ok(failing_sink("worker", "--once"))
    (dead,) = json.loads(ok(failing_sink("events", "dead", "--json")))
    assert (dead["sink"], dead["record"]) == ("erp", "contact:1")
    assert "ERP is down" in dead["last_error"]
    assert ok(failing_sink("events", "retry", "--all-dead")) == "1 dead delivery queued for retry\n"
    assert json.loads(ok(failing_sink("events", "dead", "--json"))) == []


def test_the_delivery_log_lists_deliveries_by_sink_and_status(failing_sink: Run) -> None:
    ok(failing_sink("contacts", "create", "full_name=张伟"))
    ok(failing_sink("worker", "--once"))
    (line,) = json.loads(ok(failing_sink("events", "deliveries", "--sink", "erp", "--json")))
    assert (line["event"], line["status"], line["attempts"]) == ("contact.created", "dead", 1)
    assert "ERP is down" in line["last_error"]
    assert (
        json.loads(ok(failing_sink("events", "deliveries", "--status", "delivered", "--json")))
        == []
    )
    assert ok(failing_sink("events", "deliveries", "--sink", "nobody")) == "No deliveries.\n"
    refused = failing_sink("events", "deliveries", "--status", "lost")
    assert refused.exit_code == 2
    assert "'lost' is not one of" in refused.output


def test_events_lag_counts_what_the_relay_has_not_done_yet(failing_sink: Run) -> None:
    ok(failing_sink("contacts", "create", "full_name=张伟"))
    ok(failing_sink("contacts", "create", "full_name=李娜"))
    before = json.loads(ok(failing_sink("events", "lag", "--format", "json")))
    assert before["undispatched"] >= 2
    assert before["sinks"] == []
    metrics = ok(failing_sink("events", "lag", "--format", "prometheus")).splitlines()
    assert f"crmkit_events_undispatched {before['undispatched']}" in metrics
    assert "# TYPE crmkit_events_undispatched gauge" in metrics
    ok(failing_sink("worker", "--once"))
    after = json.loads(ok(failing_sink("events", "lag", "--format", "json")))
    assert after == {"undispatched": 0, "oldest_undispatched_seconds": 0.0, "sinks": []}
    assert ok(failing_sink("events", "lag")).startswith("undispatched events: 0")


def test_events_retry_without_saying_which_is_a_usage_error(run: Run) -> None:
    assert run("events", "retry").exit_code == 2


def test_events_tail_prints_the_latest_events_oldest_first(run: Run) -> None:
    for name in ("张伟", "李娜", "王芳"):
        ok(run("contacts", "create", f"full_name={name}"))
    lines = ok(run("events", "tail", "-n", "2", "--name", "contact.*", "--json")).splitlines()
    events = [json.loads(line) for line in lines]
    assert [(e["name"], e["payload"]["full_name"]) for e in events] == [
        ("contact.created", "李娜"),
        ("contact.created", "王芳"),
    ]


# -- display ---------------------------------------------------------------------------------


def test_tables_align_chinese_and_latin_text_by_display_width() -> None:
    table = render_table(("name", "city"), [("张伟", "上海"), ("Grace Lin", "台北")])
    header, _, first, second = table.splitlines()
    assert display_width(first.split("上海")[0]) == display_width(header.split("city")[0])
    assert display_width(second.split("台北")[0]) == display_width(header.split("city")[0])


def test_long_cells_are_clipped_to_forty_columns() -> None:
    table = render_table(("notes",), [("客户" * 30,)])
    assert display_width(table.splitlines()[2]) <= 40
    assert table.splitlines()[2].endswith("…")


def test_every_command_has_help_ending_with_an_example() -> None:
    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            subcommands = all_core_commands() if command is cli else command.commands
            for name, sub in subcommands.items():
                yield from walk(sub, f"{path} {name}")

    for path, command in walk(cli, "crmkit"):
        text = command.help or ""
        assert "Example:" in text, path
        example = [line.strip() for line in text.split("Example:")[-1].splitlines()]
        assert next(line for line in example if line and line != "\b").startswith("crmkit"), path
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"{path} {param.opts}"
