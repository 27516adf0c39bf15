"""Delivering due reminders: the worker's hot path, set-based.

One batch is one transaction: claim up to ``batch_size`` due reminders (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so every worker takes different rows; SQLite's write lock
otherwise), hand all their messages to ``crm.messages.send_many`` in the same transaction
(the in-app inbox rows and the delivery log are written with ``COPY`` on PostgreSQL), and
move each reminder on (a one-off is ``fired``, a recurring one gets its next occurrence).
A worker killed mid-batch rolls the whole batch back: nothing half-delivered, and another
worker takes the rows. Each message's delivery key is ``reminder:<id>:<fire number>:<channel>``
and the log's key is unique, so no occurrence reaches a channel twice.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from attrs import frozen
from sqlalchemy import Integer, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY

import crmkit
from crmkit_reminders.models import Reminder
from crmkit_reminders.schedule import next_occurrence, zone
from crmkit_reminders.service import ACTIVE, DONE, FIRED, settings_of

_COLUMNS = (
    Reminder.id,
    Reminder.owner_id,
    Reminder.record_type,
    Reminder.record_id,
    Reminder.title,
    Reminder.note,
    Reminder.starts_local,
    Reminder.timezone,
    Reminder.rrule,
    Reminder.channels,
    Reminder.next_due_at,
    Reminder.occurrence_at,
    Reminder.fired_count,
)


@frozen
class DeliveredBatch:
    """What one batch did: reminders fired, messages sent, queued (worker channels), late."""

    reminders: int = 0
    sent: int = 0
    queued: int = 0
    late: int = 0


def _message(row: Any, channel: str) -> crmkit.Message:
    about = f"\n{row.record_type} {row.record_id}" if row.record_type else ""
    return crmkit.Message(
        channel=channel,
        user_id=row.owner_id,
        subject=row.title,
        body=(row.note or "") + about,
        kind="reminder",
        key=f"reminder:{row.id}:{row.fired_count + 1}:{channel}",
        record_type=row.record_type,
        record_id=row.record_id,
        due_at=row.next_due_at,
        data={"reminder_id": row.id},
    )


def deliver_batch(
    crm: crmkit.CRM, *, now: dt.datetime | None = None, batch_size: int | None = None
) -> DeliveredBatch:
    """Fire up to ``batch_size`` due reminders in one transaction."""
    now = now or crmkit.utcnow()
    size = batch_size or int(settings_of(crm)["batch_size"])
    query = (
        select(*_COLUMNS)
        .where(Reminder.next_due_at <= now, Reminder.status == ACTIVE)
        .order_by(Reminder.next_due_at)
        .limit(size)
    )
    if crm.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    with crm.transaction() as op:
        rows = op.session.execute(query).all()
        if not rows:
            return DeliveredBatch()
        messages = [_message(row, channel) for row in rows for channel in row.channels]
        result = crm.messages.send_many(messages, op=op, now=now)
        _advance(op, rows, now)
        return DeliveredBatch(
            reminders=len(rows), sent=result.sent, queued=result.queued, late=result.late
        )


def _advance(op: crmkit.Operation, rows: Sequence[Any], now: dt.datetime) -> None:
    """Move fired reminders on: one-offs to ``fired``, recurring ones to their next
    occurrence after now (missed ones are not replayed: one late message, then on)."""
    once = [row.id for row in rows if row.rrule is None]
    if once:
        postgres = op.session.get_bind().dialect.name == "postgresql"
        # on PostgreSQL one array parameter: an expanded IN of 2,000 costs more to build
        chosen = (
            Reminder.id == any_(bindparam("once", once, type_=ARRAY(Integer)))
            if postgres
            else Reminder.id.in_(once)
        )
        op.session.execute(
            update(Reminder)
            .where(chosen)
            .values(
                status=FIRED,
                next_due_at=None,
                fired_count=Reminder.fired_count + 1,
                last_fired_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    recurring = []
    for row in rows:
        if row.rrule is None:
            continue
        start = dt.datetime.fromisoformat(row.starts_local)
        after = max(row.occurrence_at or now, now)
        following = next_occurrence(start, zone(row.timezone), row.rrule, after)
        recurring.append({"rid": row.id, "due": following, "status": ACTIVE if following else DONE})
    if recurring:
        table: Any = Reminder.__table__
        op.session.connection().execute(
            update(table)
            .where(table.c.id == bindparam("rid"))
            .values(
                next_due_at=bindparam("due"),
                occurrence_at=bindparam("due"),
                status=bindparam("status"),
                fired_count=table.c.fired_count + 1,
                last_fired_at=now,
            ),
            recurring,
        )


def deliver_due(
    crm: crmkit.CRM, *, now: dt.datetime | None = None, budget_seconds: float = 10.0
) -> DeliveredBatch:
    """Fire due reminders batch after batch until none is left or ``budget_seconds`` passed
    (so the worker's other jobs get their turn)."""
    started = time.monotonic()
    total = DeliveredBatch()
    while True:
        batch = deliver_batch(crm, now=now)
        total = DeliveredBatch(
            reminders=total.reminders + batch.reminders,
            sent=total.sent + batch.sent,
            queued=total.queued + batch.queued,
            late=total.late + batch.late,
        )
        if not batch.reminders or time.monotonic() - started > budget_seconds:
            return total


def delivery_job() -> crmkit.ScheduledJob:
    """The shared job that fires due reminders on every worker."""

    def run(context: crmkit.JobContext) -> str:
        done = deliver_due(context.crm)
        if not done.reminders:
            return "idle"
        return (
            f"fired {done.reminders} reminder(s): sent {done.sent}, queued {done.queued},"
            f" late {done.late}"
        )

    return crmkit.ScheduledJob(
        "reminders.deliver",
        run,
        every_seconds=1.0,
        shared=True,
        description="fire due reminders (in-app at once; e-mail through the message queue)",
    )
