"""Owners and teams on desk pages are shown by name, looked up for the whole page at once,
and only where the record's owner or team is a field the viewer may see."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from desk_support import DeskWorld
from sqlalchemy import event

import crmkit


@contextmanager
def counting_statements(crm: crmkit.CRM) -> Iterator[list[int]]:
    """How many SQL statements ``crm``'s engine ran in the block (``[count]``)."""
    ran = [0]

    def count(*_args: object) -> None:
        ran[0] += 1

    event.listen(crm.engine, "before_cursor_execute", count)
    try:
        yield ran
    finally:
        event.remove(crm.engine, "before_cursor_execute", count)


def test_the_list_shows_the_owner_by_name(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    desk.crm.contacts.create({"full_name": "张伟"}, actor=li)
    page = desk.signed_in("li.na").get("/desk/contacts")
    row = page.text.split("张伟", 1)[1].split("</tr>", 1)[0]
    assert "<td>李娜</td>" in row


def test_the_record_page_shows_owner_and_team_by_name(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    contact = desk.crm.contacts.create({"full_name": "张伟"}, actor=li)
    page = desk.signed_in("li.na").get(f"/desk/contacts/{contact.id}")
    details = page.text.split('class="fields"', 1)[1].split("</dl>", 1)[0]
    assert "<dt>负责人</dt><dd>李娜</dd>" in details
    assert "<dt>团队</dt><dd>华东</dd>" in details


def test_the_record_page_names_who_created_and_last_changed_it(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    contact = desk.crm.contacts.create({"full_name": "张伟"}, actor=li)
    desk.crm.contacts.update(contact.id, {"city": "上海"}, actor=desk.crm.users.get("admin"))
    page = desk.signed_in("li.na").get(f"/desk/contacts/{contact.id}")
    details = page.text.split('class="fields"', 1)[1].split("</dl>", 1)[0]
    assert "<dt>创建人</dt><dd>李娜</dd>" in details
    assert "<dt>更新人</dt><dd>管理员</dd>" in details


def test_a_reference_is_labelled_with_the_records_name_when_readable(desk: DeskWorld) -> None:
    li, chen = desk.crm.users.get("li.na"), desk.crm.users.get("chen.jie")
    mine = desk.crm.accounts.create({"name": "星辰贸易"}, actor=li)
    theirs = desk.crm.accounts.create({"name": "南方实业"}, actor=chen)
    first = desk.crm.contacts.create({"full_name": "张伟", "account_id": mine.id}, actor=li)
    second = desk.crm.contacts.create({"full_name": "王芳"}, actor=li)
    desk.crm.contacts.update(second.id, {"account_id": theirs.id})
    browser = desk.signed_in("li.na")
    page = browser.get(f"/desk/contacts/{first.id}").text
    assert f'<a href="/desk/accounts/{mine.id}">星辰贸易</a>' in page
    other = browser.get(f"/desk/contacts/{second.id}").text
    assert f'<a href="/desk/accounts/{theirs.id}">#{theirs.id}</a>' in other
    assert "南方实业" not in other


def test_a_hidden_owner_field_hides_the_owners_name(desk: DeskWorld) -> None:
    desk.crm.roles.set_field_rule("sales_rep", "contact", "owner_id", "hidden")
    desk.crm.roles.set_field_rule("sales_rep", "contact", "team_id", "hidden")
    admin = desk.crm.users.get("admin")
    li = desk.crm.users.get("li.na")
    desk.crm.users.create("zhou.min", team="华东", display_name="周敏")
    contact = desk.crm.contacts.create(
        {"full_name": "张伟", "owner_id": li.id, "team_id": li.team_id}, actor=admin
    )
    browser = desk.signed_in("li.na")
    for path in ("/desk/contacts", f"/desk/contacts/{contact.id}"):
        page = browser.get(path)
        assert page.status_code == 200
        body = page.text.split('id="main"', 1)[1]
        assert "李娜" not in body
        assert "华东" not in body


def test_names_cost_one_statement_whatever_the_page_size(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    desk.crm.contacts.create({"full_name": "第一位"}, actor=li)
    browser = desk.signed_in("li.na")
    browser.get("/desk/contacts")
    with counting_statements(desk.crm) as one_row:
        browser.get("/desk/contacts")
    for number in range(30):
        desk.crm.contacts.create({"full_name": f"客户{number}"}, actor=li)
    with counting_statements(desk.crm) as many_rows:
        page = browser.get("/desk/contacts")
    assert page.text.count("<td>李娜</td>") == 31
    assert many_rows[0] == one_row[0]
