"""Webhook subscriptions through the API, delivered by the relay to a real HTTP receiver."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from api_support import Api, assert_problem
from test_events import Receiver, drain

import crmkit
from crmkit.events.relay import Relay
from crmkit.events.webhook import SIGNATURE_HEADER, verify


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """The receivers are on 127.0.0.1, which webhooks refuse unless told (crmkit.outbound)."""
    crm = make_crm(relay={"allow_internal_addresses": True})
    crm.pipelines.create("Sales")
    return crm


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def subscribe(api: Api, url: str, events: list[str]) -> dict[str, object]:
    response = api.call("POST", "/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_subscription_gets_signed_matching_events_and_shows_its_deliveries(
    api: Api, receiver: Receiver
) -> None:
    created = subscribe(api, receiver.url, ["contact.*"])
    secret = str(created["secret"])
    assert secret.startswith("whsec_")
    api.call("POST", "/contacts", json={"full_name": "张伟"})
    api.call("POST", "/accounts", json={"name": "不相关的公司"})
    drain(Relay(api.crm))
    bodies = [json.loads(request["body"]) for request in receiver.requests]
    assert [body["name"] for body in bodies] == ["contact.created"]
    request = receiver.requests[0]
    assert verify(secret, request["body"], request["headers"][SIGNATURE_HEADER])
    deliveries = api.call("GET", f"/webhooks/{created['id']}/deliveries").json()
    assert [(d["event"], d["status"], d["attempts"]) for d in deliveries] == [
        ("contact.created", "delivered", 1)
    ]


def test_the_secret_is_shown_only_when_created(api: Api, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url, ["*"])
    listed = api.call("GET", "/webhooks").json()
    assert [item["id"] for item in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in api.call("GET", f"/webhooks/{created['id']}").json()


def test_a_deleted_subscription_gets_nothing_more(api: Api, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url, ["contact.*"])
    relay = Relay(api.crm)
    api.call("POST", "/contacts", json={"full_name": "一"})
    drain(relay)
    assert api.call("DELETE", f"/webhooks/{created['id']}").status_code == 204
    api.call("POST", "/contacts", json={"full_name": "二"})
    drain(relay)
    assert len(receiver.requests) == 1
    assert_problem(api.call("GET", f"/webhooks/{created['id']}"), 404)


def test_a_running_relay_picks_up_a_new_subscription(api: Api, receiver: Receiver) -> None:
    relay = Relay(api.crm)  # started before the subscription exists
    subscribe(api, receiver.url, ["deal.*"])
    api.call("POST", "/deals", json={"name": "ERP 系统升级"})
    drain(relay)
    assert [json.loads(r["body"])["name"] for r in receiver.requests] == ["deal.created"]


def test_failed_deliveries_are_listed_with_their_error(api: Api, receiver: Receiver) -> None:
    created = subscribe(api, receiver.url, ["contact.*"])
    receiver.status = 500
    api.call("POST", "/contacts", json={"full_name": "张伟"})
    Relay(api.crm).run_once()
    (delivery,) = api.call(
        "GET", f"/webhooks/{created['id']}/deliveries", params={"status": "pending"}
    ).json()
    assert "answered 500" in delivery["last_error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.com/x", "events": [""]}, "events"),
        ({"url": "https://example.com/x", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_subscription_is_422_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    assert_problem(api.call("POST", "/webhooks", json=body), 422, field=field)


def test_subscriptions_need_webhook_manage(api: Api, receiver: Receiver) -> None:
    api.user("rep", roles=["sales_rep"])
    response = api.call("POST", "/webhooks", "rep", json={"url": receiver.url})
    body = assert_problem(response, 403)
    assert "webhook:manage" in body["detail"]
    assert_problem(api.call("GET", "/webhooks", "rep"), 403)
