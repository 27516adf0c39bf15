"""Shared pieces of the API tests: a real app on the test database and tokens for users."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

import crmkit
from crmkit.api import PROBLEM_MEDIA_TYPE, create_app


class Api:
    """A test client of the real app plus helpers to make users and tokens."""

    def __init__(self, crm: crmkit.CRM, client: TestClient[Any]) -> None:
        self.crm = crm
        self.client = client
        self.tokens: dict[str, str] = {}

    def user(self, username: str, **options: Any) -> crmkit.User:
        """Create a user and remember a token for them."""
        user = self.crm.users.create(username, **options)
        _, plain = self.crm.tokens.issue(username, "tests")
        self.tokens[username] = plain
        return user

    def auth(self, username: str) -> dict[str, str]:
        """The Authorization header of ``username``."""
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def call(self, method: str, path: str, username: str = "admin", **kwargs: Any) -> Any:
        """A request as ``username``."""
        headers = {**self.auth(username), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


def assert_problem(response: Any, status: int, *, field: str | None = None) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status`` (naming ``field`` if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"].startswith("urn:crmkit:problem:")
    if field is not None:
        assert field in [error["field"] for error in body.get("errors", [])], body
    return body


def open_api(crm: crmkit.CRM) -> Iterator[Api]:
    """An :class:`Api` on ``crm`` with an administrator ``admin``."""
    with TestClient(create_app(crm)) as client:
        api = Api(crm, client)
        api.user("admin", admin=True)
        yield api


@pytest.fixture
def api(crm: crmkit.CRM) -> Iterator[Api]:
    """The API of this test's CRM, with an administrator ``admin``."""
    yield from open_api(crm)
