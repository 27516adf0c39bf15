"""End to end: the dedupe plugin answering the core's duplicate check in the write path.

These go through ``crm.contacts.create`` / ``update`` and need the core side of the
duplicate contract (the write path calling ``crmkit_find_duplicates``, applying block and
warn, ``crmkit.DuplicateError``), which lands from another branch: they pass once both are
merged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import crmkit_dedupe
import pytest
import sqlalchemy as sa

import crmkit


@pytest.fixture
def dcrm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    return make_crm(plugins={"dedupe": crmkit_dedupe})


def test_a_create_matching_a_contact_in_another_script_is_blocked(dcrm: crmkit.CRM) -> None:
    existing = dcrm.contacts.create({"full_name": "張偉", "phone": "138 1234 5678"})

    with pytest.raises(crmkit.DuplicateError) as caught:  # type: ignore[attr-defined]
        dcrm.contacts.create({"full_name": "Wei Zhang", "phone": "+86 138-1234-5678"})

    assert str(existing.id) in str(caught.value)
    assert dcrm.contacts.count() == 1


def test_the_same_name_at_the_same_company_in_two_scripts_is_blocked(dcrm: crmkit.CRM) -> None:
    # a trade-fair card (switchboard, work address) and a web form (mobile, personal address)
    # of one person share no identifier: the name and the company tell
    card = dcrm.contacts.create(
        {
            "full_name": "彭强东",
            "company_name": "青岛世海建材有限公司",
            "phone": "0532-68438340 ext. 5216",
            "email": "qpeng@shihaitech.cn",
        }
    )

    with pytest.raises(crmkit.DuplicateError) as caught:  # type: ignore[attr-defined]
        dcrm.contacts.create(
            {
                "full_name": "Qiangdong Peng",
                "company_name": "Shihai Building Materials Co., Ltd.",
                "phone": "187 1719 5061",
                "email": "pengqiangdong10@gmail.com",
            }
        )

    assert "company_name shihai building materials ~ 世海建材" in str(caught.value)
    assert f"(contact {card.id})" in str(caught.value)
    assert dcrm.contacts.count() == 1


def test_the_same_name_at_another_company_is_not_declared(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create({"full_name": "王伟", "company_name": "世海建材", "city": "上海"})
    dcrm.contacts.create({"full_name": "王伟", "company_name": "新卓医疗器械", "city": "上海"})
    assert dcrm.contacts.count() == 2


def test_the_same_name_at_one_company_with_two_mobiles_is_two_people(dcrm: crmkit.CRM) -> None:
    # a mobile is personal: two different ones say two people, whatever the employer
    dcrm.contacts.create({"full_name": "王伟", "company_name": "世海建材", "phone": "13812345678"})
    dcrm.contacts.create({"full_name": "王伟", "company_name": "世海建材", "phone": "13987654321"})
    assert dcrm.contacts.count() == 2


def test_a_common_name_alone_is_created_without_a_match(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create({"full_name": "王伟", "city": "上海"})
    dcrm.contacts.create({"full_name": "王伟", "city": "上海"})
    assert dcrm.contacts.count() == 2


def test_a_warning_match_is_written(dcrm: crmkit.CRM) -> None:
    dcrm.contacts.create({"full_name": "李娜", "email": "li.na@gmail.com"})
    dcrm.contacts.create({"full_name": "陈静", "email": "LiNa+work@gmail.com"})
    assert dcrm.contacts.count() == 2


def test_an_update_that_makes_a_duplicate_is_blocked_and_changes_nothing(
    dcrm: crmkit.CRM,
) -> None:
    dcrm.contacts.create({"full_name": "張偉", "phone": "13812345678"})
    other = dcrm.contacts.create({"full_name": "Zhang Wei", "phone": "13900001111"})

    with pytest.raises(crmkit.DuplicateError):  # type: ignore[attr-defined]
        dcrm.contacts.update(other.id, {"phone": "138 1234 5678"})

    assert dcrm.contacts.get(other.id).phone == "+8613900001111"


def test_the_same_person_twice_in_one_import_batch_is_refused_by_the_plugin_rule(
    dcrm: crmkit.CRM,
) -> None:
    rows = [
        {"full_name": "張偉", "phone": "138 1234 5678"},
        {"full_name": "李娜", "email": "li.na@x.cn"},
        {"full_name": "Wei Zhang", "phone": "+86 138-1234-5678"},
    ]

    result = dcrm.contacts.create_many(enumerate(rows, 2), batch_size=100)

    assert result.created == 2
    assert [error.line for error in result.errors] == [4]
    assert str(result.ids[0]) in result.errors[0].message


def _import_with_statements(crm: crmkit.CRM, rows: list[dict[str, object]]) -> tuple[Any, int]:
    """Import ``rows`` in one batch, counting the statements on the plugin's key table."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "dedupe_keys" in statement and statement.lstrip().startswith("SELECT"):
            seen.append(statement)

    sa.event.listen(crm.engine, "before_cursor_execute", count)
    try:
        result = crm.contacts.create_many(enumerate(rows, 2), batch_size=1000)
    finally:
        sa.event.remove(crm.engine, "before_cursor_execute", count)
    return result, len(seen)


def test_an_import_batch_is_checked_with_a_few_queries_and_the_same_answers(
    dcrm: crmkit.CRM,
) -> None:
    existing = [
        dcrm.contacts.create({"full_name": f"客户{n}号", "phone": f"1380000{n:04d}"}).id
        for n in range(40)
    ]
    rows: list[dict[str, object]] = [
        {"full_name": f"客户{n}号", "phone": f"+86 138 0000 {n:04d}"} for n in range(0, 40, 2)
    ]  # the same people: blocked
    rows += [
        {"full_name": f"别人{n}", "phone": f"1380000{n:04d}"} for n in range(1, 40, 4)
    ]  # another name on the phone: warned
    rows += [{"full_name": f"新人{n}", "phone": f"1390000{n:04d}"} for n in range(30)]
    one_by_one = {
        line: [(m.record_id, m.action) for m in find_one(dcrm, values)]
        for line, values in enumerate(rows, 2)
    }

    result, statements = _import_with_statements(dcrm, rows)

    assert statements <= 2
    blocked = {e.line for e in result.errors}
    warned = {w.line for w in result.warnings}
    assert blocked == {
        line
        for line, found in one_by_one.items()
        if any(a is crmkit.DuplicateAction.BLOCK for _, a in found)
    }
    assert len(blocked) == 20
    assert warned == {line for line, found in one_by_one.items() if found and line not in blocked}
    assert len(warned) == 10
    assert len(existing) == 40


def find_one(crm: crmkit.CRM, values: dict[str, object]) -> list[crmkit.DuplicateMatch]:
    with crm.transaction(write=False) as op:
        return list(
            crm.host.call(
                "crmkit_find_duplicates", op=op, entity="contact", values=values, record_id=None
            )
            or []
        )


def test_with_the_online_check_off_an_import_batch_gets_the_core_check_in_one_query(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"online_check": False}}
    )
    crm.contacts.create({"full_name": "张伟", "email": "zw@x.cn"})
    selects: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM contacts" in statement:
            selects.append(statement)

    sa.event.listen(crm.engine, "before_cursor_execute", count)
    try:
        rows = [{"full_name": f"n{n}", "email": f"u{n}@x.cn"} for n in range(50)]
        rows.append({"full_name": "Wei Zhang", "email": "zw@x.cn"})
        result = crm.contacts.create_many(enumerate(rows, 2), batch_size=1000)
    finally:
        sa.event.remove(crm.engine, "before_cursor_execute", count)

    assert result.created == 51
    assert [w.line for w in result.warnings] == [52]  # the core's exact e-mail match
    assert len(selects) <= 3


def test_an_import_files_the_keys_a_reindex_would(dcrm: crmkit.CRM) -> None:
    from crmkit_dedupe.engine import engine_of
    from crmkit_dedupe.models import DedupeKey

    rows: list[dict[str, object]] = [
        {"full_name": "張偉", "phone": "010-6543 2100 转 808", "email": "ZW@corp.cn"},
        {"full_name": "Li Na", "phone": "13912345678", "extra_phones": ["021-5888 1234"]},
        {"full_name": "陈静", "email": "sales@corp.cn", "city": "北京"},
    ]

    def keys() -> set[tuple[str, int, str, str]]:
        with dcrm.transaction(write=False) as op:
            found = op.session.execute(
                sa.select(DedupeKey.entity, DedupeKey.record_id, DedupeKey.kind, DedupeKey.key)
            )
            return {tuple(row) for row in found}  # type: ignore[misc]

    result = dcrm.contacts.create_many(enumerate(rows, 2), batch_size=100)
    filed = keys()
    with dcrm.transaction() as op:
        engine_of(dcrm).rebuild(op)

    assert result.created == 3
    assert filed == keys()
    assert ("contact", result.ids[0], "phone", "+861065432100") in filed
