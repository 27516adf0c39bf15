"""Plugins extending the desk through all five hooks, over HTTP on both engines: the referrals
example (a panel, a page with its menu entry, a "Give a referral code" button on contacts, a
"my day" tile) and the bundled loyalty plugin (a tile and a page of the user's members whose
points expire soon, with its menu entry); what a plugin hands the desk is escaped, and a
disabled plugin's parts are gone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import crmkit_loyalty
import crmkit_referrals
import pytest
from crmkit_loyalty import service as loyalty
from desk_support import DeskWorld, open_desk
from loyalty_support import TEA_CLUB, days_ago

import crmkit
from crmkit.api import create_app

REFERRALS_PAGE = "/desk/plugins/referrals/latest"
LOYALTY_PAGE = "/desk/plugins/loyalty/expiring"
CODE = re.compile(r"[A-HJ-NP-Z2-9]{6}")


def action_path(contact_id: int) -> str:
    return f"/desk/contacts/{contact_id}/actions/referrals/issue-code"


def menu_of(html: str) -> str:
    return html.split('<ul class="menu">', 1)[1].split("</ul>", 1)[0]


def tile_of(html: str, title: str) -> str:
    """The tile whose heading is ``title`` (raises IndexError when there is none)."""
    tiles = html.split('<section class="tile"')[1:]
    return next(t.split("</section>", 1)[0] for t in tiles if f"<h2>{title}</h2>" in t)


def has_tile(html: str, title: str) -> bool:
    try:
        tile_of(html, title)
    except StopIteration:
        return False
    return True


def plain_world(make_crm: Callable[..., crmkit.CRM]) -> DeskWorld:
    """The desk of the same database with no plugin enabled."""
    without = make_crm()
    return DeskWorld(without, create_app(without))


# -- the referrals example ------------------------------------------------------------------


@pytest.fixture
def referrals(make_crm: Callable[..., crmkit.CRM]) -> Iterator[DeskWorld]:
    crm = make_crm(plugins={"referrals": crmkit_referrals})
    crm.pipelines.create("Sales")
    yield from open_desk(crm)


def refer(world: DeskWorld, owner: str, referrer: str, referred: str) -> tuple[int, int]:
    """Two contacts of ``owner``, the first referring the second: their ids."""
    user = world.crm.users.get(owner)
    first = world.crm.contacts.create({"full_name": referrer}, actor=user)
    second = world.crm.contacts.create({"full_name": referred}, actor=user)
    world.crm.records("referral").create(
        {
            "referrer_contact_id": first.id,
            "referred_contact_id": second.id,
            "channel": "wechat",
            "owner_id": user.id,
            "team_id": user.team_id,
        }
    )
    return first.id, second.id


def test_the_referrals_menu_entry_is_shown_to_who_may_read_referrals(
    referrals: DeskWorld,
) -> None:
    browser = referrals.signed_in("li.na")
    assert REFERRALS_PAGE not in menu_of(browser.get("/desk").text)
    referrals.crm.roles.grant("sales_rep", "referral:read", "own")
    menu = menu_of(browser.get("/desk").text)
    assert f'<a href="{REFERRALS_PAGE}">转介绍</a>' in menu
    # between the built-in Activities and Tasks (its order, 65)
    assert menu.index("/desk/activities") < menu.index(REFERRALS_PAGE) < menu.index("/desk/tasks")


def test_the_referrals_page_names_both_contacts_escaped(referrals: DeskWorld) -> None:
    referrals.crm.roles.grant("sales_rep", "referral:read", "own")
    referrer, referred = refer(referrals, "li.na", "张伟", "<b>王芳</b>")
    refer(referrals, "chen.jie", "陈静", "黄晓明")
    page = referrals.signed_in("li.na").get(REFERRALS_PAGE)
    assert page.status_code == 200
    assert f'<a href="/desk/contacts/{referrer}">张伟</a>' in page.text
    assert f'<a href="/desk/contacts/{referred}">&lt;b&gt;王芳&lt;/b&gt;</a>' in page.text
    assert "<b>王芳" not in page.text
    assert "陈静" not in page.text


def test_a_contacts_panel_shows_whom_it_referred_by_name(referrals: DeskWorld) -> None:
    referrals.crm.roles.grant("sales_rep", "referral:read", "own")
    referrer, referred = refer(referrals, "li.na", "张伟", "王芳")
    page = referrals.signed_in("li.na").get(f"/desk/contacts/{referrer}")
    panel = page.text.split('data-plugin="referrals"', 1)[1].split("</section>", 1)[0]
    assert f'<a href="/desk/contacts/{referred}">王芳</a>' in panel
    assert "wechat" in panel


def test_the_panel_speaks_the_users_language(referrals: DeskWorld) -> None:
    referrals.crm.roles.grant("sales_rep", "referral:read", "own")
    li_na = referrals.crm.users.get("li.na")
    referrer, _ = refer(referrals, "li.na", "张伟", "王芳")
    referrals.crm.contacts.update(referrer, {"referral_code": "ABC234"})
    browser = referrals.signed_in("li.na")
    chinese = browser.get(f"/desk/contacts/{referrer}").text
    panel = chinese.split('data-plugin="referrals"', 1)[1].split("</section>", 1)[0]
    assert "<h2>转介绍</h2>" in panel
    assert "推荐码" in panel
    assert "被介绍人" in panel
    referrals.crm.sign_in.set_locale(li_na, "en")
    english = browser.get(f"/desk/contacts/{referrer}").text
    panel = english.split('data-plugin="referrals"', 1)[1].split("</section>", 1)[0]
    assert "<h2>Referrals</h2>" in panel
    assert "Referral code" in panel
    assert "推荐码" not in panel


def test_a_plugins_custom_fields_are_labelled_in_the_users_language(
    referrals: DeskWorld,
) -> None:
    """The labels the plugin gives its custom fields, from its catalogue: on the record page
    and in the edit form."""
    li_na = referrals.crm.users.get("li.na")
    contact = referrals.crm.contacts.create(
        {"full_name": "张伟", "referral_code": "ABC234", "wechat_id": "zhangwei88"}, actor=li_na
    )
    browser = referrals.signed_in("li.na")
    page = browser.get(f"/desk/contacts/{contact.id}").text
    assert "<dt>推荐码</dt><dd>ABC234</dd>" in page
    assert "<dt>微信号</dt><dd>zhangwei88</dd>" in page
    form = browser.get(f"/desk/contacts/{contact.id}/edit").text
    assert '<label for="f-referral_code">推荐码</label>' in form
    # a custom field without a value is on the form too, to be filled in
    assert '<label for="f-vip_level">VIP 等级</label>' in form
    saved = browser.post(
        f"/desk/contacts/{contact.id}/edit",
        {"version": str(contact.version), "full_name": "张伟", "vip_level": "gold"},
    )
    assert saved.status_code == 200, saved.text
    assert referrals.crm.contacts.get(contact.id)["vip_level"] == "gold"
    # a custom field hidden from the user is not on the form, even without a value
    referrals.crm.roles.set_field_rule("sales_rep", "contact", "vip_level", "hidden")
    form = browser.get(f"/desk/contacts/{contact.id}/edit").text
    assert "f-vip_level" not in form
    assert "f-referral_code" in form
    referrals.crm.sign_in.set_locale(li_na, "en")
    page = browser.get(f"/desk/contacts/{contact.id}").text
    assert "<dt>WeChat ID</dt><dd>zhangwei88</dd>" in page


def test_give_a_referral_code_sets_the_contacts_code(referrals: DeskWorld) -> None:
    contact = referrals.crm.contacts.create(
        {"full_name": "张伟"}, actor=referrals.crm.users.get("li.na")
    )
    browser = referrals.signed_in("li.na")
    page = browser.get(f"/desk/contacts/{contact.id}")
    assert f'action="{action_path(contact.id)}"' in page.text
    assert "发放推荐码" in page.text  # the button, in the user's language
    response = browser.post(action_path(contact.id), {})
    assert response.status_code == 200, response.text
    after = referrals.crm.contacts.get(contact.id)
    assert CODE.fullmatch(after.referral_code)
    assert after.version == contact.version + 1
    # what the button says is in the user's language too (the plugin's catalogue)
    assert f"已为 张伟 发放推荐码 {after.referral_code}。" in response.text
    assert "given to" not in response.text
    (latest, *_) = referrals.crm.audit.query(entity="contact", record_id=contact.id)
    assert latest.actor == "li.na"
    assert latest.changes["referral_code"][1] == after.referral_code


def test_a_second_code_is_refused_and_the_first_kept(referrals: DeskWorld) -> None:
    contact = referrals.crm.contacts.create(
        {"full_name": "张伟", "referral_code": "ABC234"}, actor=referrals.crm.users.get("li.na")
    )
    browser = referrals.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    response = browser.post(action_path(contact.id), {})
    assert response.status_code == 422
    assert "张伟 已有推荐码 ABC234" in response.text
    after = referrals.crm.contacts.get(contact.id)
    assert (after.referral_code, after.version) == ("ABC234", contact.version)
    referrals.crm.sign_in.set_locale(referrals.crm.users.get("li.na"), "en")
    english = browser.post(action_path(contact.id), {})
    assert english.status_code == 422
    assert "张伟 already has referral code ABC234" in english.text
    assert "已有推荐码" not in english.text


def test_the_button_without_the_csrf_token_changes_nothing(referrals: DeskWorld) -> None:
    contact = referrals.crm.contacts.create(
        {"full_name": "张伟"}, actor=referrals.crm.users.get("li.na")
    )
    browser = referrals.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    for form, csrf in (({}, False), ({"csrf_token": "forged"}, False)):
        response = browser.post(action_path(contact.id), form, csrf=csrf)
        assert response.status_code == 403
    after = referrals.crm.contacts.get(contact.id)
    assert after.get("referral_code") is None
    assert after.version == contact.version


def test_the_button_on_another_teams_contact_is_not_found(referrals: DeskWorld) -> None:
    theirs = referrals.crm.contacts.create(
        {"full_name": "陈静"}, actor=referrals.crm.users.get("chen.jie")
    )
    browser = referrals.signed_in("li.na")
    browser.get("/desk")
    response = browser.post(action_path(theirs.id), {})
    assert response.status_code == 404
    assert "陈静" not in response.text
    after = referrals.crm.contacts.get(theirs.id)
    assert after.get("referral_code") is None
    assert after.version == theirs.version


def test_an_unknown_action_is_not_found(referrals: DeskWorld) -> None:
    contact = referrals.crm.contacts.create(
        {"full_name": "张伟"}, actor=referrals.crm.users.get("li.na")
    )
    browser = referrals.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    for path in (
        f"/desk/contacts/{contact.id}/actions/referrals/nothing",
        f"/desk/contacts/{contact.id}/actions/loyalty/issue-code",
        f"/desk/deals/{contact.id}/actions/referrals/issue-code",
    ):
        assert browser.post(path, {}).status_code == 404
    assert referrals.crm.contacts.get(contact.id).version == contact.version


def test_the_tile_counts_the_referrals_the_user_may_read(referrals: DeskWorld) -> None:
    referrals.crm.roles.grant("sales_rep", "referral:read", "own")
    refer(referrals, "li.na", "张伟", "王芳")
    refer(referrals, "li.na", "<i>李雷</i>", "韩梅梅")
    refer(referrals, "chen.jie", "陈静", "黄晓明")
    tile = tile_of(referrals.signed_in("li.na").get("/desk").text, "近 30 天的转介绍")
    assert f'href="{REFERRALS_PAGE}">2<' in tile
    assert "&lt;i&gt;李雷&lt;/i&gt; → 韩梅梅" in tile  # the latest, escaped
    assert "陈静" not in tile


def test_no_tile_for_a_user_who_may_not_read_referrals(referrals: DeskWorld) -> None:
    refer(referrals, "li.na", "张伟", "王芳")
    page = referrals.signed_in("li.na").get("/desk")
    assert page.status_code == 200
    assert not has_tile(page.text, "近 30 天的转介绍")


def test_without_the_plugin_its_entry_button_tile_and_page_are_gone(
    referrals: DeskWorld, make_crm: Callable[..., crmkit.CRM]
) -> None:
    referrals.crm.roles.grant("sales_rep", "referral:read", "own")
    referrer, _ = refer(referrals, "li.na", "张伟", "王芳")
    with_plugin = referrals.signed_in("li.na")
    assert has_tile(with_plugin.get("/desk").text, "近 30 天的转介绍")

    browser = plain_world(make_crm).signed_in("li.na")
    day = browser.get("/desk").text
    assert not has_tile(day, "近 30 天的转介绍")
    assert REFERRALS_PAGE not in menu_of(day)
    contact = browser.get(f"/desk/contacts/{referrer}").text
    assert "issue-code" not in contact
    assert 'data-plugin="referrals"' not in contact
    assert browser.get(REFERRALS_PAGE).status_code == 404
    assert browser.post(action_path(referrer), {}).status_code == 404
    assert referrals.crm.contacts.get(referrer).get("referral_code") is None


class HostileMenuPlugin:
    """A plugin whose menu entry and tile carry markup."""

    @crmkit.hookimpl
    def crmkit_desk_menu(self, crm: crmkit.CRM, actor: crmkit.User) -> list[Any]:
        return [crmkit.DeskMenuEntry("<script>alert(1)</script>", '/desk?x="><b>', order=1)]

    @crmkit.hookimpl
    def crmkit_desk_tiles(self, crm: crmkit.CRM, actor: crmkit.User) -> list[Any]:
        return [crmkit.DeskTile("<b>tile</b>", "<i>1</i>", note="<u>note</u>")]


def test_a_plugins_menu_entry_and_tile_are_escaped(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(plugins={"hostile": HostileMenuPlugin()})
    world = next(open_desk(crm))
    page = world.signed_in("li.na").get("/desk").text
    menu = menu_of(page)
    assert '<a href="/desk?x=&#34;&gt;&lt;b&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</a>' in menu
    assert menu.index("alert(1)") < menu.index("/desk/contacts")  # order 1: first
    assert "<script>alert" not in page
    assert "&lt;b&gt;tile&lt;/b&gt;" in page
    assert "&lt;i&gt;1&lt;/i&gt;" in page
    assert "&lt;u&gt;note&lt;/u&gt;" in page


# -- the loyalty plugin ---------------------------------------------------------------------


@pytest.fixture
def members(make_crm: Callable[..., crmkit.CRM]) -> Iterator[DeskWorld]:
    crm = make_crm(plugins={"loyalty": crmkit_loyalty})
    crm.pipelines.create("Sales")
    # a year's validity, not rounded: points bought N days ago expire in 365 - N days
    loyalty.add_program(crm, {**TEA_CLUB, "validity": {"days": 365}})
    yield from open_desk(crm)


def member_of(world: DeskWorld, owner: str, name: str, bought_days_ago: float) -> int:
    """A contact of ``owner`` with a card and a 100 CNY purchase ``bought_days_ago``."""
    contact = world.crm.contacts.create({"full_name": name}, actor=world.crm.users.get(owner))
    number = loyalty.issue_card(world.crm, contact.id)["card"]
    loyalty.record_purchase(
        world.crm, number, 100, receipt_id=f"R-{contact.id}", occurred_at=days_ago(bought_days_ago)
    )
    return int(contact.id)


def test_my_day_shows_my_members_with_points_expiring_soon(members: DeskWorld) -> None:
    member_of(members, "li.na", "张伟", 350)  # expires in 15 days: within the 30-day notice
    member_of(members, "li.na", "<b>王芳</b>", 340)
    member_of(members, "li.na", "刘洋", 300)  # in 65 days
    member_of(members, "chen.jie", "陈静", 350)  # another rep's member
    tile = tile_of(members.signed_in("li.na").get("/desk").text, "积分即将过期")
    assert f'href="{LOYALTY_PAGE}">2<' in tile
    # the note in the user's language too (the plugin's catalogue)
    assert re.search(r"200 积分，最早 \d{4}-\d{2}-\d{2} 到期", tile), tile
    members.crm.sign_in.set_locale(members.crm.users.get("li.na"), "en")
    tile = tile_of(members.signed_in("li.na").get("/desk").text, "Points expiring soon")
    assert re.search(r"200 points, the first on \d{4}-\d{2}-\d{2}", tile), tile


def test_the_page_lists_them_soonest_first_by_name(members: DeskWorld) -> None:
    second = member_of(members, "li.na", "<b>王芳</b>", 340)
    first = member_of(members, "li.na", "张伟", 350)
    member_of(members, "li.na", "刘洋", 300)
    member_of(members, "chen.jie", "陈静", 350)
    browser = members.signed_in("li.na")
    menu = menu_of(browser.get("/desk").text)
    assert f'<a href="{LOYALTY_PAGE}">积分到期</a>' in menu
    page = browser.get(LOYALTY_PAGE)
    assert page.status_code == 200
    assert f'<a href="/desk/contacts/{first}">张伟</a>' in page.text
    assert "刘洋" not in page.text
    assert "陈静" not in page.text
    assert f'<a href="/desk/contacts/{second}">&lt;b&gt;王芳&lt;/b&gt;</a>' in page.text
    assert page.text.index(f"/desk/contacts/{first}") < page.text.index(f"/desk/contacts/{second}")


def test_no_expiring_points_is_said_plainly(members: DeskWorld) -> None:
    member_of(members, "li.na", "刘洋", 1)
    browser = members.signed_in("li.na")
    tile = tile_of(browser.get("/desk").text, "积分即将过期")
    assert f'href="{LOYALTY_PAGE}">0<' in tile
    assert "你的会员近期没有要过期的积分。" in browser.get(LOYALTY_PAGE).text


def test_without_the_loyalty_plugin_its_tile_entry_and_page_are_gone(
    members: DeskWorld, make_crm: Callable[..., crmkit.CRM]
) -> None:
    member_of(members, "li.na", "张伟", 350)
    browser = plain_world(make_crm).signed_in("li.na")
    day = browser.get("/desk").text
    assert not has_tile(day, "积分即将过期")
    assert LOYALTY_PAGE not in menu_of(day)
    assert browser.get(LOYALTY_PAGE).status_code == 404
