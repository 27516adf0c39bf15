"""The NATS JetStream sink: events published to a stream, each acknowledged by JetStream.

An event counts as delivered only once JetStream acknowledged it (stored in the stream). The
subject is ``<prefix>.<event name>`` (``crm.contact.created``); the stream (``CRMKIT`` by
default, created if missing) takes ``<prefix>.>``. Each message carries ``Nats-Msg-Id``: the
event id, so JetStream itself drops a repeat published within its duplicate window (a
redelivery after a worker died mid-batch). A batch is published concurrently and the acks
awaited together (:class:`~crmkit_brokers.sink.BrokerSink`). nats-py reconnects by itself
after a server restart; publishes that fail meanwhile are failed attempts the relay retries
with backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any

import nats
from nats.js.api import StreamConfig

import crmkit
from crmkit_brokers.connect import connect_nats, redacted
from crmkit_brokers.sink import BrokerSink


class NatsSink(BrokerSink):
    """Publishes events to JetStream at ``url`` (``crmkit.BatchEventSink``)."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = "CRMKIT",
        prefix: str = "crm",
        patterns: Sequence[str] = ("*",),
        timeout_seconds: float = 10.0,
        name: str = "nats",
    ) -> None:
        super().__init__(
            name=name, patterns=patterns, prefix=prefix, timeout_seconds=timeout_seconds
        )
        self.url = url
        self.stream = stream

    async def _connect(self) -> tuple[Any, Any]:
        # the first connection fails fast, in one line (the relay retries the batch later);
        # once connected, the client reconnects by itself for ever after a server restart
        connection = await connect_nats(self.url, timeout=self.timeout_seconds, name=self.name)
        jetstream = connection.jetstream(timeout=self.timeout_seconds)
        await ensure_stream(jetstream, self.stream, [f"{self.prefix}.>"])
        return connection, jetstream

    def _publish_on(self, target: Any, event: crmkit.Event, body: bytes) -> Awaitable[Any]:
        return target.publish(  # type: ignore[no-any-return]
            self.topic(event),
            body,
            timeout=self.timeout_seconds,
            stream=self.stream,
            headers={"Nats-Msg-Id": str(event.id), "Crmkit-Event": event.name},
        )

    def _describe(self) -> str:
        return f"connected to {redacted(self.url)}, stream {self.stream!r} ready"


async def ensure_stream(jetstream: Any, name: str, subjects: list[str]) -> None:
    """Create the stream ``name`` for ``subjects`` unless it exists."""
    try:
        await jetstream.stream_info(name)
    except nats.js.errors.NotFoundError:
        await jetstream.add_stream(StreamConfig(name=name, subjects=subjects))
