"""Unique custom fields: one live record per value, an error that names only what the actor
may see, and a database index behind it."""

from __future__ import annotations

import pytest

import crmkit
from crmkit.testing import CRMFactory


class Codes:
    def __init__(self, *, ignore_case: bool = False) -> None:
        self.ignore_case = ignore_case

    @crmkit.hookimpl
    def crmkit_custom_fields(self) -> list[crmkit.CustomField]:
        return [
            crmkit.CustomField(
                entity="contact",
                name="member_code",
                type="text",
                unique=True,
                ignore_case=self.ignore_case,
            )
        ]


def field_errors(error: pytest.ExceptionInfo[crmkit.ValidationError]) -> list[str]:
    return [f"{e.field}: {e.message}" for e in error.value.errors]


def test_a_taken_value_is_refused_naming_the_record(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"codes": Codes()})
    first = crm.contacts.create({"full_name": "王芳", "member_code": "WF-1"})
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "王 芳", "member_code": "WF-1"})
    assert field_errors(error) == [f"member_code: is already used by contact {first.id}"]
    assert crm.contacts.count() == 1


def test_a_record_outside_the_actors_scope_is_not_named(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"codes": Codes()})
    crm.users.create("li.na", roles=["sales_rep"])
    crm.users.create("wang.fang", roles=["sales_rep"])
    li_na, wang_fang = crm.users.get("li.na"), crm.users.get("wang.fang")
    crm.contacts.create({"full_name": "张伟", "member_code": "A1"}, actor=li_na)
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "陈静", "member_code": "A1"}, actor=wang_fang)
    assert field_errors(error) == ["member_code: is already used by a contact you cannot see"]


@pytest.mark.parametrize(("ignore_case", "refused"), [(True, True), (False, False)])
def test_ignore_case_makes_letter_case_the_same_value(
    make_crm: CRMFactory, ignore_case: bool, refused: bool
) -> None:
    crm = make_crm(plugins={"codes": Codes(ignore_case=ignore_case)})
    crm.contacts.create({"full_name": "王芳", "member_code": "WF-1"})
    if refused:
        with pytest.raises(crmkit.ValidationError, match="already used"):
            crm.contacts.create({"full_name": "汪芳", "member_code": "wf-1"})
    else:
        crm.contacts.create({"full_name": "汪芳", "member_code": "wf-1"})
        assert crm.contacts.count() == 2


def test_updates_are_checked_but_a_record_keeps_its_own_value(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"codes": Codes()})
    first = crm.contacts.create({"full_name": "王芳", "member_code": "A1"})
    second = crm.contacts.create({"full_name": "刘洋", "member_code": "B2"})
    crm.contacts.update(first.id, {"member_code": "A1", "full_name": "王芳芳"})
    with pytest.raises(crmkit.ValidationError, match="already used"):
        crm.contacts.update(second.id, {"member_code": "A1"})


def test_a_deleted_record_frees_its_value(make_crm: CRMFactory) -> None:
    crm = make_crm(plugins={"codes": Codes()})
    first = crm.contacts.create({"full_name": "王芳", "member_code": "A1"})
    crm.contacts.delete(first.id)
    crm.contacts.create({"full_name": "刘洋", "member_code": "A1"})


def test_the_database_index_holds_when_the_check_is_bypassed(
    make_crm: CRMFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = make_crm(plugins={"codes": Codes()})
    crm.contacts.create({"full_name": "王芳", "member_code": "A1"})
    monkeypatch.setattr("crmkit.services.records.check_unique", lambda *args: None)
    with pytest.raises(crmkit.ConflictError, match=r"'member_code'.*taken by another write"):
        crm.contacts.create({"full_name": "刘洋", "member_code": "A1"})
    assert crm.contacts.count() == 1


def test_existing_duplicates_stop_a_field_becoming_unique(make_crm: CRMFactory) -> None:
    class Plain:
        @crmkit.hookimpl
        def crmkit_custom_fields(self) -> list[crmkit.CustomField]:
            return [crmkit.CustomField(entity="contact", name="member_code", type="text")]

    crm = make_crm(plugins={"codes": Plain()})
    crm.contacts.create({"full_name": "王芳", "member_code": "A1"})
    crm.contacts.create({"full_name": "刘洋", "member_code": "A1"})
    with pytest.raises(crmkit.ConfigError, match=r"contact\.member_code is declared unique"):
        make_crm(plugins={"codes": Codes()})
