"""The desk's pages through HTTP: lists and record pages scoped by the same services as the
API, hidden fields never rendered, HTML escaped, edit with a stale-version message, create,
log a call, move a deal, claim from the pool, and bad input answered with a clear page."""

from __future__ import annotations

from desk_support import DeskWorld

import crmkit


def as_user(desk: DeskWorld, username: str) -> crmkit.User:
    return desk.crm.users.get(username)


def test_a_list_shows_only_the_reps_own_records(desk: DeskWorld) -> None:
    desk.crm.contacts.create({"full_name": "张伟"}, actor=as_user(desk, "li.na"))
    desk.crm.contacts.create({"full_name": "张敏"}, actor=as_user(desk, "chen.jie"))
    page = desk.signed_in("li.na").get("/desk/contacts")
    assert page.status_code == 200
    assert "张伟" in page.text
    assert "张敏" not in page.text


def test_search_finds_a_chinese_name(desk: DeskWorld) -> None:
    li_na = as_user(desk, "li.na")
    desk.crm.contacts.create({"full_name": "欧阳娜娜"}, actor=li_na)
    desk.crm.contacts.create({"full_name": "王小明"}, actor=li_na)
    page = desk.signed_in("li.na").get("/desk/contacts", params={"q": "欧阳"})
    assert "欧阳娜娜" in page.text
    assert "王小明" not in page.text


def test_a_record_of_another_team_is_not_found_by_url(desk: DeskWorld) -> None:
    other = desk.crm.contacts.create({"full_name": "张敏"}, actor=as_user(desk, "chen.jie"))
    browser = desk.signed_in("li.na")
    for path in (f"/desk/contacts/{other.id}", f"/desk/contacts/{other.id}/edit"):
        page = browser.get(path)
        assert page.status_code == 404
        assert "张敏" not in page.text
    posted = browser.post(f"/desk/contacts/{other.id}/log", {"kind": "call"})
    assert posted.status_code == 404
    assert desk.crm.activities.count() == 0


def test_keyset_pages_walk_the_whole_list_once(desk: DeskWorld) -> None:
    li_na = as_user(desk, "li.na")
    desk.crm.contacts.create_many(
        [(n, {"full_name": f"客户{n:03d}"}) for n in range(120)], actor=li_na
    )
    browser = desk.signed_in("li.na")
    seen: list[str] = []
    path = "/desk/contacts?sort=full_name"
    while path:
        page = browser.get(path)
        seen += [name for name in (f"客户{n:03d}" for n in range(120)) if f">{name}<" in page.text]
        marker = 'rel="next" href="'
        path = ""
        if marker in page.text:
            path = "/desk/contacts" + page.text.split(marker)[1].split('"')[0].replace("&amp;", "&")
    assert sorted(seen) == [f"客户{n:03d}" for n in range(120)]
    assert len(seen) == 120


def test_a_hidden_field_is_never_rendered(desk: DeskWorld) -> None:
    desk.crm.roles.set_field_rule("sales_rep", "contact", "phone", "hidden")
    li_na = as_user(desk, "li.na")
    contact = desk.crm.contacts.create(
        {
            "full_name": "赵丽",
            "phone": "13912345678",
            "owner_id": li_na.id,
            "team_id": li_na.team_id,
        }
    )
    browser = desk.signed_in("li.na")
    for path in (
        "/desk/contacts",
        f"/desk/contacts/{contact.id}",
        f"/desk/contacts/{contact.id}/edit",
    ):
        page = browser.get(path)
        assert page.status_code == 200
        assert "13912345678" not in page.text
        assert "+86" not in page.text
    filtered = browser.get("/desk/contacts", params={"field": "phone", "value": "13912345678"})
    assert "赵丽" not in filtered.text


def test_html_in_a_field_is_escaped_everywhere(desk: DeskWorld) -> None:
    script = "<script>alert('x')</script>"
    contact = desk.crm.contacts.create({"full_name": f"张{script}"}, actor=as_user(desk, "li.na"))
    desk.crm.activities.create(
        {"kind": "note", "subject": script, "body": script, "contact_id": contact.id},
        actor=as_user(desk, "li.na"),
    )
    browser = desk.signed_in("li.na")
    for path in (
        "/desk/contacts",
        f"/desk/contacts/{contact.id}",
        f"/desk/contacts/{contact.id}/edit",
    ):
        page = browser.get(path)
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;" in page.text


def test_editing_saves_through_the_service(desk: DeskWorld) -> None:
    contact = desk.crm.contacts.create({"full_name": "孙悦"}, actor=as_user(desk, "li.na"))
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}/edit")
    page = browser.post(
        f"/desk/contacts/{contact.id}/edit",
        {"version": "1", "full_name": "孙悦", "title": "采购经理", "city": "杭州"},
    )
    assert page.status_code == 200
    saved = desk.crm.contacts.get(contact.id)
    assert (saved.title, saved.city, saved.version) == ("采购经理", "杭州", 2)


def test_a_stale_version_says_someone_else_changed_it(desk: DeskWorld) -> None:
    li_na = as_user(desk, "li.na")
    contact = desk.crm.contacts.create({"full_name": "孙悦"}, actor=li_na)
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}/edit")
    desk.crm.contacts.update(contact.id, {"title": "总监"}, actor=li_na)  # someone else
    page = browser.post(
        f"/desk/contacts/{contact.id}/edit", {"version": "1", "full_name": "孙悦", "city": "杭州"}
    )
    assert page.status_code == 409
    assert "Someone else changed this record" in page.text or "别人" in page.text
    assert 'value="杭州"' in page.text  # what the user typed is kept
    saved = desk.crm.contacts.get(contact.id)
    assert (saved.title, saved.city) == ("总监", None)


def test_an_invalid_value_is_named_and_nothing_is_saved(desk: DeskWorld) -> None:
    contact = desk.crm.contacts.create({"full_name": "孙悦"}, actor=as_user(desk, "li.na"))
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}/edit")
    page = browser.post(
        f"/desk/contacts/{contact.id}/edit",
        {"version": "1", "full_name": "孙悦", "email": "not an e-mail", "birthday": "2月30日"},
    )
    assert page.status_code == 422
    assert 'id="e-email"' in page.text
    assert desk.crm.contacts.get(contact.id).version == 1


def test_creating_a_lead_from_the_form(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    browser.get("/desk/leads/new")
    page = browser.post(
        "/desk/leads/new",
        {"full_name": "黄晓明", "company_name": "深圳市腾飞科技有限公司", "phone": "138 0013 8000"},
    )
    assert page.status_code == 200
    (lead,) = desk.crm.leads.list().items
    assert (lead.full_name, lead.phone, lead.owner_id) == (
        "黄晓明",
        "+8613800138000",
        as_user(desk, "li.na").id,
    )
    assert str(page.url).endswith(f"/desk/leads/{lead.id}?notice=created")


def test_creating_without_a_required_field_names_it(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    browser.get("/desk/contacts/new")
    page = browser.post("/desk/contacts/new", {"full_name": "  ", "phone": "12"})
    assert page.status_code == 422
    assert 'id="e-full_name"' in page.text
    assert desk.crm.contacts.count() == 0


def test_logging_a_call_is_one_click_on_the_record_page(desk: DeskWorld) -> None:
    contact = desk.crm.contacts.create({"full_name": "刘洋"}, actor=as_user(desk, "li.na"))
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    page = browser.post(f"/desk/contacts/{contact.id}/log", {"kind": "call", "notes": ""})
    assert page.status_code == 200
    (activity,) = desk.crm.activities.list().items
    assert (activity.kind, activity.contact_id) == ("call", contact.id)
    assert activity.subject in page.text  # on the timeline


def test_a_visit_with_notes_goes_on_the_timeline(desk: DeskWorld) -> None:
    contact = desk.crm.contacts.create({"full_name": "刘洋"}, actor=as_user(desk, "li.na"))
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    page = browser.post(
        f"/desk/contacts/{contact.id}/log", {"kind": "visit", "notes": "上门拜访，客户要报价单"}
    )
    assert "上门拜访，客户要报价单" in page.text
    assert desk.crm.activities.list().items[0].kind == "visit"


def test_an_unknown_activity_kind_is_refused(desk: DeskWorld) -> None:
    contact = desk.crm.contacts.create({"full_name": "刘洋"}, actor=as_user(desk, "li.na"))
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    page = browser.post(f"/desk/contacts/{contact.id}/log", {"kind": "<b>fax</b>"})
    assert page.status_code == 400
    assert desk.crm.activities.count() == 0


def test_moving_a_deal_on_the_board(desk: DeskWorld) -> None:
    li_na = as_user(desk, "li.na")
    deal = desk.crm.deals.create({"name": "年度框架协议", "amount": "120000"}, actor=li_na)
    stages = desk.crm.pipelines.stages(deal.pipeline_id)
    browser = desk.signed_in("li.na")
    board = browser.get("/desk/board")
    assert "年度框架协议" in board.text
    page = browser.post(
        f"/desk/deals/{deal.id}/move",
        {"stage_id": str(stages[2].id), "version": "1", "back": "board"},
    )
    assert page.status_code == 200
    assert desk.crm.deals.get(deal.id).stage_id == stages[2].id


def test_moving_a_deal_someone_else_moved_says_so(desk: DeskWorld) -> None:
    li_na = as_user(desk, "li.na")
    deal = desk.crm.deals.create({"name": "年度框架协议"}, actor=li_na)
    stages = desk.crm.pipelines.stages(deal.pipeline_id)
    browser = desk.signed_in("li.na")
    browser.get("/desk/board")
    desk.crm.deals.move_to_stage(deal.id, stages[1].id, actor=li_na)
    page = browser.post(
        f"/desk/deals/{deal.id}/move", {"stage_id": str(stages[2].id), "version": "1"}
    )
    assert page.status_code == 409
    assert desk.crm.deals.get(deal.id).stage_id == stages[1].id


def test_claiming_from_the_shared_pool(desk: DeskWorld) -> None:
    lead = desk.crm.leads.create({"full_name": "无主线索"})
    desk.crm.leads.update(lead.id, {"owner_id": None, "team_id": None})
    browser = desk.signed_in("li.na")
    pool = browser.get("/desk/pool?entity=lead")
    assert "无主线索" in pool.text
    page = browser.post("/desk/pool/claim", {"entity": "lead", "record_id": str(lead.id)})
    assert page.status_code == 200
    assert desk.crm.leads.get(lead.id).owner_id == as_user(desk, "li.na").id


def test_claiming_a_record_someone_owns_changes_nothing(desk: DeskWorld) -> None:
    lead = desk.crm.leads.create({"full_name": "有主线索"}, actor=as_user(desk, "chen.jie"))
    browser = desk.signed_in("li.na")
    browser.get("/desk/pool?entity=lead")
    page = browser.post("/desk/pool/claim", {"entity": "lead", "record_id": str(lead.id)})
    # li.na may not see chen.jie's lead: the page says what it says of any record she may
    # not see, not that it exists or whose it is
    assert page.status_code == 404
    assert "此页面或记录不存在，或您无权查看。" in page.text
    assert "chen.jie" not in page.text
    assert "陈杰" not in page.text
    assert desk.crm.leads.get(lead.id).owner_id == as_user(desk, "chen.jie").id


def test_claiming_a_record_a_teammate_owns_names_the_owner(desk: DeskWorld) -> None:
    desk.user("wang.fang", team="华东", roles=["manager"])
    lead = desk.crm.leads.create({"full_name": "有主线索"}, actor=as_user(desk, "li.na"))
    browser = desk.signed_in("wang.fang")
    browser.get("/desk/pool?entity=lead")
    page = browser.post("/desk/pool/claim", {"entity": "lead", "record_id": str(lead.id)})
    assert page.status_code == 409
    assert f"lead {lead.id} is not in the pool: li.na owns it" in page.text
    assert desk.crm.leads.get(lead.id).owner_id == as_user(desk, "li.na").id


def test_my_day_lists_my_open_tasks_and_new_leads(desk: DeskWorld) -> None:
    li_na = as_user(desk, "li.na")
    desk.crm.tasks.create({"title": "给张总回电话"}, actor=li_na)
    desk.crm.leads.create({"full_name": "新线索王"}, actor=li_na)
    desk.crm.tasks.create({"title": "别人的任务"}, actor=as_user(desk, "chen.jie"))
    page = desk.signed_in("li.na").get("/desk")
    assert "给张总回电话" in page.text
    assert "新线索王" in page.text
    assert "别人的任务" not in page.text


def releasing_section(html: str) -> str:
    """The "about to go back to the shared pool" part of "my day"."""
    return html.split("<h2>即将退回公海</h2>", 1)[1].split("</section>", 1)[0]


def test_my_day_warns_of_my_records_a_release_policy_takes_back_soon(desk: DeskWorld) -> None:
    crm = desk.crm
    li_na, chen = as_user(desk, "li.na"), as_user(desk, "chen.jie")
    crm.pool.add_policy("lead", "新线索一天", 1)  # released a day after creation
    crm.pool.add_policy("account", "客户三十天", 30)
    due = crm.leads.create({"full_name": "王芳"}, actor=li_na)
    crm.accounts.create({"name": "星辰贸易"}, actor=li_na)  # not due for 30 days
    theirs = crm.leads.create({"full_name": "张敏"}, actor=chen)  # due, but chen.jie's

    mine = releasing_section(desk.signed_in("li.na").get("/desk").text)
    assert f'<a href="/desk/leads/{due.id}">王芳</a>' in mine
    assert "新线索一天 (1 天未跟进)" in mine
    assert "星辰贸易" not in mine
    assert "张敏" not in mine

    their_day = releasing_section(desk.signed_in("chen.jie").get("/desk").text)
    assert f'<a href="/desk/leads/{theirs.id}">张敏</a>' in their_day
    assert "王芳" not in their_day


def test_my_day_says_when_nothing_is_about_to_be_released(desk: DeskWorld) -> None:
    desk.crm.pool.add_policy("account", "客户三十天", 30)
    desk.crm.accounts.create({"name": "星辰贸易"}, actor=as_user(desk, "li.na"))
    mine = releasing_section(desk.signed_in("li.na").get("/desk").text)
    assert "没有即将退回公海的记录。" in mine
    assert "星辰贸易" not in mine


def test_the_ui_speaks_chinese_or_english_per_user(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    assert "我的一天" in browser.get("/desk").text
    browser.post("/desk/language", {"locale": "en", "next": "/desk"})
    assert "My day" in browser.get("/desk").text
    other = desk.signed_in("chen.jie")
    assert "我的一天" in other.get("/desk").text


def test_a_body_larger_than_allowed_is_refused_with_a_page(desk: DeskWorld) -> None:
    contact = desk.crm.contacts.create({"full_name": "刘洋"}, actor=as_user(desk, "li.na"))
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    page = browser.post(
        f"/desk/contacts/{contact.id}/log", {"kind": "call", "notes": "长" * 2_000_000}
    )
    assert page.status_code == 413
    assert "text/html" in page.headers["content-type"]
    assert desk.crm.activities.count() == 0


def test_an_unknown_desk_path_is_a_page_not_json(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    for path in ("/desk/nothing-here", "/desk/contacts/abc", "/desk/contacts/99999"):
        page = browser.get(path)
        assert page.status_code == 404
        assert "text/html" in page.headers["content-type"]


def test_the_api_still_answers_problem_json(desk: DeskWorld) -> None:
    response = desk.browser().client.get("/contacts")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_fixed_value_is_shown_in_the_users_language(desk: DeskWorld) -> None:
    """A field with fixed values (a lead's status, a contact's lifecycle stage) shows the
    value in the UI's language, on list and record pages; the stored value is unchanged."""
    li_na = as_user(desk, "li.na")
    contact = desk.crm.contacts.create(
        {"full_name": "张伟", "lifecycle_stage": "repeat_buyer"}, actor=li_na
    )
    lead = desk.crm.leads.create({"full_name": "刘洋", "status": "working"}, actor=li_na)
    browser = desk.signed_in("li.na")
    record = browser.get(f"/desk/contacts/{contact.id}").text
    assert "<dd>复购客户</dd>" in record
    assert "<dd>repeat_buyer</dd>" not in record
    leads = browser.get("/desk/leads").text
    assert "<td>跟进中</td>" in leads
    assert ">working<" not in leads
    assert desk.crm.leads.get(lead.id)["status"] == "working"
    desk.crm.sign_in.set_locale(li_na, "en")
    assert "<dd>repeat_buyer</dd>" in browser.get(f"/desk/contacts/{contact.id}").text
