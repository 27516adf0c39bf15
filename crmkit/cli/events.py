"""``crmkit worker`` and ``crmkit events``: delivering the outbox, and watching and repairing
deliveries."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType

import click

from crmkit.app import CRM
from crmkit.cli.context import cli_state
from crmkit.cli.display import clip, echo_json, echo_table
from crmkit.events.admin import (
    dead_deliveries,
    delivery_log,
    recent_events,
    relay_lag,
    retry_deliveries,
)
from crmkit.events.outbox import OutboxEvent
from crmkit.events.relay import Relay
from crmkit.services.scheduler import Scheduler

FOLLOW_INTERVAL_SECONDS = 1.0


@click.command("worker")
@click.option(
    "--once", is_flag=True, help="Do one pass (dispatch, claim, deliver), print it, and exit."
)
@click.option(
    "--worker-id",
    metavar="ID",
    help="This worker's name in delivery claims (default: host:pid:random).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait before looking again when there was nothing to do.",
)
def worker_command(once: bool, worker_id: str | None, poll_interval: float) -> None:
    """Deliver outbox events to webhooks and plugin sinks, and run the scheduler: queued
    messages (e-mail, webhook, plugin channels), shared-pool release (every [crmkit.pool]
    release_interval_seconds) and the jobs enabled plugins schedule.

    The sinks are the webhooks of the config file and those enabled plugins add. Delivery
    is at least once, in order per record, retried with backoff until the configured number
    of attempts, then dead (see crmkit events dead). Runs until SIGTERM or Ctrl-C, finishing
    the pass at hand. Several workers may run at once: they share the work, and each
    occurrence of a scheduled job runs on one of them.

    Example:

    \b
        crmkit worker --worker-id relay-1
        crmkit worker --once      # one pass of everything due now, then exit
    """
    crm = cli_state().crm()
    crm.require_schema()
    relay = Relay(crm, worker_id=worker_id)
    scheduler = Scheduler(crm, worker_id=relay.worker_id)
    if once:
        stats = relay.run_once()
        click.echo(
            f"dispatched {stats.dispatched}, delivered {stats.delivered},"
            f" retried {stats.retried}, dead {stats.dead}"
        )
        for outcome in scheduler.run_once():
            if outcome.error:
                click.echo(f"job {outcome.job} failed: {outcome.error}")
            elif outcome.ran and outcome.summary and outcome.summary != "idle":
                click.echo(f"job {outcome.job}: {outcome.summary}")
        return
    _log_to_stderr()
    stop = threading.Event()
    sinks = ", ".join(relay.sinks) or "none"
    jobs = ", ".join(job.name for job in scheduler.jobs())
    click.echo(
        f"Worker {relay.worker_id} running; sinks: {sinks}; jobs: {jobs}. Ctrl-C stops it.",
        err=True,
    )
    scheduler_thread = threading.Thread(
        target=scheduler.run,
        args=(stop, poll_interval),
        name="crmkit-scheduler",
        daemon=True,
    )
    with _stop_on_signals(stop):
        scheduler_thread.start()
        relay.run(stop, poll_interval=poll_interval)
    scheduler_thread.join(timeout=60)
    click.echo(f"Worker {relay.worker_id} stopped.", err=True)


def _log_to_stderr() -> None:
    """Show the relay's log (failed deliveries, retries) unless logging is set up already."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT (the pass at hand finishes); restore the previous
    handlers afterwards. Outside the main thread signals cannot be caught: nothing changes."""

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.group("events")
def events_group() -> None:
    """Events: watch the outbox, and list and retry dead deliveries.

    Example:

    \b
        crmkit events tail --name 'deal.*' --follow
    """


@events_group.command("tail")
@click.option(
    "-n",
    "--lines",
    "limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many of the latest events to show.",
)
@click.option(
    "--name",
    "pattern",
    metavar="PATTERN",
    help="Only events whose name matches this pattern (* and ? wildcards), e.g. 'deal.*'.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing events as they are committed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def tail_command(limit: int, pattern: str | None, follow: bool, as_json: bool) -> None:
    """Print the latest events of the outbox, oldest first: id, time, name, record, payload.

    Example:

    \b
        crmkit events tail -n 50 --name 'contact.*'
    """
    crm = cli_state().crm()
    events = recent_events(crm, limit=limit, name_pattern=pattern)
    _print_events(events, as_json)
    if not follow:
        return
    last_id = events[-1].id if events else _latest_id(crm)
    while True:
        time.sleep(FOLLOW_INTERVAL_SECONDS)
        events = recent_events(crm, limit=1000, name_pattern=pattern, after_id=last_id)
        _print_events(events, as_json)
        if events:
            last_id = events[-1].id


def _latest_id(crm: CRM) -> int:
    latest = recent_events(crm, limit=1)
    return latest[-1].id if latest else 0


def _print_events(events: Sequence[OutboxEvent], as_json: bool) -> None:
    for event in events:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": event.id,
                        "event_id": event.event_id,
                        "name": event.name,
                        "occurred_at": event.occurred_at.isoformat(),
                        "actor_id": event.actor_id,
                        "record_type": event.record_type,
                        "record_id": event.record_id,
                        "payload": event.payload,
                    },
                    ensure_ascii=False,
                    default=str,
                )
            )
            continue
        record = f"{event.record_type}:{event.record_id}" if event.record_type else "-"
        payload = json.dumps(event.payload, ensure_ascii=False, default=str)
        when = event.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{event.id}  {when}  {event.name}  {record}  {clip(payload, 120)}")


@events_group.command("dead")
@click.option("--sink", metavar="NAME", help="Only deliveries to this sink.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def dead_command(sink: str | None, as_json: bool) -> None:
    """List dead deliveries: events a sink never accepted within the allowed attempts.

    Example:

    \b
        crmkit events dead --sink erp
    """
    deliveries = dead_deliveries(cli_state().crm(), sink=sink)
    rows = [
        {
            "id": d.id,
            "sink": d.sink,
            "outbox_id": d.outbox_id,
            "record": d.record_key,
            "attempts": d.attempts,
            "last_error": d.last_error,
        }
        for d in deliveries
    ]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No dead deliveries.")
    else:
        headers = ("id", "sink", "outbox_id", "record", "attempts", "last_error")
        echo_table(headers, [[row[key] for key in headers] for row in rows])
        click.echo("Retry them with: crmkit events retry --all-dead (or --id N)", err=True)


@events_group.command("retry")
@click.option("--sink", metavar="NAME", help="Retry the dead deliveries of this sink.")
@click.option(
    "--id",
    "ids",
    multiple=True,
    type=int,
    metavar="DELIVERY_ID",
    help="Retry this dead delivery (repeatable; ids from crmkit events dead).",
)
@click.option("--all-dead", is_flag=True, help="Retry every dead delivery.")
def retry_command(sink: str | None, ids: Sequence[int], all_dead: bool) -> None:
    """Put dead deliveries back in the queue with fresh attempts; the worker delivers them.

    Example:

    \b
        crmkit events retry --sink erp
        crmkit events retry --id 41 --id 42
    """
    if not ids and not sink and not all_dead:
        raise click.UsageError("say which deliveries to retry: --id N, --sink NAME or --all-dead")
    count = retry_deliveries(cli_state().crm(), ids=ids, sink=sink, all_dead=all_dead)
    noun = "delivery" if count == 1 else "deliveries"
    click.echo(f"{count} dead {noun} queued for retry")


@events_group.command("deliveries")
@click.option("--sink", metavar="NAME", help="Only deliveries to this sink (subscription:<id>).")
@click.option(
    "--status",
    type=click.Choice(["pending", "in_flight", "delivered", "dead"]),
    help="Only deliveries in this state.",
)
@click.option(
    "-n",
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="How many of the latest deliveries.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def deliveries_command(sink: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """The delivery log: the latest deliveries, newest first, with attempts and last error.

    Example:

    \b
        crmkit events deliveries --sink erp --status pending
    """
    lines = delivery_log(cli_state().crm(), sink=sink, status=status, limit=limit)
    rows = [
        {
            "id": line.id,
            "sink": line.sink,
            "event": line.event,
            "record": line.record,
            "status": line.status,
            "attempts": line.attempts,
            "next_attempt_at": line.next_attempt_at,
            "delivered_at": line.delivered_at,
            "last_error": line.last_error,
            "event_id": line.event_id,
        }
        for line in lines
    ]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No deliveries.")
    else:
        headers = ("id", "sink", "event", "record", "status", "attempts", "last_error")
        echo_table(headers, [[clip(str(row[key] or "")) for key in headers] for row in rows])


@events_group.command("lag")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json", "prometheus"]),
    default="table",
    show_default=True,
    help="prometheus: the text format a node exporter's textfile collector reads.",
)
def lag_command(output: str) -> None:
    """How far the relay is behind: events not yet fanned out, and each sink's open
    deliveries with the age of the oldest.

    Example:

    \b
        crmkit events lag
        crmkit events lag --format prometheus > /var/lib/node_exporter/crmkit.prom
    """
    lag = relay_lag(cli_state().crm())
    if output == "prometheus":
        click.echo(lag.as_prometheus(), nl=False)
        return
    if output == "json":
        echo_json(
            {
                "undispatched": lag.undispatched,
                "oldest_undispatched_seconds": round(lag.oldest_undispatched_seconds, 3),
                "sinks": [
                    {
                        "sink": s.sink,
                        "pending": s.pending,
                        "in_flight": s.in_flight,
                        "oldest_seconds": round(s.oldest_seconds, 3),
                    }
                    for s in lag.sinks
                ],
            }
        )
        return
    click.echo(
        f"undispatched events: {lag.undispatched} (oldest {lag.oldest_undispatched_seconds:.1f} s)"
    )
    if lag.sinks:
        echo_table(
            ("sink", "pending", "in_flight", "oldest (s)"),
            [[s.sink, s.pending, s.in_flight, f"{s.oldest_seconds:.1f}"] for s in lag.sinks],
        )
    else:
        click.echo("No open deliveries.")


__all__ = ["events_group", "worker_command"]
