"""``crmkit brokers check|consume``."""

from __future__ import annotations

import json

import click

import crmkit

#: The longest ``--idle-seconds`` (a week).
MAX_IDLE_SECONDS = 7 * 24 * 3600.0


@click.group(name="brokers")
def brokers_group() -> None:
    """Event brokers: RabbitMQ and NATS JetStream (bundled plugin brokers)."""


@brokers_group.command(name="check")
def check_command() -> None:
    """Connect to each configured broker and declare what the sinks publish to.

    Example: crmkit brokers check
    """
    from crmkit_brokers import service

    results = service.check(crmkit.cli_crm())
    if not results:
        raise click.ClickException(
            "no broker configured: set plugins.brokers.rabbitmq_url or nats_url"
        )
    for name, ok, what in results:
        click.echo(f"{name}: {'ok' if ok else 'FAILED'}: {what}")
    failed = [name for name, ok, _ in results if not ok]
    if failed:
        raise click.ClickException(f"not ready: {', '.join(failed)} (see above)")


@brokers_group.command(name="consume")
@click.option(
    "--from",
    "broker",
    type=click.Choice(["rabbitmq", "nats"]),
    required=True,
    help="Which broker's inbound queue (rabbitmq_inbound_queue / nats_inbound_subject).",
)
@click.option(
    "--max", "max_messages", type=click.IntRange(min=1), help="Stop after this many messages."
)
@click.option(
    "--idle-seconds",
    # a finite wait: inf or 1e20 would make a consumer that never stops by itself
    type=click.FloatRange(min=0.1, max=MAX_IDLE_SECONDS),
    default=5.0,
    show_default=True,
    help="Stop when no message came for this long.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def consume_command(
    broker: str, max_messages: int | None, idle_seconds: float, as_json: bool
) -> None:
    """Apply inbound contact.upsert messages (each once, by its idempotency_key).

    Example: crmkit brokers consume --from rabbitmq --idle-seconds 30
    """
    from crmkit_brokers import service
    from crmkit_brokers.connect import BrokerError, reason

    try:
        counts = service.consume(
            crmkit.cli_crm(), broker, max_messages=max_messages, idle_seconds=idle_seconds
        )
    except (crmkit.CRMError, BrokerError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # the connection lost for good after the first one
        raise click.ClickException(f"{broker}: {reason(error, 0)}") from None
    if as_json:
        click.echo(json.dumps(dict(counts)))
    else:
        summary = ", ".join(f"{name} {number}" for name, number in sorted(counts.items()))
        click.echo(f"Consumed from {broker}: {summary or 'nothing'}")
