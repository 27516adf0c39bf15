"""What the broker sinks share: a connection made on first use on a background event loop,
a batch published at once with its confirms awaited together, a failed batch dropping the
connection so that the next attempt connects afresh.

A broker's sink says only how to connect (:meth:`BrokerSink._connect`), how to publish a
batch on that connection (:meth:`BrokerSink._publish_on`) and how to describe itself for
``crmkit brokers check`` (:meth:`BrokerSink._describe`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Sequence
from typing import Any

import crmkit
from crmkit_brokers.loop import BackgroundLoop


class BrokerSink:
    """A ``crmkit.BatchEventSink`` publishing to a message broker through an asyncio client.

    ``_connection`` is the client's connection (it has ``is_closed`` and ``close()``);
    ``_target`` whatever :meth:`_connect` prepared to publish on (an exchange, a JetStream
    context)."""

    name: str

    def __init__(
        self, *, name: str, patterns: Sequence[str], prefix: str, timeout_seconds: float
    ) -> None:
        self.name = name
        self.patterns: Sequence[str] = tuple(patterns)
        self.prefix = prefix
        self.timeout_seconds = timeout_seconds
        self._loop = BackgroundLoop(name)
        self._connection: Any = None
        self._target: Any = None

    def topic(self, event: crmkit.Event) -> str:
        """``<prefix>.<event name>`` (``crm.contact.created``): the routing key or subject."""
        return f"{self.prefix}.{event.name}" if self.prefix else event.name

    # -- what a broker's sink provides ---------------------------------------------------

    async def _connect(self) -> tuple[Any, Any]:
        """Connect; the connection and the publishing target."""
        raise NotImplementedError

    def _publish_on(self, target: Any, event: crmkit.Event, body: bytes) -> Awaitable[Any]:
        """Publish one event; an awaitable of the broker's answer."""
        raise NotImplementedError

    def _refused(self, answer: Any) -> BaseException | None:
        """The error when the broker's answer to a publish is not a positive confirm."""
        return None

    def _describe(self) -> str:
        """Where the sink publishes (for ``check``), without credentials."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------

    async def _ready(self) -> Any:
        if self._target is None or self._connection is None or self._connection.is_closed:
            self._connection, self._target = await self._connect()
        return self._target

    async def _publish(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        target = await self._ready()
        answers = await asyncio.gather(
            *(self._publish_on(target, event, _body(event)) for event in events),
            return_exceptions=True,
        )
        outcomes: list[BaseException | None] = []
        for answer in answers:
            if isinstance(answer, BaseException):
                outcomes.append(
                    answer if isinstance(answer, Exception) else RuntimeError(repr(answer))
                )
            else:
                outcomes.append(self._refused(answer))
        return outcomes

    def deliver_batch(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        """Publish ``events``; ``None`` for each the broker confirmed, else the error."""
        try:
            return self._loop.run(self._publish(events), timeout=self.timeout_seconds * 2 + 5)
        except Exception as error:  # noqa: BLE001 - no connection (or a time-out): all failed
            self._forget()
            return [error] * len(events)

    def _forget(self) -> None:
        """Drop the connection after a failure (connect afresh next time), closing it in
        the background so that it does not linger."""
        old, self._connection, self._target = self._connection, None, None
        if old is not None:
            self._loop.submit(old.close())

    def deliver(self, event: crmkit.Event) -> None:
        """Publish one event and wait for its confirm; raise if it is not confirmed."""
        (outcome,) = self.deliver_batch([event])
        if outcome is not None:
            raise outcome

    async def _check(self) -> str:
        await self._ready()
        return self._describe()

    def check(self) -> str:
        """Connect and prepare the exchange or stream; a line saying so (raises when not)."""
        return self._loop.run(self._check(), timeout=self.timeout_seconds + 5)

    def close(self) -> None:
        """Close the connection and stop the loop."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._loop.run(self._connection.close(), timeout=5)
        self._connection = self._target = None
        self._loop.close()


def _body(event: crmkit.Event) -> bytes:
    """The message body: the event as JSON (what a webhook receives), UTF-8."""
    return json.dumps(event.to_json(), ensure_ascii=False).encode()
