"""Where crmkit may send requests of its own (event webhooks, the webhook message channel).

A webhook URL comes from whoever may subscribe; left alone, the server would POST wherever it
points, cloud metadata (``169.254.169.254``), its own loopback services and the private
network included (server-side request forgery). So by default crmkit refuses every address
that is not a global unicast one: loopback, private ranges, link-local, carrier-grade NAT,
multicast, reserved, unspecified, and names such as ``localhost`` or ``*.internal``.

The check runs twice: when a URL is given (its host, when it is an address in any notation
the resolver accepts: ``2130706433`` and ``0x7f.1`` are 127.0.0.1), and when a delivery
connects, on every address the host name resolves to. The connection then goes to one of
the addresses just checked (:func:`guarded_client`): the name is resolved once, so a DNS
answer that turns internal between the check and the connection (DNS rebinding) cannot
slip through. The setting
``crmkit.relay.allow_internal_addresses = true`` turns it off (local testing, a receiver on
the same network on purpose).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Host names that always name the machine or the local network.
INTERNAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
INTERNAL_SUFFIXES = (".localhost", ".internal", ".local", ".localdomain", ".home.arpa")
ALLOW_SETTING = "crmkit.relay.allow_internal_addresses"


class UnsafeDestination(Exception):
    """A request would go to an internal address; ``str()`` says which and why."""


def is_internal(address: IPAddress) -> bool:
    """Whether ``address`` is anything but a global unicast address."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return not address.is_global or address.is_multicast


def _host(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeDestination(f"{url}: the port is not a number") from None
    if not host:
        raise UnsafeDestination(f"{url}: no host")
    return host, port


def _numeric(host: str) -> IPAddress | None:
    """The address ``host`` spells in any notation the resolver takes, without a lookup."""
    try:
        found = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return ipaddress.ip_address(str(found[0][4][0]).split("%")[0])


def _refusal(url: str, what: str) -> UnsafeDestination:
    return UnsafeDestination(
        f"{url} points to {what}, inside your network: crmkit does not send requests there"
        f" unless {ALLOW_SETTING} = true"
    )


def _refuse_local_name(url: str, host: str) -> None:
    if host in INTERNAL_NAMES or host.endswith(INTERNAL_SUFFIXES):
        raise _refusal(url, f"the local name {host!r}")


def check_url_host(url: str, *, allow_internal: bool = False) -> None:
    """Refuse ``url`` when its host is an internal name or address (no DNS lookup: a name is
    checked again, resolved, when a delivery connects: :func:`guarded_client`)."""
    if allow_internal:
        return
    host, _ = _host(url)
    _refuse_local_name(url, host)
    address = _numeric(host)
    if address is not None and is_internal(address):
        raise _refusal(url, f"the internal address {address}")


def check_destination(url: str, *, allow_internal: bool = False) -> None:
    """Refuse ``url`` unless every address its host resolves to now is a global one (what a
    :func:`guarded_client` checks when it connects)."""
    if allow_internal:
        return
    check_url_host(url)  # also the address spellings only the numeric parse catches
    host, port = _host(url)
    checked_addresses(host, port, url=url)


def checked_addresses(host: str, port: int, *, url: str | None = None) -> list[str]:
    """The addresses ``host`` resolves to now, refused (:class:`UnsafeDestination`, naming
    ``url`` or ``//host:port``) when the name is a local one or any address is internal; what
    a guarded connection connects to."""
    url = url or f"//{host}:{port}"
    _refuse_local_name(url, host)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeDestination(f"{url}: cannot resolve {host!r} ({error})") from None
    addresses: list[str] = []
    for *_, sockaddr in found:
        text = str(sockaddr[0]).split("%")[0]
        if is_internal(ipaddress.ip_address(text)):
            raise _refusal(url, f"{host!r}, which resolves to the internal address {text}")
        if text not in addresses:
            addresses.append(text)
    return addresses


def guarded_client(timeout: float, *, allow_internal: bool = False) -> httpx.Client:
    """An ``httpx.Client`` that connects only to global addresses: each new connection
    resolves the host once (:func:`checked_addresses`) and connects to an address of that
    same answer, so nothing resolved later decides where the request goes. It follows no
    redirects and ignores proxy variables (a proxy would connect on its own terms). With
    ``allow_internal`` it is a plain client."""
    import httpx

    if allow_internal:
        return httpx.Client(timeout=timeout)
    return httpx.Client(timeout=timeout, transport=_guarded_transport(), trust_env=False)


def _guarded_transport() -> httpx.HTTPTransport:
    import httpcore
    import httpx

    class GuardedBackend(httpcore.SyncBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Any = None,
        ) -> httpcore.NetworkStream:
            last: Exception | None = None
            for address in checked_addresses(host, port):
                try:  # TLS still checks the certificate against the URL's host name
                    return super().connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                except httpcore.ConnectError as error:
                    last = error
            assert last is not None  # checked_addresses returns at least one or raises
            raise last

    transport = httpx.HTTPTransport()
    # httpx has no public way to choose the network backend; HTTPTransport keeps its
    # httpcore pool in ``_pool`` (tests/test_webhook_destinations.py fails if that changes)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=GuardedBackend()
    )
    return transport


__all__ = [
    "ALLOW_SETTING",
    "UnsafeDestination",
    "check_destination",
    "check_url_host",
    "checked_addresses",
    "guarded_client",
    "is_internal",
]
