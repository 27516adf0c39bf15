"""The traps a plugin author met writing a plugin from the docs (issue 18), each removed at
its root: one test per trap, on real databases."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import click
import pytest
from sqlalchemy import DateTime, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

import crmkit
from crmkit.plugins import InstalledPlugin, in_memory_plugin
from crmkit.testing import CRMFactory, command_line_for


class WechatField:
    @crmkit.hookimpl
    def crmkit_custom_fields(self) -> list[crmkit.CustomField]:
        return [crmkit.CustomField(entity="contact", name="wechat_id", type="text")]


# -- 4: custom fields read the way they are written ---------------------------------------------


def test_a_custom_field_reads_at_the_top_level_like_it_is_written(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"wechat": WechatField()})
    contact = crm.contacts.create({"full_name": "王芳", "wechat_id": "wangfang88"})
    again = crm.contacts.get(contact.id)
    assert (again.wechat_id, again["wechat_id"], again.custom["wechat_id"]) == ("wangfang88",) * 3


def test_an_unknown_field_is_not_called_a_permission_problem(make_crm: CRMFactory) -> None:
    contact = make_crm().contacts.create({"full_name": "王芳"})
    with pytest.raises(AttributeError, match="contact has no field 'wechat_id' \\(no built-in"):
        _ = contact.wechat_id


# -- 6: hooks see the actor's scope; elevated lookups are one keyword away --------------------


class CodeVeto:
    """Refuses a second contact with the same referral code, looking at every contact."""

    @crmkit.hookimpl
    def crmkit_custom_fields(self) -> list[crmkit.CustomField]:
        return [crmkit.CustomField(entity="contact", name="code", type="text")]

    @crmkit.hookimpl
    def crmkit_before_create(
        self, op: crmkit.Operation, entity: str, values: dict[str, Any]
    ) -> None:
        if entity == "contact" and values.get("code"):
            taken = op.records("contact", elevated=True).count({"code": values["code"]})
            if taken:
                raise crmkit.PluginVeto(f"code {values['code']} is taken")


def test_an_elevated_lookup_in_a_hook_sees_records_outside_the_actors_scope(
    make_crm: CRMFactory,
) -> None:
    crm = make_crm(plugins={"codes": CodeVeto()})
    crm.users.create("li.na", roles=["sales_rep"])
    crm.users.create("wang.fang", roles=["sales_rep"])
    li_na = crm.users.get("li.na")
    wang_fang = crm.users.get("wang.fang")
    crm.contacts.create({"full_name": "张伟", "code": "A1", "owner_id": li_na.id}, actor=li_na)
    assert crm.contacts.count(actor=wang_fang) == 0  # outside wang.fang's scope

    with pytest.raises(crmkit.PluginError, match="code A1 is taken"):
        crm.contacts.create({"full_name": "陈静", "code": "A1"}, actor=wang_fang)


def test_elevated_needs_an_operation(make_crm: CRMFactory) -> None:
    crm = make_crm()
    with pytest.raises(crmkit.CRMError, match=r"op\.records\(name, elevated=True\)"):
        crm.records("contact", elevated=True)


# -- 7: plugin columns validate as their type ----------------------------------------------------


class Visit(crmkit.RecordMixin, crmkit.Model):
    __tablename__ = "trap_visits"
    place: Mapped[str] = mapped_column(String(100))
    # A plain DateTime, as a hand-written migration has it (crmkit.UTCDateTime is better).
    visited_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    planned_at: Mapped[dt.datetime | None] = mapped_column(crmkit.UTCDateTime(), default=None)


class Photo(crmkit.RecordMixin, crmkit.Model):
    __tablename__ = "trap_photos"
    image: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class Entities:
    def __init__(self, *entities: crmkit.EntityType) -> None:
        self.entities = list(entities)

    @crmkit.hookimpl
    def crmkit_entities(self) -> list[crmkit.EntityType]:
        return self.entities


def test_a_plugin_datetime_column_takes_an_iso_string_as_a_time(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"visits": Entities(crmkit.EntityType("visit", Visit))})
    Visit.__table__.create(crm.engine)  # type: ignore[attr-defined]
    visit = crm.records("visit").create(
        {
            "place": "上海",
            "visited_at": "2026-12-04T17:30:00+08:00",
            "planned_at": "2026-12-05T09:00Z",
        }
    )
    stored = crm.records("visit").get(visit.id)
    visited = stored.visited_at
    visited = visited if visited.tzinfo else visited.replace(tzinfo=dt.UTC)
    assert visited == dt.datetime(2026, 12, 4, 9, 30, tzinfo=dt.UTC)
    assert stored.planned_at == dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)

    with pytest.raises(crmkit.ValidationError, match="visited_at"):
        crm.records("visit").create({"place": "北京", "visited_at": "tomorrow"})


def test_a_plugin_column_crmkit_cannot_validate_is_named_when_the_crm_opens(
    make_crm: CRMFactory,
) -> None:
    with pytest.raises(crmkit.ConfigError, match="column 'image' has type LargeBinary"):
        make_crm(plugins={"photos": Entities(crmkit.EntityType("photo", Photo))})


def test_a_bad_value_for_a_plugin_command_is_one_line_without_traceback(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class VisitCommands(Entities):
        @crmkit.hookimpl
        def crmkit_cli_commands(self) -> list[click.Command]:
            @click.command(name="visit")
            @click.argument("when")
            def visit(when: str) -> None:
                crmkit.cli_crm().records("visit").create({"place": "x", "visited_at": when})

            return [visit]

    crm = make_crm(plugins={"visits": VisitCommands(crmkit.EntityType("visit", Visit))})
    Visit.__table__.create(crm.engine)  # type: ignore[attr-defined]
    line = command_line_for(crm, monkeypatch, tmp_path).fails("visit", "2026-13-45")
    assert "visited_at" in line
    assert "ISO 8601" in line


# -- 8: assignment strategies get the CRM; declining is not "no member"; startup on enable --------


class Picky:
    """A strategy that reads its settings from the CRM and declines when told to."""

    seen: list[Any]

    def __init__(self) -> None:
        self.seen = []

    @crmkit.hookimpl
    def crmkit_settings(self) -> list[crmkit.SettingSpec]:
        return [crmkit.SettingSpec("accept", bool, default=True)]

    @crmkit.hookimpl
    def crmkit_assignment_strategies(self) -> list[crmkit.AssignmentStrategy]:
        def choose(request: crmkit.AssignmentRequest) -> crmkit.AssignmentCandidate | None:
            self.seen.append(request.rule)
            accept = request.crm.plugin_settings("picky")["accept"]
            return request.candidates[0] if accept else None

        return [crmkit.AssignmentStrategy("picky", choose)]


@pytest.mark.parametrize("accept", [True, False])
def test_a_plugin_strategy_reads_its_settings_from_the_request(
    make_crm: CRMFactory, accept: bool
) -> None:
    picky = Picky()
    crm = make_crm(plugins={"picky": picky}, plugin_settings={"picky": {"accept": accept}})
    crm.users.create("li.na", roles=["sales_rep"])
    crm.assignment.add_rule("lead", "all", "picky", ["li.na"])
    explanation = crm.assignment.test("lead", {"full_name": "王芳"})
    (rule,) = picky.seen
    assert isinstance(rule, crmkit.AssignmentRule)
    assert isinstance(rule.members[0], crmkit.AssignmentMember)
    if accept:
        assert explanation.decision is not None
        assert explanation.decision.username == "li.na"
    else:
        assert explanation.decision is None
        assert "strategy 'picky' declined all 1 available member(s)" in explanation.steps[0]


class Starter:
    started: list[str] = []  # noqa: RUF012 - a record of calls, read by the test

    @crmkit.hookimpl
    def crmkit_startup(self, crm: crmkit.CRM) -> None:
        Starter.started.append(crm.settings.database_url)

    @crmkit.hookimpl
    def crmkit_assignment_strategies(self) -> list[crmkit.AssignmentStrategy]:
        return [crmkit.AssignmentStrategy("starter_pick", lambda request: None)]


def installed_as(monkeypatch: pytest.MonkeyPatch, **plugins: object) -> None:
    """Make ``plugins`` look installed (found through the entry points)."""
    found = {name: in_memory_plugin(name, plugin) for name, plugin in plugins.items()}
    monkeypatch.setattr("crmkit.app.discover_plugins", lambda: dict(found))


def test_startup_runs_for_a_plugin_enabled_in_a_running_process(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed_as(monkeypatch, starter=Starter())
    Starter.started.clear()
    crm = make_crm(discover=True)
    assert Starter.started == []
    crm.enable_plugin("starter")
    assert Starter.started == [crm.settings.database_url]


# -- 9: disabling a plugin a rule depends on is refused, naming the rules -----------------------


def test_disabling_a_plugin_whose_strategy_a_rule_uses_is_refused(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed_as(monkeypatch, starter=Starter())
    crm = make_crm(discover=True)
    crm.enable_plugin("starter")
    crm.users.create("li.na", roles=["sales_rep"])
    crm.assignment.add_rule("lead", "vip leads", "starter_pick", ["li.na"])

    with pytest.raises(crmkit.PluginError, match=r"rules lead/vip leads; .*rules remove"):
        crm.disable_plugin("starter")
    assert crm.enabled_plugin_names() == ["starter"]

    crm.assignment.remove_rule("lead", "vip leads")
    crm.disable_plugin("starter")
    assert crm.enabled_plugin_names() == []


# -- 10: a bad plugin setting is shown where the user looks -------------------------------------


class Strict:
    @crmkit.hookimpl
    def crmkit_settings(self) -> list[crmkit.SettingSpec]:
        return [crmkit.SettingSpec("level", int, default=1)]

    @crmkit.hookimpl
    def crmkit_startup(self, crm: crmkit.CRM) -> None:
        crm.plugin_settings("strict")  # validated when the CRM opens

    @crmkit.hookimpl
    def crmkit_cli_commands(self) -> list[click.Command]:
        return [click.Command("strict", callback=lambda: click.echo("ok"))]


def test_a_bad_setting_is_the_error_of_the_plugins_own_command(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from crmkit.cli import cli

    installed_as(monkeypatch, strict=Strict())
    make_crm(discover=True).enable_plugin("strict")
    database_url = make_crm().settings.database_url
    config = tmp_path / "crmkit.toml"
    config.write_text(
        f'[crmkit]\ndatabase_url = "{database_url}"\n\n[plugins.strict]\nlevel = "high"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "strict"])

    assert result.exit_code == 1, result.output
    assert "No such command" not in result.output
    assert "plugins.strict.level" in result.stderr
    assert "Traceback" not in result.output


# -- 11: a plugin that cannot load is reported where it matters, once --------------------------


def broken(name: str) -> InstalledPlugin:
    return InstalledPlugin(
        name=name,
        version="1.0",
        distribution=f"crmkit-{name}",
        module_name=f"crmkit_{name}",
        load_error="ModuleNotFoundError: No module named 'rapidfuzz'",
    )


def test_an_installed_plugin_that_cannot_load_stays_quiet_until_asked(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("crmkit.app.discover_plugins", lambda: {"fuzzy": broken("fuzzy")})
    with caplog.at_level(logging.WARNING):
        crm = make_crm(discover=True)
    assert caplog.records == []
    assert crm.installed["fuzzy"].load_error


def test_an_enabled_plugin_that_cannot_load_is_warned_about_on_open(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    installed_as(monkeypatch, fuzzy=WechatField())
    make_crm(discover=True).enable_plugin("fuzzy")
    monkeypatch.setattr("crmkit.app.discover_plugins", lambda: {"fuzzy": broken("fuzzy")})
    with caplog.at_level(logging.WARNING):
        make_crm(discover=True)
    (record,) = caplog.records
    assert "plugin 'fuzzy' is enabled but failed to load" in record.getMessage()
    assert "rapidfuzz" in record.getMessage()
