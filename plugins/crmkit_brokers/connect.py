"""First connections to a broker: the URL checked before anything is sent, the first attempt
bounded and failing in one clear line, reconnection for ever once connected.

The clients reconnect by themselves after a connection they had dropped (aio-pika's robust
connection, nats-py with ``max_reconnect_attempts=-1``), and that is what a long-running
relay worker or consumer wants. A *first* connection that fails is another matter: nats-py
would retry it for ever (logging a traceback each time) and a silent host would hold the
caller until the operating system gives up. Here the first connection fails at once when the
URL is malformed, at the first refusal, or after ``timeout`` seconds without an answer, with
a :class:`BrokerUnreachable` naming the broker, ``host:port`` and the reason; the relay
counts the batch failed and retries it with backoff, ``crmkit brokers consume`` and
``check`` print that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
import math
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

#: The URL schemes each broker's client takes.
SCHEMES = {"rabbitmq": ("amqp", "amqps"), "nats": ("nats", "tls", "ws", "wss")}
REFUSED = "connection refused (is the broker running, on this port?)"
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671, "nats": 4222, "tls": 4222, "ws": 80, "wss": 443}


class BrokerError(Exception):
    """A broker cannot be used; the message names the broker and the problem."""


class MalformedBrokerURL(BrokerError, ValueError):
    """The configured URL is not one the broker's client can connect to."""


class BrokerUnreachable(BrokerError, ConnectionError):
    """The first connection to the broker failed (refused, unknown host, no answer)."""


def redacted(url: str) -> str:
    """``url`` without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()


def address(broker: str, url: str) -> str:
    """``host:port`` of a URL :func:`check_url` accepted."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_url(broker: str, url: str) -> str:
    """``host:port`` of ``url``; :class:`MalformedBrokerURL` saying what is wrong with it."""

    def malformed(problem: str) -> MalformedBrokerURL:
        return MalformedBrokerURL(
            f"malformed URL {redacted(url)!r} (plugins.brokers.{broker}_url): {problem}"
        )

    schemes = SCHEMES[broker]
    example = "amqp://user:password@host:5672/" if broker == "rabbitmq" else "nats://host:4222"
    if not url.isprintable() or any(c.isspace() for c in url):
        raise malformed("it contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise malformed(f"{error}; expected {example}") from None
    if parts.scheme not in schemes:
        raise malformed(
            f"the scheme must be {' or '.join(s + '://' for s in schemes)}; expected {example}"
        )
    if not parts.hostname:
        raise malformed(f"no host; expected {example}")
    if port == 0:
        raise malformed("port 0 is not a port to connect to")
    return address(broker, url)


def reason(error: BaseException, timeout: float) -> str:
    """A few words on why a connection failed."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # the OS error under the wrappers
        seen.add(id(current))
        code = current.args[0] if current.args else None
        if not isinstance(code, int) or isinstance(code, bool):
            code = None
        if isinstance(current, ConnectionRefusedError) or code == errno.ECONNREFUSED:
            # (aiormq raises an OSError of its own class with the errno, not the OS's)
            return REFUSED
        if isinstance(current, socket.gaierror) or (
            isinstance(current, OSError) and code is not None and code < 0  # an EAI_* code
        ):
            return f"unknown host ({current.strerror or current})"
        if isinstance(current, TimeoutError):
            return f"no answer within {timeout:g} s"
        if isinstance(current, OSError) and code in errno.errorcode:
            return os.strerror(code)  # type: ignore[arg-type]
        nested = [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        current = current.__cause__ or current.__context__ or (nested[0] if nested else None)
    name = type(error).__name__
    if name == "ProbableAuthenticationError":
        return "the broker refused the user name or password"
    text = str(error).strip()
    return f"{name}: {text}" if text else name


def unreachable(broker: str, url: str, error: BaseException, timeout: float) -> BrokerUnreachable:
    """The error of a failed first connection: broker, ``host:port``, reason."""
    return BrokerUnreachable(
        f"cannot reach {broker} at {address(broker, url)}: {reason(error, timeout)}"
    )


# -- RabbitMQ ---------------------------------------------------------------------------------

#: Set while a first connection is made here: aiormq's own "error when creating transport"
#: line is dropped then (the caller reports the failure in its one line).
_FIRST_CONNECT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "crmkit_brokers_first_connect", default=False
)


class _DuringFirstConnect(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _FIRST_CONNECT.get()


_QUIET = _DuringFirstConnect()


@contextlib.contextmanager
def _first_connect() -> Iterator[None]:
    logger = logging.getLogger("aiormq.connection")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)
    token = _FIRST_CONNECT.set(True)
    try:
        yield
    finally:
        _FIRST_CONNECT.reset(token)


async def connect_rabbitmq(
    url: str, *, timeout: float, name: str = "rabbitmq", **options: Any
) -> Any:
    """aio-pika's robust connection to ``url`` (it reconnects by itself once connected); the
    first attempt fails within ``timeout`` seconds with :class:`BrokerError`."""
    import aio_pika

    check_url("rabbitmq", url)
    try:
        with _first_connect():
            return await asyncio.wait_for(
                aio_pika.connect_robust(url, timeout=timeout, **options), timeout + 1
            )
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the client raised, said in one line
        raise unreachable(name, url, error, timeout) from None


# -- NATS -------------------------------------------------------------------------------------


async def connect_nats(url: str, *, timeout: float, name: str = "nats") -> Any:
    """A nats-py connection to ``url`` that reconnects for ever once connected, logging one
    line per disconnection, reconnection or error (no tracebacks); the first attempt fails
    at the first error, or after ``timeout`` seconds, with :class:`BrokerError`."""
    from nats.aio.client import Client

    where = check_url("nats", url)
    first_error: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    connected = False

    async def on_error(error: Exception) -> None:
        if not connected:
            if not first_error.done():
                first_error.set_result(error)
            return
        log.warning("%s at %s: %s", name, where, reason(error, timeout))

    async def on_disconnected() -> None:
        if connected and client.is_reconnecting:  # not when closed on purpose
            log.warning("%s: disconnected from %s, reconnecting", name, where)

    async def on_reconnected() -> None:
        log.warning("%s: reconnected to %s", name, where)

    client = Client()
    connecting = asyncio.ensure_future(
        client.connect(
            url,
            connect_timeout=max(1, math.ceil(timeout)),  # (a whole number of seconds)
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    )
    racing: set[asyncio.Future[Any]] = {connecting, first_error}
    done, _ = await asyncio.wait(racing, timeout=timeout + 1, return_when=asyncio.FIRST_COMPLETED)
    if connecting in done:
        failure = connecting.exception()
        if failure is None:
            connected = True
            first_error.cancel()
            return client
        error: BaseException = failure
    elif first_error.done():
        error = first_error.result()
    else:
        error = TimeoutError()
    connecting.cancel()
    with contextlib.suppress(BaseException):
        await connecting
    with contextlib.suppress(Exception):
        await client.close()
    raise unreachable(name, url, error, timeout) from None
