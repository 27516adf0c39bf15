"""Progressive enhancement with htmx (vendored in the package, no CDN): moving a deal on the
board, claiming from the pool, logging a call and paging swap the page's main part in place
when JavaScript runs, and are ordinary forms and links without it.

The plain HTTP tests here are the browser without JavaScript: they send what the form or link
sends, with no htmx header. The browser tests run Debian's Chromium with JavaScript on (a
marker set on the page survives the action: the page was not reloaded) and off."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from desk_support import DeskWorld
from test_desk_browser import CHROMIUM, Served, browser, build, sign_in  # noqa: F401

import crmkit

STATIC = Path(crmkit.__file__).parent / "desk" / "static"


def test_htmx_is_served_from_the_package_with_its_licence(desk: DeskWorld) -> None:
    browser_ = desk.signed_in("li.na")
    page = browser_.get("/desk")
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert "/desk/static/htmx.min.js" in scripts
    assert all(src.startswith("/desk/static/") for src in scripts)  # nothing from elsewhere
    served = browser_.get("/desk/static/htmx.min.js")
    assert served.status_code == 200
    assert served.content == (STATIC / "htmx.min.js").read_bytes()
    assert "Zero-Clause BSD" in (STATIC / "htmx.LICENSE.txt").read_text()


def enhanced(html: str, action: str) -> str:
    """The opening tag of the form posting to ``action``."""
    found = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>', html)
    assert found, action
    return found.group(0)


def test_the_enhanced_forms_are_plain_forms_too(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    contact = desk.crm.contacts.create({"full_name": "王芳"}, actor=li)
    deal = desk.crm.deals.create({"name": "框架协议"}, actor=li)
    browser_ = desk.signed_in("li.na")
    record = browser_.get(f"/desk/contacts/{contact.id}").text
    board = browser_.get("/desk/board").text
    for html, action in (
        (record, f"/desk/contacts/{contact.id}/log"),
        (board, f"/desk/deals/{deal.id}/move"),
    ):
        tag = enhanced(html, action)
        assert 'method="post"' in tag
        assert "hx-boost" in tag


def test_without_javascript_a_call_is_logged_and_a_deal_moved(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    contact = desk.crm.contacts.create({"full_name": "王芳"}, actor=li)
    deal = desk.crm.deals.create({"name": "框架协议"}, actor=li)
    stages = desk.crm.pipelines.stages(deal.pipeline_id)
    browser_ = desk.signed_in("li.na")
    browser_.get(f"/desk/contacts/{contact.id}")
    logged = browser_.post(f"/desk/contacts/{contact.id}/log", {"kind": "call"}, follow=False)
    assert logged.status_code == 303  # a plain form: the browser follows to the record page
    assert logged.headers["location"] == f"/desk/contacts/{contact.id}?notice=logged"
    moved = browser_.post(
        f"/desk/deals/{deal.id}/move",
        {"stage_id": str(stages[1].id), "version": str(deal.version), "back": "board"},
        follow=False,
    )
    assert moved.status_code == 303
    assert desk.crm.deals.get(deal.id).stage_id == stages[1].id
    assert desk.crm.activities.count() == 1


def test_without_javascript_the_next_page_link_pages(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    for number in range(55):
        desk.crm.contacts.create({"full_name": f"客户{number:02d}"}, actor=li)
    browser_ = desk.signed_in("li.na")
    first = browser_.get("/desk/contacts")
    link = re.search(r'<nav class="pages"[^>]*>.*?<a rel="next" href="([^"]+)"', first.text, re.S)
    assert link
    second = browser_.get("/desk/contacts" + link.group(1).replace("&amp;", "&"))
    assert "客户54" in second.text
    assert "客户00" not in second.text


def marker_survives(page: Any) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


@pytest.mark.parametrize("javascript", [True, False], ids=["with-js", "without-js"])
def test_in_the_browser_the_four_actions_work(
    browser: Any,  # noqa: F811
    make_crm: Any,
    javascript: bool,
) -> None:
    crm = make_crm()
    crm.pipelines.create("Sales")
    world = build(crm)
    for number in range(55):
        crm.contacts.create({"full_name": f"客户{number:02d}"}, actor=world["li_na"])
    with Served(crm) as served:
        context = browser.new_context(locale="zh-CN", java_script_enabled=javascript)
        page = context.new_page()
        sign_in(page, served.url, "li.na")

        page.goto(f"{served.url}/desk/contacts/{world['contact'].id}")
        if javascript:
            page.evaluate("window.__notReloaded = true")
        page.locator("#log-call").click()
        assert page.get_by_role("status").inner_text() == "已记录。"
        assert [a.kind for a in crm.activities.list().items] == ["call"]
        if javascript:
            assert marker_survives(page)

        page.goto(f"{served.url}/desk/board")
        if javascript:
            page.evaluate("window.__notReloaded = true")
        stages = crm.pipelines.stages(world["deal"].pipeline_id)
        card = page.locator(f"#deal-{world['deal'].id}")
        card.get_by_label("移到阶段").select_option(str(stages[1].id))
        card.get_by_role("button", name="移动").click()
        assert page.get_by_role("status").inner_text() == "商机已移动。"
        assert page.locator(f"[data-stage='{stages[1].id}'] #deal-{world['deal'].id}").count()
        assert crm.deals.get(world["deal"].id).stage_id == stages[1].id
        if javascript:
            assert marker_survives(page)

        page.goto(f"{served.url}/desk/pool")
        if javascript:
            page.evaluate("window.__notReloaded = true")
        page.get_by_label("领取 公海线索刘洋").check()
        page.get_by_role("button", name="领取勾选的记录").click()
        assert "已领取" in page.get_by_role("status").inner_text()
        assert crm.leads.get(world["pooled"].id).owner_id == world["li_na"].id
        if javascript:
            assert marker_survives(page)

        page.goto(f"{served.url}/desk/contacts?sort=full_name")
        if javascript:
            page.evaluate("window.__notReloaded = true")
        page.get_by_role("link", name="下一页").click()
        page.get_by_role("link", name="第一页").wait_for()
        assert page.get_by_role("link", name="客户54").is_visible()
        if javascript:
            assert marker_survives(page)
            assert "cursor=" in page.url  # the address follows the page shown
        context.close()
