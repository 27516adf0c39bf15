"""``/segments`` through the REST API: typed bodies, scoped counts and members,
problem+json for every bad input."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from api_support import Api, assert_problem


@pytest.fixture
def seeded(api: Api) -> Api:
    """Two reps; 上海 and 北京 accounts; three contacts, alice owns two of them."""
    alice = api.user("alice", roles=["sales_rep"])
    bob = api.user("bob", roles=["sales_rep"])
    crm = api.crm
    shanghai = crm.accounts.create({"name": "星辰贸易", "city": "上海", "owner_id": alice.id})
    beijing = crm.accounts.create({"name": "北方机械", "city": "北京"})
    for name, account, owner in (
        ("张伟", shanghai, alice),
        ("王芳", shanghai, bob),
        ("李娜", beijing, alice),
    ):
        crm.contacts.create({"full_name": name, "account_id": account.id, "owner_id": owner.id})
    return api


def test_create_get_count_members_update_and_delete(seeded: Api) -> None:
    api = seeded
    made = api.call(
        "POST",
        "/segments",
        json={"name": "上海联系人", "entity": "contact", "filters": {"account.city": "上海"}},
    )
    assert made.status_code == 201, made.text
    assert (made.json()["name"], made.json()["version"]) == ("上海联系人", 1)
    path = "/segments/" + quote("上海联系人")
    assert api.call("GET", path).json()["filters"] == {"account.city": "上海"}
    assert api.call("GET", path + "/count").json() == {
        "name": "上海联系人",
        "entity": "contact",
        "count": 2,
    }
    first = api.call("GET", path + "/members", params={"limit": 1}).json()
    assert [item["full_name"] for item in first["items"]] == ["张伟"]
    second = api.call(
        "GET", path + "/members", params={"limit": 1, "cursor": first["next_cursor"]}
    ).json()
    assert ([item["full_name"] for item in second["items"]], second["next_cursor"]) == (
        ["王芳"],
        None,
    )
    changed = api.call("PATCH", path, json={"filters": {"account.city": "北京"}})
    assert changed.json()["version"] == 2
    assert api.call("GET", path + "/count").json()["count"] == 1
    assert [s["name"] for s in api.call("GET", "/segments").json()] == ["上海联系人"]
    assert api.call("DELETE", path).status_code == 204
    assert_problem(api.call("GET", path), 404)


def test_a_rep_counts_and_pages_only_what_they_may_see(seeded: Api) -> None:
    api = seeded
    api.crm.segments.create("上海联系人", "contact", {"account.city": "上海"})
    path = "/segments/" + quote("上海联系人")

    assert api.call("GET", path + "/count", "alice").json()["count"] == 1
    assert api.call("GET", path + "/count", "bob").json()["count"] == 0  # the account is alice's
    members = api.call("GET", path + "/members", "alice").json()["items"]
    assert [m["full_name"] for m in members] == ["张伟"]


def test_a_rep_may_not_manage_segments(seeded: Api) -> None:
    response = seeded.call(
        "POST", "/segments", "alice", json={"name": "x", "entity": "contact", "filters": {}}
    )

    assert "segment:manage" in assert_problem(response, 403)["detail"]


def test_list_routes_take_the_segment_language_as_query_parameters(seeded: Api) -> None:
    api = seeded
    api.crm.segments.create("上海联系人", "contact", {"account.city": "上海"})

    by_segment = api.call("GET", "/contacts", params={"segment": "上海联系人"}).json()
    by_relation = api.call("GET", "/contacts", params={"account.city": "北京"}).json()

    assert len(by_segment["items"]) == 2
    assert [c["full_name"] for c in by_relation["items"]] == ["李娜"]


def test_segment_fields_lists_fields_relations_and_measures(seeded: Api) -> None:
    known = seeded.call("GET", "/segment-fields/deal").json()

    assert {"stage_kind", "stage", "pipeline"} <= set(known["measures"])
    assert "account" in known["relations"]
    assert "amount" in known["fields"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": "x", "entity": "contact", "filters": {"shoe_size": 40}}, 422, "shoe_size"),
        ({"name": "x", "entity": "customer", "filters": {}}, 422, "entity"),
        ({"name": "x", "entity": "contact", "filters": {"firm.city": "上海"}}, 422, "firm"),
        ({"name": "x", "entity": "contact", "filters": {"segment": "nope"}}, 422, "segment"),
        ({"name": "x", "entity": "contact", "filters": {"city": {"a": 1}}}, 422, "city"),
        ({"name": "x", "entity": "contact", "filters": {"city": [[1]]}}, 422, None),
        ({"name": "a/b", "entity": "contact", "filters": {}}, 422, "name"),
        ({"name": "x", "entity": "contact", "filters": {"id": 2**40}}, 422, "id"),
    ],
)
def test_bad_definitions_are_422_problems_naming_the_field(
    seeded: Api, body: dict[str, object], status: int, field: str | None
) -> None:
    response = seeded.call("POST", "/segments", json=body)

    problem = assert_problem(response, status, field=field)
    assert "select" not in problem["detail"].lower()
    assert seeded.crm.segments.list() == []


def test_a_cycle_and_a_stale_version_are_refused(seeded: Api) -> None:
    api = seeded
    api.crm.segments.create("a", "contact", {"full_name": "张伟"})
    api.crm.segments.create("b", "contact", {"segment": "a"})

    problem = assert_problem(
        api.call("PATCH", "/segments/a", json={"filters": {"segment": "b"}}), 422
    )
    assert "cycle: a → b → a" in problem["detail"]
    assert_problem(api.call("PATCH", "/segments/a", json={"expected_version": 7}), 409)
    assert_problem(api.call("DELETE", "/segments/a"), 409)
