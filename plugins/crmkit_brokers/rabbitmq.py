"""The RabbitMQ sink: events published to a durable topic exchange with publisher confirms.

An event counts as delivered only once the broker confirmed it (``publisher_confirms``: the
broker has taken responsibility, written it to disk for a durable queue). The routing key is
``<prefix>.<event name>`` (``crm.contact.created``), so a consumer binds a queue with
``crm.contact.*`` or ``crm.#``. A batch is published in one go and the confirms are awaited
together (:class:`~crmkit_brokers.sink.BrokerSink`): one round trip per batch, not per
event. The connection is aio-pika's robust connection: after a broker restart it reconnects
by itself; publishes that fail meanwhile are failed attempts the relay retries with backoff.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Sequence
from typing import Any

import aio_pika

import crmkit
from crmkit_brokers.connect import address, connect_rabbitmq
from crmkit_brokers.sink import BrokerSink


class RabbitMQSink(BrokerSink):
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
        super().__init__(
            name=name, patterns=patterns, prefix=prefix, timeout_seconds=timeout_seconds
        )
        # how the broker's management tools show this connection
        self.connection_name = (
            connection_name or f"crmkit {name} {socket.gethostname()}:{os.getpid()}"
        )
        self.url = url
        self.exchange_name = exchange

    async def _connect(self) -> tuple[Any, Any]:
        connection = await connect_rabbitmq(
            self.url,
            timeout=self.timeout_seconds,
            name=self.name,
            client_properties={"connection_name": self.connection_name},
        )
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return connection, exchange

    def _publish_on(self, target: Any, event: crmkit.Event, body: bytes) -> Awaitable[Any]:
        return target.publish(  # type: ignore[no-any-return]
            aio_pika.Message(
                body,
                content_type="application/json",
                message_id=str(event.id),
                type=event.name,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.topic(event),
            # confirmed once the exchange took it, bound queue or not: which queues get
            # events is the broker's configuration (an alternate exchange keeps the rest)
            mandatory=False,
            timeout=self.timeout_seconds,
        )

    def _refused(self, answer: Any) -> BaseException | None:
        # a positive confirm is ``Basic.Ack``; a nack or a returned message is not
        if type(answer).__name__ == "Ack":
            return None
        return RuntimeError(f"broker did not confirm: {answer!r}")

    def _describe(self) -> str:
        return (
            f"connected to {address('rabbitmq', self.url)}, exchange {self.exchange_name!r} ready"
        )
