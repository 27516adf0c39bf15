"""Message channels: in-app, e-mail through a real SMTP server, webhooks; one delivery log,
delivery keys, retries, the do-not-contact list and one-click unsubscribe."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from smtp_support import MailServer
from test_events import Receiver

import crmkit
from crmkit.events.outbox import OutboxEvent


def mail_crm(
    make_crm: Callable[..., crmkit.CRM],
    server: MailServer,
    plugins: dict[str, object] | None = None,
    **extra: Any,
) -> crmkit.CRM:
    """A CRM whose e-mail channel sends to ``server``, retrying at once (no backoff)."""
    crm = make_crm(
        email={"host": server.host, "port": server.port, "from_address": "crm@shop.example"},
        messages={"backoff_seconds": 0, "max_attempts": 3, **extra},
        api={"public_url": "https://crm.shop.example"},
        plugins=plugins or {},
    )
    crm.pipelines.create("Sales")
    return crm


def test_an_in_app_message_is_in_the_inbox_when_the_send_returns(crm: crmkit.CRM) -> None:
    crm.users.create("li.na")

    record = crm.messages.send("inapp", "明天十点回访张伟", "报价单", user="li.na")

    assert record.status == "sent"
    (note,) = crm.audit.inbox("li.na")
    assert (note.title, note.body) == ("明天十点回访张伟", "报价单")


def test_a_delivery_key_sends_once(crm: crmkit.CRM) -> None:
    crm.users.create("li.na")
    first = crm.messages.send("inapp", "one", user="li.na", key="reminder:1:li.na")

    again = crm.messages.send("inapp", "one", user="li.na", key="reminder:1:li.na")

    assert again.id == first.id
    assert len(crm.audit.inbox("li.na")) == 1


def test_send_many_is_one_transaction_with_counts(crm: crmkit.CRM) -> None:
    users = [crm.users.create(f"rep{i}") for i in range(5)]
    messages = [
        crmkit.Message(channel="inapp", subject=f"due {u.username}", user_id=u.id, key=f"k{u.id}")
        for u in users
    ]

    first = crm.messages.send_many(messages)
    second = crm.messages.send_many(messages)

    assert (first.sent, first.repeated) == (5, 0)
    assert (second.sent, second.repeated) == (0, 5)
    assert crm.messages.counts() == {"sent": 5}


def test_an_unknown_channel_names_the_known_ones(crm: crmkit.CRM) -> None:
    crm.users.create("li.na")
    with pytest.raises(crmkit.CRMError, match="unknown message channel 'sms'; known: email"):
        crm.messages.send("sms", "hi", user="li.na")
    assert crm.messages.log() == []


def test_a_user_without_an_e_mail_address_is_logged_dead_not_lost(crm: crmkit.CRM) -> None:
    user = crm.users.create("li.na")

    record = crm.messages.send("email", "hi", user="li.na")

    assert record.status == "dead"
    assert record.last_error == f"no email address for user {user.id}"


def test_an_e_mail_reaches_the_smtp_server_through_the_worker(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    contact = crm.contacts.create({"full_name": "张伟", "email": "Zhang.Wei@Example.cn"})

    record = crm.messages.send(
        "email", "中秋快乐", "祝您和家人中秋快乐！", contact_id=contact.id, unsubscribe=True
    )
    assert record.status == "pending"
    assert smtp_server.received == []
    stats = crm.messages.deliver_pending()

    assert stats.sent == 1
    (mail,) = smtp_server.to("zhang.wei@example.cn")
    assert mail["Subject"] == "中秋快乐"
    assert mail.get_content().strip() == "祝您和家人中秋快乐！"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Unsubscribe"].startswith("<https://crm.shop.example/messages/unsubscribe/")
    # as mail clients read it: one plain <URL>, not RFC 2047 encoded words
    assert dict(mail.raw_items())["List-Unsubscribe"] == mail["List-Unsubscribe"]
    (logged,) = crm.messages.log()
    assert (logged.status, logged.attempts) == ("sent", 1)


def test_a_refusing_server_is_retried_then_accepts(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    smtp_server.refuse_next = 2
    crm.messages.send("email", "报价", to="wang.fang@example.cn")

    first = crm.messages.deliver_pending()
    second = crm.messages.deliver_pending()
    third = crm.messages.deliver_pending()

    assert (first.retried, second.retried, third.sent) == (1, 1, 1)
    assert len(smtp_server.to("wang.fang@example.cn")) == 1
    (logged,) = crm.messages.log()
    assert (logged.status, logged.attempts) == ("sent", 3)


def test_failures_back_off_exponentially(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server, backoff_seconds=60)
    smtp_server.refuse_next = 1
    crm.messages.send("email", "报价", to="wang.fang@example.cn")

    assert crm.messages.deliver_pending().retried == 1
    assert crm.messages.deliver_pending().idle  # not due again for a minute
    dispatcher = crm.messages.dispatcher("w")
    assert dispatcher.backoff(1) == dt.timedelta(seconds=60)
    assert dispatcher.backoff(3) == dt.timedelta(seconds=240)


def test_a_server_that_is_down_leaves_the_message_dead_for_an_admin_to_retry(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    smtp_server.refuse_next = 3  # every allowed attempt
    crm.messages.send("email", "报价", to="wang.fang@example.cn")

    for _ in range(3):
        crm.messages.deliver_pending()
    (dead,) = crm.messages.log(status="dead")
    assert "451" in (dead.last_error or "")

    assert crm.messages.retry([dead.id]) == 1
    assert crm.messages.deliver_pending().sent == 1
    assert len(smtp_server.received) == 1


def test_a_bounced_address_is_dead_at_once_and_put_on_the_do_not_contact_list(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    smtp_server.unknown.add("nobody@example.cn")
    crm.messages.send("email", "hi", to="nobody@example.cn")

    stats = crm.messages.deliver_pending()

    assert stats.dead == 1
    (entry,) = crm.messages.suppressions()
    assert (entry.channel, entry.address, entry.reason) == ("email", "nobody@example.cn", "bounced")
    assert crm.messages.send("email", "again", to="nobody@example.cn").status == "suppressed"


def test_one_click_unsubscribe_stops_e_mail_to_that_address_only(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    token = crm.messages.unsubscribe_url("email", "Zhang.Wei@example.cn").rsplit("/", 1)[1]

    assert crm.messages.unsubscribe(token) == ("email", "zhang.wei@example.cn")
    crm.messages.unsubscribe(token)  # twice is fine

    assert crm.messages.send("email", "促销", to="zhang.wei@example.cn").status == "suppressed"
    assert crm.messages.send("email", "促销", to="li.lei@example.cn").status == "pending"
    crm.messages.deliver_pending()
    assert [m["To"] for m in smtp_server.received] == ["li.lei@example.cn"]


def test_an_address_unsubscribed_while_queued_gets_nothing(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    crm.messages.send("email", "促销", to="zhang.wei@example.cn")

    crm.messages.suppress("email", "zhang.wei@example.cn", reason="unsubscribed")
    stats = crm.messages.deliver_pending()

    assert stats.suppressed == 1
    assert smtp_server.received == []


def test_an_altered_unsubscribe_token_is_refused(crm: crmkit.CRM) -> None:
    token = crm.messages.unsubscribe_url("email", "a@example.cn").rsplit("/", 1)[1]
    with pytest.raises(crmkit.CRMError, match="not valid"):
        crm.messages.unsubscribe(token[:-1] + ("0" if token[-1] != "0" else "1"))
    with pytest.raises(crmkit.CRMError, match="not valid"):
        crm.messages.unsubscribe("garbage")
    assert crm.messages.suppressions() == []


def test_a_message_due_before_the_catch_up_window_is_logged_late_not_sent(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server, catch_up_seconds=3600)
    now = crmkit.utcnow()
    crm.messages.send_many(
        [
            crmkit.Message(
                channel="email",
                subject="old",
                to="a@example.cn",
                due_at=now - dt.timedelta(hours=2),
            ),
            crmkit.Message(
                channel="email",
                subject="recent",
                to="b@example.cn",
                due_at=now - dt.timedelta(minutes=30),
            ),
        ]
    )

    stats = crm.messages.deliver_pending()

    assert (stats.late, stats.sent) == (1, 1)
    assert [m["Subject"] for m in smtp_server.received] == ["recent"]
    by_subject = {r.subject: r for r in crm.messages.log()}
    assert (by_subject["old"].status, by_subject["old"].late) == ("late", True)
    assert (by_subject["recent"].status, by_subject["recent"].late) == ("sent", True)


def test_a_message_due_later_waits(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    later = crmkit.utcnow() + dt.timedelta(hours=1)
    crm.messages.send_many(
        [crmkit.Message(channel="email", subject="later", to="a@example.cn", due_at=later)]
    )

    assert crm.messages.deliver_pending().idle
    assert smtp_server.received == []


def test_a_sent_care_message_is_logged_as_an_activity_on_the_contact(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server)
    contact = crm.contacts.create({"full_name": "张伟", "email": "zw@example.cn"})
    crm.messages.send_many(
        [
            crmkit.Message(
                channel="email",
                subject="生日快乐",
                body="祝您生日快乐",
                contact_id=contact.id,
                log_activity=True,
            )
        ]
    )

    crm.messages.deliver_pending()

    (activity,) = crm.activities.list(filters={"contact_id": contact.id}).items
    assert (activity.kind, activity.subject) == ("email", "生日快乐")


def test_sending_and_reading_the_log_need_message_manage(crm: crmkit.CRM) -> None:
    crm.users.create_team("East")
    rep = crm.users.create("alice", team="East", roles=("sales_rep",))
    with pytest.raises(crmkit.PermissionDenied, match="message:manage"):
        crm.messages.send("inapp", "hi", user="alice", actor=rep)
    with pytest.raises(crmkit.PermissionDenied, match="message:manage"):
        crm.messages.log(actor=rep)
    with pytest.raises(crmkit.PermissionDenied, match="message:manage"):
        crm.messages.suppress("email", "a@example.cn", actor=rep)
    admin = crm.users.create("root", admin=True)
    assert crm.messages.send("inapp", "hi", user="alice", actor=admin).status == "sent"


def test_admin_alerts_go_out_on_the_configured_channels(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = mail_crm(make_crm, smtp_server, admin_alert_channels=["inapp", "email"])
    crm.users.create("root", admin=True, email="root@shop.example")
    crm.contacts.create({"full_name": "王芳"})
    import io

    from crmkit.services.transfer import export_csv

    export_csv(crm, "contact", io.StringIO())
    crm.messages.deliver_pending()

    (note,) = [n for n in crm.audit.inbox("root") if n.title.endswith(": export")]
    assert note.kind == "security.sensitive_operation"
    (mail,) = [m for m in smtp_server.to("root@shop.example") if m["Subject"].endswith(": export")]
    assert mail["Subject"] == "system: export"


class RecordingChannel(crmkit.MessageChannel):
    """A plugin channel that keeps what it was given (a stand-in for an SMS gateway)."""

    name = "sms"
    description = "text messages"

    def __init__(self) -> None:
        self.sent: list[crmkit.OutgoingMessage] = []

    def contact_address(self, contact: Any) -> str | None:
        return contact.get("phone")

    def deliver(self, message: crmkit.OutgoingMessage) -> None:
        if message.address.endswith("0000"):
            raise crmkit.MessageRejected("number does not exist")
        self.sent.append(message)


class ChannelPlugin:
    """A plugin that brings one message channel (a ``RecordingChannel`` unless given)."""

    def __init__(self, channel: crmkit.MessageChannel | None = None) -> None:
        self.channel = channel or RecordingChannel()

    @crmkit.hookimpl
    def crmkit_message_channels(self, crm: crmkit.CRM) -> list[crmkit.MessageChannel]:
        return [self.channel]


def test_a_plugin_channel_is_used_like_the_built_in_ones(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    plugin = ChannelPlugin()
    crm = make_crm(plugins={"sms": plugin})
    crm.pipelines.create("Sales")
    good = crm.contacts.create({"full_name": "张伟", "phone": "138 1234 5678"})
    bad = crm.contacts.create({"full_name": "李雷", "phone": "138 0000 0000"})

    crm.messages.send_many(
        [
            crmkit.Message(channel="sms", subject="到货通知", contact_id=good.id),
            crmkit.Message(channel="sms", subject="到货通知", contact_id=bad.id),
        ]
    )
    stats = crm.messages.deliver_pending()

    assert (stats.sent, stats.dead) == (1, 1)
    assert [m.address for m in plugin.channel.sent] == ["+8613812345678"]
    assert [c.name for c in crm.messages.channel_list()] == ["email", "inapp", "sms", "webhook"]
    assert [s.reason for s in crm.messages.suppressions(channel="sms")] == ["bounced"]


class ActivityWatcher:
    """Looks, while a sent message's activity is written, at what another connection sees."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen_elsewhere: list[str] = []

    @crmkit.hookimpl
    def crmkit_after_create_many(
        self, op: Any, entity: str, records: list[tuple[int, Any]]
    ) -> None:
        if entity != "activity":
            return
        # a driver connection of its own, in autocommit: it reads what is committed (no
        # BEGIN IMMEDIATE on SQLite, which would wait for this transaction's write lock)
        other = op.crm.engine.raw_connection()
        try:
            cursor = other.cursor()
            cursor.execute("SELECT status FROM message_deliveries")
            self.seen_elsewhere += [status for (status,) in cursor.fetchall()]
        finally:
            other.close()
        if self.fail:
            raise RuntimeError("the activity plugin is broken")


def logged_mail(crm: crmkit.CRM) -> int:
    contact = crm.contacts.create({"full_name": "张伟", "email": "zw@example.cn"})
    crm.messages.send_many(
        [
            crmkit.Message(
                channel="email",
                subject="生日快乐",
                contact_id=contact.id,
                log_activity=True,
            )
        ]
    )
    return int(contact.id)


def test_a_message_is_marked_sent_in_the_transaction_that_writes_its_activity(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    watcher = ActivityWatcher()
    crm = mail_crm(make_crm, smtp_server, plugins={"watcher": watcher})
    contact = logged_mail(crm)

    assert crm.messages.deliver_pending().sent == 1

    # while the activity was written, "sent" was not committed yet: the two commit together
    assert watcher.seen_elsewhere == ["in_flight"]
    assert [m.status for m in crm.messages.log()] == ["sent"]
    assert len(crm.activities.list(filters={"contact_id": contact}).items) == 1


def test_a_failing_activity_leaves_the_mail_sent_and_no_stray_event(
    make_crm: Callable[..., crmkit.CRM],
    smtp_server: MailServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    crm = mail_crm(make_crm, smtp_server, plugins={"watcher": ActivityWatcher(fail=True)})
    contact = logged_mail(crm)

    stats = crm.messages.deliver_pending()

    # the mail is out: it stays sent (not sent again), its activity is missing and said so
    assert (stats.sent, stats.retried, len(smtp_server.received)) == (1, 0, 1)
    assert [m.status for m in crm.messages.log()] == ["sent"]
    assert crm.activities.list(filters={"contact_id": contact}).items == []
    assert "their activities were not recorded" in caplog.text
    with crm.engine.connect() as connection:
        names = connection.scalars(sa.select(OutboxEvent.name)).all()
    assert "activity.created" not in names
    assert crm.messages.deliver_pending().idle


class InvalidChannel(crmkit.MessageChannel):
    """A channel that can never compose what it is given."""

    name = "fax"
    description = "refuses every message as not composable"

    def __init__(self) -> None:
        self.attempts = 0

    def deliver(self, message: crmkit.OutgoingMessage) -> None:
        self.attempts += 1
        raise crmkit.MessageInvalid("a fax cannot carry this page")


def test_a_message_that_can_never_be_sent_is_dead_at_once_and_the_address_not_blamed(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    channel = InvalidChannel()
    crm = make_crm(
        plugins={"fax": ChannelPlugin(channel)},
        messages={"backoff_seconds": 0, "max_attempts": 5},
    )
    crm.messages.send("fax", "报价单", to="+86 21 5555 0000")

    stats = crm.messages.deliver_pending(rounds=5)

    assert (stats.dead, stats.retried, channel.attempts) == (1, 0, 1)
    (entry,) = crm.messages.log()
    assert entry.status == "dead"
    assert "a fax cannot carry this page" in (entry.last_error or "")
    assert crm.messages.suppressions() == []  # not a bounce: the number is fine


def test_an_email_that_cannot_be_composed_fails_alone_and_for_good(
    smtp_server: MailServer,
) -> None:
    from crmkit.messages.channels import EmailChannel
    from crmkit.settings import EmailSettings

    channel = EmailChannel(
        EmailSettings(host=smtp_server.host, port=smtp_server.port, from_address="crm@shop.example")
    )

    def outgoing(number: int, subject: str) -> crmkit.OutgoingMessage:
        return crmkit.OutgoingMessage(
            id=number, key=f"k{number}", channel="email", address="zw@example.cn",
            kind="message", subject=subject, body="您好",
        )  # fmt: skip

    outcomes = channel.deliver_many([outgoing(1, "broken \udcff"), outgoing(2, "报价单")])

    assert isinstance(outcomes[0], crmkit.MessageInvalid)
    assert "cannot be composed" in str(outcomes[0])
    assert outcomes[1] is None
    assert len(smtp_server.received) == 1


class KeepAliveReceiver(Receiver):
    """test_events' receiver speaking HTTP/1.1, so a client may keep its connection open;
    it records, per request, the client's port, the path, the headers and the body.
    ``/gone`` answers 410, ``/busy`` 503, every other path 200."""

    def __init__(self) -> None:
        super().__init__()
        receiver = self
        handler = self.server.RequestHandlerClass
        handler.protocol_version = "HTTP/1.1"

        def do_POST(self: Any) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append(
                {
                    "port": self.client_address[1],
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            self.send_response({"/gone": 410, "/busy": 503}.get(self.path, 200))
            self.send_header("Content-Length", "0")
            self.end_headers()

        handler.do_POST = do_POST  # type: ignore[attr-defined]
        self.base = self.url.removesuffix("/crm-events")


@pytest.fixture
def keep_alive_receiver() -> Any:
    server = KeepAliveReceiver()
    yield server
    server.close()


def test_webhook_messages_share_a_connection_and_each_is_signed(
    make_crm: Callable[..., crmkit.CRM], keep_alive_receiver: KeepAliveReceiver
) -> None:
    from crmkit.events.webhook import verify

    crm = make_crm(  # the receiver is on 127.0.0.1: allowed explicitly (crmkit.outbound)
        messages={"webhook_secret": "s3cret", "backoff_seconds": 0, "max_attempts": 3},
        relay={"allow_internal_addresses": True},
    )
    for number in range(3):
        crm.messages.send("webhook", f"回访 {number}", to=f"{keep_alive_receiver.base}/crm")
    crm.messages.send("webhook", "离职", to=f"{keep_alive_receiver.base}/gone")
    crm.messages.send("webhook", "稍后", to=f"{keep_alive_receiver.base}/busy")

    stats = crm.messages.deliver_pending()

    assert (stats.sent, stats.dead, stats.retried) == (3, 1, 1)
    requests = keep_alive_receiver.requests
    assert len(requests) == 5
    assert len({r["port"] for r in requests}) == 1  # one client, one connection, five POSTs
    for request in requests:
        assert verify("s3cret", request["body"], request["headers"]["X-Crmkit-Signature"])
    subjects = sorted(json.loads(r["body"])["subject"] for r in requests if r["path"] == "/crm")
    assert subjects == ["回访 0", "回访 1", "回访 2"]
    (gone,) = crm.messages.suppressions()
    assert gone.address.endswith("/gone")
    assert gone.reason == "bounced"
