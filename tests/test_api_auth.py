"""Bearer tokens: no token, a bad one, a revoked or expired one, or a deactivated user's one
answer 401 at once; the token's user is the actor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api, assert_problem, open_api
from litestar import get

import crmkit
from crmkit.permissions.models import ApiToken


def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    response = api.client.get("/contacts")
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "token" in body["detail"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer crmk_nope", "crmk_x"])
def test_a_malformed_or_unknown_token_is_401(api: Api, header: str) -> None:
    assert_problem(api.client.get("/contacts", headers={"Authorization": header}), 401)


def test_a_revoked_token_fails_at_once(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    assert api.call("GET", "/contacts", "rep").status_code == 200
    token_id = api.crm.tokens.list("rep")[0].id
    api.crm.tokens.revoke(token_id)
    body = assert_problem(api.call("GET", "/contacts", "rep"), 401)
    assert "revoked" in body["detail"]


def test_an_expired_token_fails(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    with api.crm.engine.begin() as connection:
        connection.execute(
            sa.update(ApiToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    body = assert_problem(api.call("GET", "/contacts", "rep"), 401)
    assert "expired" in body["detail"]


def test_a_deactivated_users_token_fails_at_once(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    assert api.call("GET", "/contacts", "rep").status_code == 200
    api.crm.users.deactivate("rep")
    assert_problem(api.call("GET", "/contacts", "rep"), 401)


def test_the_token_user_is_the_actor_of_writes(api: Api) -> None:
    rep = api.user("rep", roles=["sales_rep"])
    created = api.call("POST", "/contacts", "rep", json={"full_name": "张伟"}).json()
    assert created["owner_id"] == rep.id
    assert created["created_by_id"] == rep.id


def test_a_permission_the_user_lacks_is_403(api: Api) -> None:
    api.user("ro", roles=["read_only"])
    body = assert_problem(api.call("POST", "/contacts", "ro", json={"full_name": "张伟"}), 403)
    assert "contact:create" in body["detail"]


def test_schema_and_health_need_no_token(api: Api) -> None:
    assert api.client.get("/schema/openapi.json").status_code == 200
    assert api.client.get("/schema/swagger").status_code == 200
    assert api.client.get("/health").json() == {"status": "ok"}


# -- the token is checked inside the request's own operation (one transaction per request) --


@contextmanager
def transactions(crm: crmkit.CRM) -> Iterator[list[object]]:
    """The transactions ``crm``'s engine begins inside the block."""
    begun: list[object] = []

    def count(connection: object) -> None:
        begun.append(connection)

    sa.event.listen(crm.engine, "begin", count)
    try:
        yield begun
    finally:
        sa.event.remove(crm.engine, "begin", count)


def test_a_read_by_a_known_token_is_one_transaction(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    record = api.call("POST", "/contacts", "rep", json={"full_name": "张伟"}).json()
    api.call("GET", f"/contacts/{record['id']}", "rep")  # the token and its user are known now
    with transactions(api.crm) as begun:
        response = api.call("GET", f"/contacts/{record['id']}", "rep")
    assert response.status_code == 200
    assert len(begun) == 1


def test_a_token_revoked_through_another_instance_fails_at_once(
    api: Api, make_crm: Callable[..., crmkit.CRM]
) -> None:
    api.user("rep", roles=["sales_rep"])
    assert api.call("GET", "/contacts", "rep").status_code == 200
    other = make_crm()
    other.tokens.revoke(other.tokens.list("rep")[0].id)
    response = api.call("GET", "/contacts", "rep")
    body = assert_problem(response, 401)
    assert "revoked" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_token_rejected_inside_a_write_changes_nothing(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    assert api.call("GET", "/contacts", "rep").status_code == 200
    api.crm.tokens.revoke(api.crm.tokens.list("rep")[0].id)
    assert_problem(api.call("POST", "/contacts", "rep", json={"full_name": "张伟"}), 401)
    assert api.crm.contacts.count() == 0


def test_a_role_change_through_another_instance_is_seen_by_the_next_request(
    api: Api, make_crm: Callable[..., crmkit.CRM]
) -> None:
    api.user("rep", roles=["sales_rep"])
    api.call("POST", "/contacts", json={"full_name": "别人的客户"})
    assert api.call("GET", "/contacts", "rep").json()["items"] == []
    make_crm().roles.grant("sales_rep", "contact:read", "all")
    assert len(api.call("GET", "/contacts", "rep").json()["items"]) == 1
    make_crm().roles.unassign("rep", "sales_rep")
    assert_problem(api.call("GET", "/contacts", "rep"), 403)


def test_a_team_move_through_another_instance_is_seen_by_the_next_request(
    api: Api, make_crm: Callable[..., crmkit.CRM]
) -> None:
    api.crm.users.create_team("East")
    api.crm.users.create_team("West")
    api.user("rep", team="East", roles=["sales_rep"])
    first = api.call("POST", "/contacts", "rep", json={"full_name": "张伟"}).json()
    make_crm().users.set_team("rep", "West")
    second = api.call("POST", "/contacts", "rep", json={"full_name": "李娜"}).json()
    teams = {team.name: team.id for team in api.crm.users.teams()}
    assert (first["team_id"], second["team_id"]) == (teams["East"], teams["West"])


@dataclass
class Pong:
    """A plugin route's typed answer (the kit refuses untyped routes)."""

    pong: str


def test_a_route_that_opens_no_operation_still_refuses_a_revoked_token(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    @get("/ping", sync_to_thread=False)
    def ping() -> Pong:
        return Pong(pong="yes")

    class Embedded:
        @crmkit.hookimpl
        def crmkit_api_routes(self, crm: crmkit.CRM) -> list[Any]:
            return [ping]

    crm = make_crm(plugins={"ping": Embedded()})
    for api in open_api(crm):
        api.user("rep", roles=["sales_rep"])
        assert api.call("GET", "/plugins/ping/ping", "rep").json() == {"pong": "yes"}
        assert api.call("GET", "/plugins/ping/ping", "rep").json() == {"pong": "yes"}
        crm.tokens.revoke(crm.tokens.list("rep")[0].id)
        body = assert_problem(api.call("GET", "/plugins/ping/ping", "rep"), 401)
        assert "revoked" in body["detail"]


def test_a_request_records_the_tokens_last_use_when_it_is_due(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    assert api.call("GET", "/contacts", "rep").status_code == 200  # known to the process now
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with api.crm.engine.begin() as connection:
        connection.execute(sa.update(ApiToken).values(last_used_at=long_ago))
    assert api.call("GET", "/contacts", "rep").status_code == 200
    last_used = api.crm.tokens.list("rep")[0].last_used_at
    assert last_used is not None
    assert last_used > long_ago + dt.timedelta(minutes=30)


def test_an_options_request_needs_no_token(api: Api) -> None:
    response = api.client.options("/contacts")
    assert response.status_code == 204
    assert "GET" in response.headers["allow"]
