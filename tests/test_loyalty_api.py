"""The loyalty plugin's REST routes under /plugins/loyalty: the cashier's flow, errors as
problem+json, the permission scope, and schemathesis against every loyalty operation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import Api, assert_problem, open_api
from loyalty_support import loyalty_crm, member
from openapi_support import PLUGIN_EXAMPLES, assert_conforms, operations
from schemathesis import GenerationMode

import crmkit

BASE = "/plugins/loyalty"


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    yield from open_api(loyalty_crm(make_crm))


def test_a_cashier_issues_a_card_records_a_purchase_redeems_and_refunds(api: Api) -> None:
    contact = api.call("POST", "/contacts", json={"full_name": "王芳"}).json()
    card = api.call("POST", f"{BASE}/cards", json={"contact_id": contact["id"]})
    assert card.status_code == 201, card.text
    number = card.json()["card"]
    bought = api.call(
        "POST",
        f"{BASE}/cards/{number}/purchases",
        json={
            "amount": "200.00",
            "receipt_id": "R1",
            "items": [{"amount": 200, "category": "tea"}],
        },
        headers={"Idempotency-Key": "till-1"},
    )
    assert bought.status_code == 201, bought.text
    assert bought.json()["points"] == 400
    again = api.call(
        "POST",
        f"{BASE}/cards/{number}/purchases",
        json={"amount": "200.00", "receipt_id": "R1"},
        headers={"Idempotency-Key": "till-1"},
    )
    assert again.json()["repeated"] is True
    redeemed = api.call("POST", f"{BASE}/cards/{number}/redeem", json={"points": 100})
    assert redeemed.json()["balance"] == 300
    refunded = api.call("POST", f"{BASE}/refunds", json={"receipt_id": "R1"})
    assert refunded.json()["unrecovered"] == 100
    statement = api.call("GET", f"{BASE}/cards/{number}/statement.csv")
    assert statement.headers["content-type"].startswith("text/csv")
    assert statement.text.splitlines()[0].startswith("at,card,kind")
    image = api.call("GET", f"{BASE}/cards/{number}/image.svg", params={"kind": "barcode"})
    assert image.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in image.content
    png = api.call("GET", f"{BASE}/cards/{number}/image.png")
    assert png.content.startswith(b"\x89PNG")
    view = api.call("GET", f"{BASE}/contacts/{contact['id']}").json()
    assert view["cards"][0]["balance"] == 0
    assert view["purchases"][0]["refunded_amount"] == "200.00"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/cards/8800000000000005/redeem", {"points": 1}, 404),
        ("/cards/1234/redeem", {"points": 1}, 422),
        ("/refunds", {"receipt_id": "nope"}, 404),
        ("/coupons/NOPE/redeem", {}, 404),
    ],
)
def test_bad_input_is_a_problem_json(
    api: Api, path: str, body: dict[str, Any], status: int
) -> None:
    assert_problem(api.call("POST", BASE + path, json=body), status)


def test_an_overdraft_names_the_balance_and_writes_nothing(api: Api) -> None:
    _, number = member(api.crm)
    response = api.call("POST", f"{BASE}/cards/{number}/redeem", json={"points": 5})
    body = assert_problem(response, 422, field="points")
    assert "has 0 points" in body["detail"]


def test_a_sales_rep_gets_not_found_for_a_card_of_someone_elses_contact(api: Api) -> None:
    api.user("li.na", roles=["sales_rep"])
    _, number = member(api.crm)
    assert_problem(api.call("GET", f"{BASE}/cards/{number}", "li.na"), 404)
    assert_problem(api.call("GET", f"{BASE}/cards/{number}/statement", "li.na"), 404)


@pytest.mark.parametrize("mode", list(PLUGIN_EXAMPLES), ids=str)
def test_the_loyalty_routes_conform_to_their_openapi(api: Api, mode: GenerationMode) -> None:
    _, number = member(api.crm)
    chosen = operations(api, BASE)
    assert len(chosen) >= 15

    def real_card(case: Any) -> None:
        if case.path_parameters and "number" in case.path_parameters:
            case.path_parameters["number"] = number  # a real card, to get past 404

    assert_conforms(api, chosen, mode, PLUGIN_EXAMPLES[mode], prepare=real_card)
