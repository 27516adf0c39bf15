"""What the plugin does for users: build the configured broker sinks, check them, consume
inbound messages. Settings come from ``[plugins.brokers]``."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import crmkit
from crmkit_brokers.connect import BrokerError, reason
from crmkit_brokers.consumer import consume_nats, consume_rabbitmq
from crmkit_brokers.jetstream import NatsSink
from crmkit_brokers.rabbitmq import RabbitMQSink

PLUGIN_NAME = "brokers"
BROKERS = ("rabbitmq", "nats")
#: The longest connect and confirm time-out (``timeout_seconds``).
MAX_TIMEOUT_SECONDS = 600.0


def settings_of(crm: crmkit.CRM) -> dict[str, Any]:
    """The plugin's validated settings."""
    settings = crm.plugin_settings(PLUGIN_NAME)
    timeout = settings["timeout_seconds"]
    if not 0 < timeout <= MAX_TIMEOUT_SECONDS:  # also NaN
        raise crmkit.CRMError(
            "plugins.brokers.timeout_seconds must be a number of seconds above 0 and at most"
            f" {MAX_TIMEOUT_SECONDS:g}, not {timeout!r}"
        )
    return settings


def broker_sinks(crm: crmkit.CRM) -> list[RabbitMQSink | NatsSink]:
    """A sink for each broker with a URL in the settings (none configured: no sinks)."""
    settings = settings_of(crm)
    common = {
        "prefix": settings["prefix"],
        "patterns": tuple(settings["patterns"]) or ("*",),
        "timeout_seconds": settings["timeout_seconds"],
    }
    sinks: list[RabbitMQSink | NatsSink] = []
    if settings["rabbitmq_url"]:
        sinks.append(
            RabbitMQSink(settings["rabbitmq_url"], exchange=settings["rabbitmq_exchange"], **common)
        )
    if settings["nats_url"]:
        sinks.append(NatsSink(settings["nats_url"], stream=settings["nats_stream"], **common))
    return sinks


def check(crm: crmkit.CRM) -> list[tuple[str, bool, str]]:
    """Connect to each configured broker: (name, reachable, what happened)."""
    results = []
    for sink in broker_sinks(crm):
        try:
            results.append((sink.name, True, sink.check()))
        except BrokerError as error:  # malformed URL, unreachable: the message says which
            results.append((sink.name, False, str(error)))
        except Exception as error:  # noqa: BLE001 - reported per broker, never raised
            results.append((sink.name, False, reason(error, sink.timeout_seconds)))
        finally:
            sink.close()
    return results


def consume(
    crm: crmkit.CRM, broker: str, *, max_messages: int | None = None, idle_seconds: float = 5.0
) -> Counter[str]:
    """Apply inbound ``contact.upsert`` messages from ``broker`` (``rabbitmq`` or ``nats``)
    until ``max_messages`` were handled or none came for ``idle_seconds``; counts per
    outcome (created, updated, duplicate, rejected, failed). A broker that cannot be reached
    at first (or a malformed URL) is :class:`~crmkit_brokers.connect.BrokerError`, within
    ``timeout_seconds``."""
    settings = settings_of(crm)
    if broker not in BROKERS:
        raise crmkit.CRMError(f"unknown broker {broker!r}: use rabbitmq or nats")
    url = settings[f"{broker}_url"]
    if not url:
        raise crmkit.CRMError(
            f"no {broker} configured: set plugins.brokers.{broker}_url in the config file"
        )
    if broker == "rabbitmq":
        work = consume_rabbitmq(
            crm,
            url,
            settings["rabbitmq_inbound_queue"],
            max_messages=max_messages,
            idle_seconds=idle_seconds,
            timeout=settings["timeout_seconds"],
        )
    else:
        work = consume_nats(
            crm,
            url,
            settings["nats_inbound_stream"],
            settings["nats_inbound_subject"],
            settings["nats_durable"],
            max_messages=max_messages,
            idle_seconds=idle_seconds,
            timeout=settings["timeout_seconds"],
        )
    return asyncio.run(work)
