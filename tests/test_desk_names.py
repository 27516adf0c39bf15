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
