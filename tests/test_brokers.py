"""The brokers plugin against the real RabbitMQ (127.0.0.1:5672) and NATS JetStream
(127.0.0.1:4222) the machine runs (.ci/run starts them): events published with confirms /
JetStream acks, a routing key or subject per event type, reconnection after the broker
drops the connection, nothing lost while a broker is unreachable, and inbound
``contact.upsert`` messages applied once per idempotency key."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import nats
import pytest
from crmkit_brokers.inbound import Rejected, apply_message, parse
from crmkit_brokers.jetstream import NatsSink
from crmkit_brokers.rabbitmq import RabbitMQSink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js.api import ConsumerConfig, DeliverPolicy

import crmkit
from crmkit.events.admin import delivery_log
from crmkit.events.relay import Relay

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
NATS = "nats://127.0.0.1:4222"


def drain(relay: Relay, passes: int = 30) -> None:
    for _ in range(passes):
        if relay.run_once().idle:
            return
    raise AssertionError("the relay still had work")


@pytest.fixture
def unique() -> str:
    return "t" + uuid.uuid4().hex[:10]


def brokers_crm(make_crm: Callable[..., crmkit.CRM], unique: str, **extra: Any) -> crmkit.CRM:
    return make_crm(
        enable=["brokers"],
        relay={"backoff_seconds": 0, "max_attempts": 20},
        plugin_settings={
            "brokers": {
                "prefix": unique,
                "rabbitmq_exchange": f"crmkit.{unique}",
                "rabbitmq_inbound_queue": f"crmkit.inbound.{unique}",
                "nats_stream": f"S{unique}",
                "nats_inbound_stream": f"IN{unique}",
                "nats_inbound_subject": f"in.{unique}.>",
                "nats_durable": f"d{unique}",
                "timeout_seconds": 5.0,
                **extra,
            }
        },
    )


# -- RabbitMQ ---------------------------------------------------------------------------------


async def rabbit_queue(exchange: str, binding: str) -> tuple[Any, Any]:
    connection = await aio_pika.connect(RABBITMQ)
    channel = await connection.channel()
    topic = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(topic, routing_key=binding)
    return connection, queue


async def rabbit_take(queue: Any, count: int) -> list[Any]:
    taken = []
    for _ in range(200):
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            taken.append(message)
            if len(taken) == count:
                break
        else:
            await asyncio.sleep(0.05)
    return taken


def test_events_reach_rabbitmq_with_a_routing_key_per_event_type(
    make_crm: Callable[..., crmkit.CRM], unique: str
) -> None:
    crm = brokers_crm(make_crm, unique, rabbitmq_url=RABBITMQ)

    async def scenario() -> list[Any]:
        connection, queue = await rabbit_queue(f"crmkit.{unique}", f"{unique}.contact.*")
        async with connection:
            contact = await asyncio.to_thread(crm.contacts.create, {"full_name": "王芳"})
            await asyncio.to_thread(crm.contacts.update, contact.id, {"title": "总监"})
            await asyncio.to_thread(crm.accounts.create, {"name": "华为"})  # not bound
            await asyncio.to_thread(drain, Relay(crm))
            return await rabbit_take(queue, 3)

    messages = asyncio.run(scenario())
    assert [m.routing_key for m in messages] == [
        f"{unique}.contact.created",
        f"{unique}.contact.updated",
    ]
    bodies = [json.loads(m.body) for m in messages]
    assert bodies[0]["payload"]["full_name"] == "王芳"
    assert [m.message_id for m in messages] == [b["id"] for b in bodies]
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in messages)
    assert {line.status for line in delivery_log(crm, sink="rabbitmq")} == {"delivered"}


def test_nothing_is_lost_while_rabbitmq_is_unreachable(
    make_crm: Callable[..., crmkit.CRM], unique: str
) -> None:
    crm = brokers_crm(make_crm, unique, rabbitmq_url="amqp://guest:guest@127.0.0.1:1/")
    crm.contacts.create({"full_name": "李娜"})
    Relay(crm).run_once()
    (line,) = [
        line for line in delivery_log(crm, sink="rabbitmq") if line.event == "contact.created"
    ]
    assert line.status == "pending"
    assert line.last_error
    # The broker is back (the right address): the same delivery goes out.
    back = brokers_crm(make_crm, unique, rabbitmq_url=RABBITMQ)

    async def scenario() -> list[Any]:
        connection, queue = await rabbit_queue(f"crmkit.{unique}", f"{unique}.contact.#")
        async with connection:
            await asyncio.to_thread(drain, Relay(back))
            return await rabbit_take(queue, 1)

    (message,) = asyncio.run(scenario())
    assert json.loads(message.body)["payload"]["full_name"] == "李娜"
    assert {line.status for line in delivery_log(back, sink="rabbitmq")} == {"delivered"}


def test_the_rabbitmq_sink_reconnects_after_the_broker_drops_it(unique: str) -> None:
    sink = RabbitMQSink(
        RABBITMQ, exchange=f"crmkit.{unique}", prefix=unique, connection_name=f"drill {unique}"
    )
    try:
        assert sink.deliver_batch([crmkit.Event(name="contact.created")]) == [None]
        closed = subprocess.run(
            ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
            capture_output=True,
            text=True,
            check=True,
        )
        pids = [line.split()[0] for line in closed.stdout.splitlines() if f"drill {unique}" in line]
        assert pids, closed.stdout
        for pid in pids:
            subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "drill"], check=True)
        outcomes: list[BaseException | None] = [RuntimeError("not tried")]
        for _ in range(100):  # failed attempts while it reconnects, then confirmed again
            outcomes = sink.deliver_batch([crmkit.Event(name="contact.updated")])
            if outcomes == [None]:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert outcomes == [None]
    finally:
        sink.close()


# -- NATS JetStream ---------------------------------------------------------------------------


def test_events_reach_jetstream_with_a_subject_per_event_type(
    make_crm: Callable[..., crmkit.CRM], unique: str
) -> None:
    crm = brokers_crm(make_crm, unique, nats_url=NATS)
    contact = crm.contacts.create({"full_name": "陈静"})
    crm.contacts.update(contact.id, {"title": "经理"})
    drain(Relay(crm))

    async def read() -> list[Any]:
        connection = await nats.connect(NATS)
        try:
            jetstream = connection.jetstream()
            subscription = await jetstream.pull_subscribe(
                f"{unique}.contact.>",
                stream=f"S{unique}",
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
            )
            messages = await subscription.fetch(2, timeout=5)
            await jetstream.delete_stream(f"S{unique}")
            return list(messages)
        finally:
            await connection.close()

    messages = asyncio.run(read())
    assert [m.subject for m in messages] == [
        f"{unique}.contact.created",
        f"{unique}.contact.updated",
    ]
    bodies = [json.loads(m.data) for m in messages]
    assert [m.headers["Nats-Msg-Id"] for m in messages] == [b["id"] for b in bodies]
    assert bodies[1]["payload"]["changes"] == {"title": "经理"}


def test_jetstream_drops_a_republished_event_by_its_id(unique: str) -> None:
    sink = NatsSink(NATS, stream=f"S{unique}", prefix=unique)
    event = crmkit.Event(name="contact.created")
    try:
        assert sink.deliver_batch([event]) == [None]
        assert sink.deliver_batch([event]) == [None]  # a redelivery after a crash

        async def count() -> int:
            connection = await nats.connect(NATS)
            try:
                jetstream = connection.jetstream()
                info = await jetstream.stream_info(f"S{unique}")
                await jetstream.delete_stream(f"S{unique}")
                return int(info.state.messages)
            finally:
                await connection.close()

        assert asyncio.run(count()) == 1
    finally:
        sink.close()


def test_nothing_is_lost_while_nats_is_unreachable(unique: str) -> None:
    sink = NatsSink("nats://127.0.0.1:1", stream=f"S{unique}", prefix=unique, timeout_seconds=1)
    try:
        (outcome,) = sink.deliver_batch([crmkit.Event(name="contact.created")])
        assert outcome is not None  # a failed attempt: the relay keeps the delivery open
    finally:
        sink.close()


# -- inbound ----------------------------------------------------------------------------------


def upsert(key: str, contact: dict[str, Any], match: str | None = "email") -> bytes:
    message = {"type": "contact.upsert", "idempotency_key": key, "contact": contact}
    if match:
        message["match"] = match
    return json.dumps(message, ensure_ascii=False).encode()


def test_inbound_upserts_from_rabbitmq_are_applied_once(
    make_crm: Callable[..., crmkit.CRM], unique: str
) -> None:
    crm = brokers_crm(make_crm, unique, rabbitmq_url=RABBITMQ)
    bodies = [
        upsert("erp-1", {"full_name": "王芳", "email": "wang@example.cn"}),
        upsert("erp-1", {"full_name": "王芳", "email": "wang@example.cn"}),  # redelivered
        upsert("erp-2", {"full_name": "王芳", "email": "wang@example.cn", "title": "总监"}),
        b"{not json",
    ]

    async def publish() -> None:
        connection = await aio_pika.connect(RABBITMQ)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(f"crmkit.inbound.{unique}", durable=True)
            for body in bodies:
                await channel.default_exchange.publish(
                    aio_pika.Message(body), routing_key=f"crmkit.inbound.{unique}"
                )

    asyncio.run(publish())
    from crmkit_brokers.service import consume

    counts = consume(crm, "rabbitmq", max_messages=4, idle_seconds=5)
    assert dict(counts) == {"created": 1, "duplicate": 1, "updated": 1, "rejected": 1}
    (contact,) = crm.contacts.list().items
    assert (contact.full_name, contact.title) == ("王芳", "总监")


def test_inbound_upserts_from_jetstream_are_applied_once(
    make_crm: Callable[..., crmkit.CRM], unique: str
) -> None:
    crm = brokers_crm(make_crm, unique, nats_url=NATS)

    async def publish() -> None:
        connection = await nats.connect(NATS)
        try:
            jetstream = connection.jetstream()
            await jetstream.add_stream(name=f"IN{unique}", subjects=[f"in.{unique}.>"])
            for key in ("a", "a", "b"):
                body = upsert(key, {"full_name": f"客户{key}", "phone": "13800138000"}, "phone")
                await jetstream.publish(f"in.{unique}.contacts", body)
        finally:
            await connection.close()

    asyncio.run(publish())
    from crmkit_brokers.service import consume

    counts = consume(crm, "nats", idle_seconds=2)
    assert dict(counts) == {"created": 1, "duplicate": 1, "updated": 1}
    (contact,) = crm.contacts.list().items
    assert contact.full_name == "客户b"


def test_a_message_the_crm_refuses_is_rejected_with_the_reason(
    make_crm: Callable[..., crmkit.CRM], unique: str
) -> None:
    crm = brokers_crm(make_crm, unique)
    with pytest.raises(Rejected, match="no_such_field"):
        apply_message(crm, upsert("k", {"no_such_field": "x"}, match=None))
    with pytest.raises(Rejected, match="match must name"):
        apply_message(crm, upsert("k", {"full_name": "x"}, match="email"))
    assert crm.contacts.count() == 0


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda value: json.dumps(value).encode(),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(
                        st.sampled_from(["type", "idempotency_key", "contact", "match", "x"]),
                        inner,
                        max_size=5,
                    )
                ),
                max_leaves=10,
            ),
        ),
    )
)
def test_parse_accepts_a_valid_upsert_or_rejects_with_a_reason(body: bytes) -> None:
    outcome: Rejected | tuple[str, str | None, dict[str, Any]]
    try:
        outcome = parse(body)
    except Rejected as error:
        outcome = error
    if isinstance(outcome, Rejected):
        assert str(outcome)  # always a reason
    else:
        key, match, contact = outcome
        assert key.strip()
        assert contact
        assert match is None or match in contact


# -- the command line -------------------------------------------------------------------------


def test_brokers_check_reports_each_broker(
    make_crm: Callable[..., crmkit.CRM],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from crmkit.testing import command_line_for

    crm = brokers_crm(make_crm, unique, rabbitmq_url=RABBITMQ, nats_url="nats://127.0.0.1:1")
    cli = command_line_for(crm, monkeypatch, tmp_path)
    result = cli.run("brokers", "check")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("rabbitmq: ok: connected to 127.0.0.1:5672/")
    assert lines[1].startswith("nats: FAILED: ")


def test_brokers_consume_without_a_broker_is_one_clear_line(
    make_crm: Callable[..., crmkit.CRM],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from crmkit.testing import command_line_for

    crm = brokers_crm(make_crm, unique)
    cli = command_line_for(crm, monkeypatch, tmp_path)
    line = cli.fails("brokers", "consume", "--from", "nats")
    assert "no nats configured: set plugins.brokers.nats_url" in line
