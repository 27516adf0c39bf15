"""What users do with reminders: add one on any record, list their due and upcoming ones,
snooze, mark done, cancel; and preferences (time zone, channels).

Permissions: a user manages their own reminders, and may add one only on a record they can
read. Another user's reminders need ``reminder:manage``. Every check is made here, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from attrs import frozen
from sqlalchemy import or_, select

import crmkit
from crmkit_reminders.models import Reminder, ReminderPreferences
from crmkit_reminders.schedule import check_rrule, next_occurrence, parse_local, zone

PLUGIN_NAME = "reminders"
MANAGE = "reminder:manage"
#: The statuses of a reminder.
ACTIVE, FIRED, DONE, CANCELLED = "active", "fired", "done", "cancelled"


@frozen
class ReminderInfo:
    """A reminder as the CLI and API show it."""

    id: int
    owner: str
    record_type: str | None
    record_id: int | None
    title: str
    note: str
    timezone: str
    starts_local: str
    rrule: str | None
    channels: tuple[str, ...]
    status: str
    next_due_at: dt.datetime | None
    fired_count: int
    last_fired_at: dt.datetime | None
    source: str


def settings_of(crm: crmkit.CRM) -> dict[str, Any]:
    """The plugin's validated settings."""
    return crm.plugin_settings(PLUGIN_NAME)


def _user(op: crmkit.Operation, username: str) -> crmkit.User:
    user = op.session.scalar(select(crmkit.User).where(crmkit.User.username == username))
    if user is None:
        raise crmkit.ValidationError([crmkit.FieldError("owner", f"no user {username!r}")])
    return user


def _actor_or_owner(op: crmkit.Operation, owner: str | None) -> crmkit.User:
    """Whose reminders a call is about: the actor's own, or ``owner``'s with
    ``reminder:manage`` (the system may act for anyone)."""
    if owner is not None:
        user = _user(op, owner)
        if op.actor is None or op.actor.id != user.id:
            op.access.require(MANAGE)
        return user
    if op.actor is None:
        raise crmkit.ValidationError(
            [crmkit.FieldError("owner", "name the user the reminder is for")]
        )
    return op.actor


def preferences(op: crmkit.Operation, user_id: int) -> tuple[str, list[str]]:
    """A user's time zone and channels (the plugin's defaults when they set none)."""
    found = op.session.get(ReminderPreferences, user_id)
    settings = settings_of(op.crm)
    if found is None:
        return settings["default_timezone"], list(settings["default_channels"])
    return found.timezone, list(found.channels or settings["default_channels"])


def _check_channels(crm: crmkit.CRM, channels: Sequence[str]) -> list[str]:
    known = crm.messages.channels()
    unknown = [name for name in channels if name not in known]
    if unknown:
        raise crmkit.ValidationError(
            [
                crmkit.FieldError(
                    "channels",
                    f"unknown channel {unknown[0]!r}; known: {', '.join(sorted(known))}",
                )
            ]
        )
    if not channels:
        raise crmkit.ValidationError([crmkit.FieldError("channels", "name at least one")])
    return list(dict.fromkeys(channels))


def add_reminder(
    crm: crmkit.CRM,
    title: str,
    *,
    at: str | dt.datetime,
    record_type: str | None = None,
    record_id: int | None = None,
    every: str | None = None,
    timezone: str | None = None,
    channels: Sequence[str] | None = None,
    note: str = "",
    owner: str | None = None,
    actor: crmkit.User | None = None,
    now: dt.datetime | None = None,
) -> ReminderInfo:
    """Add a reminder on a record (or on nothing) at ``at``, wall-clock time in ``timezone``
    (default: the owner's), once or on the RFC 5545 rule ``every``."""
    if not title.strip():
        raise crmkit.ValidationError([crmkit.FieldError("title", "must not be empty")])
    if (record_type is None) != (record_id is None):
        raise crmkit.ValidationError(
            [crmkit.FieldError("record", "give both the entity and the record id")]
        )
    now = now or crmkit.utcnow()
    with crm.transaction(actor) as op:
        user = _actor_or_owner(op, owner)
        if record_type is not None and record_id is not None:
            op.records(record_type).get(record_id)  # NotFound when the actor cannot read it
        default_zone, default_channels = preferences(op, user.id)
        zone_name = timezone or default_zone
        tz = zone(zone_name)
        if isinstance(at, dt.datetime):  # aware: moved to the zone; naive: wall time there
            local = at.astimezone(tz).replace(tzinfo=None) if at.tzinfo else at
        else:
            local = parse_local(at)
        if every is not None:
            check_rrule(every, local)
        first = next_occurrence(local, tz, every, None)
        if first is None:
            raise crmkit.ValidationError([crmkit.FieldError("every", "the rule has no occurrence")])
        if first <= now:
            raise crmkit.ValidationError(
                [
                    crmkit.FieldError(
                        "at",
                        f"{local:%Y-%m-%d %H:%M} {zone_name} is in the past"
                        + (" (the rule's first occurrence)" if every else ""),
                    )
                ]
            )
        reminder = Reminder(
            owner_id=user.id,
            record_type=record_type,
            record_id=record_id,
            title=title.strip(),
            note=note,
            starts_local=local.isoformat(timespec="seconds"),
            timezone=zone_name,
            rrule=every,
            channels=_check_channels(crm, channels or default_channels),
            status=ACTIVE,
            next_due_at=first,
            occurrence_at=first,
            created_by_id=op.actor_id,
            created_at=now,
        )
        op.session.add(reminder)
        op.session.flush()
        op.emit(
            "reminder.created",
            {"title": reminder.title, "owner_id": user.id, "next_due_at": first.isoformat()},
            record_type=record_type,
            record_id=record_id,
        )
        return _info(reminder, user.username)


def _info(reminder: Reminder, owner: str) -> ReminderInfo:
    return ReminderInfo(
        id=reminder.id,
        owner=owner,
        record_type=reminder.record_type,
        record_id=reminder.record_id,
        title=reminder.title,
        note=reminder.note,
        timezone=reminder.timezone,
        starts_local=reminder.starts_local,
        rrule=reminder.rrule,
        channels=tuple(reminder.channels),
        status=reminder.status,
        next_due_at=reminder.next_due_at,
        fired_count=reminder.fired_count,
        last_fired_at=reminder.last_fired_at,
        source=reminder.source,
    )


def list_reminders(
    crm: crmkit.CRM,
    *,
    owner: str | None = None,
    within_days: float = 7.0,
    include_done: bool = False,
    actor: crmkit.User | None = None,
    now: dt.datetime | None = None,
) -> list[ReminderInfo]:
    """The owner's reminders that are due (fired and not done yet, or due now) and those
    coming up within ``within_days``, soonest first; with ``include_done`` every one."""
    now = now or crmkit.utcnow()
    with crm.transaction(actor, write=False) as op:
        user = _actor_or_owner(op, owner)
        query = select(Reminder).where(Reminder.owner_id == user.id)
        if not include_done:
            horizon = now + dt.timedelta(days=within_days)
            query = query.where(
                or_(
                    Reminder.status == FIRED,
                    (Reminder.status == ACTIVE) & (Reminder.next_due_at <= horizon),
                )
            )
        rows = op.session.scalars(query.order_by(Reminder.next_due_at, Reminder.id))
        return [_info(row, user.username) for row in rows]


def due_today(
    crm: crmkit.CRM, *, actor: crmkit.User, now: dt.datetime | None = None
) -> list[ReminderInfo]:
    """The actor's own reminders due by the end of their day (in their time zone): fired and
    not done yet, or due before midnight; soonest first."""
    now = now or crmkit.utcnow()
    with crm.transaction(actor, write=False) as op:
        user = _actor_or_owner(op, None)
        timezone, _channels = preferences(op, user.id)
        tz = zone(timezone)
        local = now.astimezone(tz)
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tz)
        query = select(Reminder).where(
            Reminder.owner_id == user.id,
            or_(
                Reminder.status == FIRED,
                (Reminder.status == ACTIVE) & (Reminder.next_due_at < midnight),
            ),
        )
        rows = op.session.scalars(query.order_by(Reminder.next_due_at, Reminder.id))
        return [_info(row, user.username) for row in rows]


def _own(op: crmkit.Operation, reminder_id: int) -> tuple[Reminder, str]:
    """The reminder, locked, if the actor may change it (their own, or ``reminder:manage``);
    one the actor may not change is not found, whether it exists or not."""
    query = select(Reminder).where(Reminder.id == reminder_id).with_for_update()
    reminder = op.session.scalar(query)
    foreign = reminder is not None and op.actor is not None and reminder.owner_id != op.actor.id
    if foreign and op.access.scope(MANAGE) is None:
        reminder = None
    if reminder is None:
        raise crmkit.NotFoundError("reminder", reminder_id)
    owner = op.session.get(crmkit.User, reminder.owner_id)
    return reminder, owner.username if owner else "?"


def snooze(
    crm: crmkit.CRM,
    reminder_id: int,
    *,
    minutes: float | None = None,
    until: str | None = None,
    actor: crmkit.User | None = None,
    now: dt.datetime | None = None,
) -> ReminderInfo:
    """Deliver the reminder again ``minutes`` from now or at ``until`` (owner's wall time)."""
    now = now or crmkit.utcnow()
    if (minutes is None) == (until is None):
        raise crmkit.ValidationError([crmkit.FieldError("until", "give minutes or a time")])
    with crm.transaction(actor) as op:
        reminder, owner = _own(op, reminder_id)
        if reminder.status in (DONE, CANCELLED):
            raise crmkit.ConflictError(f"reminder {reminder_id} is {reminder.status}")
        if minutes is not None:
            if not 0 < minutes <= 60 * 24 * 365:
                raise crmkit.ValidationError(
                    [crmkit.FieldError("minutes", "must be between 1 minute and a year")]
                )
            when = now + dt.timedelta(minutes=minutes)
        else:
            from crmkit_reminders.schedule import to_utc

            when = to_utc(parse_local(until or "", "until"), zone(reminder.timezone))
            if when <= now:
                raise crmkit.ValidationError([crmkit.FieldError("until", "is in the past")])
        reminder.status = ACTIVE
        reminder.next_due_at = when
        return _info(reminder, owner)


def mark_done(
    crm: crmkit.CRM, reminder_id: int, *, actor: crmkit.User | None = None
) -> ReminderInfo:
    """Done with it: a one-off reminder is finished; a recurring one goes on with its next
    occurrence (a snoozed occurrence is dropped)."""
    with crm.transaction(actor) as op:
        reminder, owner = _own(op, reminder_id)
        if reminder.status in (DONE, CANCELLED):
            raise crmkit.ConflictError(f"reminder {reminder_id} is {reminder.status} already")
        if reminder.rrule is None:
            reminder.status = DONE
            reminder.next_due_at = None
            reminder.done_at = crmkit.utcnow()
        elif reminder.next_due_at != reminder.occurrence_at:  # snoozed: back to the rule
            tz = zone(reminder.timezone)
            start = dt.datetime.fromisoformat(reminder.starts_local)
            following = next_occurrence(start, tz, reminder.rrule, reminder.occurrence_at)
            reminder.next_due_at = reminder.occurrence_at = following
            reminder.status = ACTIVE if following else DONE
        op.emit(
            "reminder.done",
            {"title": reminder.title},
            record_type=reminder.record_type,
            record_id=reminder.record_id,
        )
        return _info(reminder, owner)


def cancel(crm: crmkit.CRM, reminder_id: int, *, actor: crmkit.User | None = None) -> None:
    """Stop a reminder (a recurring one: every future occurrence)."""
    with crm.transaction(actor) as op:
        reminder, _ = _own(op, reminder_id)
        reminder.status = CANCELLED
        reminder.next_due_at = None


def set_preferences(
    crm: crmkit.CRM,
    *,
    timezone: str | None = None,
    channels: Sequence[str] | None = None,
    owner: str | None = None,
    actor: crmkit.User | None = None,
) -> tuple[str, list[str]]:
    """Set a user's time zone and reminder channels; returns them."""
    with crm.transaction(actor) as op:
        user = _actor_or_owner(op, owner)
        found = op.session.get(ReminderPreferences, user.id)
        current_zone, current_channels = preferences(op, user.id)
        new_zone = timezone or current_zone
        zone(new_zone)
        new_channels = _check_channels(crm, channels) if channels is not None else current_channels
        if found is None:
            found = ReminderPreferences(user_id=user.id, timezone=new_zone, channels=new_channels)
            op.session.add(found)
        else:
            found.timezone, found.channels = new_zone, new_channels
        return new_zone, new_channels
