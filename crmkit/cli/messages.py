"""``crmkit messages``: the message channels, sending, the delivery log, retries and the
do-not-contact list."""

from __future__ import annotations

from collections.abc import Sequence

import click

from crmkit.cli.context import cli_state
from crmkit.cli.display import clip, echo_json, echo_table
from crmkit.messages.models import MessageStatus, SuppressionReason


@click.group("messages")
def messages_group() -> None:
    """Messages: channels (in-app, e-mail, webhook, plugins'), the delivery log, retries and
    the per-channel do-not-contact list.

    Example:

    \b
        crmkit messages send email "Your order shipped" --to zhang.wei@example.cn
        crmkit messages log --status dead
    """


@messages_group.command("channels")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def channels_command(as_json: bool) -> None:
    """List the message channels: built in and added by enabled plugins.

    Example:

    \b
        crmkit messages channels --json
    """
    channels = cli_state().crm().messages.channel_list()
    rows = [
        {
            "name": c.name,
            "plugin": c.plugin,
            "delivered": "in the sending transaction" if c.in_database else "by the worker",
            "description": c.description,
        }
        for c in channels
    ]
    if as_json:
        echo_json(rows)
    else:
        headers = ("name", "plugin", "delivered", "description")
        echo_table(headers, [[row[key] for key in headers] for row in rows])


@messages_group.command("send")
@click.argument("channel")
@click.argument("subject")
@click.option("--body", default="", help="The message text.")
@click.option("--to", "address", metavar="ADDRESS", help="An address on the channel.")
@click.option("--user", metavar="USERNAME", help="A user (their address on the channel).")
@click.option("--contact", "contact_id", type=int, metavar="ID", help="A contact, by id.")
@click.option("--kind", default="message", show_default=True, help="What kind of message.")
@click.option("--key", help="An idempotency key: a second send with it sends nothing.")
@click.option("--unsubscribe", is_flag=True, help="Add one-click unsubscribe headers (RFC 8058).")
def send_command(
    channel: str,
    subject: str,
    body: str,
    address: str | None,
    user: str | None,
    contact_id: int | None,
    kind: str,
    key: str | None,
    unsubscribe: bool,
) -> None:
    """Send one message over CHANNEL to an address, a user or a contact. In-app messages are
    in the inbox at once; the others go out with the worker (crmkit worker).

    Example:

    \b
        crmkit messages send inapp "Quarterly review at 3pm" --user li.na
        crmkit messages send email "中秋快乐" --contact 12 --body "祝您中秋快乐" --unsubscribe
    """
    record = (
        cli_state()
        .crm()
        .messages.send(
            channel,
            subject,
            body,
            to=address,
            user=user,
            contact_id=contact_id,
            kind=kind,
            key=key,
            unsubscribe=unsubscribe,
        )
    )
    where = record.address or "(no address)"
    click.echo(f"message {record.id} to {where} over {record.channel}: {record.status}")
    if record.last_error:
        click.echo(record.last_error)


@messages_group.command("log")
@click.option(
    "--status", type=click.Choice([s.value for s in MessageStatus]), help="Only this status."
)
@click.option("--channel", metavar="NAME", help="Only this channel.")
@click.option("--kind", metavar="KIND", help="Only this kind (reminder, care, ...).")
@click.option("--contact", "contact_id", type=int, metavar="ID", help="Only to this contact.")
@click.option("--user", metavar="USERNAME", help="Only to this user.")
@click.option(
    "-n",
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many, at most.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def log_command(
    status: str | None,
    channel: str | None,
    kind: str | None,
    contact_id: int | None,
    user: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show the delivery log, newest first.

    Example:

    \b
        crmkit messages log --status dead --channel email
    """
    records = (
        cli_state()
        .crm()
        .messages.log(
            status=status, channel=channel, kind=kind, contact_id=contact_id, user=user, limit=limit
        )
    )
    rows = [
        {
            "id": r.id,
            "channel": r.channel,
            "address": r.address,
            "kind": r.kind,
            "subject": r.subject,
            "status": r.status,
            "attempts": r.attempts,
            "due_at": r.due_at.isoformat(timespec="seconds"),
            "late": r.late,
            "last_error": r.last_error,
        }
        for r in records
    ]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No messages.")
    else:
        headers = ("id", "channel", "address", "kind", "status", "attempts", "subject")
        echo_table(headers, [[clip(str(row[key]), 40) for key in headers] for row in rows])


@messages_group.command("retry")
@click.option("--id", "ids", multiple=True, type=int, metavar="ID", help="A dead message.")
@click.option("--all-dead", is_flag=True, help="Every dead message.")
def retry_command(ids: Sequence[int], all_dead: bool) -> None:
    """Queue dead messages again with fresh attempts; the worker sends them.

    Example:

    \b
        crmkit messages retry --all-dead
    """
    if bool(ids) == all_dead:
        raise click.UsageError("give --id (repeatable) or --all-dead")
    count = cli_state().crm().messages.retry(None if all_dead else list(ids))
    click.echo(f"queued {count} message(s) again")


@messages_group.command("suppress")
@click.argument("channel")
@click.argument("address")
@click.option(
    "--reason",
    type=click.Choice([r.value for r in SuppressionReason]),
    default=SuppressionReason.MANUAL.value,
    show_default=True,
    help="Why.",
)
@click.option("--detail", default="", help="A note on why.")
def suppress_command(channel: str, address: str, reason: str, detail: str) -> None:
    """Put ADDRESS on CHANNEL's do-not-contact list: nothing is sent to it any more.

    Example:

    \b
        crmkit messages suppress email wang@example.cn --reason manual --detail "asked by phone"
    """
    added = cli_state().crm().messages.suppress(channel, address, reason=reason, detail=detail)
    click.echo(f"{address} is on the {channel} do-not-contact list" + ("" if added else " already"))


@messages_group.command("unsuppress")
@click.argument("channel")
@click.argument("address")
def unsuppress_command(channel: str, address: str) -> None:
    """Take ADDRESS off CHANNEL's do-not-contact list.

    Example:

    \b
        crmkit messages unsuppress email wang@example.cn
    """
    if not cli_state().crm().messages.unsuppress(channel, address):
        raise click.ClickException(f"{address} is not on the {channel} do-not-contact list")
    click.echo(f"{address} may be sent to over {channel} again")


@messages_group.command("suppressions")
@click.option("--channel", metavar="NAME", help="Only this channel's list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def suppressions_command(channel: str | None, as_json: bool) -> None:
    """List the do-not-contact list: channel, address, reason, since when.

    Example:

    \b
        crmkit messages suppressions --channel email
    """
    records = cli_state().crm().messages.suppressions(channel=channel)
    rows = [
        {
            "channel": r.channel,
            "address": r.address,
            "reason": r.reason,
            "detail": r.detail,
            "since": r.created_at.isoformat(timespec="seconds"),
        }
        for r in records
    ]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("The do-not-contact list is empty.")
    else:
        headers = ("channel", "address", "reason", "since", "detail")
        echo_table(headers, [[row[key] for key in headers] for row in rows])


@messages_group.command("deliver")
@click.option(
    "--rounds", default=1000, show_default=True, type=click.IntRange(1), help="Batches at most."
)
def deliver_command(rounds: int) -> None:
    """Deliver the queued messages that are due now, then exit (the worker does this all
    the time; this is for scripts and tests).

    Example:

    \b
        crmkit messages deliver
    """
    stats = cli_state().crm().messages.deliver_pending("crmkit-cli", rounds=rounds)
    click.echo(
        f"sent {stats.sent}, retried {stats.retried}, dead {stats.dead},"
        f" suppressed {stats.suppressed}, late {stats.late}"
    )
