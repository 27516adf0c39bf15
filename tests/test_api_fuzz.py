"""Every route of the API (core and bundled plugins') against hostile input of the kinds an
outside probe used (issue 16): nesting, NUL, huge and non-finite numbers, odd Unicode digits,
wrong and lying charsets, ids beyond any integer, odd If-Match. The only accepted answers are
2xx and 4xx problem+json whose text holds nothing of the server's internals.

schemathesis (tests/test_api_schemathesis.py) generates from the schema; this test sends the
cases schemas do not describe, to every operation the OpenAPI document lists. Its size fits
CI: each operation gets each hostile case once, on both engines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import crmkit_campaigns
import crmkit_cardscan
import crmkit_dedupe
import crmkit_insights
import crmkit_loyalty
import crmkit_tickets
import pytest
from api_support import Api, open_api

import crmkit
from crmkit.api import PROBLEM_MEDIA_TYPE

INTERNALS = re.compile(
    r"(?i)(\bselect\b.*\bfrom\b|\binsert into\b|\bsqlalchemy\b|\bpsycopg\b|\bsqlite3\b|"
    r"traceback|\[parameters:|\[sql:|file \"/|line \d+, in )"
)

NESTED = ("[" * 1000 + "]" * 1000).encode()
NESTED_OBJECT = ('{"a": ' * 1000 + "1" + "}" * 1000).encode()
HUGE_INTEGER = "9" * 5000
#: Scalar values put in every field of a body and in every query parameter.
HOSTILE_VALUES: list[Any] = [
    "a\x00b",
    "1e999999",
    HUGE_INTEGER,
    "²",
    "١٢٣",
    "NaN",
    "-Infinity",
    "\x1b[2J",
    "\ud7ff" * 3,
    "x" * 20_000,
    -(2**70),
    2**63,
    1e308,
    True,
    None,
    [],
    {},
]
#: Path parameter values: ids beyond every integer type, odd digits, NUL, traversal.
HOSTILE_PATH = ["99999999999999999999", "9223372036854775808", "-1", "0", "²", "1e3", "%00", ".."]
#: Raw bodies with the content type they claim.
HOSTILE_BODIES: list[tuple[bytes, str]] = [
    (NESTED, "application/json"),
    (NESTED_OBJECT, "application/json"),
    (b'{"x": ' + HUGE_INTEGER.encode() + b"}", "application/json"),
    (b'{"x": 1e999999}', "application/json"),
    (b'{"x": "\xff\xfe"}', "application/json"),
    (b'{"x": "\\u0000"}', "application/json"),
    ('{"x": "张伟"}'.encode("gb18030"), "application/json; charset=gb18030"),
    (b"\xef\xbb\xbf{}", "application/json"),
    (b"", "application/json"),
    (b"[1, 2]", "application/json"),
    (b"x=%C3%28&y=%00", "application/x-www-form-urlencoded"),
    ("x=张伟".encode("gb18030"), "application/x-www-form-urlencoded; charset=gb18030"),
    (b"x=1", "application/x-www-form-urlencoded; charset=nonsense"),
    (b"\x00\x01\x02", "application/octet-stream"),
]
IF_MATCH = ["9" * 10_000, "²", '"١"', "W/", '"-1"', "*, 1"]


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    crm = make_crm(
        plugins={
            "dedupe": crmkit_dedupe,
            "loyalty": crmkit_loyalty,
            "cardscan": crmkit_cardscan,
            "campaigns": crmkit_campaigns,
            "insights": crmkit_insights,
            "tickets": crmkit_tickets,  # examples/crmkit-tickets: a third party's routes
        }
    )
    crm.pipelines.create("Sales")
    yield from open_api(crm)


def _schema(api: Api) -> dict[str, Any]:
    response = api.call("GET", "/schema/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method in ("get", "post", "patch", "put", "delete"):
                found.append((method.upper(), path, operation))
    # deletes last, so the records stay for the other operations
    return sorted(found, key=lambda item: (item[0] == "DELETE", item[1], item[0]))


def _body_fields(schema: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = (operation.get("requestBody") or {}).get("content") or {}
    body = next(iter(content.values()), {}).get("schema") or {}
    if "$ref" in body:
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    return sorted((body.get("properties") or {}).keys())[:12] or ["x"]


def _path(path: str, value: str = "1") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def _assert_clean(response: Any, what: str) -> None:
    status = response.status_code
    assert status < 500, f"{what}: {status} {response.text[:300]}"
    if status >= 400:
        content_type = response.headers.get("content-type", "")
        assert content_type.startswith(PROBLEM_MEDIA_TYPE), f"{what}: {status} {content_type}"
        assert not INTERNALS.search(response.text), f"{what}: {response.text[:500]}"
        body = response.json()
        assert body["status"] == status, what


def _seed(api: Api) -> None:
    crm = api.crm
    crm.contacts.create({"full_name": "张伟", "phone": "138 1234 5678"})
    crm.accounts.create({"name": "宏達資訊股份有限公司"})
    crm.forms.add("官网询价", ["full_name", "email"])
    crm.segments.create("2", "contact", {"full_name__contains": "伟"})
    crm.segments.create("1", "contact", {"account.city": "上海", "segment__ne": "2"})


def test_every_route_answers_hostile_bodies_with_4xx_problems(api: Api) -> None:
    _seed(api)
    schema = _schema(api)
    for method, path, operation in _operations(schema):
        if method in ("GET", "DELETE"):
            continue
        url = _path(path)
        for body, content_type in HOSTILE_BODIES:
            response = api.call(method, url, content=body, headers={"content-type": content_type})
            _assert_clean(response, f"{method} {path} body {body[:40]!r}")
        for field in _body_fields(schema, operation):
            for value in HOSTILE_VALUES:
                response = api.call(method, url, json={field: value})
                _assert_clean(response, f"{method} {path} {field}={str(value)[:40]!r}")


def test_every_route_answers_hostile_parameters_with_4xx_problems(api: Api) -> None:
    _seed(api)
    schema = _schema(api)
    for method, path, operation in _operations(schema):
        names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
        if method == "GET" and "/schema" not in path:
            names += ["q", "full_name", "amount__gt", "id__in", "created_at__lt"]
        for name in dict.fromkeys(names):
            for value in HOSTILE_VALUES:
                if isinstance(value, list | dict) or value is None:
                    continue
                response = api.call(method, _path(path), params={name: str(value)})
                _assert_clean(response, f"{method} {path}?{name}={str(value)[:40]!r}")
        if "{" in path:
            for value in HOSTILE_PATH:
                response = api.call(method, _path(path, value), json={})
                _assert_clean(response, f"{method} {_path(path, value)}")
        if method in ("PATCH", "DELETE", "PUT"):
            for tag in IF_MATCH:
                response = api.call(
                    method, _path(path), json={}, headers={"If-Match": tag.encode()}
                )
                _assert_clean(response, f"{method} {path} If-Match {tag[:20]!r}")


def test_the_public_routes_answer_without_a_token_too(api: Api) -> None:
    _seed(api)
    key = api.crm.forms.list()[0].key
    for body, content_type in HOSTILE_BODIES:
        response = api.client.post(
            f"/forms/{key}", content=body, headers={"content-type": content_type}
        )
        _assert_clean(response, f"form body {body[:40]!r}")
    for value in HOSTILE_PATH:
        _assert_clean(api.client.post(f"/forms/{value}", data={"x": "1"}), f"form {value}")
        _assert_clean(api.client.get(f"/forms/{value}/snippet"), f"snippet {value}")
    for value in [*HOSTILE_PATH, "x.²", "eA.张", "a.b", "%ff.%ff"]:  # signed tokens, forged
        response = api.client.get(f"/plugins/campaigns/click/{value}", follow_redirects=False)
        _assert_clean(response, f"click {value}")
        assert response.status_code >= 400, value
        response = api.client.post(f"/messages/unsubscribe/{value}")
        _assert_clean(response, f"unsubscribe {value}")
    assert json.loads(api.client.get("/health").text) == {"status": "ok"}
