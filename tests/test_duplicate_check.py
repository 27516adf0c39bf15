"""``crmkit.check_duplicates``: the public door to the duplicate check, which withholds
what the actor may not see."""

from __future__ import annotations

import pytest

import crmkit


@pytest.fixture
def two_reps(crm: crmkit.CRM) -> crmkit.CRM:
    crm.users.create("li.na")
    crm.users.create("wang.fang")
    return crm


def test_a_visible_match_is_returned_with_its_reasons(two_reps: crmkit.CRM) -> None:
    li_na = two_reps.users.get("li.na")
    own = two_reps.contacts.create({"full_name": "张伟", "phone": "13812345678"}, actor=li_na)
    with two_reps.transaction(li_na, write=False) as op:
        check = crmkit.check_duplicates(op, "contact", {"phone": "+86 138 1234 5678"})
    assert [m.record_id for m in check.visible] == [own.id]
    assert check.visible[0].reasons == ("same phone +8613812345678",)
    assert check.hidden == 0
    assert check.found


def test_a_match_outside_the_scope_is_only_counted(two_reps: crmkit.CRM) -> None:
    wang_fang = two_reps.users.get("wang.fang")
    two_reps.contacts.create({"full_name": "王芳", "email": "wf@example.com"}, actor=wang_fang)
    with two_reps.transaction(two_reps.users.get("li.na"), write=False) as op:
        check = crmkit.check_duplicates(op, "contact", {"email": "WF@example.com"})
    assert check.visible == ()
    assert check.hidden == 1
    (match,) = check.matches
    assert (match.record_id, match.label, match.reasons) == (None, None, ())
    assert match.owner_name == "wang.fang"
    assert check.found


def test_nothing_matches(two_reps: crmkit.CRM) -> None:
    with two_reps.transaction(None, write=False) as op:
        check = crmkit.check_duplicates(op, "contact", {"full_name": "Nobody"})
    assert not check.found


def test_a_bad_value_is_a_validation_error(two_reps: crmkit.CRM) -> None:
    with (
        two_reps.transaction(None, write=False) as op,
        pytest.raises(crmkit.ValidationError, match="phone"),
    ):
        crmkit.check_duplicates(op, "contact", {"phone": "not a phone"})
