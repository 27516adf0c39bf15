"""The NATS JetStream sink: events published to a stream, each acknowledged by JetStream.

An event counts as delivered only once JetStream acknowledged it (stored in the stream). The
subject is ``<prefix>.<event name>`` (``crm.contact.created``); the stream (``CRMKIT`` by
default, created if missing) takes ``<prefix>.>``. Each message carries ``Nats-Msg-Id``: the
event id, so JetStream itself drops a repeat published within its duplicate window (a
redelivery after a worker died mid-batch). A batch is published concurrently and the acks
awaited together. nats-py reconnects by itself after a server restart; publishes that fail
meanwhile are failed attempts the relay retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

import nats
from nats.js.api import StreamConfig

import crmkit
from crmkit_brokers.loop import BackgroundLoop


class NatsSink:
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
        self.name = name
        self.patterns: Sequence[str] = tuple(patterns)
        self.url = url
        self.stream = stream
        self.prefix = prefix
        self.timeout_seconds = timeout_seconds
        self._loop = BackgroundLoop(name)
        self._connection: Any = None
        self._jetstream: Any = None

    def subject(self, event: crmkit.Event) -> str:
        """``<prefix>.<event name>``."""
        return f"{self.prefix}.{event.name}"

    async def _ready(self) -> Any:
        if self._jetstream is None or self._connection is None or self._connection.is_closed:
            # the first connection fails fast (the relay retries the batch later); once
            # connected, the client reconnects by itself for ever after a server restart
            self._connection = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    connect_timeout=self.timeout_seconds,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    allow_reconnect=True,
                ),
                self.timeout_seconds,
            )
            self._jetstream = self._connection.jetstream(timeout=self.timeout_seconds)
            await ensure_stream(self._jetstream, self.stream, [f"{self.prefix}.>"])
        return self._jetstream

    async def _publish(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        jetstream = await self._ready()
        publishes = [
            jetstream.publish(
                self.subject(event),
                json.dumps(event.to_json(), ensure_ascii=False).encode(),
                timeout=self.timeout_seconds,
                stream=self.stream,
                headers={"Nats-Msg-Id": str(event.id), "Crmkit-Event": event.name},
            )
            for event in events
        ]
        results = await asyncio.gather(*publishes, return_exceptions=True)
        return [
            (result if isinstance(result, Exception) else RuntimeError(str(result)))
            if isinstance(result, BaseException)
            else None
            for result in results
        ]

    def deliver_batch(self, events: Sequence[crmkit.Event]) -> list[BaseException | None]:
        """Publish ``events``; ``None`` for each JetStream acknowledged."""
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
        """Publish one event and wait for its ack; raise if it is not acknowledged."""
        (outcome,) = self.deliver_batch([event])
        if outcome is not None:
            raise outcome

    async def _check(self) -> str:
        await self._ready()
        return f"connected to {self.url}, stream {self.stream!r} ready"

    def check(self) -> str:
        """Connect and make sure the stream exists; a line saying so (raises when not)."""
        return self._loop.run(self._check(), timeout=self.timeout_seconds + 5)

    def close(self) -> None:
        """Drain the connection and stop the loop."""
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._loop.run(self._connection.close(), timeout=5)
        self._connection = self._jetstream = None
        self._loop.close()


async def ensure_stream(jetstream: Any, name: str, subjects: list[str]) -> None:
    """Create the stream ``name`` for ``subjects`` unless it exists."""
    try:
        await jetstream.stream_info(name)
    except nats.js.errors.NotFoundError:
        await jetstream.add_stream(StreamConfig(name=name, subjects=subjects))
