"""``crmkit reminders``: add, list, snooze, mark done and cancel reminders; preferences.

The CLI acts as the system (like every admin command): ``--user`` (or ``$CRMKIT_USER``) names
whose reminders a command is about."""

from __future__ import annotations

import json
import zoneinfo
from typing import Any

import click

import crmkit
from crmkit_reminders import service

USER = click.option(
    "--user",
    "username",
    envvar="CRMKIT_USER",
    required=True,
    metavar="USERNAME",
    help="Whose reminders (default: $CRMKIT_USER).",
)


def _row(info: service.ReminderInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "owner": info.owner,
        "record": f"{info.record_type} {info.record_id}" if info.record_type else "",
        "title": info.title,
        "status": info.status,
        # in the reminder's own time zone: what its owner reads on the wall clock
        "next_due_at": info.next_due_at.astimezone(zoneinfo.ZoneInfo(info.timezone)).isoformat(
            timespec="minutes"
        )
        if info.next_due_at
        else None,
        "timezone": info.timezone,
        "rrule": info.rrule,
        "channels": list(info.channels),
        "fired": info.fired_count,
    }


def _print(infos: list[service.ReminderInfo], as_json: bool) -> None:
    rows = [_row(info) for info in infos]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No reminders.")
    for row in rows:
        due = row["next_due_at"] or "-"
        click.echo(
            f"{row['id']:>6}  {row['status']:<9} {due:<17} {row['title']}"
            + (f"  [{row['record']}]" if row["record"] else "")
            + (f"  ({row['rrule']})" if row["rrule"] else "")
        )


@click.group("reminders")
def reminders_group() -> None:
    """Reminders: on any record, once or recurring (RFC 5545 RRULE), in the owner's time zone.

    Example:

    \b
        crmkit reminders add contact 12 "call back" --at "2026-12-08 10:00" --user li.na
        crmkit reminders list --user li.na
    """


@reminders_group.command("add")
@click.argument("words", nargs=-1, required=True, metavar="[ENTITY RECORD_ID] TITLE")
@click.option("--at", "at", required=True, help="First time, owner's wall clock: 2026-12-08 10:00.")
@click.option("--every", metavar="RRULE", help="Repeat on an RFC 5545 rule: FREQ=WEEKLY;BYDAY=MO.")
@click.option("--timezone", metavar="ZONE", help="IANA zone of --at (default: the user's).")
@click.option("--channel", "channels", multiple=True, help="inapp, email ... (repeatable).")
@click.option("--note", default="", help="More text for the reminder.")
@USER
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add_command(
    words: tuple[str, ...],
    at: str,
    every: str | None,
    timezone: str | None,
    channels: tuple[str, ...],
    note: str,
    username: str,
    as_json: bool,
) -> None:
    """Add a reminder on ENTITY RECORD_ID (or on nothing: give only TITLE).

    Example:

    \b
        crmkit reminders add contact 12 "回访报价" --at "2026-12-08 10:00" --user li.na
        crmkit reminders add deal 7 "weekly check" --at "2026-12-07 09:00" \\
            --every "FREQ=WEEKLY;BYDAY=MO" --user li.na
    """
    if len(words) == 1:
        entity, record_id, title = None, None, words[0]
    elif len(words) == 3 and words[1].isdigit():
        entity, record_id, title = words[0], int(words[1]), words[2]
    else:
        raise click.UsageError('give TITLE, or ENTITY RECORD_ID TITLE (contact 12 "call back")')
    info = service.add_reminder(
        crmkit.cli_crm(),
        title,
        at=at,
        record_type=entity,
        record_id=record_id,
        every=every,
        timezone=timezone,
        channels=list(channels) or None,
        note=note,
        owner=username,
    )
    _print([info], as_json)


@reminders_group.command("list")
@USER
@click.option("--days", default=7.0, show_default=True, help="Upcoming within this many days.")
@click.option("--all", "include_done", is_flag=True, help="Every reminder, done ones too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(username: str, days: float, include_done: bool, as_json: bool) -> None:
    """List a user's due and upcoming reminders, soonest first.

    Example:

    \b
        crmkit reminders list --user li.na --days 14
    """
    infos = service.list_reminders(
        crmkit.cli_crm(), owner=username, within_days=days, include_done=include_done
    )
    _print(infos, as_json)


@reminders_group.command("snooze")
@click.argument("reminder_id", type=int)
@click.option("--minutes", type=float, help="Remind again this many minutes from now.")
@click.option("--until", help="Remind again at this time (owner's wall clock).")
def snooze_command(reminder_id: int, minutes: float | None, until: str | None) -> None:
    """Remind again later.

    Example:

    \b
        crmkit reminders snooze 42 --minutes 30
    """
    info = service.snooze(crmkit.cli_crm(), reminder_id, minutes=minutes, until=until)
    _print([info], False)


@reminders_group.command("done")
@click.argument("reminder_id", type=int)
def done_command(reminder_id: int) -> None:
    """Mark a reminder done (a recurring one goes on with its next occurrence).

    Example:

    \b
        crmkit reminders done 42
    """
    info = service.mark_done(crmkit.cli_crm(), reminder_id)
    _print([info], False)


@reminders_group.command("cancel")
@click.argument("reminder_id", type=int)
def cancel_command(reminder_id: int) -> None:
    """Stop a reminder (every future occurrence of a recurring one).

    Example:

    \b
        crmkit reminders cancel 42
    """
    service.cancel(crmkit.cli_crm(), reminder_id)
    click.echo(f"reminder {reminder_id} cancelled")


@reminders_group.command("prefs")
@USER
@click.option("--timezone", metavar="ZONE", help="The user's IANA time zone.")
@click.option("--channel", "channels", multiple=True, help="Reminder channels (repeatable).")
def prefs_command(username: str, timezone: str | None, channels: tuple[str, ...]) -> None:
    """Show or set a user's reminder time zone and channels.

    Example:

    \b
        crmkit reminders prefs --user li.na --timezone Asia/Shanghai --channel inapp --channel email
    """
    zone_name, chosen = service.set_preferences(
        crmkit.cli_crm(), timezone=timezone, channels=list(channels) or None, owner=username
    )
    click.echo(f"{username}: {zone_name}; channels {', '.join(chosen)}")


@reminders_group.command("deliver")
def deliver_command() -> None:
    """Fire every due reminder now and exit (the worker does this all the time).

    Example:

    \b
        crmkit reminders deliver
    """
    from crmkit_reminders.delivery import deliver_due

    done = deliver_due(crmkit.cli_crm(), budget_seconds=3600)
    click.echo(
        f"fired {done.reminders} reminder(s): sent {done.sent}, queued {done.queued},"
        f" late {done.late}"
    )


@reminders_group.command("feed")
@USER
def feed_command(username: str) -> None:
    """Issue the user's calendar feed URL (iCalendar; the old URL stops working).

    Example:

    \b
        crmkit reminders feed --user li.na
    """
    from crmkit_reminders.feed import feed_url, issue_token

    crm = crmkit.cli_crm()
    click.echo(feed_url(crm, issue_token(crm, owner=username)))


@reminders_group.command("derive")
def derive_command() -> None:
    """Make the derived reminders now (the worker does it every hour).

    Example:

    \b
        crmkit reminders derive
    """
    from crmkit_reminders.derive import derive

    for rule, count in derive(crmkit.cli_crm()).items():
        click.echo(f"{rule}: {count} new reminder(s)")


@reminders_group.group("care")
def care_group() -> None:
    """Care messages to customers on holidays and birthdays."""


@care_group.command("check")
def care_check_command() -> None:
    """Check the care rules: occasions, channels, templates against the contact fields.

    Example:

    \b
        crmkit reminders care check
    """
    from crmkit_reminders.care import care_rules

    for rule in care_rules(crmkit.cli_crm()):
        occasion = "birthday" if rule.birthday else rule.holiday
        click.echo(f"{rule.name}: {occasion} at {rule.send_at} over {rule.channel}: OK")


@care_group.command("send")
@click.option("--rule", metavar="NAME", help="Only this rule.")
def care_send_command(rule: str | None) -> None:
    """Send the care messages due today now (each contact once per occasion).

    Example:

    \b
        crmkit reminders care send --rule mid-autumn
    """
    from crmkit_reminders.care import send_care

    for name, result in send_care(crmkit.cli_crm(), only=rule).items():
        click.echo(
            f"{name}: queued {result.queued}, sent {result.sent}, suppressed"
            f" {result.suppressed}, repeated {result.repeated}, no address {result.unreachable}"
        )
