"""Messages through the REST API: send, the log, the inbox, the do-not-contact list, and the
public one-click unsubscribe (RFC 8058)."""

from __future__ import annotations

from api_support import Api, assert_problem


def test_an_admin_sends_an_in_app_message_the_user_reads_in_their_inbox(api: Api) -> None:
    api.user("li.na")

    sent = api.call(
        "POST", "/messages", json={"channel": "inapp", "subject": "回访张伟", "user": "li.na"}
    )

    assert sent.status_code == 201, sent.text
    assert sent.json()["status"] == "sent"
    inbox = api.call("GET", "/messages/inbox", "li.na").json()
    assert [item["title"] for item in inbox] == ["回访张伟"]
    marked = api.call("POST", "/messages/inbox/read", "li.na", json={"ids": [inbox[0]["id"]]})
    assert marked.json() == {"marked": 1}
    assert api.call("GET", "/messages/inbox", "li.na").json() == []


def test_a_rep_may_not_send_or_read_the_log(api: Api) -> None:
    api.user("alice", roles=("sales_rep",))

    assert_problem(
        api.call(
            "POST", "/messages", "alice", json={"channel": "inapp", "subject": "x", "user": "alice"}
        ),
        403,
    )
    assert_problem(api.call("GET", "/messages", "alice"), 403)
    assert_problem(api.call("GET", "/messages/suppressions", "alice"), 403)


def test_a_message_naming_two_recipients_is_a_422_naming_the_field(api: Api) -> None:
    api.user("li.na")
    response = api.call(
        "POST",
        "/messages",
        json={"channel": "inapp", "subject": "x", "user": "li.na", "to": "a@example.cn"},
    )
    assert_problem(response, 422, field="to")


def test_an_unknown_channel_is_a_400_naming_the_known_ones(api: Api) -> None:
    api.user("li.na")
    response = api.call(
        "POST", "/messages", json={"channel": "sms", "subject": "x", "user": "li.na"}
    )
    body = assert_problem(response, 400)
    assert "known: email, inapp, webhook" in body["detail"]


def test_one_click_unsubscribe_is_a_public_post(api: Api) -> None:
    url = api.crm.messages.unsubscribe_url("email", "zhang.wei@example.cn")
    path = url[url.index("/messages/") :]

    page = api.client.get(path)
    assert page.status_code == 200
    assert api.crm.messages.suppressions() == []  # a GET never unsubscribes
    response = api.client.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200, response.text
    (entry,) = api.crm.messages.suppressions()
    assert (entry.address, entry.reason) == ("zhang.wei@example.cn", "unsubscribed")
    listed = api.call("GET", "/messages/suppressions").json()
    assert [s["address"] for s in listed] == ["zhang.wei@example.cn"]


def test_a_forged_unsubscribe_link_is_a_400_and_changes_nothing(api: Api) -> None:
    response = api.client.post("/messages/unsubscribe/ZW1haWwKYUBiLmNu.0000", content="")
    assert_problem(response, 400)
    assert api.crm.messages.suppressions() == []


def test_the_log_lists_messages_newest_first_with_filters(api: Api) -> None:
    api.user("li.na")
    api.call("POST", "/messages", json={"channel": "inapp", "subject": "one", "user": "li.na"})
    api.call("POST", "/messages", json={"channel": "email", "subject": "two", "to": "a@example.cn"})

    every = api.call("GET", "/messages").json()
    pending = api.call("GET", "/messages", params={"status": "pending"}).json()

    assert [m["subject"] for m in every if m["kind"] == "message"] == ["two", "one"]
    assert {m["kind"] for m in every} == {"message", "security.sensitive_operation"}
    assert [m["subject"] for m in pending] == ["two"]
