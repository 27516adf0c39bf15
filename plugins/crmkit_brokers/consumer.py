"""Consumers of inbound messages: a RabbitMQ queue or a JetStream stream, each message
applied by :func:`crmkit_brokers.inbound.apply_message` and acknowledged only afterwards.

Acknowledging after the database commit makes the consumer at least once; the idempotency
key makes the effect exactly once. A :class:`~crmkit_brokers.inbound.Rejected` message is
rejected without requeueing (RabbitMQ dead-letters it if the queue has a dead-letter
exchange) or terminated (JetStream); any other failure (the database is down) requeues it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import nats
from nats.js.api import ConsumerConfig

import crmkit
from crmkit_brokers.connect import connect_nats, connect_rabbitmq
from crmkit_brokers.inbound import Rejected, apply_message
from crmkit_brokers.jetstream import ensure_stream

log = logging.getLogger(__name__)


def _apply(crm: crmkit.CRM, body: bytes, counts: Counter[str]) -> bool:
    """Apply one message; True to acknowledge it, False to requeue it."""
    try:
        applied = apply_message(crm, body)
    except Rejected as error:
        counts["rejected"] += 1
        log.warning("inbound message rejected: %s", error)
        raise
    except Exception:
        counts["failed"] += 1
        log.exception("inbound message failed; it is requeued")
        return False
    counts[applied.outcome] += 1
    return True


async def consume_rabbitmq(
    crm: crmkit.CRM,
    url: str,
    queue: str,
    *,
    max_messages: int | None,
    idle_seconds: float,
    timeout: float = 10.0,
) -> Counter[str]:
    """Apply messages from the durable ``queue`` until ``max_messages`` were handled or none
    came for ``idle_seconds``; the counts per outcome. The first connection fails within
    ``timeout`` seconds (:class:`~crmkit_brokers.connect.BrokerError`); after that the
    connection is re-established by itself whenever the broker drops it."""
    counts: Counter[str] = Counter()
    connection = await connect_rabbitmq(url, timeout=timeout)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        inbound = await channel.declare_queue(queue, durable=True)
        handled = 0
        last_seen = time.monotonic()
        while max_messages is None or handled < max_messages:
            message: Any = await inbound.get(fail=False)
            if message is None:
                if time.monotonic() - last_seen >= idle_seconds:
                    break
                await asyncio.sleep(0.05)
                continue
            handled += 1
            last_seen = time.monotonic()
            try:
                if _apply(crm, message.body, counts):
                    await message.ack()
                else:
                    await message.nack(requeue=True)
            except Rejected:
                await message.reject(requeue=False)
    return counts


async def consume_nats(
    crm: crmkit.CRM,
    url: str,
    stream: str,
    subject: str,
    durable: str,
    *,
    max_messages: int | None,
    idle_seconds: float,
    timeout: float = 10.0,
) -> Counter[str]:
    """Apply messages of ``subject`` from the JetStream ``stream`` through the durable pull
    consumer ``durable`` until ``max_messages`` or ``idle_seconds`` without any. The first
    connection fails within ``timeout`` seconds (:class:`~crmkit_brokers.connect.BrokerError`,
    one line, no retries); once connected, the client reconnects for ever."""
    counts: Counter[str] = Counter()
    connection = await connect_nats(url, timeout=timeout)
    try:
        jetstream = connection.jetstream()
        await ensure_stream(jetstream, stream, [subject])
        subscription = await jetstream.pull_subscribe(
            subject, durable=durable, stream=stream, config=ConsumerConfig(ack_wait=60)
        )
        handled = 0
        while max_messages is None or handled < max_messages:
            want = 100 if max_messages is None else min(100, max_messages - handled)
            try:
                messages = await subscription.fetch(want, timeout=idle_seconds)
            except (nats.errors.TimeoutError, TimeoutError):  # none came in time
                break
            for message in messages:
                handled += 1
                try:
                    if _apply(crm, message.data, counts):
                        await message.ack()
                    else:
                        await message.nak()
                except Rejected:
                    await message.term()
    finally:
        await connection.close()
    return counts
