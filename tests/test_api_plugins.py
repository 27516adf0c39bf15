"""Plugin routes (crmkit_api_routes): mounted under /plugins/<name>, in the OpenAPI, with the
crm and actor dependencies and problem+json for crmkit errors. Shown with the example plugin
examples/crmkit-referrals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from api_support import Api, assert_problem, open_api
from litestar import get
from litestar.di import NamedDependency

import crmkit
from crmkit.api import create_app
from crmkit.services import plugin_admin


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    crm = make_crm(discover=True)
    plugin_admin.enable_plugin(crm, "referrals")
    crm.pipelines.create("Sales")
    yield from open_api(crm)


def refer(api: Api, username: str, referrer: int, referred: int, channel: str) -> Any:
    return api.call(
        "POST",
        "/referrals",
        username,
        json={
            "referrer_contact_id": referrer,
            "referred_contact_id": referred,
            "channel": channel,
        },
    )


def test_the_plugins_routes_are_mounted_under_its_prefix_and_act_as_the_caller(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    a = api.call("POST", "/contacts", "rep", json={"full_name": "张伟"}).json()["id"]
    b = api.call("POST", "/contacts", "rep", json={"full_name": "李娜"}).json()["id"]
    c = api.call("POST", "/contacts", json={"full_name": "王芳"}).json()["id"]
    d = api.call("POST", "/contacts", json={"full_name": "赵敏"}).json()["id"]
    assert refer(api, "admin", a, b, "wechat").status_code == 201
    assert refer(api, "admin", c, d, "event").status_code == 201
    everything = api.call("GET", "/plugins/referrals/stats").json()
    assert everything["referrals"] == 2
    assert everything["by_channel"] == {"wechat": 1, "event": 1}
    mine = api.call("GET", f"/plugins/referrals/contacts/{a}", "admin").json()
    assert mine["contact_id"] == a
    assert len(mine["referred"]) == 1


def test_a_crmkit_error_in_a_plugin_route_is_problem_json(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    hidden = api.call("POST", "/contacts", json={"full_name": "别人的客户"}).json()["id"]
    assert_problem(api.call("GET", f"/plugins/referrals/contacts/{hidden}", "rep"), 404)


def test_plugin_routes_need_a_token(api: Api) -> None:
    assert_problem(api.client.get("/plugins/referrals/stats"), 401)


def test_plugin_routes_and_entities_are_in_the_openapi(api: Api) -> None:
    schema = api.client.get("/schema/openapi.json").json()
    assert "/plugins/referrals/stats" in schema["paths"]
    assert "/plugins/referrals/contacts/{contact_id}" in schema["paths"]
    assert "/referrals" in schema["paths"]  # the plugin's entity gets the core record routes
    assert "wechat_id" in schema["components"]["schemas"]["ContactCreate"]["properties"]


class WhoAmI(msgspec.Struct):
    """The answer of the embedded plugin's route."""

    user: str
    entities: int


def test_an_embedded_plugin_route_gets_crm_and_actor(make_crm: Callable[..., crmkit.CRM]) -> None:
    @get("/whoami", sync_to_thread=False)
    def whoami(crm: NamedDependency[crmkit.CRM], actor: NamedDependency[crmkit.User]) -> WhoAmI:
        return WhoAmI(user=actor.username, entities=len(crm.entities))

    class Embedded:
        @crmkit.hookimpl
        def crmkit_api_routes(self, crm: crmkit.CRM) -> list[Any]:
            return [whoami]

    crm = make_crm(plugins={"hello": Embedded()})
    for api in open_api(crm):
        body = api.call("GET", "/plugins/hello/whoami").json()
        assert body == {"user": "admin", "entities": len(crm.entities)}


def test_a_plugin_whose_routes_hook_fails_is_named(make_crm: Callable[..., crmkit.CRM]) -> None:
    class Broken:
        @crmkit.hookimpl
        def crmkit_api_routes(self, crm: crmkit.CRM) -> list[Any]:
            raise RuntimeError("no routes today")

    crm = make_crm(plugins={"broken": Broken()})
    with pytest.raises(crmkit.PluginError, match="broken"):
        create_app(crm)
