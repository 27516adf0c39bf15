"""Bearer tokens: no token, a bad one, a revoked or expired one, or a deactivated user's one
answer 401 at once; the token's user is the actor."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from api_support import Api, assert_problem

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
