"""Webhooks never reach into the local network unless allowed (issue 16, finding 16): internal
addresses are refused when subscribing and again, as the name is resolved to connect (and
the connection goes to the address checked); ``crmkit.relay.allow_internal_addresses`` turns
the check off."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from api_support import Api, assert_problem, open_api
from test_events import Receiver, drain

import crmkit
from crmkit.events.admin import dead_deliveries
from crmkit.events.relay import Relay
from crmkit.outbound import (
    UnsafeDestination,
    check_destination,
    check_url_host,
    guarded_client,
    is_internal,
)

INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:8000/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://localhost:9/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://printer.local/hook",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_an_internal_address_is_refused_when_given(url: str) -> None:
    with pytest.raises(UnsafeDestination, match="allow_internal_addresses"):
        check_url_host(url)
    check_url_host(url, allow_internal=True)


def test_a_public_address_passes() -> None:
    check_url_host("https://8.8.8.8/hook")
    check_url_host("https://erp.example.com/hooks")  # a name: checked when delivering
    assert not is_internal(ipaddress.ip_address("8.8.8.8"))
    assert is_internal(ipaddress.ip_address("fe80::1"))


def test_a_name_resolving_to_an_internal_address_is_refused_before_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A public-looking name whose DNS answer is internal (or turns internal later: DNS
    rebinding) is refused at delivery. The resolver's answer is stubbed: no DNS here."""
    real = socket.getaddrinfo

    def resolver(host: str, *args: object, **kwargs: object) -> object:
        numeric_only = int(kwargs.get("flags", 0)) & socket.AI_NUMERICHOST  # type: ignore[call-overload]
        if host == "hooks.rebind.example" and not numeric_only:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    check_url_host("http://hooks.rebind.example/x")  # a name passes when subscribing
    with pytest.raises(UnsafeDestination, match="resolves to the internal address"):
        check_destination("http://hooks.rebind.example/x")


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    yield from open_api(make_crm())


@pytest.mark.parametrize("url", INTERNAL_URLS[:4])
def test_a_subscription_to_an_internal_address_is_a_422(api: Api, url: str) -> None:
    response = api.call("POST", "/webhooks", json={"url": url, "events": ["*"]})
    body = assert_problem(response, 422, field="url")
    assert "allow_internal_addresses" in body["detail"]


def test_a_configured_webhook_to_loopback_is_never_delivered(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    receiver = Receiver()
    try:
        crm = make_crm(
            relay={"backoff_seconds": 0, "max_attempts": 5},
            webhooks=[{"name": "inside", "url": receiver.url, "secret": "x"}],
        )
        crm.contacts.create({"full_name": "A"})
        drain(Relay(crm))
        assert receiver.requests == []
        (dead,) = dead_deliveries(crm)  # refused for good at the first attempt
        assert "internal address" in (dead.last_error or "")
    finally:
        receiver.close()


def test_allow_internal_addresses_delivers_to_loopback(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    receiver = Receiver()
    try:
        crm = make_crm(
            relay={"backoff_seconds": 0, "allow_internal_addresses": True},
            webhooks=[{"name": "inside", "url": receiver.url, "secret": "x"}],
        )
        crm.contacts.create({"full_name": "A"})
        drain(Relay(crm))
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, int]]:
    """A real TCP listener on 127.0.0.1 that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    yield server, server.getsockname()[1]
    server.close()


def _connected(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except TimeoutError:
        return False
    connection.close()
    return True


def test_the_guarded_client_never_connects_to_an_internal_address(
    listener: tuple[socket.socket, int],
) -> None:
    server, port = listener
    with guarded_client(2.0) as client, pytest.raises(UnsafeDestination, match=r"127\.0\.0\.1"):
        client.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
    assert not _connected(server)
    with (
        guarded_client(2.0, allow_internal=True) as client,  # told to: it connects
        contextlib.suppress(httpx.HTTPError),
    ):
        client.post(f"http://127.0.0.1:{port}/hook", content=b"{}", timeout=0.5)
    assert _connected(server)


def test_a_delivery_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name answers a public address when checked, then 127.0.0.1. The
    guarded client resolves once and connects to what it checked; the resolver and the
    connect call are stubbed (no DNS, no outside network here)."""
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14", "127.0.0.1", "127.0.0.1"])
    connected_to: list[object] = []

    def resolver(host: str, *args: object, **kwargs: object) -> object:
        if host == "hooks.rebind.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), 80))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    def connect(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        connected_to.append(address)
        raise ConnectionRefusedError("stubbed: no outside network in tests")

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(socket, "create_connection", connect)
    with guarded_client(2.0) as client, pytest.raises(httpx.ConnectError):
        client.post("http://hooks.rebind.example/x", content=b"{}")
    assert connected_to == [("93.184.215.14", 80)]  # the checked answer, not a second one
    # the next connection resolves again, and that answer is internal: refused, no connect
    with guarded_client(2.0) as client, pytest.raises(UnsafeDestination, match=r"127\.0\.0\.1"):
        client.post("http://hooks.rebind.example/x", content=b"{}")
    assert connected_to == [("93.184.215.14", 80)]
