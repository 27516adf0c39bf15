"""The RabbitMQ sink: events published to a durable topic exchange with publisher confirms.

An event counts as delivered only once the broker confirmed it (``publisher_confirms``: the
broker has taken responsibility, written it to disk for a durable queue). The routing key is
``<prefix>.<event name>`` (``crm.contact.created``), so a consumer binds a queue with
``crm.contact.*`` or ``crm.#``. A batch is published in one go and the confirms are awaited
together: one round trip per batch, not per event. The connection is aio-pika's robust
connection: after a broker restart it reconnects by itself; publishes that fail meanwhile
are failed attempts the relay retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Sequence
from typing import Any

import aio_pika

import crmkit
from crmkit_brokers.loop import BackgroundLoop


class RabbitMQSink:
    """Publishes events to ``exchange`` on the broker at ``url`` (``crmkit.BatchEventSink``)."""

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "crmkit.events",
        prefix: str = "crm",
        patterns: Sequence[str] = ("*",),
        timeout_seconds: float = 10.0,
        name: str = "rabbitmq",
        connection_name: str | None = None,
    ) -> None:
        self.name = name
        # how the broker's management tools show this connection
        self.connection_name = (
            connection_name or f"crmkit {name} {socket.gethostname()}:{os.getpid()}"
        )
        self.patterns: Sequence[str] = tuple(patterns)
        self.url = url
        self.exchange_name = exchange
        self.prefix = prefix
        self.timeout_seconds = timeout_seconds
        self._loop = BackgroundLoop(name)
        self._connection: Any = None
        self._exchange: Any = None

    def routing_key(self, event: crmkit.Event) -> str:
        """``<prefix>.<event name>``."""
        return f"{self.prefix}.{event.name}" if self.prefix else event.name

    async def _ready(self) -> Any:
        if self._exchange is None or self._connection is None or self._connection.is_closed:
            self._connection = await aio_pika.connect_robust(
                self.url,
                timeout=self.timeout_seconds,
                client_properties={"connection_name": self.connection_name},
            )
            channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._exchange

    async def _publish(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        exchange = await self._ready()
        publishes = [
            exchange.publish(
                aio_pika.Message(
                    json.dumps(event.to_json(), ensure_ascii=False).encode(),
                    content_type="application/json",
                    message_id=str(event.id),
                    type=event.name,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=self.routing_key(event),
                # confirmed once the exchange took it, bound queue or not: which queues get
                # events is the broker's configuration (an alternate exchange keeps the rest)
                mandatory=False,
                timeout=self.timeout_seconds,
            )
            for event in events
        ]
        results = await asyncio.gather(*publishes, return_exceptions=True)
        outcomes: list[BaseException | None] = []
        for result in results:
            if isinstance(result, BaseException):
                outcomes.append(result if isinstance(result, Exception) else RuntimeError(result))
            elif not _acked(result):
                outcomes.append(RuntimeError(f"broker did not confirm: {result!r}"))
            else:
                outcomes.append(None)
        return outcomes

    def deliver_batch(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        """Publish ``events``; ``None`` for each the broker confirmed."""
        try:
            return self._loop.run(self._publish(events), timeout=self.timeout_seconds * 2 + 5)
        except Exception as error:  # noqa: BLE001 - unreachable: every event failed
            self._forget()
            return [error] * len(events)

    def _forget(self) -> None:
        """Drop the connection after a failure (connect afresh next time), closing it in
        the background so that it does not linger."""
        old, self._connection = self._connection, None
        if old is not None:
            self._loop.submit(old.close())

    def deliver(self, event: crmkit.Event) -> None:
        """Publish one event and wait for its confirm; raise if it is not confirmed."""
        (outcome,) = self.deliver_batch([event])
        if outcome is not None:
            raise outcome

    async def _check(self) -> str:
        await self._ready()
        return f"connected to {self.url.split('@')[-1]}, exchange {self.exchange_name!r} ready"

    def check(self) -> str:
        """Connect and declare the exchange; a line saying so (raises when it cannot)."""
        return self._loop.run(self._check(), timeout=self.timeout_seconds + 5)

    def close(self) -> None:
        """Close the connection and stop the loop."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._loop.run(self._connection.close(), timeout=5)
        self._connection = self._exchange = None
        self._loop.close()


def _acked(result: Any) -> bool:
    """Whether a publish result is a positive confirm (``Basic.Ack``)."""
    return type(result).__name__ == "Ack"
