"""The reminders plugin on the desk: a "my day" tile with the user's reminders due today and
a page to snooze them or mark them done, through the plugin's services as the signed-in user."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Iterator

import crmkit_reminders
import pytest
from crmkit_reminders import service
from desk_support import DeskWorld, open_desk

import crmkit

PAGE = "/desk/plugins/reminders/today"
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def local(delta: dt.timedelta) -> str:
    return (crmkit.utcnow() + delta).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def world(make_crm: Callable[..., crmkit.CRM]) -> Iterator[DeskWorld]:
    crm = make_crm(plugins={"reminders": crmkit_reminders})
    crm.pipelines.create("Sales")
    yield from open_desk(crm)


def due_now(crm: crmkit.CRM, title: str, owner: str) -> service.ReminderInfo:
    """A reminder due a minute ago (added for a minute from now, then the clock moves on)."""
    info = service.add_reminder(crm, title, at=local(dt.timedelta(minutes=1)), owner=owner)
    with crm.transaction() as op:
        row = op.session.get(crmkit_reminders.Reminder, info.id)
        assert row is not None
        row.next_due_at = crmkit.utcnow() - dt.timedelta(minutes=1)
    (fresh,) = [r for r in service.list_reminders(crm, owner=owner) if r.id == info.id]
    return fresh


def test_my_day_shows_a_tile_of_my_reminders_due_today(world: DeskWorld) -> None:
    due_now(world.crm, "回访报价", "li.na")
    due_now(world.crm, "陈杰的提醒", "chen.jie")
    service.add_reminder(world.crm, "下周的事", at=local(dt.timedelta(days=8)), owner="li.na")
    page = world.signed_in("li.na").get("/desk")
    assert "今日到期的提醒" in page.text or "Reminders due today" in page.text
    tile = page.text.split('class="tile"', 1)[1].split("</section>", 1)[0]
    assert f'href="{PAGE}">1<' in tile
    assert "回访报价" in tile


def test_the_page_lists_only_my_reminders_with_buttons(world: DeskWorld) -> None:
    due_now(world.crm, "回访报价", "li.na")
    due_now(world.crm, "陈杰的提醒", "chen.jie")
    page = world.signed_in("li.na").get(PAGE)
    assert page.status_code == 200
    assert "回访报价" in page.text
    assert "陈杰的提醒" not in page.text
    assert 'value="snooze"' in page.text
    assert 'value="done"' in page.text


def test_snoozing_an_hour_takes_it_off_until_then(world: DeskWorld) -> None:
    info = due_now(world.crm, "回访报价", "li.na")
    browser = world.signed_in("li.na")
    browser.get(PAGE)
    before = crmkit.utcnow()
    response = browser.post(PAGE, {"action": "snooze", "reminder": str(info.id), "for": "hour"})
    assert response.status_code == 200
    (after,) = service.list_reminders(world.crm, owner="li.na")
    assert after.next_due_at is not None
    assert after.next_due_at >= before + dt.timedelta(minutes=59)


def test_done_finishes_it(world: DeskWorld) -> None:
    info = due_now(world.crm, "回访报价", "li.na")
    browser = world.signed_in("li.na")
    browser.get(PAGE)
    response = browser.post(PAGE, {"action": "done", "reminder": str(info.id)})
    assert response.status_code == 200
    assert service.due_today(world.crm, actor=world.crm.users.get("li.na")) == []
    (listed,) = service.list_reminders(world.crm, owner="li.na", include_done=True)
    assert listed.status == "done"


def test_someone_elses_reminder_is_not_found_and_unchanged(world: DeskWorld) -> None:
    theirs = due_now(world.crm, "陈杰的提醒", "chen.jie")
    browser = world.signed_in("li.na")
    browser.get(PAGE)
    for form in ({"action": "done"}, {"action": "snooze", "for": "day"}):
        response = browser.post(PAGE, {**form, "reminder": str(theirs.id)})
        assert response.status_code == 404
        assert "陈杰的提醒" not in response.text
    (still,) = service.list_reminders(world.crm, owner="chen.jie")
    assert still.status == theirs.status


def test_a_bad_snooze_is_named_and_changes_nothing(world: DeskWorld) -> None:
    info = due_now(world.crm, "回访报价", "li.na")
    browser = world.signed_in("li.na")
    browser.get(PAGE)
    response = browser.post(PAGE, {"action": "snooze", "reminder": str(info.id), "for": "ever"})
    assert response.status_code == 422
    assert "hour, day" in response.text
    (still,) = service.list_reminders(world.crm, owner="li.na")
    assert still.next_due_at == info.next_due_at


def test_without_the_plugin_there_is_no_tile_and_no_page(
    world: DeskWorld, make_crm: Callable[..., crmkit.CRM]
) -> None:
    from desk_support import DeskWorld as World

    from crmkit.api import create_app

    without = make_crm()  # the same database, the plugin not enabled
    plain = World(without, create_app(without))
    browser = plain.signed_in("li.na")
    assert "Reminders due today" not in browser.get("/desk").text
    assert "今日到期的提醒" not in browser.get("/desk").text
    assert browser.get(PAGE).status_code == 404
