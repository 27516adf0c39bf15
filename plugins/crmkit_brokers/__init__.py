"""Event brokers for crmkit: RabbitMQ and NATS JetStream, out and in.

A bundled plugin (``crmkit plugins enable brokers``) that uses only crmkit's public API:

* sinks (``crmkit_event_sinks``): every outbox event published to RabbitMQ (a durable topic
  exchange, publisher confirms) and/or NATS JetStream (a stream, JetStream acks), with the
  routing key / subject ``<prefix>.<event name>`` (``crm.contact.created``); an event counts
  as delivered only once the broker confirmed it. Both take batches
  (``crmkit.BatchEventSink``): one round trip of confirms per batch;
* an inbound consumer (``crmkit brokers consume``) that applies ``contact.upsert`` messages
  with idempotency keys, once each (:mod:`crmkit_brokers.inbound`);
* ``crmkit brokers check`` to see that the brokers are reachable.

Needs the ``brokers`` extra (``pip install "crmkit[brokers]"``: aio-pika, nats-py); without it
the plugin is listed as failed to load and the rest of crmkit works.
"""

from __future__ import annotations

from pathlib import Path

import click

import crmkit

# The libraries of the extra: a missing one fails the plugin's import (``crmkit plugins
# list`` shows it) without importing them here; they load where they are used.
crmkit.require_modules("aio_pika", "nats", install="pip install 'crmkit[brokers]'")

# (the plugin's own modules after the check: a missing library fails before they load)
from crmkit_brokers.models import InboundMessage  # noqa: E402

crmkit_plugin = crmkit.PluginSpec(
    description="Publish events to RabbitMQ and NATS JetStream; apply inbound contact upserts",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={"brokers": ("Event brokers: RabbitMQ and NATS JetStream (bundled plugin brokers).")},
)

__all__ = ["InboundMessage", "crmkit_plugin"]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's Alembic branch (``brokers``)."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.brokers]`` in ``crmkit.toml``."""
    spec = crmkit.SettingSpec
    return [
        spec("rabbitmq_url", str, "", "amqp://user:password@host:5672/ (empty: no RabbitMQ)"),
        spec("rabbitmq_exchange", str, "crmkit.events", "The topic exchange events go to"),
        spec("rabbitmq_inbound_queue", str, "crmkit.inbound", "Queue of inbound messages"),
        spec("nats_url", str, "", "nats://host:4222 (empty: no NATS)"),
        spec("nats_stream", str, "CRMKIT", "The JetStream stream events go to"),
        spec("nats_inbound_stream", str, "CRMKIT_INBOUND", "Stream of inbound messages"),
        spec("nats_inbound_subject", str, "crmkit.inbound.>", "Subject of inbound messages"),
        spec("nats_durable", str, "crmkit", "Durable consumer name of the inbound consumer"),
        spec("prefix", str, "crm", "Routing key / subject prefix: <prefix>.<event name>"),
        spec("patterns", list, ["*"], "Which events to publish (shell patterns)"),
        spec("timeout_seconds", float, 10.0, "Connect and confirm time-out"),
    ]


@crmkit.hookimpl
def crmkit_event_sinks(crm: crmkit.CRM) -> list[crmkit.BatchEventSink]:
    """A sink per configured broker (``rabbitmq``, ``nats``)."""
    from crmkit_brokers.service import broker_sinks

    return list(broker_sinks(crm))


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit brokers check|consume``."""
    from crmkit_brokers.cli import brokers_group

    return [brokers_group]
