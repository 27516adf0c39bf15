"""Shared pieces of the desk tests: a browser-like client per user of the real app (its own
cookie jar), signing in through the real form, and reading the CSRF token off each page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

import crmkit
from crmkit.api import create_app

PASSWORD = "correct horse 电池 staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class DeskClient:
    """One browser: its cookies, the CSRF token of the last page it read."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.csrf = ""

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.client.get(path, follow_redirects=kwargs.pop("follow", True), **kwargs)
        self._remember(response.text)
        return response

    def post(self, path: str, data: dict[str, Any], *, csrf: bool = True, **kwargs: Any) -> Any:
        form = {"csrf_token": self.csrf, **data} if csrf else data
        response = self.client.post(
            path, data=form, follow_redirects=kwargs.pop("follow", True), **kwargs
        )
        self._remember(response.text)
        return response

    def _remember(self, html: str) -> None:
        found = _CSRF.search(html)
        if found:
            self.csrf = found.group(1)

    def sign_in(self, username: str, password: str = PASSWORD, **data: Any) -> Any:
        """Fill in and send the sign-in form, as a browser would."""
        self.get("/desk/sign-in")
        return self.post("/desk/sign-in", {"username": username, "password": password, **data})


class DeskWorld:
    """The app of a CRM and a browser per user."""

    def __init__(self, crm: crmkit.CRM, app: Litestar) -> None:
        self.crm = crm
        self.app = app
        self._clients: list[TestClient[Any]] = []

    def user(self, username: str, **options: Any) -> crmkit.User:
        """A user with the desk password :data:`PASSWORD`."""
        user = self.crm.users.create(username, **options)
        self.crm.sign_in.set_password(username, PASSWORD)
        return user

    def browser(self) -> DeskClient:
        """A new browser (no cookies)."""
        # Not entered: the app has no lifespan work, and each entered client would run (and
        # wait for) the one app's start-up and shut-down of its own.
        client = TestClient(self.app)
        self._clients.append(client)
        return DeskClient(client)

    def signed_in(self, username: str) -> DeskClient:
        """A new browser signed in as ``username``."""
        browser = self.browser()
        response = browser.sign_in(username)
        assert response.status_code == 200, response.text
        return browser

    def close(self) -> None:
        self._clients.clear()


def open_desk(crm: crmkit.CRM) -> Iterator[DeskWorld]:
    """A :class:`DeskWorld` on ``crm`` with two teams, an admin and a rep in each team."""
    crm.users.create_team("华东")
    crm.users.create_team("华南")
    world = DeskWorld(crm, create_app(crm))
    world.user("admin", admin=True, display_name="管理员")
    world.user("li.na", team="华东", display_name="李娜")
    world.user("chen.jie", team="华南", display_name="陈杰")
    yield world
    world.close()


@pytest.fixture
def desk(crm: crmkit.CRM) -> Iterator[DeskWorld]:
    """The desk of this test's CRM: users admin, li.na (华东) and chen.jie (华南)."""
    yield from open_desk(crm)
