"""What a duplicate check, a collision and the dedupe review may reveal (issue 16, findings
1-4): a record outside the caller's scope is only "a record you cannot see matches" with its
owner; a field a field rule hides never appears in reasons, labels or messages; a rep cannot
file a record under another team; a reviewer sees only pairs of records they may read.

Users: ``alice`` and ``bob`` are sales reps (their own records only) in teams ``east`` and
``west``; ``phoneless`` reads every contact with ``contact.phone`` hidden.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import crmkit_dedupe
import pytest
from crmkit_dedupe import service

import crmkit
from tests.api_support import Api, assert_problem, open_api

ALICE_NAME = "Amy Hsieh"
ALICE_PHONE = "+8613812345678"


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    crm = make_crm(
        plugins={"dedupe": crmkit_dedupe}, assignment={"collision": {"contact": "block"}}
    )
    crm.users.create_team("east")
    crm.users.create_team("west")
    crm.roles.create("phoneless")
    for action in ("read", "create"):
        crm.roles.grant("phoneless", f"contact:{action}", "all")
    crm.roles.set_field_rule("phoneless", "contact", "phone", "hidden")
    crm.roles.create("reviewer")
    crm.roles.grant("reviewer", "dedupe:review")
    crm.roles.grant("reviewer", "contact:read", "own")
    return crm


@pytest.fixture
def api(crm: crmkit.CRM) -> Iterator[Api]:
    yield from open_api(crm)


@pytest.fixture
def people(api: Api) -> dict[str, crmkit.User]:
    return {
        "alice": api.user("alice", roles=["sales_rep"], team="east"),
        "bob": api.user("bob", roles=["sales_rep"], team="west"),
        "phoneless": api.user("phoneless", roles=["phoneless"], team="east"),
        "carol": api.user("carol", roles=["reviewer", "sales_rep"], team="east"),
    }


def _alices_contact(crm: crmkit.CRM, alice: crmkit.User) -> Any:
    return crm.contacts.create({"full_name": ALICE_NAME, "phone": ALICE_PHONE}, actor=alice)


def _leaks(text: str, record_id: int) -> list[str]:
    """What of alice's stored contact ``text`` reveals."""
    lowered = text.lower()
    found = [word for word in ("hsieh", "13812345678") if word in lowered]
    if f"contact {record_id}" in lowered or f'"record_id": {record_id}' in text:
        found.append("record id")
    return found


def test_the_check_names_only_the_owner_of_a_record_outside_scope(
    api: Api, crm: crmkit.CRM, people: dict[str, crmkit.User]
) -> None:
    mine = _alices_contact(crm, people["alice"])
    response = api.call(
        "POST", "/plugins/dedupe/check", "bob", json={"full_name": "Amy H", "phone": "13812345678"}
    )
    assert response.status_code in (200, 201), response.text
    [match] = response.json()
    assert match["visible"] is False
    assert (match["owner_id"], match["owner_name"]) == (people["alice"].id, "alice")
    assert (match["record_id"], match["label"], match["score"], match["reasons"]) == (
        None,
        None,
        None,
        [],
    )
    assert _leaks(json.dumps(response.json()), mine.id) == []


def test_the_check_leaves_out_reasons_about_a_hidden_field(
    api: Api, crm: crmkit.CRM, people: dict[str, crmkit.User]
) -> None:
    mine = _alices_contact(crm, people["alice"])
    response = api.call(
        "POST",
        "/plugins/dedupe/check",
        "phoneless",
        json={"full_name": "Amy Hsieh", "phone": "13812345678"},
    )
    assert response.status_code in (200, 201), response.text
    [match] = response.json()
    assert match["visible"] is True
    assert match["record_id"] == mine.id
    assert match["reasons"]
    assert not any("phone" in r for r in match["reasons"])
    assert match["withheld_reasons"] >= 1
    assert "13812345678" not in response.text


def test_a_refused_create_names_the_owner_not_the_record(
    api: Api, crm: crmkit.CRM, people: dict[str, crmkit.User]
) -> None:
    mine = _alices_contact(crm, people["alice"])
    response = api.call(
        "POST", "/contacts", "bob", json={"full_name": "Amy H", "phone": "138 1234 5678"}
    )
    body = assert_problem(response, 409)
    assert "alice" in body["detail"]
    assert "cannot see" in body["detail"]
    assert [m["visible"] for m in body["matches"]] == [False]
    assert _leaks(response.text, mine.id) == []
    assert crm.contacts.count() == 1


def test_a_refusal_leaves_out_reasons_about_a_hidden_field(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"dedupe": crmkit_dedupe})  # same person (score >= 0.9) blocks
    crm.roles.create("phoneless")
    for action in ("read", "update"):
        crm.roles.grant("phoneless", f"contact:{action}", "all")
    crm.roles.set_field_rule("phoneless", "contact", "phone", "hidden")
    agent = crm.users.create("agent", roles=["phoneless"])
    crm.contacts.create({"full_name": ALICE_NAME, "phone": ALICE_PHONE})
    # the agent's contact holds the same phone, hidden from them; renaming it makes it the
    # same person, and the refusal must not tell them the phone is why
    theirs = crm.contacts.create({"full_name": "Zed", "phone": ALICE_PHONE, "owner_id": agent.id})
    with pytest.raises(crmkit.DuplicateError) as caught:
        crm.contacts.update(theirs.id, {"full_name": ALICE_NAME}, actor=agent)
    assert "13812345678" not in str(caught.value)
    assert "phone" not in str(caught.value)
    [match] = caught.value.matches
    assert match.visible
    assert not any("phone" in reason for reason in match.reasons)
    assert match.withheld_reasons == 1


def test_the_core_fallback_discloses_the_same_way(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"collision": {"contact": "block"}})
    alice = crm.users.create("alice", roles=["sales_rep"])
    bob = crm.users.create("bob", roles=["sales_rep"])
    mine = crm.contacts.create({"full_name": "秘密客户", "email": "vip@x.cn"}, actor=alice)
    with pytest.raises(crmkit.DuplicateError) as caught:
        crm.contacts.create({"full_name": "x", "email": "vip@x.cn"}, actor=bob)
    assert "秘密客户" not in str(caught.value)
    assert f"contact {mine.id}" not in str(caught.value)
    [match] = caught.value.matches
    assert (match.visible, match.owner_name) == (False, "alice")


def test_import_warnings_name_only_what_the_importer_may_see(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm()
    alice = crm.users.create("alice", roles=["sales_rep"])
    bob = crm.users.create("bob", roles=["sales_rep"])
    crm.contacts.create({"full_name": "秘密客户", "email": "vip@x.cn"}, actor=alice)
    result = crm.contacts.create_many([(1, {"full_name": "x", "email": "vip@x.cn"})], actor=bob)
    [warning] = result.warnings
    assert "秘密客户" not in warning.message
    assert "cannot see" in warning.message


def test_disclosed_matches_for_the_system_show_everything(
    crm: crmkit.CRM, people: dict[str, crmkit.User]
) -> None:
    mine = _alices_contact(crm, people["alice"])
    match = crmkit.DuplicateMatch(
        "contact", mine.id, 0.9, "warn", ["same phone x"], reason_fields=[("phone",)]
    )
    with crm.transaction() as op:
        [shown] = crmkit.disclosed_matches(op, "contact", [match])
        assert crmkit.readable_record_ids(op, "contact", [mine.id, 10**9]) == {mine.id}
    assert (shown.visible, shown.record_id, shown.reasons) == (True, mine.id, ("same phone x",))
    with crm.transaction(people["bob"]) as op:
        assert crmkit.readable_record_ids(op, "contact", [mine.id]) == frozenset()
        assert list(op.session.scalars(crmkit.readable_ids_query(op, "contact"))) == []


def test_a_rep_cannot_file_a_contact_under_another_team(
    api: Api, crm: crmkit.CRM, people: dict[str, crmkit.User]
) -> None:
    west = people["bob"].team_id
    east = people["alice"].team_id
    response = api.call("POST", "/contacts", "alice", json={"full_name": "x", "team_id": west})
    assert_problem(response, 403)
    assert crm.contacts.count() == 0
    created = api.call("POST", "/contacts", "alice", json={"full_name": "y", "team_id": east})
    assert created.status_code == 201, created.text


def test_a_subtree_manager_cannot_move_a_record_to_a_team_outside_it(
    crm: crmkit.CRM, people: dict[str, crmkit.User]
) -> None:
    boss = crm.users.create("boss", roles=["manager"], team="east")
    record = crm.contacts.create({"full_name": "z"}, actor=boss)
    with pytest.raises(crmkit.PermissionDenied):
        crm.contacts.update(record.id, {"team_id": people["bob"].team_id}, actor=boss)
    with pytest.raises(crmkit.PermissionDenied):
        crm.contacts.create({"full_name": "w", "team_id": people["bob"].team_id}, actor=boss)


def test_the_review_hides_pairs_with_a_record_outside_scope(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(  # online check off, so the pairs get in for the scan to find
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"online_check": False}}
    )
    crm.roles.create("reviewer")
    crm.roles.grant("reviewer", "dedupe:review")
    crm.roles.grant("reviewer", "contact:read", "own")
    api = next(open_api(crm))
    carol = api.user("carol", roles=["reviewer", "sales_rep"])
    alice = api.user("alice", roles=["sales_rep"])
    for owner, name, phone in (
        (carol, "张伟", "13900000001"),
        (carol, "張偉", "+86 139 0000 0001"),
        (carol, "李娜", "13900000002"),
        (alice, "李娜", "+86 139 0000 0002"),
    ):
        crm.contacts.create({"full_name": name, "phone": phone, "owner_id": owner.id})
    service.scan(crm, "contact")
    everything = service.candidates(crm)
    assert len(everything) == 2
    listed = api.call("GET", "/plugins/dedupe/candidates", "carol")
    assert listed.status_code == 200, listed.text
    [pair] = listed.json()
    assert {pair["label_a"], pair["label_b"]} == {"张伟", "張偉"}
    hidden = next(c for c in everything if c["id"] != pair["id"])
    for action in ("dismiss", "merge"):
        refused = api.call("POST", f"/plugins/dedupe/candidates/{hidden['id']}/{action}", "carol")
        assert_problem(refused, 404)
    assert all(c["status"] == "open" for c in service.candidates(crm))
    dismissed = api.call("POST", f"/plugins/dedupe/candidates/{pair['id']}/dismiss", "carol")
    assert dismissed.status_code in (200, 201), dismissed.text
