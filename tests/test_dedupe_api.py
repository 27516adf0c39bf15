"""The dedupe plugin's REST routes under /plugins/dedupe.

They need the core's REST API (``crmkit.api.create_app`` and the ``crmkit_api_routes``
hook), which lands from another branch: these pass once both are merged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import crmkit_dedupe
import pytest
from crmkit_dedupe import service
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


@pytest.fixture
def many(make_crm: Callable[..., crmkit.CRM]) -> tuple[crmkit.CRM, TestClient]:  # type: ignore[type-arg]
    """Twelve pairs for the scan to find (each person twice, phone shared)."""
    crm = make_crm(
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"online_check": False}}
    )
    for n in range(12):
        crm.contacts.create({"full_name": f"客户{n}", "phone": f"1380000{n:04d}"})
        name = f'=HYPERLINK("x")客户{n}' if n == 0 else f"客戶{n}"
        crm.contacts.create({"full_name": name, "phone": f"+86 138 0000 {n:04d}"})
    crm.users.create("root", admin=True)
    _, secret = crm.tokens.issue("root", "dedupe test")
    test_client = TestClient(create_app(crm))
    test_client.headers["Authorization"] = f"Bearer {secret}"
    assert test_client.post("/plugins/dedupe/scan").json()["candidates"] == 12
    return crm, test_client


def test_the_review_pages_by_cursor_over_every_candidate(many: Any) -> None:
    _, client = many
    everything = client.get("/plugins/dedupe/candidates", params={"limit": 100}).json()
    pages: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = client.get("/plugins/dedupe/candidates", params=params).json()
        pages.append(page)
        if len(page) < 5:
            break
        params["after"] = page[-1]["cursor"]

    assert [len(page) for page in pages] == [5, 5, 2]
    assert [row["id"] for page in pages for row in page] == [row["id"] for row in everything]


def test_a_bad_cursor_is_a_problem_json_422(many: Any) -> None:
    _, client = many
    response = client.get("/plugins/dedupe/candidates", params={"after": "nonsense"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "after" in response.text


def test_the_export_has_every_candidate_with_reasons_and_no_formulas(many: Any) -> None:
    _, client = many
    response = client.get("/plugins/dedupe/candidates/export.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert len(lines) == 12
    assert all("same phone" in line["reasons"] for line in lines)
    labels = [line["label_a"] + line["label_b"] for line in lines]
    assert any(label.startswith("'=HYPERLINK") or "'=HYPERLINK" in label for label in labels)
    assert not any(
        line[column].startswith("=") for line in lines for column in ("label_a", "label_b")
    )
    as_json = client.get("/plugins/dedupe/candidates/export.json").json()
    assert sorted(row["id"] for row in as_json) == sorted(int(line["id"]) for line in lines)


def test_the_export_pages_through_more_than_one_page(many: Any) -> None:
    crm, _ = many
    rows = list(service.export_candidates(crm, page=5))
    assert len(rows) == 12
    assert len({row["id"] for row in rows}) == 12


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_dedupe_routes_conform_to_their_openapi(many: Any, mode: str) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        status_code_conformance,
    )

    _, client = many
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", client.app)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/plugins/dedupe/candidates")
        and result.ok().method.upper() == "GET"
    ]
    assert len(operations) == 3
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(headers=dict(client.headers))
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance, content_type_conformance],
            )
            if response.status_code >= 400:
                assert "Traceback" not in response.text
                assert "SELECT" not in response.text

        try:
            check()
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error
