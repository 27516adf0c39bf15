"""Derived reminders (birthdays Gregorian and lunar, date fields, receivables, no follow-up,
idle deals), the lunar calendar, holiday care messages through a real SMTP server, and the
iCalendar feed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import crmkit_reminders
import icalendar
import pytest
from crmkit_reminders import service
from crmkit_reminders.calendar import (
    birthdays_between,
    check_holiday,
    gregorian_birthday,
    is_holiday,
    lunar_birthday,
    lunar_of,
)
from crmkit_reminders.care import care_rules, send_care
from crmkit_reminders.derive import derive
from crmkit_reminders.feed import calendar_for, issue_token
from hypothesis import given, settings
from hypothesis import strategies as st
from smtp_support import MailServer

import crmkit

MID_AUTUMN_2026 = dt.datetime(2026, 9, 25, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


def reminders_crm(make_crm: Callable[..., crmkit.CRM], **plugin: Any) -> crmkit.CRM:
    crm = make_crm(
        plugins={"reminders": crmkit_reminders},
        plugin_settings={"reminders": plugin},
        custom_fields=[
            {"entity": "account", "name": "contract_end", "type": "date"},
            {"entity": "deal", "name": "payment_due", "type": "date"},
            {"entity": "deal", "name": "paid", "type": "boolean"},
        ],
    )
    crm.pipelines.create("Sales")
    crm.users.create("li.na")
    return crm


def owned_by(crm: crmkit.CRM, username: str) -> int:
    return next(u.id for u in crm.users.list() if u.username == username)


# -- the calendar ----------------------------------------------------------------------------


def test_a_lunar_birthday_moves_with_the_lunar_calendar() -> None:
    birth = dt.date(1990, 10, 3)  # lunar 8-15 (Mid-Autumn)
    assert lunar_of(birth) == (8, 15)
    found = list(birthdays_between(birth, "lunar", dt.date(2026, 1, 1), dt.date(2027, 12, 31)))
    assert found == [dt.date(2026, 9, 25), dt.date(2027, 9, 15)]


def test_a_leap_month_birthday_falls_in_the_leap_month_only_when_the_year_has_it() -> None:
    birth = dt.date(2023, 3, 26)  # 闰二月初五 (leap 2nd month, day 5)
    assert lunar_of(birth) == (-2, 5)
    assert lunar_birthday(-2, 5, 2024) == dt.date(2024, 3, 14)  # no leap 2nd month: the 2nd
    assert lunar_birthday(2, 5, 2024) == dt.date(2024, 3, 14)


def test_a_thirtieth_in_a_short_lunar_month_falls_on_the_twenty_ninth() -> None:
    long_month = lunar_birthday(6, 30, 2025)  # 2025's 6th month has 30 days
    assert (long_month - lunar_birthday(6, 29, 2025)).days == 1
    short = next(
        y for y in range(2026, 2040) if lunar_birthday(6, 30, y) == lunar_birthday(6, 29, y)
    )
    assert short > 2025


def test_a_leap_day_birthday_is_kept_on_the_28th_in_common_years() -> None:
    assert gregorian_birthday(dt.date(1992, 2, 29), 2026) == dt.date(2026, 2, 28)
    assert gregorian_birthday(dt.date(1992, 2, 29), 2028) == dt.date(2028, 2, 29)


@settings(deadline=None)
@given(st.dates(min_value=dt.date(1920, 1, 1), max_value=dt.date(2080, 12, 31)))
def test_every_date_round_trips_through_its_lunar_date(day: dt.date) -> None:
    month, date = lunar_of(day)
    from lunar_python import Solar

    lunar_year = Solar.fromYmd(day.year, day.month, day.day).getLunar().getYear()
    assert lunar_birthday(month, date, lunar_year) == day


def test_holidays_come_from_the_calendar_library() -> None:
    assert is_holiday(check_holiday("mid_autumn"), dt.date(2026, 9, 25))
    assert is_holiday(check_holiday("春节"), dt.date(2026, 2, 17))
    assert is_holiday(check_holiday("national_day"), dt.date(2026, 10, 1))
    assert is_holiday(check_holiday("christmas"), dt.date(2026, 12, 25))
    assert is_holiday(check_holiday("lunar:05-05"), dt.date(2026, 6, 19))  # 端午
    assert is_holiday(check_holiday("11-11"), dt.date(2026, 11, 11))
    with pytest.raises(crmkit.ValidationError, match="unknown holiday 'Festivus'"):
        check_holiday("Festivus")


# -- derived reminders -----------------------------------------------------------------------


def test_birthday_reminders_reach_the_owner_once_gregorian_and_lunar(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = reminders_crm(make_crm, rules=[{"name": "birthdays", "kind": "birthday"}])
    owner = owned_by(crm, "li.na")
    today = crmkit.utcnow().date()
    soon = today + dt.timedelta(days=3)
    crm.contacts.create(
        {"full_name": "张伟", "birthday": soon.replace(year=1980), "owner_id": owner}
    )
    lunar_born = dt.date(1990, 10, 3)
    crm.contacts.create(
        {
            "full_name": "王芳",
            "birthday": lunar_born,
            "birthday_calendar": "lunar",
            "owner_id": owner,
        }
    )

    first = derive(crm, today=today)
    again = derive(crm, today=today)
    lunar = derive(crm, today=dt.date(2026, 9, 20))

    assert (first["birthdays"], again["birthdays"]) == (1, 0)
    assert lunar["birthdays"] == 1
    titles = sorted(r.title for r in service.list_reminders(crm, owner="li.na", within_days=400))
    assert titles == ["张伟 生日", "王芳 生日（农历）"]


def test_a_custom_date_field_reminds_days_ahead(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = reminders_crm(
        make_crm,
        rules=[
            {
                "name": "contracts",
                "kind": "date",
                "entity": "account",
                "field": "contract_end",
                "days_ahead": 30,
                "title": "合同即将到期",
            }
        ],
    )
    today = crmkit.utcnow().date()
    owner = owned_by(crm, "li.na")
    crm.accounts.create(
        {"name": "星辰贸易", "contract_end": today + dt.timedelta(days=33), "owner_id": owner}
    )
    crm.accounts.create(
        {"name": "远期", "contract_end": today + dt.timedelta(days=200), "owner_id": owner}
    )

    assert derive(crm, today=today) == {"contracts": 1}
    (info,) = service.list_reminders(crm, owner="li.na", within_days=30)
    assert (info.title, info.record_type) == ("合同即将到期", "account")


def test_an_unpaid_overdue_receivable_is_reminded_and_a_paid_one_is_not(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = reminders_crm(
        make_crm,
        rules=[
            {
                "name": "receivables",
                "kind": "receivable",
                "entity": "deal",
                "field": "payment_due",
                "paid_field": "paid",
            }
        ],
    )
    owner = owned_by(crm, "li.na")
    late = crmkit.utcnow().date() - dt.timedelta(days=5)
    unpaid = crm.deals.create({"name": "ERP", "payment_due": late, "owner_id": owner})
    crm.deals.create({"name": "CRM", "payment_due": late, "paid": True, "owner_id": owner})

    assert derive(crm) == {"receivables": 1}
    (info,) = service.list_reminders(crm, owner="li.na")
    assert info.record_id == unpaid.id
    assert "overdue" in info.title


def test_a_contact_without_follow_up_for_n_days_in_the_tier_is_reminded(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = reminders_crm(
        make_crm,
        rules=[
            {
                "name": "quiet-vip",
                "kind": "no_follow_up",
                "entity": "contact",
                "days": 14,
                "when": {"value_tier": "A"},
            }
        ],
    )
    owner = owned_by(crm, "li.na")
    quiet = crm.contacts.create({"full_name": "张伟", "value_tier": "A", "owner_id": owner})
    crm.contacts.create({"full_name": "李雷", "value_tier": "C", "owner_id": owner})
    talked = crm.contacts.create({"full_name": "韩梅", "value_tier": "A", "owner_id": owner})
    crm.activities.create({"kind": "call", "subject": "回访", "contact_id": talked.id})
    with crm.engine.begin() as connection:  # both were created 20 days ago
        connection.exec_driver_sql(
            "UPDATE contacts SET created_at = created_at - interval '20 days'"
            if crm.engine.dialect.name == "postgresql"
            else "UPDATE contacts SET created_at = datetime(created_at, '-20 days')"
        )

    assert derive(crm) == {"quiet-vip": 1}
    (info,) = service.list_reminders(crm, owner="li.na")
    assert info.record_id == quiet.id


def test_a_bad_rule_is_a_config_error_naming_it(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = reminders_crm(make_crm, rules=[{"name": "oops", "kind": "horoscope"}])
    with pytest.raises(crmkit.ConfigError, match="reminder rule 'oops': kind must be one of"):
        derive(crm)


# -- care messages ---------------------------------------------------------------------------

MID_AUTUMN_RULE = {
    "name": "mid-autumn",
    "holiday": "mid_autumn",
    "segment": {"lifecycle_stage": "repeat_buyer"},
    "subject": {"zh": "{{ full_name }}，中秋快乐", "en": "Happy Mid-Autumn, {{ full_name }}"},
    "body": {"zh": "祝您阖家团圆。退订：{{ unsubscribe_url }}", "en": "Best wishes."},
}


def care_crm(make_crm: Callable[..., crmkit.CRM], server: MailServer, **rule: Any) -> crmkit.CRM:
    crm = make_crm(
        plugins={"reminders": crmkit_reminders},
        plugin_settings={"reminders": {"care": [{**MID_AUTUMN_RULE, **rule}]}},
        email={"host": server.host, "port": server.port, "from_address": "crm@shop.example"},
        api={"public_url": "https://crm.shop.example"},
        # the messages are due on a fixed day; the worker here runs on today's clock
        messages={"catch_up_seconds": 10**9},
    )
    crm.pipelines.create("Sales")
    return crm


def test_holiday_care_reaches_the_segment_once_in_their_language(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = care_crm(make_crm, smtp_server)
    zhang = crm.contacts.create(
        {"full_name": "张伟", "email": "zw@example.cn", "lifecycle_stage": "repeat_buyer"}
    )
    crm.contacts.create(
        {
            "full_name": "John Smith",
            "email": "john@example.com",
            "lifecycle_stage": "repeat_buyer",
            "language": "en",
        }
    )
    crm.contacts.create(
        {"full_name": "路人", "email": "x@example.cn", "lifecycle_stage": "prospect"}
    )

    first = send_care(crm, now=MID_AUTUMN_2026)
    again = send_care(crm, now=MID_AUTUMN_2026 + dt.timedelta(hours=1))
    crm.messages.deliver_pending()

    assert (first["mid-autumn"].queued, again["mid-autumn"].repeated) == (2, 2)
    (chinese,) = smtp_server.to("zw@example.cn")
    assert chinese["Subject"] == "张伟，中秋快乐"
    assert "https://crm.shop.example/messages/unsubscribe/" in chinese.get_content()
    assert [m["Subject"] for m in smtp_server.to("john@example.com")] == [
        "Happy Mid-Autumn, John Smith"
    ]
    (activity,) = crm.activities.list(filters={"contact_id": zhang.id}).items
    assert activity.subject == "张伟，中秋快乐"


def test_an_unsubscribed_customer_gets_no_care_message(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = care_crm(make_crm, smtp_server)
    crm.contacts.create(
        {"full_name": "张伟", "email": "zw@example.cn", "lifecycle_stage": "repeat_buyer"}
    )
    token = crm.messages.unsubscribe_url("email", "zw@example.cn").rsplit("/", 1)[1]
    crm.messages.unsubscribe(token)

    result = send_care(crm, now=MID_AUTUMN_2026)["mid-autumn"]
    crm.messages.deliver_pending()

    assert (result.suppressed, result.queued) == (1, 0)
    assert smtp_server.received == []


def test_no_care_message_on_another_day_or_before_send_at(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = care_crm(make_crm, smtp_server)
    crm.contacts.create(
        {"full_name": "张伟", "email": "zw@example.cn", "lifecycle_stage": "repeat_buyer"}
    )
    assert send_care(crm, now=MID_AUTUMN_2026 - dt.timedelta(days=2)) == {}
    early = send_care(crm, now=dt.datetime(2026, 9, 24, 23, 0, tzinfo=dt.UTC))  # 07:00
    assert early["mid-autumn"].queued == 0


def test_care_goes_out_on_the_contacts_own_day_and_wall_clock(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = care_crm(make_crm, smtp_server)
    crm.contacts.create(
        {"full_name": "张伟", "email": "zw@example.cn", "lifecycle_stage": "repeat_buyer"}
    )
    crm.contacts.create(
        {
            "full_name": "王美玲",
            "email": "wml@example.com",
            "lifecycle_stage": "repeat_buyer",
            "timezone": "America/New_York",
        }
    )

    shanghai_morning = send_care(crm, now=MID_AUTUMN_2026)["mid-autumn"]  # NY: 24th, 22:00
    new_york_morning = send_care(crm, now=MID_AUTUMN_2026 + dt.timedelta(hours=12))[
        "mid-autumn"
    ]  # NY: 25th, 10:00

    assert (shanghai_morning.queued, new_york_morning.queued) == (1, 1)
    crm.messages.deliver_pending()
    assert len(smtp_server.to("wml@example.com")) == 1


def test_a_template_naming_an_unknown_field_is_refused_with_the_rule_named(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = care_crm(make_crm, smtp_server, subject={"zh": "{{ nickname }} 中秋快乐"})
    with pytest.raises(crmkit.ConfigError, match=r"care rule 'mid-autumn': subject\.zh does not"):
        care_rules(crm)


def test_a_template_that_escapes_the_sandbox_is_refused(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = care_crm(
        make_crm, smtp_server, body={"zh": "{{ full_name.__class__.__mro__[1].__subclasses__() }}"}
    )
    with pytest.raises(crmkit.ConfigError, match="does not render"):
        care_rules(crm)


# -- the calendar feed -----------------------------------------------------------------------


def test_the_calendar_feed_lists_the_users_reminders_behind_a_token(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = reminders_crm(make_crm)
    at = (crmkit.utcnow() + dt.timedelta(days=1)).astimezone(dt.UTC).strftime("%Y-%m-%d 09:00")
    service.add_reminder(crm, "周会", at=at, every="FREQ=WEEKLY;BYDAY=MO", owner="li.na")
    service.add_reminder(crm, "回访", at=at, owner="li.na")
    token = issue_token(crm, owner="li.na")

    calendar = icalendar.Calendar.from_ical(calendar_for(crm, token))

    events = {str(e["summary"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {"周会", "回访"}
    assert events["周会"]["rrule"]["FREQ"] == ["WEEKLY"]
    assert events["周会"]["dtstart"].dt.tzinfo is not None
    newer = issue_token(crm, owner="li.na")
    with pytest.raises(crmkit.NotFoundError):
        calendar_for(crm, token)  # the old token stopped working
    assert calendar_for(crm, newer)
