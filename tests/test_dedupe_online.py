"""End to end: the dedupe plugin answering the core's duplicate check in the write path.

These go through ``crm.contacts.create`` / ``update`` and need the core side of the
duplicate contract (the write path calling ``crmkit_find_duplicates``, applying block and
warn, ``crmkit.DuplicateError``), which lands from another branch: they pass once both are
merged.
"""

from __future__ import annotations

from collections.abc import Callable

import crmkit_dedupe
import pytest

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
