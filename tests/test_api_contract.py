"""The OpenAPI contract: every JSON body of every route, core and plugin, is a named, typed
schema (crmkit.api.untyped_operations), and the test kit fails a plugin's tests when one of
its routes is not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from litestar import get

import crmkit
from crmkit.api import untyped_operations
from crmkit.testing import api_client


def document(response_schema: dict[str, Any], **schemas: Any) -> dict[str, Any]:
    return {
        "paths": {
            "/things": {
                "get": {
                    "responses": {
                        "200": {"content": {"application/json": {"schema": response_schema}}}
                    }
                }
            }
        },
        "components": {"schemas": schemas},
    }


def test_a_named_schema_with_typed_fields_passes() -> None:
    thing = {"type": "object", "properties": {"id": {"type": "integer"}}}
    assert untyped_operations(document({"$ref": "#/components/schemas/Thing"}, Thing=thing)) == []
    listed = {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}}
    assert untyped_operations(document(listed, Thing=thing)) == []


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "object", "additionalProperties": {}}, "object of untyped members"),
        (
            {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
            "object of untyped members",
        ),
        # Litestar's own 400 schema: the union a client generator drops the response for
        (
            {"type": ["null", "object", "array"], "additionalProperties": {}, "default": None},
            "one of several types",
        ),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "not a named schema"),
        ({}, "has no type"),
    ],
)
def test_an_anonymous_or_untyped_response_is_named(schema: dict[str, Any], reason: str) -> None:
    (problem,) = untyped_operations(document(schema))
    assert problem.startswith("GET /things 200: the response")
    assert reason in problem


def test_a_field_without_a_type_is_named() -> None:
    thing = {"type": "object", "properties": {"extra": {"type": "object"}}}
    (problem,) = untyped_operations(document({"$ref": "#/components/schemas/Thing"}, Thing=thing))
    assert problem == "schema Thing: field 'extra' is an object of untyped members"


def test_two_types_of_one_name_are_named() -> None:
    thing = {"type": "object", "properties": {"id": {"type": "integer"}}}
    problems = untyped_operations(
        document({"$ref": "#/components/schemas/webhooks_Delivery"}, webhooks_Delivery=thing)
    )
    assert problems == [
        "schema webhooks_Delivery: two types share the name 'Delivery'; rename one (client"
        " generators need one model per name)"
    ]


class Stats(msgspec.Struct):
    """A typed answer."""

    count: int


@get("/typed", sync_to_thread=False)
def typed_route() -> Stats:
    return Stats(count=1)


@get("/untyped", sync_to_thread=False)
def untyped_route() -> dict[str, Any]:
    return {"count": 1}


class RoutesPlugin:
    def __init__(self, *handlers: Any) -> None:
        self.handlers = list(handlers)

    @crmkit.hookimpl
    def crmkit_api_routes(self, crm: crmkit.CRM) -> list[Any]:
        return self.handlers


def test_the_kit_fails_a_test_whose_plugin_answers_an_untyped_body(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"sloppy": RoutesPlugin(typed_route, untyped_route)})
    with pytest.raises(pytest.fail.Exception) as failure, api_client(crm):
        pass
    message = str(failure.value)
    assert "GET /plugins/sloppy/untyped 200: the response is an object of untyped members" in (
        message
    )
    assert "/plugins/sloppy/typed" not in message


def test_the_kit_lets_a_typed_plugin_through(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(plugins={"tidy": RoutesPlugin(typed_route)})
    with api_client(crm) as api:
        assert api.call("GET", "/plugins/tidy/typed").json() == {"count": 1}


def test_the_check_can_be_turned_off(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(plugins={"sloppy": RoutesPlugin(untyped_route)})
    with api_client(crm, check_schema=False) as api:
        assert api.call("GET", "/plugins/sloppy/untyped").json() == {"count": 1}


def test_every_route_of_the_core_and_the_bundled_plugins_is_typed(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(
        discover=True,
        enable=["referrals", "dedupe", "cardscan", "reminders", "loyalty", "insights", "campaigns"],
    )
    from crmkit.api import create_app

    app = create_app(crm)
    assert untyped_operations(app.openapi_schema.to_schema()) == []


def test_a_route_without_its_own_problem_answers_gets_them(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"tidy": RoutesPlugin(typed_route)})
    from crmkit.api import create_app

    operation = create_app(crm).openapi_schema.to_schema()["paths"]["/plugins/tidy/typed"]["get"]
    for status in ("400", "401", "403", "422"):
        content = operation["responses"][status]["content"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }


def test_public_routes_say_they_need_no_token_and_the_others_need_a_bearer_token(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(discover=True, enable=["reminders", "campaigns"])
    from crmkit.api import create_app

    document = create_app(crm).openapi_schema.to_schema()
    assert document["security"] == [{"BearerToken": []}]
    assert document["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    paths = document["paths"]
    for path, method in [
        ("/health", "get"),
        ("/forms/{key}", "post"),
        ("/forms/{key}/snippet", "get"),
        ("/messages/unsubscribe/{token}", "get"),
        ("/plugins/reminders/feed/{token}", "get"),
        ("/plugins/campaigns/click/{token}", "get"),
    ]:
        assert paths[path][method]["security"] == [], path
        assert "401" not in paths[path][method]["responses"], path
    # the rest inherit the document's bearer requirement
    assert "security" not in paths["/contacts"]["get"]
    assert "401" in paths["/contacts"]["get"]["responses"]
