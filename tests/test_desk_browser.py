"""The desk in a real browser: Debian's headless Chromium (installed by `.ci/prepare tests`,
which the test sessions run), driven by Playwright through its executable path, against the
real app served by uvicorn on a loopback port. Few tests, each walking what a sales rep does;
the HTTP-level behaviour is covered in tests/test_desk_pages.py and tests/test_desk_sign_in.py.

``CRMKIT_DESK_SCREENSHOTS=DIR`` saves screenshots of the main pages there (the docs' images
are made this way)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_api
import pytest
import uvicorn
from desk_support import PASSWORD

import crmkit
from crmkit.api import create_app

CHROMIUM = os.environ.get("CRMKIT_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("CRMKIT_DESK_SCREENSHOTS")

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason=f"no Chromium at {CHROMIUM} (`bash .ci/prepare tests` installs Debian's chromium)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Served:
    """The app of a CRM served by uvicorn in a thread, on a loopback port."""

    def __init__(self, crm: crmkit.CRM) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(crm), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the desk did not start serving within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium package")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def sign_in(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/desk")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{url}/desk")


def shoot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"desk-{name}.png"), full_page=True)


def build(crm: crmkit.CRM) -> dict[str, Any]:
    crm.users.create_team("华东")
    crm.users.create_team("华南")
    li_na = crm.users.create("li.na", team="华东", display_name="李娜")
    chen = crm.users.create("chen.jie", team="华南", display_name="陈杰")
    for user in ("li.na", "chen.jie"):
        crm.sign_in.set_password(user, PASSWORD)
    account = crm.accounts.create({"name": "上海星辰贸易有限公司", "city": "上海"}, actor=li_na)
    contact = crm.contacts.create(
        {
            "full_name": "欧阳娜娜",
            "phone": "13800138000",
            "account_id": account.id,
            "title": "采购经理",
            "city": "上海",
        },
        actor=li_na,
    )
    crm.contacts.create({"full_name": "王小明", "phone": "13900139000"}, actor=li_na)
    other = crm.contacts.create({"full_name": "张敏"}, actor=chen)
    deal = crm.deals.create(
        {"name": "年度采购框架协议", "amount": "260000", "account_id": account.id}, actor=li_na
    )
    crm.tasks.create({"title": "给欧阳总回电话"}, actor=li_na)
    pooled = crm.leads.create({"full_name": "公海线索刘洋", "company_name": "杭州云帆科技"})
    crm.leads.update(pooled.id, {"owner_id": None, "team_id": None})
    return {"contact": contact, "other": other, "deal": deal, "pooled": pooled, "li_na": li_na}


def test_a_rep_works_through_the_desk(browser: Any, crm: crmkit.CRM, tmp_path: Path) -> None:
    """Sign in, search a Chinese name, open the contact, log a visit, move a deal, claim
    from the pool, and find another team's record closed by URL."""
    world = build(crm)
    with Served(crm) as served:
        page = browser.new_page(locale="zh-CN")
        page.goto(f"{served.url}/desk/sign-in")
        shoot(page, "sign-in")
        sign_in(page, served.url, "li.na")
        assert page.get_by_role("heading", name="我的一天").is_visible()
        assert page.get_by_text("给欧阳总回电话").is_visible()
        shoot(page, "my-day")

        page.get_by_role("link", name="联系人").first.click()
        page.get_by_label("搜索").fill("欧阳")
        page.get_by_role("button", name="显示").click()
        assert page.get_by_role("link", name="欧阳娜娜").is_visible()
        assert page.get_by_text("王小明").count() == 0
        shoot(page, "contacts")

        page.get_by_role("link", name="欧阳娜娜").click()
        page.get_by_label("备注（可不填）").fill("上门拜访，客户要报价单")
        page.locator("#log-visit").click()
        assert page.get_by_role("status").inner_text() == "已记录。"
        assert page.get_by_text("上门拜访，客户要报价单").first.is_visible()
        shoot(page, "contact")
        (visit,) = crm.activities.list().items
        assert (visit.kind, visit.contact_id) == ("visit", world["contact"].id)

        page.get_by_role("link", name="销售管道").click()
        stages = crm.pipelines.stages(world["deal"].pipeline_id)
        card = page.locator(f"#deal-{world['deal'].id}")
        card.get_by_label("移到阶段").select_option(str(stages[2].id))
        card.get_by_role("button", name="移动").click()
        assert page.get_by_role("status").inner_text() == "商机已移动。"
        assert page.locator(f"[data-stage='{stages[2].id}'] #deal-{world['deal'].id}").count() == 1
        shoot(page, "board")
        assert crm.deals.get(world["deal"].id).stage_id == stages[2].id

        page.get_by_role("link", name="公海").click()
        shoot(page, "pool")
        page.get_by_label("领取 公海线索刘洋").check()
        page.get_by_role("button", name="领取勾选的记录").click()
        assert "已领取" in page.get_by_role("status").inner_text()
        assert crm.leads.get(world["pooled"].id).owner_id == world["li_na"].id

        page.goto(f"{served.url}/desk/contacts/{world['other'].id}")
        assert page.get_by_role("alert").is_visible()
        assert page.get_by_text("张敏").count() == 0

        page.goto(f"{served.url}/desk")  # another team's record is not in a search either
        page.get_by_role("link", name="联系人").first.click()
        page.get_by_label("搜索").fill("张敏")
        page.get_by_role("button", name="显示").click()
        assert page.get_by_text("没有找到记录。").is_visible()
        assert page.locator("table tbody tr").count() == 0
        assert page.get_by_text("张敏").count() == 0
        assert page.get_by_label("搜索").input_value() == "张敏"  # the search did run
        page.close()


def test_a_plugins_panel_button_entry_and_tile_show_only_while_it_is_enabled(
    browser: Any, make_crm: Any
) -> None:
    import crmkit_referrals

    with_plugin = make_crm(plugins={"referrals": crmkit_referrals})
    with_plugin.pipelines.create("Sales")
    world = build(with_plugin)
    friend = with_plugin.contacts.create({"full_name": "黄晓明"}, actor=world["li_na"])
    with_plugin.records("referral").create(
        {
            "referrer_contact_id": world["contact"].id,
            "referred_contact_id": friend.id,
            "channel": "wechat",
            "owner_id": world["li_na"].id,
        }
    )
    with_plugin.roles.grant("sales_rep", "referral:read")
    without_plugin = make_crm()  # the same database, the plugin not enabled
    path = f"/desk/contacts/{world['contact'].id}"
    with Served(with_plugin) as served:
        page = browser.new_page(locale="zh-CN")
        sign_in(page, served.url, "li.na")
        page.goto(served.url + path)
        panel = page.locator("section[data-plugin='referrals']")
        assert panel.get_by_role("heading", name="转介绍").is_visible()  # in her language
        assert panel.get_by_role("link", name="黄晓明").is_visible()
        assert page.get_by_role("link", name="转介绍").is_visible()  # its page, in the menu
        page.get_by_role("button", name="发放推荐码").click()  # its action button
        assert "发放推荐码" in page.get_by_role("status").inner_text()  # in the user's language
        code = with_plugin.contacts.get(world["contact"].id).referral_code
        assert panel.get_by_text(code).is_visible()
        shoot(page, "plugin-contact")
        page.goto(served.url + "/desk")
        tile = page.get_by_role("region", name="近 30 天的转介绍")  # its "my day" tile
        assert tile.get_by_role("link", name="1").is_visible()
        shoot(page, "plugin-tile")
        page.close()
    with Served(without_plugin) as served:
        page = browser.new_page(locale="zh-CN")
        sign_in(page, served.url, "li.na")
        assert page.get_by_role("region", name="近 30 天的转介绍").count() == 0
        page.goto(served.url + path)
        assert page.get_by_role("heading", name="欧阳娜娜").is_visible()
        assert page.locator("section[data-plugin='referrals']").count() == 0
        assert page.get_by_role("link", name="转介绍").count() == 0
        assert page.get_by_role("button", name="发放推荐码").count() == 0
        page.close()
