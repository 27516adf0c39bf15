"""Shared pieces of the API tests: the test kit's API client (crmkit.testing) on a real app,
with tokens for users, and the problem+json assertion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import crmkit
from crmkit.testing import ApiClient as Api
from crmkit.testing import api_client, assert_problem


def open_api(crm: crmkit.CRM) -> Iterator[Api]:
    """An :class:`Api` on ``crm`` with an administrator ``admin``."""
    with api_client(crm) as api:
        yield api


@pytest.fixture
def api(crm: crmkit.CRM) -> Iterator[Api]:
    """The API of this test's CRM, with an administrator ``admin``."""
    yield from open_api(crm)


__all__ = ["Api", "api", "assert_problem", "open_api"]
