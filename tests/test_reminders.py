"""The reminders plugin: adding, recurrence in the owner's time zone, delivery through the
message channels exactly once, snooze, done, permissions; on both engines."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

import crmkit_reminders
import pytest
from crmkit_reminders import service
from crmkit_reminders.delivery import deliver_batch, deliver_due
from crmkit_reminders.schedule import next_occurrence, to_utc

import crmkit

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM with the reminders plugin, a rep li.na and a contact."""
    instance = make_crm(plugins={"reminders": crmkit_reminders})
    instance.pipelines.create("Sales")
    instance.users.create_team("East")
    instance.users.create("li.na", team="East", roles=("sales_rep",))
    return instance


def in_one_hour(tz: zoneinfo.ZoneInfo = SHANGHAI) -> str:
    return (crmkit.utcnow() + dt.timedelta(hours=1)).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def test_a_reminder_on_a_contact_is_listed_as_upcoming(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})

    info = service.add_reminder(
        crm,
        "回访报价",
        at=in_one_hour(),
        record_type="contact",
        record_id=contact.id,
        owner="li.na",
    )

    (listed,) = service.list_reminders(crm, owner="li.na")
    assert (listed.id, listed.title, listed.status) == (info.id, "回访报价", "active")
    assert listed.timezone == "Asia/Shanghai"


def test_a_due_reminder_reaches_the_owners_inbox_once(crm: crmkit.CRM) -> None:
    info = service.add_reminder(crm, "回访报价", at=in_one_hour(), owner="li.na")
    later = crmkit.utcnow() + dt.timedelta(hours=2)

    first = deliver_batch(crm, now=later)
    second = deliver_batch(crm, now=later)

    assert (first.reminders, first.sent, second.reminders) == (1, 1, 0)
    (note,) = crm.audit.inbox("li.na")
    assert (note.kind, note.title) == ("reminder", "回访报价")
    (listed,) = service.list_reminders(crm, owner="li.na")
    assert (listed.id, listed.status) == (info.id, "fired")


def test_a_time_in_the_past_is_refused_with_the_field_named(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError, match="in the past") as raised:
        service.add_reminder(crm, "x", at="2020-01-01 10:00", owner="li.na")
    assert [e.field for e in raised.value.errors] == ["at"]


def test_an_invalid_rrule_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError, match="not a valid RFC 5545 RRULE"):
        service.add_reminder(crm, "x", at=in_one_hour(), every="FREQ=SOMETIMES", owner="li.na")


def test_an_unknown_time_zone_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError, match="unknown time zone 'Mars/Olympus'"):
        service.add_reminder(crm, "x", at=in_one_hour(), timezone="Mars/Olympus", owner="li.na")


def test_an_unknown_channel_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError, match="unknown channel 'pager'"):
        service.add_reminder(crm, "x", at=in_one_hour(), channels=["pager"], owner="li.na")


def test_nine_oclock_stays_nine_oclock_across_daylight_saving() -> None:
    start = dt.datetime(2026, 3, 6, 9, 0)  # a Friday; DST starts in New York on 8 March
    rule = "FREQ=DAILY"
    first = next_occurrence(start, NEW_YORK, rule, None)
    assert first is not None
    moments = [first]
    for _ in range(4):
        following = next_occurrence(start, NEW_YORK, rule, moments[-1])
        assert following is not None
        moments.append(following)

    assert {m.astimezone(NEW_YORK).strftime("%H:%M") for m in moments} == {"09:00"}
    assert [m.hour for m in moments] == [14, 14, 13, 13, 13]  # UTC moves, wall time stays


def test_a_wall_time_skipped_by_daylight_saving_moves_forward() -> None:
    moment = to_utc(dt.datetime(2026, 3, 8, 2, 30), NEW_YORK)
    assert moment.astimezone(NEW_YORK).strftime("%H:%M") == "03:30"


def test_a_recurring_reminder_fires_each_occurrence_and_goes_on(crm: crmkit.CRM) -> None:
    start = crmkit.utcnow().astimezone(SHANGHAI) + dt.timedelta(hours=1)
    service.add_reminder(
        crm,
        "周会",
        at=start.strftime("%Y-%m-%d %H:%M"),
        every="FREQ=DAILY;COUNT=3",
        owner="li.na",
    )
    for day in range(4):
        deliver_due(crm, now=crmkit.utcnow() + dt.timedelta(days=day, hours=2))

    assert len(crm.audit.inbox("li.na")) == 3
    (info,) = service.list_reminders(crm, owner="li.na", include_done=True)
    assert (info.status, info.fired_count, info.next_due_at) == ("done", 3, None)


def test_after_downtime_a_recurring_reminder_sends_one_late_message_not_a_flood(
    crm: crmkit.CRM,
) -> None:
    start = crmkit.utcnow().astimezone(SHANGHAI) + dt.timedelta(hours=1)
    service.add_reminder(
        crm, "每小时", at=start.strftime("%Y-%m-%d %H:%M"), every="FREQ=HOURLY", owner="li.na"
    )

    deliver_due(crm, now=crmkit.utcnow() + dt.timedelta(hours=10))

    assert len(crm.audit.inbox("li.na")) == 1
    (logged,) = crm.messages.log(kind="reminder")
    assert logged.late


def test_a_reminder_due_before_the_catch_up_window_is_logged_late_not_delivered(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(plugins={"reminders": crmkit_reminders}, messages={"catch_up_seconds": 3600})
    crm.users.create("li.na")
    service.add_reminder(crm, "x", at=in_one_hour(), owner="li.na")

    done = deliver_batch(crm, now=crmkit.utcnow() + dt.timedelta(hours=5))

    assert (done.reminders, done.sent, done.late) == (1, 0, 1)
    assert crm.audit.inbox("li.na") == []
    assert [m.status for m in crm.messages.log(kind="reminder")] == ["late"]


def test_snooze_delivers_again_later(crm: crmkit.CRM) -> None:
    info = service.add_reminder(crm, "回访", at=in_one_hour(), owner="li.na")
    deliver_batch(crm, now=crmkit.utcnow() + dt.timedelta(hours=2))

    service.snooze(crm, info.id, minutes=30)
    early = deliver_batch(crm, now=crmkit.utcnow() + dt.timedelta(minutes=10))
    due = deliver_batch(crm, now=crmkit.utcnow() + dt.timedelta(minutes=31))

    assert (early.reminders, due.reminders) == (0, 1)
    assert len(crm.audit.inbox("li.na")) == 2


def test_done_finishes_a_one_off_reminder(crm: crmkit.CRM) -> None:
    info = service.add_reminder(crm, "回访", at=in_one_hour(), owner="li.na")

    service.mark_done(crm, info.id)

    assert service.list_reminders(crm, owner="li.na") == []
    with pytest.raises(crmkit.ConflictError, match="done already"):
        service.mark_done(crm, info.id)


def test_a_rep_may_not_remind_on_a_record_they_cannot_read(crm: crmkit.CRM) -> None:
    crm.users.create_team("West")
    other = crm.users.create("wang", team="West", roles=("sales_rep",))
    theirs = crm.contacts.create({"full_name": "李雷"}, actor=other)
    me = crm.users.create("zhou", team="East", roles=("sales_rep",))

    with pytest.raises(crmkit.NotFoundError):
        service.add_reminder(
            crm, "x", at=in_one_hour(), record_type="contact", record_id=theirs.id, actor=me
        )


def test_a_rep_cannot_touch_another_users_reminder(crm: crmkit.CRM) -> None:
    info = service.add_reminder(crm, "回访", at=in_one_hour(), owner="li.na")
    other = crm.users.create("zhou", team="East", roles=("sales_rep",))

    with pytest.raises(crmkit.NotFoundError):
        service.snooze(crm, info.id, minutes=5, actor=other)
    with pytest.raises(crmkit.PermissionDenied, match="reminder:manage"):
        service.list_reminders(crm, owner="li.na", actor=other)


def test_reminders_by_e_mail_go_through_the_message_queue(crm: crmkit.CRM) -> None:
    crm.users.create("chan", email="chan@shop.example")
    service.set_preferences(crm, channels=["inapp", "email"], owner="chan")
    service.add_reminder(crm, "续约", at=in_one_hour(), owner="chan")

    done = deliver_batch(crm, now=crmkit.utcnow() + dt.timedelta(hours=2))

    assert (done.sent, done.queued) == (1, 1)
    queued = crm.messages.log(channel="email")
    assert [(m.address, m.status) for m in queued] == [("chan@shop.example", "pending")]
