"""A per-user iCalendar feed (RFC 5545) of their reminders, at a URL with a secret token.

``crmkit reminders feed --user li.na`` (or ``POST /plugins/reminders/feed``) issues a token and
prints the URL; only its SHA-256 is stored, and issuing again revokes the old one. The feed
(``GET /plugins/reminders/feed/<token>.ics``, no login: calendar apps cannot log in) lists
the user's active reminders: a one-off as one event, a recurring one with its RRULE in the
reminder's time zone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import icalendar
from sqlalchemy import select

import crmkit
from crmkit_reminders.models import Reminder, ReminderPreferences
from crmkit_reminders.schedule import zone
from crmkit_reminders.service import ACTIVE, FIRED, _actor_or_owner, preferences

TOKEN_PREFIX = "crmcal_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    crm: crmkit.CRM, *, owner: str | None = None, actor: crmkit.User | None = None
) -> str:
    """A new feed token for the user (the previous one stops working)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    with crm.transaction(actor) as op:
        user = _actor_or_owner(op, owner)
        found = op.session.get(ReminderPreferences, user.id)
        if found is None:
            zone_name, channels = preferences(op, user.id)
            found = ReminderPreferences(user_id=user.id, timezone=zone_name, channels=channels)
            op.session.add(found)
        found.feed_token_hash = _hash(token)
    return token


def feed_url(crm: crmkit.CRM, token: str) -> str:
    """Where calendar apps subscribe."""
    return f"{crm.settings.api.base_url}/plugins/reminders/feed/{token}.ics"


def calendar_for(crm: crmkit.CRM, token: str) -> bytes:
    """The iCalendar document of the token's user; ``NotFoundError`` for an unknown token."""
    with crm.transaction(write=False) as op:
        user_id = op.session.scalar(
            select(ReminderPreferences.user_id).where(
                ReminderPreferences.feed_token_hash == _hash(token)
            )
        )
        if user_id is None:
            raise crmkit.NotFoundError("calendar feed", "(this token)")
        reminders = list(
            op.session.scalars(
                select(Reminder)
                .where(Reminder.owner_id == user_id, Reminder.status.in_([ACTIVE, FIRED]))
                .order_by(Reminder.id)
            )
        )
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//crmkit//reminders//ZH")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "crmkit 提醒 reminders")
    for reminder in reminders:
        event = icalendar.Event()
        event.add("uid", f"reminder-{reminder.id}@crmkit")
        event.add("summary", reminder.title)
        if reminder.note:
            event.add("description", reminder.note)
        tz = zone(reminder.timezone)
        if reminder.rrule:
            start = dt.datetime.fromisoformat(reminder.starts_local).replace(tzinfo=tz)
            event.add("dtstart", start)
            event.add("rrule", icalendar.vRecur.from_ical(reminder.rrule.removeprefix("RRULE:")))
        else:
            when = reminder.next_due_at or reminder.last_fired_at or reminder.created_at
            start = when.astimezone(tz)
            event.add("dtstart", start)
        event.add("dtend", start + dt.timedelta(minutes=15))
        event.add("dtstamp", reminder.created_at)
        calendar.add_component(event)
    return bytes(calendar.to_ical())
