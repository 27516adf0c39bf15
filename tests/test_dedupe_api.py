"""The dedupe plugin's REST routes under /plugins/dedupe.

They need the core's REST API (``crmkit.api.create_app`` and the ``crmkit_api_routes``
hook), which lands from another branch: these pass once both are merged.
"""

from __future__ import annotations

from collections.abc import Callable

import crmkit_dedupe
import pytest
from litestar.testing import TestClient

import crmkit
from crmkit.api import create_app


@pytest.fixture
def client(make_crm: Callable[..., crmkit.CRM]) -> TestClient:  # type: ignore[type-arg]
    crm = make_crm(  # online check off, so the two get in for the scan to find
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"online_check": False}}
    )
    crm.contacts.create({"full_name": "張偉", "phone": "138 1234 5678"})
    crm.contacts.create({"full_name": "Zhang Wei", "phone": "+86 138-1234-5678"})
    crm.users.create("root", admin=True)
    _, secret = crm.tokens.issue("root", "dedupe test")
    test_client = TestClient(create_app(crm))
    test_client.headers["Authorization"] = f"Bearer {secret}"
    return test_client


def test_scan_review_merge_and_undo_over_http(client: TestClient) -> None:  # type: ignore[type-arg]
    scanned = client.post("/plugins/dedupe/scan")
    assert scanned.status_code in (200, 201), scanned.text
    assert scanned.json()["candidates"] == 1
    (pair,) = client.get("/plugins/dedupe/candidates").json()
    assert any("phone" in reason for reason in pair["reasons"])
    merged = client.post(f"/plugins/dedupe/candidates/{pair['id']}/merge", json={"keep": "a"})
    assert merged.status_code in (200, 201), merged.text
    undone = client.post(f"/plugins/dedupe/merges/{merged.json()['merge_id']}/undo")
    assert undone.status_code in (200, 201), undone.text


def test_an_unknown_candidate_is_a_problem_json_404(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post("/plugins/dedupe/candidates/999/dismiss")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_check_reports_matches_without_writing(client: TestClient) -> None:  # type: ignore[type-arg]
    response = client.post(
        "/plugins/dedupe/check", json={"full_name": "张伟", "phone": "13812345678"}
    )
    assert response.status_code in (200, 201), response.text
    assert len(response.json()) == 2
