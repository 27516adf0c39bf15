"""Webhooks at scale: batches with a verifiable signature per event, a receiver's list of
failed events, 410 Gone disables a subscription, an unreachable receiver is spared."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import Api
from sqlalchemy import select
from test_events import Receiver, drain

import crmkit
from crmkit.events.admin import dead_deliveries
from crmkit.events.outbox import DeliveryStatus, EventDelivery
from crmkit.events.relay import Relay
from crmkit.events.webhook import SIGNATURE_HEADER, WebhookSink, verify


class AnsweringReceiver(Receiver):
    """A receiver whose answer body can be set (``answer``)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: Callable[[dict[str, Any]], bytes] = lambda body: b""
        receiver = self
        handler = self.server.RequestHandlerClass

        def do_POST(self: Any) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append({"body": body, "headers": dict(self.headers)})
            answer = receiver.answer(json.loads(body))
            self.send_response(receiver.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        handler.do_POST = do_POST  # type: ignore[attr-defined]


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """The receivers are on 127.0.0.1, which webhooks refuse unless told (crmkit.outbound)."""
    crm = make_crm(relay={"allow_internal_addresses": True})
    crm.pipelines.create("Sales")
    return crm


@pytest.fixture
def receiver() -> Iterator[AnsweringReceiver]:
    server = AnsweringReceiver()
    yield server
    server.close()


def batched_crm(make_crm: Callable[..., crmkit.CRM], url: str, **hook: Any) -> crmkit.CRM:
    return make_crm(  # the receiver is on 127.0.0.1: allowed explicitly (crmkit.outbound)
        relay={"backoff_seconds": 0, "max_attempts": 3, "allow_internal_addresses": True},
        webhooks=[{"name": "erp", "url": url, "secret": "s3cret", "batch_size": 10, **hook}],
    )


def test_a_batch_carries_each_event_with_its_own_signature(
    make_crm: Callable[..., crmkit.CRM], receiver: AnsweringReceiver
) -> None:
    crm = batched_crm(make_crm, receiver.url, patterns=["contact.*"])
    crm.contacts.create_many((n, {"full_name": f"客户{n}"}) for n in range(25))
    drain(Relay(crm))
    assert [r["headers"]["X-Crmkit-Batch"] for r in receiver.requests] == ["10", "10", "5"]
    names = []
    for request in receiver.requests:
        assert verify("s3cret", request["body"], request["headers"][SIGNATURE_HEADER])
        batch = json.loads(request["body"])
        for item in batch["events"]:
            body = item["body"].encode()
            assert verify("s3cret", body, item["signature"])  # each event verifiable alone
            assert not verify("other", body, item["signature"])
            event = json.loads(body)
            assert event["id"] == item["id"]
            names.append(event["payload"]["full_name"])
    assert sorted(names) == sorted(f"客户{n}" for n in range(25))


def test_events_a_receiver_lists_as_failed_are_retried_alone(
    make_crm: Callable[..., crmkit.CRM], receiver: AnsweringReceiver
) -> None:
    crm = batched_crm(make_crm, receiver.url, patterns=["contact.*"])
    crm.contacts.create_many((n, {"full_name": f"客户{n}"}) for n in range(3))
    refused: set[str] = set()

    def refuse_the_second_once(batch: dict[str, Any]) -> bytes:
        ids = [item["id"] for item in batch["events"]]
        if len(ids) == 3 and not refused:
            refused.add(ids[1])
            return json.dumps({"failed": [ids[1]]}).encode()
        return b"{}"

    receiver.answer = refuse_the_second_once
    drain(Relay(crm))
    sizes = [len(json.loads(r["body"])["events"]) for r in receiver.requests]
    assert sizes == [3, 1]
    assert json.loads(receiver.requests[1]["body"])["events"][0]["id"] in refused
    with crm.transaction(write=False) as op:
        rows = op.session.scalars(select(EventDelivery)).all()
    assert {row.status for row in rows} == {DeliveryStatus.DELIVERED.value}


def test_410_gone_makes_a_config_webhook_delivery_dead_at_once(
    make_crm: Callable[..., crmkit.CRM], receiver: AnsweringReceiver
) -> None:
    crm = batched_crm(make_crm, receiver.url, batch_size=1)
    receiver.status = 410
    crm.contacts.create({"full_name": "张伟"})
    drain(Relay(crm))
    assert len(receiver.requests) == 1  # never retried
    (dead,) = dead_deliveries(crm, sink="erp")
    assert dead.attempts == 1
    assert "410 Gone" in (dead.last_error or "")


def test_410_gone_disables_an_api_subscription(api: Api, receiver: AnsweringReceiver) -> None:
    created = api.call(
        "POST", "/webhooks", json={"url": receiver.url, "events": ["contact.*"], "batch_size": 5}
    ).json()
    assert created["batch_size"] == 5
    relay = Relay(api.crm)
    receiver.status = 410
    api.call("POST", "/contacts", json={"full_name": "一"})
    drain(relay)
    shown = api.call("GET", f"/webhooks/{created['id']}").json()
    assert shown["disabled_at"] is not None
    assert "410 Gone" in shown["disabled_reason"]
    receiver.status = 200
    api.call("POST", "/contacts", json={"full_name": "二"})
    drain(relay)
    assert len(receiver.requests) == 1  # a disabled subscription gets nothing more
    deliveries = api.call("GET", f"/webhooks/{created['id']}/deliveries").json()
    assert [d["status"] for d in deliveries] == ["dead"]


def test_a_batch_size_out_of_range_is_refused(api: Api, receiver: AnsweringReceiver) -> None:
    response = api.call("POST", "/webhooks", json={"url": receiver.url, "batch_size": 101})
    assert response.status_code in (400, 422)
    assert "batch_size" in response.text


def test_a_config_webhook_batch_size_out_of_range_is_a_config_error(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    with pytest.raises(crmkit.ConfigError, match="batch_size must be a whole number from 1 to 100"):
        make_crm(
            webhooks=[{"name": "x", "url": "http://127.0.0.1:9/", "secret": "s", "batch_size": 0}]
        )


def test_an_unreachable_receiver_fails_every_event_of_the_batch() -> None:
    closed = Receiver()
    url = closed.url
    closed.close()
    sink = WebhookSink(name="gone", url=url, secret="x", timeout_seconds=2, allow_internal=True)
    events = [crmkit.Event(name="contact.created") for _ in range(5)]
    outcomes = sink.deliver_batch(events)
    assert all(outcome is not None and "ConnectError" in str(outcome) for outcome in outcomes)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_after_a_410_the_rest_of_the_batch_is_not_posted(
    receiver: AnsweringReceiver, batch_size: int
) -> None:
    def gone_after_the_first_request(body: Any) -> bytes:
        # (called before the answer is sent) the first request is delivered, then 410 Gone
        receiver.status = 200 if len(receiver.requests) == 1 else 410
        return b""

    receiver.answer = gone_after_the_first_request
    sink = WebhookSink(
        name="erp",
        url=receiver.url,
        secret="s3cret",
        batch_size=batch_size,
        timeout_seconds=5,
        allow_internal=True,
    )
    events = [crmkit.Event(name="contact.created") for _ in range(4 * batch_size)]
    outcomes = sink.deliver_batch(events)
    assert len(receiver.requests) == 2  # the one delivered, the one answered 410, no more
    assert outcomes[:batch_size] == [None] * batch_size
    gone = outcomes[batch_size:]
    assert len(gone) == 3 * batch_size
    assert all(outcome is gone[0] and getattr(outcome, "gone", False) for outcome in gone)
