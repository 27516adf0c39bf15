"""Service tickets through their faces: Python, the REST API, the CLI and the desk panel."""

from __future__ import annotations

import datetime as dt

import pytest
from crmkit_tickets import crmkit_desk_record_panels

import crmkit
from crmkit.testing import ApiClient, CommandLine, assert_problem


def contact_of(crm: crmkit.CRM, owner: str | None = None, name: str = "王芳") -> int:
    actor = crm.users.get(owner) if owner else None
    return int(crm.contacts.create({"full_name": name}, actor=actor).id)


# -- Python ------------------------------------------------------------------------------------


def test_a_ticket_is_stored_with_its_contact_and_due_time(crm: crmkit.CRM) -> None:
    contact = contact_of(crm)
    ticket = crm.records("ticket").create(
        {"contact_id": contact, "subject": "打印机卡纸", "due_at": "2026-12-24T18:00+08:00"}
    )
    stored = crm.records("ticket").get(ticket.id)
    assert (stored.contact_id, stored.status, stored.priority) == (contact, "open", "normal")
    assert stored.due_at == dt.datetime(2026, 12, 24, 10, 0, tzinfo=dt.UTC)


def test_a_ticket_needs_a_contact_and_a_subject(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.records("ticket").create({"priority": "urgent"})
    assert {e.field for e in error.value.errors} >= {"contact_id", "subject"}


def test_a_contact_may_have_only_so_many_open_tickets(crm: crmkit.CRM) -> None:
    contact = contact_of(crm)
    tickets = crm.records("ticket")
    first = tickets.create({"contact_id": contact, "subject": "一"})
    tickets.create({"contact_id": contact, "subject": "二", "status": "waiting"})
    with pytest.raises(crmkit.PluginError, match="already has 2 open tickets"):
        tickets.create({"contact_id": contact, "subject": "三"})
    assert tickets.count({"contact_id": contact}) == 2
    tickets.update(first.id, {"status": "closed"})
    tickets.create({"contact_id": contact, "subject": "三"})


def test_the_limit_counts_tickets_the_writer_did_not_write(crm: crmkit.CRM) -> None:
    crm.users.create("li.na", roles=["sales_rep"])
    crm.users.create("wang.fang", roles=["sales_rep"])
    contact = contact_of(crm, "li.na")
    for subject in ("一", "二"):
        crm.records("ticket").create({"contact_id": contact, "subject": subject})
    crm.contacts.update(contact, {"owner_id": crm.users.get("wang.fang").id})
    with pytest.raises(crmkit.PluginError, match="already has 2 open tickets"):
        crm.records("ticket").create(
            {"contact_id": contact, "subject": "三"}, actor=crm.users.get("wang.fang")
        )


def test_a_serial_number_matches_in_any_letter_case(crm: crmkit.CRM) -> None:
    contact = contact_of(crm)
    crm.records("ticket").create({"contact_id": contact, "subject": "x", "serial_no": "SN-7a"})
    assert crm.records("ticket").count({"serial_no": "sn-7A"}) == 1


def test_a_ticket_is_seen_exactly_as_its_contact_is(crm: crmkit.CRM) -> None:
    crm.users.create("li.na", roles=["sales_rep"])
    crm.users.create("zhou.jie", roles=["sales_rep"])
    mine = crm.records("ticket").create({"contact_id": contact_of(crm, "li.na"), "subject": "x"})
    tickets = crm.records("ticket")
    assert tickets.get(mine.id, actor=crm.users.get("li.na")).id == mine.id
    with pytest.raises(crmkit.NotFoundError):
        tickets.get(mine.id, actor=crm.users.get("zhou.jie"))
    assert tickets.count(actor=crm.users.get("zhou.jie")) == 0


def test_an_urgent_ticket_gives_the_contacts_owner_a_task(crm: crmkit.CRM) -> None:
    crm.users.create("li.na", roles=["sales_rep"])
    contact = contact_of(crm, "li.na")
    ticket = crm.records("ticket").create(
        {"contact_id": contact, "subject": "停机", "priority": "urgent"}
    )
    crm.records("ticket").create({"contact_id": contact, "subject": "咨询"})
    (task,) = crm.tasks.list().items
    assert task.title == f"Urgent ticket #{ticket.id}: 停机"
    assert (task.owner_id, task.contact_id) == (crm.users.get("li.na").id, contact)


def test_a_refused_ticket_gives_no_task(crm: crmkit.CRM) -> None:
    contact = contact_of(crm)
    with pytest.raises(crmkit.ValidationError):
        crm.records("ticket").create({"contact_id": contact, "priority": "urgent"})
    assert crm.tasks.count() == 0


# -- REST API ----------------------------------------------------------------------------------


def test_the_summary_counts_only_what_the_caller_may_see(crm_api: ApiClient) -> None:
    crm = crm_api.crm
    crm_api.user("li.na", roles=["sales_rep"])
    crm_api.user("zhou.jie", roles=["sales_rep"])
    contact = contact_of(crm, "li.na")
    crm.records("ticket").create({"contact_id": contact, "subject": "一"})
    crm.records("ticket").create({"contact_id": contact, "subject": "二", "status": "closed"})

    expected = {"open": 1, "waiting": 0, "closed": 1}
    assert crm_api.as_user("li.na").get("/plugins/tickets/summary").json() == expected
    nothing = {"open": 0, "waiting": 0, "closed": 0}
    assert crm_api.as_user("zhou.jie").get("/plugins/tickets/summary").json() == nothing


def test_another_reps_ticket_is_a_plain_404(crm_api: ApiClient) -> None:
    crm = crm_api.crm
    crm_api.user("li.na", roles=["sales_rep"])
    crm_api.user("zhou.jie", roles=["sales_rep"])
    ticket = crm.records("ticket").create({"contact_id": contact_of(crm, "li.na"), "subject": "x"})
    theirs = crm_api.as_user("zhou.jie").get(f"/tickets/{ticket.id}")
    missing = crm_api.as_user("zhou.jie").get("/tickets/999999")
    assert assert_problem(theirs, 404)["title"] == assert_problem(missing, 404)["title"]
    assert crm_api.as_user("li.na").get(f"/tickets/{ticket.id}").json()["subject"] == "x"


def test_the_api_refuses_a_ticket_over_the_limit_with_a_problem(crm_api: ApiClient) -> None:
    contact = contact_of(crm_api.crm)
    admin = crm_api.as_user("admin")
    for subject in ("一", "二"):
        assert admin.post("/tickets", json={"contact_id": contact, "subject": subject}).is_success
    refused = admin.post("/tickets", json={"contact_id": contact, "subject": "三"})
    assert "already has 2 open tickets" in assert_problem(refused, 400)["detail"]


# -- CLI ---------------------------------------------------------------------------------------


def test_open_list_and_close_from_the_command_line(crm_cli: CommandLine, crm: crmkit.CRM) -> None:
    contact = contact_of(crm)
    assert crm_cli.ok("tickets", "open", str(contact), "打印机卡纸", "--serial", "SN-1") == (
        f"Opened ticket 1 for contact {contact}: 打印机卡纸\n"
    )
    assert "打印机卡纸" in crm_cli.ok("tickets", "list", "--serial", "sn-1")
    assert crm_cli.ok("tickets", "close", "1") == "Closed ticket 1: 打印机卡纸\n"
    assert crm_cli.ok("tickets", "list", "--status", "open") == "No tickets.\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("open", "999", "x"), "contact 999 does not exist"),
        (("open", "1", "x", "--due", "tomorrow"), "due_at"),
        (("close", "42"), "ticket 42 not found"),
    ],
)
def test_mistakes_are_one_line_errors(
    crm_cli: CommandLine, crm: crmkit.CRM, arguments: tuple[str, ...], message: str
) -> None:
    contact_of(crm)
    error = crm_cli.fails("tickets", *arguments)
    assert message in error
    assert "\n" not in error.strip()


# -- desk --------------------------------------------------------------------------------------


def test_the_contact_page_panel_lists_the_open_tickets(crm: crmkit.CRM) -> None:
    crm.users.create("li.na", roles=["sales_rep"])
    li_na = crm.users.get("li.na")
    contact = contact_of(crm, "li.na")
    crm.records("ticket").create({"contact_id": contact, "subject": "开着"})
    crm.records("ticket").create({"contact_id": contact, "subject": "关了", "status": "closed"})
    (panel,) = crmkit_desk_record_panels(crm, "contact", {"id": contact}, li_na)
    assert [row[1] for row in panel.cells] == ["开着"]
    assert crmkit_desk_record_panels(crm, "deal", {"id": 1}, li_na) == []
