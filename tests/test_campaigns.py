"""The campaigns plugin: a campaign's definition checked at save time, the sending pass
through the core message queue to a real SMTP server (aiosmtpd), follow-ups, replies, clicks,
thank-yous, unsubscribes, bounces, the same-day rule, per-domain limits, windows and
permissions; on both engines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import crmkit_campaigns
import crmkit_reminders
import pytest
from aiosmtpd.controller import Controller
from crmkit_campaigns import definition as campaign_definition
from crmkit_campaigns import service
from crmkit_campaigns.sending import run_campaigns
from crmkit_campaigns.tracking import ConversionSink, click_token, read_click_token, record_click
from hypothesis import given
from hypothesis import strategies as st
from smtp_support import MailServer, free_port

import crmkit

FIRST = {"zh": "{{ full_name }}，新品上市", "en": "{{ full_name }}, new arrivals"}
BODY = {
    "zh": "您好 {{ full_name }}：{{ track('https://shop.example/new') }}"
    " 退订 {{ unsubscribe_url }}",
    "en": "Hello {{ full_name }}: {{ track('https://shop.example/new') }} {{ unsubscribe_url }}",
}


def definition(**extra: Any) -> dict[str, Any]:
    """A first mail, a follow-up after 3 days unless clicked, a thank-you on purchase."""
    return {
        "steps": [
            {"kind": "first", "subject": FIRST, "body": BODY},
            {
                "kind": "follow_up",
                "after_days": 3,
                "unless": "click",
                "subject": {"zh": "还在考虑吗？", "en": "Still thinking?"},
                "body": {"zh": "{{ full_name }}，有问题请回复。", "en": "Reply with questions."},
            },
            {
                "kind": "thank_you",
                "on": "purchase",
                "subject": {"zh": "谢谢惠顾", "en": "Thank you"},
                "body": {"zh": "{{ full_name }}，谢谢！", "en": "Thanks, {{ full_name }}!"},
            },
        ],
        **extra,
    }


def campaign_crm(
    make_crm: Callable[..., crmkit.CRM], port: int, *, reminders: bool = False, **campaigns: Any
) -> crmkit.CRM:
    plugins: dict[str, Any] = {"campaigns": crmkit_campaigns}
    if reminders:  # brings the contact field ``language``
        plugins["reminders"] = crmkit_reminders
    crm = make_crm(
        plugins=plugins,
        email={"host": "127.0.0.1", "port": port, "from_address": "news@shop.example"},
        messages={"backoff_seconds": 0, "max_attempts": 3},
        api={"public_url": "https://crm.shop.example"},
        plugin_settings={"campaigns": campaigns} if campaigns else {},
    )
    crm.pipelines.create("Sales")
    crm.users.create_team("East")
    return crm


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer) -> crmkit.CRM:
    return campaign_crm(make_crm, smtp_server.port)


def contacts(crm: crmkit.CRM, *emails: str, **values: Any) -> list[Any]:
    return [
        crm.contacts.create({"full_name": f"客户{i}", "email": email, **values})
        for i, email in enumerate(emails, start=1)
    ]


def deliver(crm: crmkit.CRM, now: dt.datetime | None = None) -> Any:
    """Deliver what is queued, as the worker would at ``now`` (default: the clock's)."""
    if now is None:
        return crm.messages.deliver_pending(rounds=20)
    dispatcher = crm.messages.dispatcher("test")
    sent = 0
    while not (stats := dispatcher.run_once(now)).idle:
        sent += stats.sent
    return sent


def later(days: float) -> dt.datetime:
    return crmkit.utcnow() + dt.timedelta(days=days)


# -- the definition, checked when saved ----------------------------------------------------


def test_a_template_with_an_unknown_variable_is_refused_naming_step_language_and_name(
    crm: crmkit.CRM,
) -> None:
    bad = definition()
    bad["steps"][1]["body"] = {"zh": "{{ full_name }} {{ coupon_code }}"}

    with pytest.raises(crmkit.ValidationError, match="coupon_code") as raised:
        service.create_campaign(crm, "spring", bad)

    assert [e.field for e in raised.value.errors] == ["steps[2].body.zh"]
    assert service.list_campaigns(crm) == []


def test_a_template_that_does_not_parse_is_refused(crm: crmkit.CRM) -> None:
    bad = definition()
    bad["steps"][0]["subject"] = {"zh": "{{ full_name "}
    with pytest.raises(crmkit.ValidationError, match=r"steps\[1\].subject.zh.*does not parse"):
        service.create_campaign(crm, "spring", bad)


def test_a_filter_on_an_unknown_field_is_refused_and_nothing_saved(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError, match="shoe_size"):
        service.create_campaign(crm, "spring", definition(filters={"shoe_size": "42"}))
    assert service.list_campaigns(crm) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": []}, "at least the first mail"),
        ({"window": {"start": "18:00", "end": "09:00"}}, "after start"),
        ({"window": {"timezone": "Mars/Olympus"}}, "unknown time zone"),
        ({"window": {"days": ["someday"]}}, "a list of mon"),
        ({"allow_same_day": "yes"}, "true or false"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_a_bad_definition_is_refused_with_a_clear_error(
    crm: crmkit.CRM, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(crmkit.ValidationError, match=message):
        service.create_campaign(crm, "spring", {**definition(), **change})


def test_a_campaign_on_an_empty_audience_is_refused_and_stays_a_draft(crm: crmkit.CRM) -> None:
    contacts(crm, "a@one.example")
    service.create_campaign(crm, "nobody", definition(filters={"city": "拉萨"}))

    with pytest.raises(crmkit.CRMError, match="'nobody' has an empty audience"):
        service.start_campaign(crm, "nobody")

    info = service.get_campaign(crm, "nobody")
    assert (info.status, info.members) == ("draft", {})


def test_a_campaign_on_a_saved_segment_mails_its_members(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    contacts(crm, "sh1@one.example", "sh2@two.example", city="上海")
    contacts(crm, "bj@one.example", city="北京")
    crm.segments.create("上海客户", "contact", {"city": "上海"})
    service.create_campaign(crm, "spring", definition(segment="上海客户"))

    info = service.start_campaign(crm, "spring")
    run_campaigns(crm)
    deliver(crm)

    assert (info.segment, info.audience) == ("上海客户", 2)
    assert sorted(m["To"] for m in smtp_server.received) == ["sh1@one.example", "sh2@two.example"]


def test_a_campaign_on_an_empty_segment_is_refused_naming_it(crm: crmkit.CRM) -> None:
    contacts(crm, "a@one.example", city="北京")
    crm.segments.create("拉萨客户", "contact", {"city": "拉萨"})
    service.create_campaign(crm, "tibet", definition(segment="拉萨客户"))

    with pytest.raises(crmkit.CRMError, match="segment '拉萨客户' match"):
        service.start_campaign(crm, "tibet")
    assert service.get_campaign(crm, "tibet").status == "draft"


def test_an_unknown_segment_or_one_of_deals_is_refused_at_save(crm: crmkit.CRM) -> None:
    crm.segments.create("won deals", "deal", {"stage_kind": "won"})
    with pytest.raises(crmkit.NotFoundError):
        service.create_campaign(crm, "x", definition(segment="no such segment"))
    with pytest.raises(crmkit.ValidationError, match="selects deals, not contacts"):
        service.create_campaign(crm, "x", definition(segment="won deals"))
    with pytest.raises(crmkit.ValidationError, match="a segment or filters, not both"):
        service.create_campaign(crm, "x", definition(segment="won deals", filters={"city": "上海"}))
    assert service.list_campaigns(crm) == []


def test_a_reps_segment_campaign_reaches_only_the_members_the_rep_may_see(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    crm.roles.create("marketer")
    crm.roles.grant("marketer", "campaign:manage")
    rep = crm.users.create("li.na", team="East", roles=("sales_rep", "marketer"))
    crm.contacts.create(
        {"full_name": "她的", "email": "hers@one.example", "city": "上海"}, actor=rep
    )
    crm.contacts.create({"full_name": "别人的", "email": "theirs@one.example", "city": "上海"})
    crm.segments.create("上海客户", "contact", {"city": "上海"})

    service.create_campaign(crm, "hers", definition(segment="上海客户"), actor=rep)
    info = service.start_campaign(crm, "hers", actor=rep)
    run_campaigns(crm)
    deliver(crm)

    assert info.audience == 1
    assert [m["To"] for m in smtp_server.received] == ["hers@one.example"]


# -- sending -------------------------------------------------------------------------------


def test_first_mails_reach_the_smtp_server_once_with_one_click_unsubscribe(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    first, second = contacts(crm, "zhang@one.example", "wang@two.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")

    (result,) = run_campaigns(crm)
    deliver(crm)
    again = run_campaigns(crm)
    deliver(crm)

    assert result.sent == 2
    assert again[0].sent == 0
    (mail,) = smtp_server.to("zhang@one.example")
    assert mail["Subject"] == "客户1，新品上市"
    assert mail["List-Unsubscribe"].startswith("<https://crm.shop.example/messages/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = mail.get_content()
    assert "https://crm.shop.example/plugins/campaigns/click/" in text
    assert len(smtp_server.received) == 2
    activity = crm.activities.list({"contact_id": first.id}).items
    assert [(a["kind"], a["subject"]) for a in activity] == [("email", "客户1，新品上市")]
    assert service.get_campaign(crm, "spring").members == {"active": 2}
    assert second.id


def test_each_contact_gets_the_template_of_their_language(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = campaign_crm(make_crm, smtp_server.port, reminders=True)
    crm.contacts.create({"full_name": "Ann Lee", "email": "ann@one.example", "language": "en"})
    crm.contacts.create({"full_name": "张伟", "email": "zw@one.example"})
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")

    run_campaigns(crm)
    deliver(crm)

    assert smtp_server.to("ann@one.example")[0]["Subject"] == "Ann Lee, new arrivals"
    assert smtp_server.to("zw@one.example")[0]["Subject"] == "张伟，新品上市"


def test_a_follow_up_goes_after_n_days_only_to_those_who_did_not_click(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    clicker, _ = contacts(crm, "clicker@one.example", "other@one.example")
    info = service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    run_campaigns(crm)
    deliver(crm)
    token = click_token(crm.settings.messages.secret, info.id, clicker.id, "https://shop.example")
    assert record_click(crm, token) == "https://shop.example"

    too_early = run_campaigns(crm, now=later(2))
    (after,) = run_campaigns(crm, now=later(3.01))
    deliver(crm, later(3.01))

    assert too_early[0].sent == 0
    assert (after.sent, after.skipped, after.done) == (1, 1, 1)
    assert [m["Subject"] for m in smtp_server.to("other@one.example")] == [
        "客户2，新品上市",
        "还在考虑吗？",
    ]
    assert len(smtp_server.to("clicker@one.example")) == 1


def test_a_reply_stops_the_sequence(crm: crmkit.CRM, smtp_server: MailServer) -> None:
    (customer,) = contacts(crm, "zhang@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    run_campaigns(crm)
    deliver(crm)
    crm.activities.create(
        {
            "kind": "email",
            "subject": "Re: 新品上市",
            "contact_id": customer.id,
            "direction": "inbound",
        }
    )

    (result,) = run_campaigns(crm, now=later(4))
    deliver(crm, later(4))

    assert (result.replied, result.sent) == (1, 0)
    assert len(smtp_server.received) == 1
    assert service.get_campaign(crm, "spring").members == {"replied": 1}


def test_an_outbound_e_mail_activity_is_not_a_reply(crm: crmkit.CRM) -> None:
    (customer,) = contacts(crm, "zhang@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    run_campaigns(crm)
    crm.activities.create({"kind": "email", "subject": "报价", "contact_id": customer.id})

    (result,) = run_campaigns(crm, now=later(4))

    assert (result.replied, result.sent) == (0, 1)


def test_a_purchase_brings_one_thank_you_and_ends_the_sequence(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    buyer, _ = contacts(crm, "buyer@one.example", "other@one.example")
    service.create_campaign(crm, "spring", definition(allow_same_day=True))
    service.start_campaign(crm, "spring")
    run_campaigns(crm)
    sink = ConversionSink(crm)
    event = crmkit.Event("points.earned", {"points": 10}, record_type="contact", record_id=buyer.id)

    sink.deliver(event)
    sink.deliver(event)  # at least once: a repeat changes nothing
    (result,) = run_campaigns(crm)
    run_campaigns(crm)
    deliver(crm)

    assert result.thanked == 1
    # both went in one delivery pass, over parallel connections: in either order
    assert sorted(m["Subject"] for m in smtp_server.to("buyer@one.example")) == [
        "客户1，新品上市",
        "谢谢惠顾",
    ]
    assert service.get_campaign(crm, "spring").members == {"active": 1, "done": 1}


def test_a_form_submission_reaches_the_sink_through_the_relay_and_arms_the_thank_you(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    from crmkit.events.relay import Relay

    contacts(crm, "fan@one.example")
    steps = definition()["steps"]
    steps[2] = {**steps[2], "on": "form", "subject": {"zh": "谢谢填写"}}
    service.create_campaign(crm, "spring", {"steps": steps, "allow_same_day": True})
    service.start_campaign(crm, "spring")
    run_campaigns(crm)
    form = crm.forms.add("询价", ["full_name", "email"])
    crm.forms.submit(form.key, {"full_name": "粉丝", "email": "FAN@one.example"})

    Relay(crm, worker_id="test").run_once()
    (result,) = run_campaigns(crm)
    deliver(crm)

    assert result.thanked == 1
    assert sorted(m["Subject"] for m in smtp_server.to("fan@one.example")) == [
        "客户1，新品上市",
        "谢谢填写",
    ]


# -- nobody mailed after unsubscribing; bounces; bad addresses -----------------------------


def test_no_one_is_mailed_after_unsubscribing_in_any_campaign(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    leaver, stayer = contacts(crm, "leaver@one.example", "stayer@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    run_campaigns(crm)
    deliver(crm)
    link = smtp_server.to("leaver@one.example")[0]["List-Unsubscribe"][1:-1]
    crm.messages.unsubscribe(link.rsplit("/", 1)[1])
    service.create_campaign(crm, "summer", definition(allow_same_day=True))
    service.start_campaign(crm, "summer")

    (spring,) = run_campaigns(crm, now=later(3.01), only="spring")
    (summer,) = run_campaigns(crm, now=later(3.01), only="summer")
    deliver(crm, later(3.01))

    assert (spring.opted_out, spring.sent) == (1, 1)
    assert (summer.opted_out, summer.sent) == (1, 1)
    assert len(smtp_server.to("leaver@one.example")) == 1
    assert len(smtp_server.to("stayer@one.example")) == 3
    assert service.get_campaign(crm, "spring").members == {"unsubscribed": 1, "done": 1}
    (entry,) = crm.messages.suppressions()
    assert (entry.reason, entry.contact_id) == ("unsubscribed", leaver.id)
    assert stayer.id


def test_an_unsubscribe_between_queueing_and_delivery_is_honoured_at_once(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    contacts(crm, "quick@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    run_campaigns(crm)  # queued, not yet delivered
    token = crm.messages.unsubscribe_url("email", "quick@one.example").rsplit("/", 1)[1]

    crm.messages.unsubscribe(token)
    stats = deliver(crm)

    assert (stats.sent, stats.suppressed) == (0, 1)
    assert smtp_server.received == []


def test_a_contact_the_owner_no_longer_sees_leaves_the_campaign(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    crm.roles.create("marketer")
    crm.roles.grant("marketer", "campaign:manage")
    rep = crm.users.create("li.na", team="East", roles=("sales_rep", "marketer"))
    other = crm.users.create("wang.fang", team="East", roles=("sales_rep",))
    moved = crm.contacts.create({"full_name": "转走", "email": "moved@one.example"}, actor=rep)
    crm.contacts.create({"full_name": "留下", "email": "kept@one.example"}, actor=rep)
    service.create_campaign(crm, "hers", definition(), actor=rep)
    service.start_campaign(crm, "hers", actor=rep)
    crm.contacts.update(moved.id, {"owner_id": other.id})

    (result,) = run_campaigns(crm)
    deliver(crm)

    assert (result.left, result.sent) == (1, 1)
    assert [m["To"] for m in smtp_server.received] == ["kept@one.example"]


class RefusingServer(MailServer):
    """A server that answers DATA with ``answer`` (a 5xx or a 4xx) while it is set."""

    answer: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer is not None:
            return self.answer
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def refusing(make_crm: Callable[..., crmkit.CRM]) -> Any:
    server = RefusingServer()
    server.port = free_port()
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server, campaign_crm(make_crm, server.port)
    finally:
        controller.stop()


def test_a_permanent_refusal_is_a_bounce_on_the_contact_and_stops_them(refusing: Any) -> None:
    server, crm = refusing
    (customer,) = contacts(crm, "gone@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    server.answer = "554 5.7.1 message refused"

    run_campaigns(crm)
    stats = deliver(crm)
    server.answer = None
    (result,) = run_campaigns(crm, now=later(4))
    deliver(crm)

    assert (stats.dead, stats.retried) == (1, 0)
    (entry,) = crm.messages.suppressions()
    assert (entry.address, entry.reason, entry.contact_id) == (
        "gone@one.example",
        "bounced",
        customer.id,
    )
    assert (result.opted_out, result.sent) == (1, 0)
    assert server.received == []
    assert service.get_campaign(crm, "spring").members == {"bounced": 1}


def test_a_temporary_refusal_is_retried_and_delivered_once(refusing: Any) -> None:
    server, crm = refusing
    contacts(crm, "busy@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    server.answer = "451 4.3.0 try again later"

    run_campaigns(crm)
    first = crm.messages.deliver_pending()
    server.answer = None
    second = deliver(crm)
    run_campaigns(crm)
    deliver(crm)

    assert (first.retried, first.dead, second.sent) == (1, 0, 1)
    assert len(server.to("busy@one.example")) == 1
    assert crm.messages.suppressions() == []


def test_smtp_down_is_retried_and_nobody_is_mailed_twice(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    port = free_port()  # nothing listens here yet
    crm = campaign_crm(make_crm, port)
    contacts(crm, "a@one.example", "b@two.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")

    run_campaigns(crm)
    down = crm.messages.deliver_pending()
    run_campaigns(crm)  # the pass again: the members moved on, nothing queued twice
    server = MailServer()
    server.port = port
    controller = Controller(server, hostname=server.host, port=port)
    controller.start()
    try:
        up = deliver(crm)
        deliver(crm)
    finally:
        controller.stop()

    assert (down.retried, down.sent) == (2, 0)
    assert up.sent == 2
    assert sorted(m["To"] for m in server.received) == ["a@one.example", "b@two.example"]


def test_an_unusable_address_is_marked_invalid_and_not_sent(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    (legacy,) = contacts(crm, "legacy@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    with crm.transaction() as op:  # as an old import left it, past validation
        op.session.get(crmkit.Contact, legacy.id).email = "no at sign"

    (result,) = run_campaigns(crm)
    deliver(crm)

    assert (result.invalid, result.sent) == (1, 0)
    assert smtp_server.received == []
    assert service.get_campaign(crm, "spring").members == {"invalid": 1}


# -- the same day, per-domain limits, windows ----------------------------------------------


def test_a_contact_in_two_campaigns_gets_one_mail_a_day_unless_allowed(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    contacts(crm, "both@one.example")
    service.create_campaign(crm, "spring", definition())
    service.create_campaign(crm, "summer", definition())
    service.create_campaign(crm, "flash", definition(allow_same_day=True))
    for name in ("spring", "summer", "flash"):
        service.start_campaign(crm, name)

    results = {r.campaign: r for r in run_campaigns(crm)}
    deliver(crm)
    tomorrow = {r.campaign: r for r in run_campaigns(crm, now=later(1.01))}
    deliver(crm, later(1.01))

    assert (results["spring"].sent, results["summer"].deferred, results["flash"].sent) == (1, 1, 1)
    assert tomorrow["summer"].sent == 1
    assert len(smtp_server.to("both@one.example")) == 3


def test_per_domain_limits_hold_the_surplus_for_the_next_minute(
    make_crm: Callable[..., crmkit.CRM], smtp_server: MailServer
) -> None:
    crm = campaign_crm(
        make_crm,
        smtp_server.port,
        per_domain_per_minute=2,
        domain_limits={"big.example": {"per_minute": 1}},
    )
    contacts(crm, *[f"u{i}@one.example" for i in range(5)], "x@big.example", "y@big.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    now = (crmkit.utcnow() + dt.timedelta(minutes=1)).replace(second=5)

    (first,) = run_campaigns(crm, now=now)
    (same_minute,) = run_campaigns(crm, now=now + dt.timedelta(seconds=30))
    (next_minute,) = run_campaigns(crm, now=now + dt.timedelta(minutes=1))

    assert (first.sent, first.deferred) == (3, 4)
    assert same_minute.sent == 0
    assert next_minute.sent == 3


def test_outside_the_schedule_window_nothing_is_sent(crm: crmkit.CRM) -> None:
    contacts(crm, "a@one.example")
    window = {"days": ["mon"], "start": "09:00", "end": "10:00", "timezone": "Asia/Shanghai"}
    service.create_campaign(crm, "spring", definition(window=window))
    service.start_campaign(crm, "spring")
    tuesday_noon = dt.datetime(2026, 12, 8, 4, 0, tzinfo=dt.UTC)  # 12:00 in Shanghai
    monday_nine = dt.datetime(2026, 12, 7, 1, 30, tzinfo=dt.UTC)  # 09:30 in Shanghai

    (closed,) = run_campaigns(crm, now=tuesday_noon)
    (open_,) = run_campaigns(crm, now=monday_nine)

    assert (closed.window_closed, closed.sent) == (True, 0)
    assert open_.sent == 1


def test_a_window_ending_at_23_59_sends_in_the_last_minute_of_the_day(crm: crmkit.CRM) -> None:
    contacts(crm, "a@one.example")
    window = {"start": "00:00", "end": "23:59", "timezone": "Asia/Shanghai"}
    service.create_campaign(crm, "spring", definition(window=window))
    service.start_campaign(crm, "spring")
    last_minute = dt.datetime(2026, 12, 7, 15, 59, 30, tzinfo=dt.UTC)  # 23:59:30 in Shanghai

    (result,) = run_campaigns(crm, now=last_minute)

    assert (result.window_closed, result.sent) == (False, 1)


MINUTES_OF_THE_DAY = st.integers(min_value=0, max_value=24 * 60 - 1)


def time_of(minute: int, second: int = 0) -> dt.time:
    return dt.time(minute // 60, minute % 60, second)


@given(
    bounds=st.lists(MINUTES_OF_THE_DAY, min_size=2, max_size=2, unique=True).map(sorted),
    minute=MINUTES_OF_THE_DAY,
    second=st.integers(min_value=0, max_value=59),
    given_seconds=st.integers(min_value=0, max_value=59),
)
def test_a_stored_window_is_open_from_its_start_minute_through_its_end_minute(
    bounds: list[int], minute: int, second: int, given_seconds: int
) -> None:
    start, end = bounds
    raw = {
        "start": time_of(start, given_seconds).isoformat(),
        "end": time_of(end, given_seconds).isoformat(),
        "timezone": "UTC",
    }
    stored = campaign_definition.parse_window(raw, "UTC").as_json()
    window = campaign_definition.load_window(stored, "UTC")
    now = dt.datetime.combine(dt.date(2026, 12, 7), time_of(minute, second), tzinfo=dt.UTC)

    assert window.is_open(now) == (start <= minute <= end)
    assert window == campaign_definition.parse_window(raw, "UTC")


def test_a_paused_campaign_sends_nothing_until_resumed(crm: crmkit.CRM) -> None:
    contacts(crm, "a@one.example")
    service.create_campaign(crm, "spring", definition())
    service.start_campaign(crm, "spring")
    service.pause_campaign(crm, "spring")

    assert run_campaigns(crm) == []
    service.start_campaign(crm, "spring")
    assert run_campaigns(crm)[0].sent == 1


def test_a_purchase_during_a_pause_is_thanked_when_the_campaign_resumes(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    (buyer,) = contacts(crm, "buyer@one.example")
    service.create_campaign(crm, "spring", definition(allow_same_day=True))
    service.start_campaign(crm, "spring")
    run_campaigns(crm)
    deliver(crm)
    service.pause_campaign(crm, "spring")
    event = crmkit.Event("points.earned", {"points": 10}, record_type="contact", record_id=buyer.id)

    ConversionSink(crm).deliver(event)
    assert run_campaigns(crm) == []  # paused: nothing goes out
    service.start_campaign(crm, "spring")
    (result,) = run_campaigns(crm)
    deliver(crm)

    assert result.thanked == 1
    assert [m["Subject"] for m in smtp_server.to("buyer@one.example")] == [
        "客户1，新品上市",
        "谢谢惠顾",
    ]


# -- test send, permissions ----------------------------------------------------------------


def test_a_test_send_goes_to_oneself_rendered_for_a_contact(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    crm.users.create("li.na", team="East", roles=("admin",), email="li.na@shop.example")
    (customer,) = contacts(crm, "zhang@one.example")
    service.create_campaign(crm, "spring", definition())

    record = service.send_test(crm, "spring", contact_id=customer.id, user="li.na")
    deliver(crm)

    assert record.address == "li.na@shop.example"
    (mail,) = smtp_server.received
    assert (mail["To"], mail["Subject"]) == ("li.na@shop.example", "[test] 客户1，新品上市")
    assert service.get_campaign(crm, "spring").status == "draft"


def test_a_reps_campaign_reaches_only_the_contacts_the_rep_may_see(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    crm.roles.create("marketer")
    crm.roles.grant("marketer", "campaign:manage")
    rep = crm.users.create("li.na", team="East", roles=("sales_rep", "marketer"))
    other = crm.users.create("wang.fang", team="East", roles=("sales_rep", "marketer"))
    crm.contacts.create({"full_name": "她的", "email": "hers@one.example"}, actor=rep)
    crm.contacts.create({"full_name": "别人的", "email": "theirs@one.example"}, actor=other)

    service.create_campaign(crm, "hers", definition(), actor=rep)
    info = service.start_campaign(crm, "hers", actor=rep)
    run_campaigns(crm)
    deliver(crm)

    assert info.audience == 1
    assert [m["To"] for m in smtp_server.received] == ["hers@one.example"]
    with pytest.raises(crmkit.NotFoundError):
        service.get_campaign(crm, "hers", actor=other)
    assert service.list_campaigns(crm, actor=other) == []


def test_a_field_hidden_from_the_owner_renders_empty_in_their_campaign(
    crm: crmkit.CRM, smtp_server: MailServer
) -> None:
    crm.roles.create("marketer")
    crm.roles.grant("marketer", "campaign:manage")
    crm.roles.grant("marketer", "contact:read", "own")
    crm.roles.set_field_rule("marketer", "contact", "phone", "hidden")
    rep = crm.users.create("li.na", team="East", roles=("marketer",))
    crm.contacts.create(
        {"full_name": "张伟", "email": "zw@one.example", "phone": "13812345678", "owner_id": rep.id}
    )
    steps = definition()["steps"][:1]
    steps[0] = {**steps[0], "body": {"zh": "电话：[{{ phone }}]"}}
    service.create_campaign(crm, "hers", {"steps": steps}, actor=rep)
    service.start_campaign(crm, "hers", actor=rep)

    run_campaigns(crm)
    deliver(crm)

    (mail,) = smtp_server.received
    assert mail.get_content().strip() == "电话：[]"


def test_managing_campaigns_needs_campaign_manage(crm: crmkit.CRM) -> None:
    rep = crm.users.create("li.na", team="East", roles=("sales_rep",))
    with pytest.raises(crmkit.PermissionDenied, match="campaign:manage"):
        service.create_campaign(crm, "spring", definition(), actor=rep)
    with pytest.raises(crmkit.PermissionDenied, match="campaign:manage"):
        service.list_campaigns(crm, actor=rep)


# -- click tokens ----------------------------------------------------------------------------


@given(
    campaign=st.integers(1, 2**31 - 1),
    contact=st.integers(1, 2**31 - 1),
    url=st.text(min_size=1).map(lambda tail: "https://shop.example/" + tail),
)
def test_a_click_token_reads_back_what_it_names(campaign: int, contact: int, url: str) -> None:
    token = click_token("secret", campaign, contact, url)
    assert read_click_token("secret", token) == (campaign, contact, url)


@given(token=st.text(max_size=200))
def test_a_forged_click_token_is_refused(token: str) -> None:
    with pytest.raises(crmkit.CRMError, match="not valid"):
        read_click_token("secret", token)


def test_a_tampered_click_token_is_refused() -> None:
    token = click_token("secret", 1, 2, "https://shop.example")
    payload, _, mac = token.partition(".")
    forged = click_token("other", 1, 2, "https://evil.example").partition(".")[0]
    with pytest.raises(crmkit.CRMError):
        read_click_token("secret", f"{forged}.{mac}")
    assert read_click_token("secret", f"{payload}.{mac}")[2] == "https://shop.example"


# -- templates: what is known is accepted, anything else refused by name ----------------------

KNOWN = frozenset({"full_name", "email", "campaign", "unsubscribe_url", "track"})
IDENTIFIER = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True).filter(
    lambda name: name not in {"true", "false", "none", "True", "False", "None", "loop"}
)


@given(name=IDENTIFIER)
def test_a_template_naming_any_unknown_variable_is_refused_by_name(name: str) -> None:
    from crmkit_campaigns.definition import check_template

    text = f"您好 {{{{ full_name }}}}，{{{{ {name} }}}}"
    if name in KNOWN:
        check_template(text, KNOWN, "body")
    else:
        with pytest.raises(crmkit.ValidationError, match=name):
            check_template(text, KNOWN, "body")


@given(text=st.text(max_size=80))
def test_any_text_is_accepted_or_refused_with_a_validation_error(text: str) -> None:
    from crmkit_campaigns.definition import check_template

    fields: list[str] = []
    try:
        check_template(text, KNOWN, "body")
    except crmkit.ValidationError as error:  # any other exception fails the test
        fields = [e.field for e in error.errors]
    assert fields in ([], ["body"])
