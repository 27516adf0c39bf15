"""The desk's session is checked inside the first operation of each page (as the API's token
is): one transaction per page, and a session ended anywhere (another server process too)
stops the very next page, before it reads or writes anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from desk_support import DeskWorld
from sqlalchemy import delete, event

import crmkit
from crmkit.permissions.passwords import DeskSession


@contextmanager
def counting_transactions(crm: crmkit.CRM) -> Iterator[list[int]]:
    """How many transactions ``crm``'s engine began in the block (``[count]``)."""
    began = [0]

    def count(_connection: object) -> None:
        began[0] += 1

    event.listen(crm.engine, "begin", count)
    try:
        yield began
    finally:
        event.remove(crm.engine, "begin", count)


def another_process(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A second CRM on the same database: what another server process would do."""
    return make_crm()


def test_a_list_page_is_one_transaction(desk: DeskWorld) -> None:
    li = desk.crm.users.get("li.na")
    desk.crm.contacts.create({"full_name": "王芳"}, actor=li)
    browser = desk.signed_in("li.na")
    browser.get("/desk/contacts")  # this process has now seen the session
    with counting_transactions(desk.crm) as began:
        response = browser.get("/desk/contacts")
    assert response.status_code == 200
    assert "王芳" in response.text
    assert began[0] == 1


def test_a_form_that_reads_nothing_still_checks_the_session(
    desk: DeskWorld, make_crm: Callable[..., crmkit.CRM]
) -> None:
    browser = desk.signed_in("li.na")
    browser.get("/desk/pool")  # this process has now seen the session
    with another_process(make_crm).transaction() as op:  # signed out elsewhere
        op.session.execute(delete(DeskSession))
    # a claim naming nothing to claim reads nothing, but still may not show a page
    response = browser.post("/desk/pool/claim", {"entity": "nothing"}, follow=False)
    assert response.status_code == 303
    assert "/desk/sign-in" in response.headers["location"]


def test_a_session_ended_by_another_process_stops_the_next_page(
    desk: DeskWorld, make_crm: Callable[..., crmkit.CRM]
) -> None:
    browser = desk.signed_in("li.na")
    assert browser.get("/desk/contacts").status_code == 200
    another_process(make_crm).users.deactivate("li.na")
    response = browser.get("/desk/contacts", follow=False)
    assert response.status_code == 303
    assert "/desk/sign-in" in response.headers["location"]


def test_a_form_sent_after_the_session_ended_elsewhere_writes_nothing(
    desk: DeskWorld, make_crm: Callable[..., crmkit.CRM]
) -> None:
    li = desk.crm.users.get("li.na")
    contact = desk.crm.contacts.create({"full_name": "王芳"}, actor=li)
    browser = desk.signed_in("li.na")
    browser.get(f"/desk/contacts/{contact.id}")
    another_process(make_crm).sign_in.set_password("li.na", "a brand new passphrase")
    response = browser.post(
        f"/desk/contacts/{contact.id}/log", {"kind": "call", "notes": "x"}, follow=False
    )
    assert response.status_code == 303
    assert "/desk/sign-in" in response.headers["location"]
    assert desk.crm.activities.count() == 0


def test_a_permission_change_made_elsewhere_applies_to_the_next_page(
    desk: DeskWorld, make_crm: Callable[..., crmkit.CRM]
) -> None:
    chen = desk.crm.users.get("chen.jie")
    desk.crm.contacts.create({"full_name": "华南客户"}, actor=chen)
    browser = desk.signed_in("li.na")
    assert "华南客户" not in browser.get("/desk/contacts").text
    another_process(make_crm).roles.assign("li.na", "admin")
    assert "华南客户" in browser.get("/desk/contacts").text


def test_a_language_chosen_in_this_process_shows_at_once(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    browser.get("/desk")
    response = browser.post("/desk/language", {"locale": "en", "next": "/desk/contacts"})
    assert "Contacts" in response.text
    response = browser.post("/desk/language", {"locale": "zh_CN", "next": "/desk/contacts"})
    assert "联系人" in response.text
