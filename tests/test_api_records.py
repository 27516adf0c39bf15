"""The record routes: create, get, update, delete, list with filters, sort, cursors, search."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from api_support import Api, assert_problem, open_api

import crmkit

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def custom_api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    """An API whose contacts have custom fields."""
    crm = make_crm(
        custom_fields=[
            {"entity": "contact", "name": "wechat_id", "type": "text", "label": "WeChat"},
            {"entity": "contact", "name": "budget", "type": "decimal"},
            {"entity": "contact", "name": "visits", "type": "number"},
            {
                "entity": "contact",
                "name": "interests",
                "type": "multi_choice",
                "choices": ["茶叶", "瓷器", "丝绸"],
            },
        ]
    )
    crm.pipelines.create("Sales")
    yield from open_api(crm)


def test_create_then_get_returns_the_normalised_record_with_an_etag(api: Api) -> None:
    created = api.call(
        "POST", "/contacts", json={"full_name": "张伟", "phone": "138 1234 5678", "city": "上海"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone"] == "+8613812345678"
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"/contacts/{body['id']}"
    fetched = api.call("GET", f"/contacts/{body['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["full_name"] == "张伟"
    assert fetched.headers["etag"] == '"1"'


def test_every_core_entity_has_the_five_routes(api: Api) -> None:
    bodies = {
        "contacts": {"full_name": "陳志明"},
        "accounts": {"name": "宏達資訊股份有限公司"},
        "leads": {"full_name": "林美玲", "company_name": "Acme 有限公司"},
        "deals": {"name": "ERP 系统升级", "amount": "120000.50"},
        "activities": {"kind": "call", "subject": "电话回访"},
        "tasks": {"title": "发送报价单"},
    }
    for path, body in bodies.items():
        created = api.call("POST", f"/{path}", json=body)
        assert created.status_code == 201, (path, created.text)
        record_id = created.json()["id"]
        assert api.call("GET", f"/{path}/{record_id}").status_code == 200
        listed = api.call("GET", f"/{path}").json()
        assert [item["id"] for item in listed["items"]] == [record_id]
        changed = api.call("PATCH", f"/{path}/{record_id}", json={})
        assert changed.status_code == 200, changed.text
        assert api.call("DELETE", f"/{path}/{record_id}").status_code == 204
        assert_problem(api.call("GET", f"/{path}/{record_id}"), 404)


def test_patch_changes_only_the_fields_sent_and_null_clears_one(api: Api) -> None:
    record_id = api.call(
        "POST", "/contacts", json={"full_name": "王芳", "email": "wang@example.cn", "city": "北京"}
    ).json()["id"]
    changed = api.call("PATCH", f"/contacts/{record_id}", json={"city": None, "title": "经理"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["city"], body["title"], body["email"]) == (None, "经理", "wang@example.cn")
    assert changed.headers["etag"] == '"2"'


def test_if_match_with_a_stale_version_answers_412_and_changes_nothing(api: Api) -> None:
    record_id = api.call("POST", "/contacts", json={"full_name": "李娜"}).json()["id"]
    first = api.call(
        "PATCH", f"/contacts/{record_id}", json={"title": "A"}, headers={"If-Match": '"1"'}
    )
    assert first.status_code == 200
    stale = api.call(
        "PATCH", f"/contacts/{record_id}", json={"title": "B"}, headers={"If-Match": '"1"'}
    )
    assert_problem(stale, 412)
    assert api.call("GET", f"/contacts/{record_id}").json()["title"] == "A"
    gone = api.call("DELETE", f"/contacts/{record_id}", headers={"If-Match": 'W/"1"'})
    assert_problem(gone, 412)
    assert (
        api.call("DELETE", f"/contacts/{record_id}", headers={"If-Match": '"2"'}).status_code == 204
    )


def test_a_malformed_if_match_is_a_client_error(api: Api) -> None:
    record_id = api.call("POST", "/contacts", json={"full_name": "李娜"}).json()["id"]
    bad = api.call("PATCH", f"/contacts/{record_id}", json={}, headers={"If-Match": "yesterday"})
    assert_problem(bad, 422, field="If-Match")


def test_list_filters_on_equality_ranges_in_contains_and_empty(api: Api) -> None:
    for name, city, tier, email in (
        ("张伟", "上海", "A", "zw@example.cn"),
        ("陳志明", "台北", "B", None),
        ("Wang Fang", "北京", "C", "wf@example.com"),
    ):
        api.call(
            "POST",
            "/contacts",
            json={"full_name": name, "city": city, "value_tier": tier, "email": email},
        )

    def names(query: str) -> list[str]:
        response = api.call("GET", f"/contacts?{query}")
        assert response.status_code == 200, response.text
        return [item["full_name"] for item in response.json()["items"]]

    assert names("city=上海") == ["张伟"]
    assert names("value_tier__in=A,C") == ["张伟", "Wang Fang"]
    assert names("value_tier__in=A&value_tier__in=B") == ["张伟", "陳志明"]
    assert names("value_tier__gte=B&sort=-value_tier") == ["Wang Fang", "陳志明"]
    assert names("full_name__contains=wang") == ["Wang Fang"]
    assert names("email__empty=true") == ["陳志明"]
    assert names("city__ne=上海&email__empty=false") == ["Wang Fang"]


def test_search_finds_chinese_latin_and_phone_numbers(api: Api) -> None:
    api.call("POST", "/contacts", json={"full_name": "張偉", "phone": "0912 345 678"})
    api.call("POST", "/contacts", json={"full_name": "Chen Zhiming", "email": "chen@acme.tw"})
    api.call("POST", "/leads", json={"full_name": "林美玲", "company_name": "宏達資訊股份有限公司"})

    def found(path: str, text: str) -> list[str]:
        response = api.call("GET", path, params={"q": text})
        assert response.status_code == 200, response.text
        return [item["full_name"] for item in response.json()["items"]]

    assert found("/contacts", "張偉") == ["張偉"]
    assert found("/contacts", "CHEN") == ["Chen Zhiming"]
    assert found("/contacts", "acme.tw") == ["Chen Zhiming"]
    assert found("/leads", "宏達") == ["林美玲"]


def test_cursor_paging_walks_every_record_once_in_sort_order(api: Api) -> None:
    ids = [
        api.call("POST", "/contacts", json={"full_name": f"客户{n:02d}"}).json()["id"]
        for n in range(7)
    ]
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "3", "sort": "-id", **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/contacts", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)


def test_custom_fields_are_in_the_schema_written_filtered_and_sorted(custom_api: Api) -> None:
    api = custom_api
    schema = api.client.get("/schema/openapi.json").json()
    properties = schema["components"]["schemas"]["ContactCreate"]["properties"]
    assert {"wechat_id", "budget", "visits", "interests"} <= set(properties)
    assert "wechat_id" in schema["components"]["schemas"]["Contact"]["properties"]
    for name, budget, visits in (("甲", "1000.50", 3), ("乙", "99", 10), ("丙", "2000", 1)):
        created = api.call(
            "POST",
            "/contacts",
            json={"full_name": name, "budget": budget, "visits": visits, "interests": ["茶叶"]},
        )
        assert created.status_code == 201, created.text
    page = api.call("GET", "/contacts", params={"budget__gt": "100", "sort": "-visits"}).json()
    assert [item["full_name"] for item in page["items"]] == ["甲", "丙"]
    assert page["items"][0]["budget"] == "1000.5"
    contains = api.call("GET", "/contacts", params={"interests__contains": "茶叶"}).json()
    assert len(contains["items"]) == 3


def test_related_route_lists_the_children_of_a_readable_parent(api: Api) -> None:
    account = api.call("POST", "/accounts", json={"name": "上海锦程贸易有限公司"}).json()["id"]
    other = api.call("POST", "/accounts", json={"name": "Other Ltd"}).json()["id"]
    mine = api.call("POST", "/contacts", json={"full_name": "张伟", "account_id": account})
    api.call("POST", "/contacts", json={"full_name": "外人", "account_id": other})
    listed = api.call("GET", f"/accounts/{account}/contacts").json()
    assert [item["id"] for item in listed["items"]] == [mine.json()["id"]]
    assert_problem(api.call("GET", "/accounts/999999/contacts"), 404)


def test_a_lead_converts_into_a_contact_an_account_and_a_deal(api: Api) -> None:
    lead = api.call(
        "POST", "/leads", json={"full_name": "林美玲", "company_name": "宏達資訊股份有限公司"}
    ).json()
    converted = api.call("POST", f"/leads/{lead['id']}/convert", json={})
    assert converted.status_code == 200, converted.text
    body = converted.json()
    assert api.call("GET", f"/contacts/{body['contact_id']}").json()["full_name"] == "林美玲"
    assert api.call("GET", f"/accounts/{body['account_id']}").status_code == 200
    assert body["deal_id"] is not None
    again = api.call("POST", f"/leads/{lead['id']}/convert", json={})
    assert_problem(again, again.status_code)
    assert 400 <= again.status_code < 500


def test_a_deal_moves_by_stage_name_with_if_match(api: Api) -> None:
    deal = api.call("POST", "/deals", json={"name": "ERP 系统升级"})
    deal_id, tag = deal.json()["id"], deal.headers["etag"]
    moved = api.call(
        "POST", f"/deals/{deal_id}/move", json={"stage": "Won"}, headers={"If-Match": tag}
    )
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] != tag
    stale = api.call(
        "POST", f"/deals/{deal_id}/move", json={"stage": "Lost"}, headers={"If-Match": tag}
    )
    assert_problem(stale, 412)
    assert_problem(api.call("POST", f"/deals/{deal_id}/move", json={"stage": "Nowhere"}), 422)
