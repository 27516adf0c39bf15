"""The plugin contract, shown with a real installed distribution: examples/crmkit-referrals.

The test session installs that distribution, so it is discovered through its entry point
exactly as a third-party plugin would be. Throwaway in-memory plugins appear only where a test
needs a plugin that misbehaves.
"""

from __future__ import annotations

import importlib.metadata
import textwrap
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import crmkit_referrals
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from crmkit_referrals import EVENTS_SEEN, JsonLinesSink

import crmkit
from crmkit.db import migrate
from crmkit.events.outbox import OutboxEvent
from crmkit.events.relay import Relay
from crmkit.plugins import InstalledPlugin
from crmkit.services import plugin_admin

BLOCKED = {"referrals": {"blocked_domains": ["spam.example"]}}


@pytest.fixture(autouse=True)
def _forget_events_seen() -> None:
    EVENTS_SEEN.clear()


@pytest.fixture
def open_enabled(make_crm: Callable[..., crmkit.CRM]) -> Callable[..., crmkit.CRM]:
    """Open a CRM that discovers installed plugins, and enable referrals on it."""

    def factory(**settings: Any) -> crmkit.CRM:
        crm = make_crm(discover=True, **settings)
        plugin_admin.enable_plugin(crm, "referrals")
        return crm

    return factory


@pytest.fixture
def referrals_crm(open_enabled: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM with referrals enabled and ``spam.example`` blocked."""
    return open_enabled(plugin_settings=BLOCKED)


def outbox(crm: crmkit.CRM) -> list[OutboxEvent]:
    with crm.transaction(write=False) as op:
        return list(op.session.scalars(sa.select(OutboxEvent).order_by(OutboxEvent.id)))


def outbox_names(crm: crmkit.CRM) -> list[str]:
    return [event.name for event in outbox(crm)]


def referral_rows(crm: crmkit.CRM) -> int:
    """Rows in the referrals table, read with plain SQL (works while the plugin is off)."""
    with crm.engine.connect() as connection:
        return int(connection.scalar(sa.text("SELECT count(*) FROM referrals")) or 0)


def two_contacts(crm: crmkit.CRM) -> tuple[Any, Any]:
    return (
        crm.contacts.create({"full_name": "王芳", "email": "wang.fang@example.com"}),
        crm.contacts.create({"full_name": "刘洋", "email": "liu.yang@example.com"}),
    )


def refer(crm: crmkit.CRM, referrer: Any, referred: Any, **extra: object) -> Any:
    return crm.records("referral").create(
        {"referrer_contact_id": referrer.id, "referred_contact_id": referred.id, **extra}
    )


class ExplodingAfterCreate:
    """A throwaway plugin that fails after one entity's insert, after every other plugin,
    noting which events the operation had emitted by then."""

    def __init__(self, entity: str) -> None:
        self.entity = entity
        self.events_before: list[str] = []

    @crmkit.hookimpl(trylast=True)
    def crmkit_after_create(
        self, op: crmkit.Operation, entity: str, record_id: int, values: Mapping[str, Any]
    ) -> None:
        if entity == self.entity:
            self.events_before = [event.name for event in op.events]
            raise RuntimeError(f"{entity} {record_id} exploded")


def fake_plugin(name: str, requires: tuple[str, ...]) -> InstalledPlugin:
    """An installed plugin with no hooks and the given requirements."""
    return InstalledPlugin(
        name=name,
        version="1.0",
        distribution=f"crmkit-{name}",
        module_name=f"crmkit_{name}",
        requires=requires,
        module=types.ModuleType(f"crmkit_{name}"),
    )


# -- discovery and enabling -----------------------------------------------------------------


def test_the_plugin_is_discovered_with_its_version_and_description(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True)
    (row,) = [row for row in plugin_admin.list_plugins(crm) if row["name"] == "referrals"]
    assert row == {
        "name": "referrals",
        "version": importlib.metadata.version("crmkit-referrals"),
        "enabled": False,
        "requires": [],
        "description": crmkit_referrals.crmkit_plugin.description,
        "distribution": "crmkit-referrals",
        "error": None,
    }


def test_an_installed_plugin_does_nothing_until_enabled(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True, plugin_settings=BLOCKED)
    contact = crm.contacts.create({"full_name": "张伟", "email": "zhang@spam.example"})
    assert contact.email == "zhang@spam.example"
    with pytest.raises(crmkit.ValidationError, match="wechat_id: unknown field of contact"):
        crm.contacts.create({"full_name": "李娜", "wechat_id": "lina"})
    with pytest.raises(crmkit.CRMError, match="unknown entity 'referral'"):
        crm.records("referral")
    assert EVENTS_SEEN == {}


def test_enabling_runs_the_plugin_migration(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(discover=True)
    assert not sa.inspect(crm.engine).has_table("referrals")
    assert plugin_admin.enable_plugin(crm, "referrals") == ["referrals"]
    assert sa.inspect(crm.engine).has_table("referrals")
    assert "referrals_0001" in migrate.current_heads(crm.engine)


def test_the_plugin_migration_creates_exactly_the_referral_model(
    referrals_crm: crmkit.CRM,
) -> None:
    def only_referrals(obj: Any, name: str | None, type_: str, *_: object) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name == "referrals"

    with referrals_crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": only_referrals}
        )
        differences = compare_metadata(context, crmkit.Model.metadata)
    assert differences == []


def test_the_plugin_branch_and_the_core_branch_keep_their_own_heads(
    referrals_crm: crmkit.CRM,
) -> None:
    url = referrals_crm.engine.url.render_as_string(hide_password=False)
    core_only = migrate.branch_heads(migrate.alembic_config(url))
    with_plugins = migrate.branch_heads(
        migrate.alembic_config(url, referrals_crm.migration_locations())
    )
    assert with_plugins["crmkit"] == core_only["crmkit"]
    assert with_plugins["referrals"] == "referrals_0001"


def test_enabling_runs_the_setup_hook_after_the_migration(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True, plugin_settings={"referrals": {"reward_points": 250}})
    plugin_admin.enable_plugin(crm, "referrals")
    (setup,) = [event for event in outbox(crm) if event.name == "referrals.setup"]
    assert setup.payload == {"existing_referrals": 0, "reward_points": 250, "blocked_domains": []}
    assert EVENTS_SEEN["referrals.setup"] == 1


def test_the_enabled_state_is_stored_in_the_database(
    referrals_crm: crmkit.CRM, make_crm: Callable[..., crmkit.CRM]
) -> None:
    another_process = make_crm(discover=True, plugin_settings=BLOCKED)
    assert "referrals" in another_process.enabled_plugin_names()
    with pytest.raises(crmkit.PluginError, match="refused by plugin 'referrals'"):
        another_process.contacts.create({"full_name": "张伟", "email": "zhang@spam.example"})


def test_enabling_an_enabled_plugin_changes_nothing(referrals_crm: crmkit.CRM) -> None:
    assert plugin_admin.enable_plugin(referrals_crm, "referrals") == []
    assert outbox_names(referrals_crm).count("referrals.setup") == 1


def test_a_bad_plugin_setting_stops_the_enable_with_the_setting_named(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True, plugin_settings={"referrals": {"reward_points": "lots"}})
    with pytest.raises(crmkit.PluginError, match=r"plugins\.referrals\.reward_points must be int"):
        plugin_admin.enable_plugin(crm, "referrals")
    assert "referrals" not in crm.enabled_plugin_names()


def test_plugin_info_describes_what_the_plugin_adds(make_crm: Callable[..., crmkit.CRM]) -> None:
    info = plugin_admin.plugin_info(make_crm(discover=True), "referrals")
    assert info["enabled"] is False
    assert {"crmkit_before_create", "crmkit_after_create", "crmkit_setup"} <= set(info["hooks"])
    assert info["entities"] == ["referral"]
    assert info["custom_fields"] == [
        "contact.wechat_id (text)",
        "contact.referral_code (text)",
        "contact.vip_level (choice)",
    ]
    assert [setting["name"] for setting in info["settings"]] == [
        "blocked_domains",
        "reward_points",
        "event_log",
    ]
    assert info["commands"] == ["referrals"]
    assert Path(info["migrations"]).is_dir()


# -- custom fields --------------------------------------------------------------------------


def test_plugin_custom_fields_are_validated_and_stored(referrals_crm: crmkit.CRM) -> None:
    contact = referrals_crm.contacts.create(
        {"full_name": "王芳", "wechat_id": " wangfang88 ", "vip_level": "gold"}
    )
    assert referrals_crm.contacts.get(contact.id).custom == {
        "wechat_id": "wangfang88",
        "vip_level": "gold",
    }


def test_a_bad_choice_names_the_field_and_writes_nothing(referrals_crm: crmkit.CRM) -> None:
    before = outbox_names(referrals_crm)
    with pytest.raises(crmkit.ValidationError) as raised:
        referrals_crm.contacts.create({"full_name": "王芳", "vip_level": "platinum"})
    assert [error.field for error in raised.value.errors] == ["vip_level"]
    assert "'platinum' is not one of bronze, silver, gold" in str(raised.value)
    assert referrals_crm.contacts.count() == 0
    assert outbox_names(referrals_crm) == before


def test_filters_work_on_plugin_custom_fields(referrals_crm: crmkit.CRM) -> None:
    contacts = referrals_crm.contacts
    wang = contacts.create({"full_name": "王芳", "wechat_id": "wangfang88", "vip_level": "gold"})
    liu = contacts.create({"full_name": "刘洋", "wechat_id": "liuyang", "vip_level": "silver"})
    chen = contacts.create({"full_name": "陳美玲", "referral_code": "CHEN-2024"})

    def ids(filters: dict[str, object]) -> list[int]:
        return [contact.id for contact in contacts.list(filters).items]

    assert ids({"vip_level": "gold"}) == [wang.id]
    assert ids({"vip_level__in": ["gold", "silver"]}) == [wang.id, liu.id]
    assert ids({"wechat_id__contains": "wang"}) == [wang.id]
    assert ids({"referral_code__empty": False}) == [chen.id]
    assert contacts.count({"vip_level__empty": True}) == 1


# -- the plugin's own entity ----------------------------------------------------------------


def test_the_plugin_entity_has_the_full_record_service(referrals_crm: crmkit.CRM) -> None:
    crm = referrals_crm
    seen: list[str] = []
    crm.subscribe("referral.*", lambda event: seen.append(event.name))
    wang, liu = two_contacts(crm)
    referrals = crm.records("referral")

    referral = refer(crm, wang, liu, channel="wechat", note="朋友圈推荐")
    assert referrals.get(referral.id).channel == "wechat"
    assert [r.id for r in referrals.list({"channel": "wechat"}).items] == [referral.id]
    assert referrals.list(search="朋友圈").items[0].id == referral.id
    updated = referrals.update(referral.id, {"channel": "event"}, expected_version=2)
    assert (updated.channel, updated.version) == ("event", 3)
    referrals.delete(referral.id)

    with pytest.raises(crmkit.NotFoundError):
        referrals.get(referral.id)
    assert seen == [
        "referral.created",
        "referral.updated",
        "referral.rewarded",
        "referral.updated",
        "referral.deleted",
    ]


def test_a_referral_needs_two_existing_contacts(referrals_crm: crmkit.CRM) -> None:
    wang, _ = two_contacts(referrals_crm)
    referrals = referrals_crm.records("referral")
    with pytest.raises(crmkit.ValidationError, match="referred_contact_id: is required"):
        referrals.create({"referrer_contact_id": wang.id})
    with pytest.raises(crmkit.ValidationError, match="contact 999 does not exist"):
        referrals.create({"referrer_contact_id": wang.id, "referred_contact_id": 999})
    assert referral_rows(referrals_crm) == 0


# -- vetoes ---------------------------------------------------------------------------------


def test_a_contact_from_a_blocked_domain_is_refused_and_nothing_is_written(
    referrals_crm: crmkit.CRM,
) -> None:
    before = outbox_names(referrals_crm)
    with pytest.raises(crmkit.PluginError) as raised:
        referrals_crm.contacts.create({"full_name": "张伟", "email": "Zhang@Spam.Example"})
    assert raised.value.plugin == "referrals"
    assert str(raised.value) == (
        "refused by plugin 'referrals': e-mail domain spam.example is blocked for new contacts"
    )
    assert referrals_crm.contacts.count() == 0
    assert outbox_names(referrals_crm) == before


def test_every_address_of_a_contact_and_sub_domains_are_checked(
    referrals_crm: crmkit.CRM,
) -> None:
    with pytest.raises(crmkit.PluginError, match=r"mail\.spam\.example is blocked"):
        referrals_crm.contacts.create(
            {"full_name": "张伟", "email": "zw@ok.example", "extra_emails": "zw@mail.spam.example"}
        )
    assert referrals_crm.contacts.create({"full_name": "张伟", "email": "zw@notspam.example"})


def test_a_self_referral_is_refused(referrals_crm: crmkit.CRM) -> None:
    wang, _ = two_contacts(referrals_crm)
    with pytest.raises(crmkit.PluginError, match="cannot refer themselves"):
        refer(referrals_crm, wang, wang)
    assert referral_rows(referrals_crm) == 0


def test_a_veto_in_create_many_rejects_that_row_and_imports_the_rest(
    referrals_crm: crmkit.CRM,
) -> None:
    result = referrals_crm.contacts.create_many(
        [
            (2, {"full_name": "王芳", "email": "wang@example.com"}),
            (3, {"full_name": "垃圾邮件", "email": "junk@spam.example"}),
            (4, {"full_name": "刘洋", "vip_level": "silver"}),
        ]
    )
    assert result.created == 2
    (error,) = result.errors
    assert (error.line, error.field) == (3, None)
    assert "refused by plugin 'referrals'" in error.message
    assert "spam.example is blocked" in error.message
    names = [contact.full_name for contact in referrals_crm.contacts.list().items]
    assert names == ["王芳", "刘洋"]


# -- writes inside the transaction ----------------------------------------------------------


def test_after_create_rewards_the_referrer_in_the_same_transaction(
    open_enabled: Callable[..., crmkit.CRM],
) -> None:
    crm = open_enabled(plugin_settings={"referrals": {"reward_points": 250}})
    wang, liu = two_contacts(crm)
    referral = refer(crm, wang, liu)
    assert referral.reward_points == 250
    assert crm.records("referral").get(referral.id).reward_points == 250
    (rewarded,) = [event for event in outbox(crm) if event.name == "referral.rewarded"]
    assert (rewarded.record_type, rewarded.record_id) == ("contact", wang.id)
    assert rewarded.payload == {
        "referral_id": referral.id,
        "referred_contact_id": liu.id,
        "points": 250,
    }


def test_a_reward_given_by_the_caller_is_kept(referrals_crm: crmkit.CRM) -> None:
    wang, liu = two_contacts(referrals_crm)
    referral = refer(referrals_crm, wang, liu, reward_points=500)
    assert referral.reward_points == 500
    assert referral.version == 1


def test_a_failure_after_insert_rolls_back_the_insert(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"boom": ExplodingAfterCreate("contact")})
    before = outbox_names(crm)
    with pytest.raises(crmkit.PluginError) as raised:
        crm.contacts.create({"full_name": "张伟"})
    assert raised.value.plugin == "boom"
    assert "plugin 'boom' failed in crmkit_after_create: RuntimeError" in str(raised.value)
    assert crm.contacts.count() == 0
    assert outbox_names(crm) == before


def test_a_failure_after_insert_rolls_back_what_other_plugins_wrote(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    boom = ExplodingAfterCreate("referral")
    crm = make_crm(discover=True, plugins={"boom": boom})
    plugin_admin.enable_plugin(crm, "referrals")
    wang, liu = two_contacts(crm)
    before = outbox_names(crm)
    with pytest.raises(crmkit.PluginError, match="plugin 'boom' failed"):
        refer(crm, wang, liu)
    assert "referral.rewarded" in boom.events_before  # the referrals plugin had written
    assert referral_rows(crm) == 0
    assert outbox_names(crm) == before
    assert EVENTS_SEEN["referral.created"] == 0


# -- events ---------------------------------------------------------------------------------


def test_on_event_runs_only_after_commit(referrals_crm: crmkit.CRM) -> None:
    with referrals_crm.transaction() as op:
        op.records("contact").create({"full_name": "赵敏"})
        assert EVENTS_SEEN["contact.created"] == 0
    assert EVENTS_SEEN["contact.created"] == 1


def test_a_vetoed_or_rolled_back_operation_delivers_no_events(
    referrals_crm: crmkit.CRM,
) -> None:
    def create_then_fail() -> None:
        with referrals_crm.transaction() as op:
            op.records("contact").create({"full_name": "赵敏"})
            raise RuntimeError("changed my mind")

    with pytest.raises(crmkit.PluginError):
        referrals_crm.contacts.create({"full_name": "张伟", "email": "zw@spam.example"})
    with pytest.raises(RuntimeError, match="changed my mind"):
        create_then_fail()
    assert EVENTS_SEEN["contact.created"] == 0


def test_the_event_sink_is_offered_when_event_log_is_set(
    open_enabled: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    log = tmp_path / "events.jsonl"
    crm = open_enabled(plugin_settings={"referrals": {"event_log": str(log)}})
    (sink,) = [sink for sink in crm.event_sinks() if sink.name == "referrals-jsonl"]
    assert isinstance(sink, crmkit.EventSink)
    assert list(sink.patterns) == ["contact.*", "referral.*"]
    assert sink == JsonLinesSink(path=log)


def test_without_event_log_the_plugin_offers_no_sink(referrals_crm: crmkit.CRM) -> None:
    assert "referrals-jsonl" not in [sink.name for sink in referrals_crm.event_sinks()]


def test_the_relay_appends_matching_events_to_the_event_log(
    open_enabled: Callable[..., crmkit.CRM], tmp_path: Path
) -> None:
    log = tmp_path / "events.jsonl"
    crm = open_enabled(plugin_settings={"referrals": {"event_log": str(log)}})
    wang, liu = two_contacts(crm)
    referral = refer(crm, wang, liu)
    crm.accounts.create({"name": "上海明远贸易有限公司"})  # account.* is not logged
    relay = Relay(crm)
    while not relay.run_once().idle:
        pass
    lines = JsonLinesSink(path=log).read()
    assert sorted(str(line["name"]) for line in lines) == [
        "contact.created",
        "contact.created",
        "referral.created",
        "referral.rewarded",
        "referral.updated",
    ]
    created = next(line for line in lines if line["name"] == "referral.created")
    assert created["record_id"] == referral.id


# -- disabling ------------------------------------------------------------------------------


def test_disabling_stops_the_hooks_and_keeps_the_data(referrals_crm: crmkit.CRM) -> None:
    crm = referrals_crm
    wang, liu = two_contacts(crm)
    crm.contacts.update(wang.id, {"wechat_id": "wangfang88"})
    refer(crm, wang, liu)

    plugin_admin.disable_plugin(crm, "referrals")

    assert "referrals" not in crm.enabled_plugin_names()
    assert crm.contacts.create({"full_name": "张伟", "email": "zw@spam.example"})
    with pytest.raises(crmkit.CRMError, match="unknown entity 'referral'"):
        crm.records("referral")
    assert referral_rows(crm) == 1
    assert crm.contacts.get(wang.id).custom == {"wechat_id": "wangfang88"}
    assert "referrals_0001" in migrate.current_heads(crm.engine)


def test_re_enabling_brings_the_data_back(referrals_crm: crmkit.CRM) -> None:
    crm = referrals_crm
    wang, liu = two_contacts(crm)
    referral = refer(crm, wang, liu)
    plugin_admin.disable_plugin(crm, "referrals")
    plugin_admin.enable_plugin(crm, "referrals")
    (back,) = crm.records("referral").list().items
    assert (back.id, back.reward_points) == (referral.id, 100)
    setups = [event.payload for event in outbox(crm) if event.name == "referrals.setup"]
    assert [payload["existing_referrals"] for payload in setups] == [0, 1]


def test_disabling_a_plugin_another_enabled_plugin_requires_is_refused(
    referrals_crm: crmkit.CRM,
) -> None:
    crm = referrals_crm
    crm.installed["partners"] = fake_plugin("partners", requires=("referrals",))
    plugin_admin.enable_plugin(crm, "partners")
    with pytest.raises(
        crmkit.PluginError, match="plugin 'referrals' is required by partners: disable it first"
    ):
        plugin_admin.disable_plugin(crm, "referrals")
    assert "referrals" in crm.enabled_plugin_names()
    plugin_admin.disable_plugin(crm, "partners")
    plugin_admin.disable_plugin(crm, "referrals")
    assert "referrals" not in crm.enabled_plugin_names()


def test_enabling_a_plugin_whose_requirement_is_not_installed_names_it_and_the_fix(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True)
    crm.installed["partners"] = fake_plugin("partners", requires=("nope",))
    with pytest.raises(crmkit.PluginError) as raised:
        plugin_admin.enable_plugin(crm, "partners")
    assert str(raised.value) == (
        "plugin 'partners' requires 'nope', which is not installed: pip install crmkit-nope"
    )
    assert "partners" not in crm.enabled_plugin_names()


def test_enabling_a_plugin_whose_requirement_is_disabled_names_the_command_to_run(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True)
    crm.installed["partners"] = fake_plugin("partners", requires=("referrals",))
    with pytest.raises(crmkit.PluginError, match="crmkit plugins enable referrals"):
        plugin_admin.enable_plugin(crm, "partners")


# -- broken and unknown plugins -------------------------------------------------------------


@pytest.fixture
def broken_plugin_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real distribution on sys.path whose ``crmkit.plugins`` entry point fails to import."""
    site = tmp_path / "site"
    dist_info = site / "crmkit_broken-0.3.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: crmkit-broken\nVersion: 0.3.0\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        "[crmkit.plugins]\nbroken = crmkit_broken_plugin\n", encoding="utf-8"
    )
    (site / "crmkit_broken_plugin.py").write_text(
        textwrap.dedent(
            """
            raise ImportError("crmkit-broken needs libbroken, which is not installed")
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(site))
    return "broken"


def test_a_plugin_that_fails_to_import_is_listed_with_its_error(
    broken_plugin_installed: str, make_crm: Callable[..., crmkit.CRM]
) -> None:
    crm = make_crm(discover=True)
    rows = {row["name"]: row for row in plugin_admin.list_plugins(crm)}
    assert rows["broken"]["version"] == "0.3.0"
    assert rows["broken"]["enabled"] is False
    assert rows["broken"]["error"] == (
        "ImportError: crmkit-broken needs libbroken, which is not installed"
    )
    assert rows["referrals"]["error"] is None


def test_the_other_plugins_keep_working_beside_one_that_fails_to_import(
    broken_plugin_installed: str, make_crm: Callable[..., crmkit.CRM]
) -> None:
    crm = make_crm(discover=True)
    with pytest.raises(crmkit.PluginError, match="plugin 'broken' failed to load: ImportError"):
        plugin_admin.enable_plugin(crm, "broken")
    plugin_admin.enable_plugin(crm, "referrals")
    wang, liu = two_contacts(crm)
    assert refer(crm, wang, liu).reward_points == 100


def test_an_unknown_plugin_is_an_error_listing_the_installed_ones(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True)
    for action in (plugin_admin.enable_plugin, plugin_admin.disable_plugin):
        with pytest.raises(crmkit.PluginError) as raised:
            action(crm, "nope")
        message = str(raised.value)
        assert message.startswith("plugin 'nope' is not installed (installed: ")
        assert "referrals" in message
        assert message.endswith("pip install crmkit-nope")
    with pytest.raises(crmkit.PluginError, match="plugin 'nope' is not installed"):
        plugin_admin.plugin_info(crm, "nope")


# -- demo data ------------------------------------------------------------------------------


def test_the_demo_data_hook_adds_referrals_between_the_first_contacts(
    referrals_crm: crmkit.CRM,
) -> None:
    crm = referrals_crm
    first = [crm.contacts.create({"full_name": name}) for name in ("王芳", "刘洋", "陳美玲")]
    crm.host.call("crmkit_demo_data", crm=crm)
    pairs = [
        (r.referrer_contact_id, r.referred_contact_id, r.channel)
        for r in crm.records("referral").list().items
    ]
    assert pairs == [(first[0].id, first[1].id, "wechat"), (first[0].id, first[2].id, "event")]
