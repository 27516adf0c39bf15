"""The authorisation matrix of tests/test_authorization_matrix.py, once more through HTTP, for
contacts and deals: every route answers exactly what the services decide (200/201/204 for ok,
404 for missing, 403 for refused), and nothing leaks through filters, search, sorting or the
related-record routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from test_authorization_matrix import (
    ACTOR,
    EXPECTED,
    LABEL,
    MISSING,
    NEW_VALUE,
    OK,
    PLACED,
    PLACEMENTS,
    RECORDS,
    REFUSED,
    ROLES,
    UPDATED,
    VISIBLE,
    World,
    build_world,
    shared_world,  # noqa: F401
)

import crmkit
from crmkit.api import create_app

ENTITIES = ("contact", "deal")
PATHS = {"contact": "/contacts", "deal": "/deals"}
STATUS = {OK: (200, 201, 204), MISSING: (404,), REFUSED: (403,)}


class Http:
    """A client of the world's CRM with a token per actor."""

    def __init__(self, world: World, client: TestClient[Any]) -> None:
        self.world = world
        self.client = client
        self.tokens = {
            username: world.crm.tokens.issue(username, "matrix")[1] for username in ACTOR.values()
        }

    def call(self, method: str, path: str, username: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[username]}"}
        return self.client.request(method, path, headers=headers, **kwargs)

    def keys(self, entity: str, response: Any) -> set[str]:
        assert response.status_code == 200, response.text
        return {self.world.key_of(entity, item["id"]) for item in response.json()["items"]}


def _http(world: World) -> Iterator[Http]:
    with TestClient(create_app(world.crm)) as client:
        yield Http(world, client)


@pytest.fixture(scope="module")
def shared_http(shared_world: World) -> Iterator[Http]:  # noqa: F811
    yield from _http(shared_world)


@pytest.fixture
def http(crm: crmkit.CRM) -> Iterator[Http]:
    yield from _http(build_world(crm))


def outcome(status: int) -> str:
    return next((name for name, codes in STATUS.items() if status in codes), f"HTTP {status}")


@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("role", ROLES)
def test_get_one_record_per_placement(shared_http: Http, entity: str, role: str) -> None:
    actor = ACTOR[role]
    got = []
    for placement in PLACEMENTS:
        record_id = shared_http.world.ids[entity, PLACED[actor][placement]]
        got.append(
            outcome(shared_http.call("GET", f"{PATHS[entity]}/{record_id}", actor).status_code)
        )
    assert tuple(got) == EXPECTED[role, "get"]


@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("role", ROLES)
def test_lists_search_filters_and_sorts_show_only_the_visible_records(
    shared_http: Http, entity: str, role: str
) -> None:
    actor = ACTOR[role]
    path, label = PATHS[entity], LABEL[entity]
    visible = VISIBLE[actor]
    listed = shared_http.keys(entity, shared_http.call("GET", path, actor, params={"limit": 100}))
    assert listed == visible
    for sort in (label, f"-{label}", "owner_id", "-team_id", "created_at"):
        response = shared_http.call("GET", path, actor, params={"sort": sort, "limit": 3})
        page = shared_http.keys(entity, response)
        assert page <= visible, sort
    for key in RECORDS:
        code = key.split()[0]
        searched = shared_http.keys(
            entity, shared_http.call("GET", path, actor, params={"q": code})
        )
        assert searched == ({key} & visible), key
        filtered = shared_http.keys(
            entity, shared_http.call("GET", path, actor, params={label: key})
        )
        assert filtered == ({key} & visible), key
        contains = shared_http.keys(
            entity, shared_http.call("GET", path, actor, params={f"{label}__contains": code})
        )
        assert contains == ({key} & visible), key
    by_owner = shared_http.keys(
        entity,
        shared_http.call(
            "GET", path, actor, params={"owner_id": shared_http.world.users["rep2"].id}
        ),
    )
    assert by_owner == ({"R2 rep2@East"} & visible)


@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("role", ROLES)
def test_related_routes_show_only_the_visible_children(
    shared_http: Http, entity: str, role: str
) -> None:
    actor = ACTOR[role]
    world = shared_http.world
    account = world.ids["account", "R1 rep@East"]  # every record belongs to it
    response = shared_http.call("GET", f"/accounts/{account}/{PATHS[entity][1:]}", actor)
    assert shared_http.keys(entity, response) == VISIBLE[actor]
    hidden_accounts = set(RECORDS) - VISIBLE[actor]
    for key in hidden_accounts:
        other = world.ids["account", key]
        response = shared_http.call("GET", f"/accounts/{other}/{PATHS[entity][1:]}", actor)
        assert response.status_code == 404


@pytest.mark.parametrize("entity", ENTITIES)
@pytest.mark.parametrize("role", ROLES)
def test_writes_per_placement(http: Http, entity: str, role: str) -> None:
    actor = ACTOR[role]
    world = http.world
    path = PATHS[entity]
    updates, deletes, creates = [], [], []
    for placement in PLACEMENTS:
        key = PLACED[actor][placement]
        record_id = world.ids[entity, key]
        before = world.state(entity)
        response = http.call(
            "PATCH",
            f"{path}/{record_id}",
            actor,
            json={UPDATED[entity]: NEW_VALUE.get(entity, "API 改过")},
        )
        updates.append(outcome(response.status_code))
        if response.status_code != 200:
            assert world.state(entity) == before
        owner, team = RECORDS[key]
        body = {
            LABEL[entity]: f"new {placement}",
            "owner_id": world.users[owner].id if owner else None,
            "team_id": world.teams[team],
        }
        before = world.state(entity)
        response = http.call("POST", path, actor, json=body)
        creates.append(outcome(response.status_code))
        if response.status_code != 201:
            assert world.state(entity) == before
    for placement in PLACEMENTS:
        record_id = world.ids[entity, PLACED[actor][placement]]
        before = world.state(entity)
        response = http.call("DELETE", f"{path}/{record_id}", actor)
        deletes.append(outcome(response.status_code))
        if response.status_code != 204:
            assert world.state(entity) == before
    assert tuple(updates) == EXPECTED[role, "update"]
    assert tuple(creates) == EXPECTED[role, "create"]
    assert tuple(deletes) == EXPECTED[role, "delete"]
