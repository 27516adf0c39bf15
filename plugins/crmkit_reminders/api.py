"""The reminders API, mounted under ``/plugins/reminders``: the caller's own reminders."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

import crmkit
from crmkit_reminders import service

Id = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]


class ReminderCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new reminder of the caller: ``at`` is wall-clock time in ``timezone`` (default: the
    caller's), ``every`` an RFC 5545 RRULE."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    at: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    entity: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    record_id: Id | None = None
    every: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    channels: (
        Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=10)]
        | None
    ) = None
    note: Annotated[str, msgspec.Meta(max_length=5000)] = ""


class Snooze(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Remind again ``minutes`` from now, or at ``until`` (wall clock)."""

    minutes: Annotated[float, msgspec.Meta(gt=0, le=525_600)] | None = None
    until: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] | None = None


class ReminderOut(msgspec.Struct, kw_only=True):
    """A reminder."""

    id: int
    owner: str
    entity: str | None
    record_id: int | None
    title: str
    note: str
    timezone: str
    rrule: str | None
    channels: list[str]
    status: str
    next_due_at: dt.datetime | None
    fired_count: int


class CalendarFeed(msgspec.Struct, kw_only=True):
    """The caller's iCalendar feed: a secret URL a calendar app subscribes to."""

    url: str


def _out(info: service.ReminderInfo) -> ReminderOut:
    return ReminderOut(
        id=info.id,
        owner=info.owner,
        entity=info.record_type,
        record_id=info.record_id,
        title=info.title,
        note=info.note,
        timezone=info.timezone,
        rrule=info.rrule,
        channels=list(info.channels),
        status=info.status,
        next_due_at=info.next_due_at,
        fired_count=info.fired_count,
    )


def routes(crm: crmkit.CRM) -> list[Any]:
    """The route handlers."""
    problems = crmkit.problem_responses

    @post(
        "/",
        sync_to_thread=True,
        status_code=201,
        operation_id="add_reminder",
        summary="Add a reminder for the caller",
        responses=problems(400, 401, 404, 413, 422),
    )
    def add(data: JSONBody[ReminderCreate], actor: NamedDependency[crmkit.User]) -> ReminderOut:
        return _out(
            service.add_reminder(
                crm,
                data.title,
                at=data.at,
                record_type=data.entity,
                record_id=data.record_id,
                every=data.every,
                timezone=data.timezone,
                channels=data.channels,
                note=data.note,
                actor=actor,
            )
        )

    @get(
        "/",
        sync_to_thread=True,
        operation_id="list_reminders",
        summary="The caller's due and upcoming reminders",
        responses=problems(400, 401, 422),
    )
    def listing(
        actor: NamedDependency[crmkit.User],
        days: Annotated[float, QueryParameter(ge=0, le=366)] = 7.0,
    ) -> list[ReminderOut]:
        return [_out(i) for i in service.list_reminders(crm, within_days=days, actor=actor)]

    @post(
        "/{reminder_id:int}/snooze",
        sync_to_thread=True,
        status_code=200,
        operation_id="snooze_reminder",
        summary="Remind again later",
        responses=problems(400, 401, 404, 409, 413, 422),
    )
    def snooze(
        reminder_id: Id, data: JSONBody[Snooze], actor: NamedDependency[crmkit.User]
    ) -> ReminderOut:
        return _out(
            service.snooze(crm, reminder_id, minutes=data.minutes, until=data.until, actor=actor)
        )

    @post(
        "/{reminder_id:int}/done",
        sync_to_thread=True,
        status_code=200,
        operation_id="reminder_done",
        summary="Mark a reminder done",
        responses=problems(400, 401, 404, 409, 422),
    )
    def done(reminder_id: Id, actor: NamedDependency[crmkit.User]) -> ReminderOut:
        return _out(service.mark_done(crm, reminder_id, actor=actor))

    @delete(
        "/{reminder_id:int}",
        sync_to_thread=True,
        operation_id="cancel_reminder",
        summary="Cancel a reminder",
        responses=problems(400, 401, 404, 422),
    )
    def cancel(reminder_id: Id, actor: NamedDependency[crmkit.User]) -> None:
        service.cancel(crm, reminder_id, actor=actor)

    @post(
        "/feed",
        sync_to_thread=True,
        status_code=201,
        operation_id="issue_reminder_feed",
        summary="Issue the caller's calendar feed URL (the old one stops working)",
        responses=problems(401),
    )
    def issue_feed(actor: NamedDependency[crmkit.User]) -> CalendarFeed:
        from crmkit_reminders.feed import feed_url, issue_token

        return CalendarFeed(url=feed_url(crm, issue_token(crm, actor=actor)))

    @get(
        "/feed/{token:str}",
        sync_to_thread=True,
        exclude_from_auth=True,
        security=[],
        operation_id="reminder_feed",
        media_type="text/calendar",
        summary="A user's reminders as iCalendar (public: the token is the secret)",
        responses=problems(404),
    )
    def calendar_feed(token: str) -> Response[bytes]:
        from crmkit_reminders.feed import calendar_for

        body = calendar_for(crm, token.removesuffix(".ics"))
        return Response(body, media_type="text/calendar; charset=utf-8")

    return [add, listing, snooze, done, cancel, issue_feed, calendar_feed]
