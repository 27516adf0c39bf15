"""Signing in to the desk: passwords, sessions in signed cookies, CSRF, lock-out, the audit
of every attempt, and ``crmkit users set-password``."""

from __future__ import annotations

import datetime as dt

import pytest
from cli_support import Run, failed, ok
from desk_support import PASSWORD, DeskWorld
from sqlalchemy import select, update

import crmkit
from crmkit.permissions.models import AuditEntry
from crmkit.permissions.passwords import DeskAccount, DeskSession


def audit_operations(crm: crmkit.CRM) -> list[str]:
    with crm.transaction(write=False) as op:
        query = select(AuditEntry.operation).where(AuditEntry.operation.like("desk.%"))
        return list(op.session.scalars(query.order_by(AuditEntry.id)))


def test_a_page_without_a_session_sends_the_browser_to_sign_in(desk: DeskWorld) -> None:
    response = desk.browser().get("/desk/contacts?q=张", follow=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/desk/sign-in?next=/desk/contacts")


def test_signing_in_opens_the_page_asked_for(desk: DeskWorld) -> None:
    browser = desk.browser()
    browser.get("/desk/leads")
    response = browser.sign_in("li.na", next="/desk/leads")
    assert response.status_code == 200
    assert str(response.url).endswith("/desk/leads")
    assert "李娜" in response.text


def test_the_session_cookie_is_signed_http_only_and_scoped_to_the_desk(desk: DeskWorld) -> None:
    browser = desk.browser()
    browser.get("/desk/sign-in")
    response = browser.post(
        "/desk/sign-in", {"username": "li.na", "password": PASSWORD}, follow=False
    )
    cookie = response.headers["set-cookie"]
    assert "crmkit_desk=" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/desk" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie


def test_a_wrong_password_says_so_and_is_audited(desk: DeskWorld) -> None:
    response = desk.browser().sign_in("li.na", "not the password")
    assert response.status_code == 401
    assert "wrong user name or password" in response.text or "用户名或密码错误" in response.text
    assert audit_operations(desk.crm)[-1] == "desk.sign_in_failed"


def test_an_unknown_user_name_gets_the_same_answer_as_a_wrong_password(desk: DeskWorld) -> None:
    unknown = desk.browser().sign_in("nobody", "whatever it is")
    wrong = desk.browser().sign_in("li.na", "whatever it is")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.count("wrong user name") == wrong.text.count("wrong user name")


def test_repeated_wrong_passwords_lock_the_user_out(desk: DeskWorld) -> None:
    limit = desk.crm.settings.desk.max_failed_sign_ins
    for _ in range(limit):
        desk.browser().sign_in("li.na", "guessing wrong")
    locked = desk.browser().sign_in("li.na")  # even the right password is refused now
    assert locked.status_code == 401
    assert "locked until" in locked.text
    assert audit_operations(desk.crm)[-1] == "desk.sign_in_locked"


def test_a_lock_out_ends_after_its_time(desk: DeskWorld) -> None:
    for _ in range(desk.crm.settings.desk.max_failed_sign_ins):
        desk.browser().sign_in("li.na", "guessing wrong")
    with desk.crm.transaction() as op:
        op.session.execute(
            update(DeskAccount).values(locked_until=crmkit.utcnow() - dt.timedelta(seconds=1))
        )
    assert desk.browser().sign_in("li.na").status_code == 200


def test_a_successful_sign_in_and_sign_out_are_audited(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    browser.get("/desk")
    response = browser.post("/desk/sign-out", {})
    assert "/desk/sign-in" in str(response.url)
    assert audit_operations(desk.crm)[-2:] == ["desk.sign_in", "desk.sign_out"]


def test_a_signed_out_cookie_no_longer_opens_pages(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    stolen = dict(browser.client.cookies)
    browser.get("/desk")
    browser.post("/desk/sign-out", {})
    thief = desk.browser()
    thief.client.cookies.update(stolen)
    response = thief.get("/desk/contacts", follow=False)
    assert response.status_code == 303
    assert "expired=1" in response.headers["location"]


def test_an_expired_session_asks_to_sign_in_again(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    with desk.crm.transaction() as op:
        op.session.execute(
            update(DeskSession).values(expires_at=crmkit.utcnow() - dt.timedelta(seconds=1))
        )
    response = browser.get("/desk/contacts")
    assert "/desk/sign-in" in str(response.url)
    assert "session has expired" in response.text or "会话已过期" in response.text


def test_a_forged_session_cookie_is_refused(desk: DeskWorld) -> None:
    browser = desk.browser()
    browser.client.cookies.set("crmkit_desk", "made-up-token.signature", path="/desk")
    response = browser.get("/desk", follow=False)
    assert response.status_code == 303
    assert "sign-in" in response.headers["location"]


def test_a_sign_in_form_without_its_csrf_token_is_refused(desk: DeskWorld) -> None:
    browser = desk.browser()
    browser.get("/desk/sign-in")
    response = browser.post(
        "/desk/sign-in",
        {"csrf_token": "forged", "username": "li.na", "password": PASSWORD},
        csrf=False,
    )
    assert response.status_code == 403
    assert "crmkit_desk=" not in response.headers.get("set-cookie", "")


def test_a_form_with_a_forged_csrf_token_changes_nothing(desk: DeskWorld) -> None:
    contact = desk.crm.contacts.create({"full_name": "王芳"}, actor=desk.crm.users.get("li.na"))
    browser = desk.signed_in("li.na")
    response = browser.post(
        f"/desk/contacts/{contact.id}/log",
        {"csrf_token": "forged", "kind": "call"},
        csrf=False,
    )
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert desk.crm.activities.count() == 0


def test_the_next_address_after_sign_in_stays_on_the_desk(desk: DeskWorld) -> None:
    response = desk.browser().sign_in("li.na", next="https://evil.example/steal")
    assert str(response.url).endswith("/desk")


def test_resetting_a_password_ends_the_users_sessions(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    desk.crm.sign_in.set_password("li.na", "a brand new passphrase")
    assert "/desk/sign-in" in str(browser.get("/desk/contacts").url)


def test_a_deactivated_user_can_no_longer_use_the_desk(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    desk.crm.users.deactivate("li.na")
    assert "/desk/sign-in" in str(browser.get("/desk").url)
    assert desk.browser().sign_in("li.na").status_code == 401


@pytest.mark.parametrize(
    ("password", "problem"),
    [("short", "at least 10 characters"), ("li.na", "at least"), ("LI.NA     ", "user name")],
)
def test_a_weak_password_is_refused_naming_the_rule(
    desk: DeskWorld, password: str, problem: str
) -> None:
    with pytest.raises(crmkit.ValidationError, match=problem):
        desk.crm.sign_in.set_password("li.na", password)


def test_passwords_are_stored_as_argon2id_hashes(desk: DeskWorld) -> None:
    with desk.crm.transaction(write=False) as op:
        stored = list(op.session.scalars(select(DeskAccount.password_hash)))
    assert stored
    assert all(value and value.startswith("$argon2id$") for value in stored)
    assert not any(PASSWORD in (value or "") for value in stored)


def test_the_cli_sets_a_password_from_standard_input(cli_run: Run, crm: crmkit.CRM) -> None:
    crm.users.create("zhou.jie")
    out = ok(
        cli_run(
            "users",
            "set-password",
            "zhou.jie",
            "--password-stdin",
            input="周杰的新密码一定要够长\n",
        )
    )
    assert "zhou.jie" in out
    assert crm.sign_in.sign_in("zhou.jie", "周杰的新密码一定要够长").user.username == "zhou.jie"


def test_the_cli_refuses_a_short_password_in_one_line(cli_run: Run, crm: crmkit.CRM) -> None:
    crm.users.create("zhou.jie")
    line = failed(cli_run("users", "set-password", "zhou.jie", "--password-stdin", input="abc\n"))
    assert "at least 10 characters" in line


def test_the_cli_names_an_unknown_user(cli_run: Run, crm: crmkit.CRM) -> None:
    line = failed(cli_run("users", "set-password", "ghost", "--password-stdin", input="x" * 12))
    assert "ghost" in line


def test_the_cli_generates_a_password_and_prints_it_once(cli_run: Run, crm: crmkit.CRM) -> None:
    crm.users.create("zhou.jie")
    out = ok(cli_run("users", "set-password", "zhou.jie", "--generate"))
    password = out.strip().rsplit(" ", 1)[-1]
    assert len(password) == 16
    assert crm.sign_in.sign_in("zhou.jie", password).user.username == "zhou.jie"
