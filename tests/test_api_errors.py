"""Bad input answers 4xx problem+json naming the problem, never 5xx, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api, assert_problem

from crmkit.entities.customers import Contact


def contact_count(api: Api) -> int:
    with api.crm.engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(Contact)) or 0)


def post_raw(api: Api, path: str, content: bytes, content_type: str = "application/json") -> Any:
    headers = {"Content-Type": content_type}
    return api.call("POST", path, content=content, headers=headers)


def test_malformed_json_is_400(api: Api) -> None:
    assert_problem(post_raw(api, "/contacts", '{"full_name": "张伟",'.encode()), 400)
    assert contact_count(api) == 0


def test_a_wrong_type_is_422_naming_the_field(api: Api) -> None:
    body = assert_problem(
        api.call("POST", "/contacts", json={"full_name": "张伟", "account_id": "three"}),
        422,
        field="account_id",
    )
    assert "account_id" in body["detail"]
    assert contact_count(api) == 0


def test_an_unknown_field_is_422_naming_it(api: Api) -> None:
    assert_problem(
        api.call("POST", "/contacts", json={"full_name": "张伟", "shoe_size": 42}),
        422,
        field="shoe_size",
    )
    assert contact_count(api) == 0


def test_a_missing_required_field_is_422_naming_it(api: Api) -> None:
    assert_problem(api.call("POST", "/contacts", json={"city": "上海"}), 422, field="full_name")


def test_a_value_the_service_refuses_is_422_naming_the_field(api: Api) -> None:
    assert_problem(
        api.call("POST", "/contacts", json={"full_name": "张伟", "email": "not an address"}),
        422,
        field="email",
    )


def test_a_body_that_is_not_an_object_is_a_client_error(api: Api) -> None:
    response = post_raw(api, "/contacts", b'["full_name"]')
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


def test_an_oversize_body_is_413(api: Api) -> None:
    limit = api.crm.settings.api.max_body_bytes
    huge = b'{"full_name": "' + b"x" * (limit + 10) + b'"}'
    assert_problem(post_raw(api, "/contacts", huge), 413)
    assert contact_count(api) == 0


def test_an_unknown_route_is_404_and_a_wrong_method_405(api: Api) -> None:
    assert_problem(api.call("GET", "/nothing-here"), 404)
    assert_problem(api.call("PUT", "/contacts"), 405)


def test_a_non_numeric_id_is_a_client_error(api: Api) -> None:
    response = api.call("GET", "/contacts/abc")
    assert response.status_code in (400, 404)
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WzEsMiwzXQ", "eyJhIjogMX0", "W251bGxd", "%%%"])
def test_an_invalid_cursor_is_422_naming_the_cursor(api: Api, cursor: str) -> None:
    api.call("POST", "/contacts", json={"full_name": "张伟"})
    response = api.call("GET", "/contacts", params={"cursor": cursor, "sort": "full_name"})
    assert_problem(response, 422, field="cursor")


def test_an_unknown_filter_operator_is_422_naming_it(api: Api) -> None:
    response = api.call("GET", "/contacts", params={"city__like": "上"})
    body = assert_problem(response, 422, field="city__like")
    assert "like" in body["detail"]


def test_an_unknown_filter_field_or_sort_field_is_422(api: Api) -> None:
    assert_problem(api.call("GET", "/contacts", params={"shoe": "1"}), 422, field="shoe")
    assert_problem(api.call("GET", "/contacts", params={"sort": "-shoe"}), 422, field="shoe")


def test_a_limit_out_of_range_is_400_naming_it(api: Api) -> None:
    assert_problem(api.call("GET", "/contacts", params={"limit": "0"}), 400, field="limit")
    assert_problem(api.call("GET", "/contacts", params={"limit": "x"}), 400, field="limit")


def test_a_bad_filter_value_is_422_naming_the_field(api: Api) -> None:
    response = api.call("GET", "/deals", params={"amount__gte": "lots"})
    assert_problem(response, 422, field="amount")


def test_a_reference_to_a_missing_record_is_422(api: Api) -> None:
    response = api.call("POST", "/contacts", json={"full_name": "张伟", "account_id": 424242})
    assert_problem(response, 422, field="account_id")
