"""The dedupe plugin's "Duplicates" desk page: candidate pairs with buttons that merge a pair
(keeping either record) or dismiss it, through the same service functions as the plugin's
API routes, as the signed-in user (permission-checked, CSRF-checked, nothing leaked)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import crmkit_dedupe
import pytest
from crmkit_dedupe import service
from desk_support import DeskWorld, open_desk

import crmkit

PAGE = "/desk/plugins/dedupe/duplicates"


@pytest.fixture
def world(make_crm: Callable[..., crmkit.CRM]) -> Iterator[DeskWorld]:
    """The desk with the dedupe plugin: a manager of 华东 who may review duplicates, two
    near-identical contacts in 华东 and two in 华南, scanned."""
    crm = make_crm(
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"online_check": False}}
    )
    crm.pipelines.create("Sales")
    for desk in open_desk(crm):
        desk.user("wang.fang", team="华东", roles=["manager"], display_name="王芳")
        crm.roles.grant("manager", "dedupe:review")
        li, chen = crm.users.get("li.na"), crm.users.get("chen.jie")
        crm.contacts.create({"full_name": "張偉", "phone": "138 1234 5678"}, actor=li)
        crm.contacts.create({"full_name": "Zhang Wei", "phone": "+86 138-1234-5678"}, actor=li)
        crm.contacts.create({"full_name": "陈静", "phone": "139 8765 4321"}, actor=chen)
        crm.contacts.create({"full_name": "陳靜", "phone": "+86 139-8765-4321"}, actor=chen)
        service.scan(crm, "contact")
        yield desk


def pair_of(crm: crmkit.CRM, name: str) -> dict[str, Any]:
    rows = service.candidates(crm, limit=100)
    return next(r for r in rows if name in (r["label_a"], r["label_b"]))


def test_the_page_shows_only_pairs_the_reviewer_may_see_with_buttons(world: DeskWorld) -> None:
    page = world.signed_in("wang.fang").get(PAGE)
    assert page.status_code == 200
    assert "Zhang Wei" in page.text
    assert "陈静" not in page.text
    assert "陳靜" not in page.text
    assert 'name="action" value="merge"' in page.text
    assert 'name="action" value="dismiss"' in page.text


def test_merging_keeps_the_chosen_record(world: DeskWorld) -> None:
    crm = world.crm
    pair = pair_of(crm, "Zhang Wei")
    browser = world.signed_in("wang.fang")
    browser.get(PAGE)
    response = browser.post(PAGE, {"action": "merge", "candidate": str(pair["id"]), "keep": "b"})
    assert response.status_code == 200, response.text
    assert f"#{pair['id_a']}" in response.text  # the outcome names the merged record
    assert service.candidates(crm, status="merged", limit=10)[0]["id"] == pair["id"]
    survivor = crm.contacts.get(pair["id_b"])
    assert survivor["phone"]
    with pytest.raises(crmkit.NotFoundError):
        crm.contacts.get(pair["id_a"])


def test_dismissing_a_pair_takes_it_off_the_page(world: DeskWorld) -> None:
    pair = pair_of(world.crm, "Zhang Wei")
    browser = world.signed_in("wang.fang")
    browser.get(PAGE)
    response = browser.post(PAGE, {"action": "dismiss", "candidate": str(pair["id"])})
    assert response.status_code == 200
    assert "Zhang Wei" not in response.text
    assert service.candidates(world.crm, status="dismissed", limit=10)[0]["id"] == pair["id"]


def test_a_pair_outside_the_reviewers_scope_is_not_found_and_unchanged(world: DeskWorld) -> None:
    hidden = pair_of(world.crm, "陈静")
    browser = world.signed_in("wang.fang")
    browser.get(PAGE)
    for action in ("merge", "dismiss"):
        form = {"action": action, "candidate": str(hidden["id"]), "keep": "a"}
        response = browser.post(PAGE, form)
        assert response.status_code == 404
        assert "陈静" not in response.text
        assert "陳靜" not in response.text
    assert pair_of(world.crm, "陈静")["status"] == "open"


def test_a_rep_without_the_review_permission_may_not_merge(world: DeskWorld) -> None:
    pair = pair_of(world.crm, "Zhang Wei")
    browser = world.signed_in("li.na")
    assert browser.get(PAGE).status_code == 403
    response = browser.post(PAGE, {"action": "merge", "candidate": str(pair["id"]), "keep": "a"})
    assert response.status_code == 403
    assert pair_of(world.crm, "Zhang Wei")["status"] == "open"


def test_a_button_without_the_csrf_token_changes_nothing(world: DeskWorld) -> None:
    pair = pair_of(world.crm, "Zhang Wei")
    browser = world.signed_in("wang.fang")
    response = browser.post(PAGE, {"action": "dismiss", "candidate": str(pair["id"])}, csrf=False)
    assert response.status_code == 403
    assert pair_of(world.crm, "Zhang Wei")["status"] == "open"


def test_a_pair_already_decided_says_so(world: DeskWorld) -> None:
    pair = pair_of(world.crm, "Zhang Wei")
    service.dismiss(world.crm, pair["id"])
    browser = world.signed_in("wang.fang")
    browser.get(PAGE)
    response = browser.post(PAGE, {"action": "merge", "candidate": str(pair["id"]), "keep": "a"})
    assert response.status_code == 409
    assert "already dismissed" in response.text


def test_an_unknown_action_or_a_bad_candidate_is_a_page_not_a_500(world: DeskWorld) -> None:
    browser = world.signed_in("wang.fang")
    browser.get(PAGE)
    assert browser.post(PAGE, {"action": "explode"}).status_code == 404
    for value in ("", "abc", "-1", "9" * 40):
        response = browser.post(PAGE, {"action": "dismiss", "candidate": value})
        assert response.status_code in (404, 422), value
        assert "Traceback" not in response.text
