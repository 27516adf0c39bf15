"""The brokers plugin against the real RabbitMQ (127.0.0.1:5672) and NATS JetStream
(127.0.0.1:4222) the machine runs (.ci/run starts them): events published with confirms /
JetStream acks, a routing key or subject per event type, reconnection after the broker
drops the connection, nothing lost while a broker is unreachable, and inbound
``contact.upsert`` messages applied once per idempotency key."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
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
    assert lines[0].startswith("rabbitmq: ok: connected to 127.0.0.1:5672, exchange ")
    assert lines[1] == f"nats: FAILED: cannot reach nats at 127.0.0.1:1: {REFUSED}"
    assert result.stderr == "Error: not ready: nats (see above)\n"


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


REFUSED = "connection refused (is the broker running, on this port?)"
UNREACHABLE = {"rabbitmq": "amqp://guest:guest@127.0.0.1:1/", "nats": "nats://127.0.0.1:1"}


@pytest.mark.parametrize("broker", ["rabbitmq", "nats"])
def test_brokers_consume_from_an_unreachable_broker_fails_in_one_line(
    make_crm: Callable[..., crmkit.CRM],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    broker: str,
) -> None:
    from crmkit.testing import command_line_for

    # a time-out far longer than any test: the first refusal must end it, not the clock
    crm = brokers_crm(
        make_crm, unique, timeout_seconds=600.0, **{f"{broker}_url": UNREACHABLE[broker]}
    )
    cli = command_line_for(crm, monkeypatch, tmp_path)
    line = cli.fails("brokers", "consume", "--from", broker)
    assert line == f"Error: cannot reach {broker} at 127.0.0.1:1: {REFUSED}"


def test_brokers_check_with_both_brokers_unreachable_says_where_and_why(
    make_crm: Callable[..., crmkit.CRM],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from crmkit.testing import command_line_for

    crm = brokers_crm(
        make_crm,
        unique,
        timeout_seconds=600.0,
        rabbitmq_url=UNREACHABLE["rabbitmq"],
        nats_url=UNREACHABLE["nats"],
    )
    cli = command_line_for(crm, monkeypatch, tmp_path)
    result = cli.run("brokers", "check")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stdout.splitlines() == [
        f"rabbitmq: FAILED: cannot reach rabbitmq at 127.0.0.1:1: {REFUSED}",
        f"nats: FAILED: cannot reach nats at 127.0.0.1:1: {REFUSED}",
    ]
    assert result.stderr == "Error: not ready: rabbitmq, nats (see above)\n"


@pytest.mark.parametrize(
    ("broker", "url", "problem"),
    [
        ("rabbitmq", "amqp://guest:secret@127.0.0.1:99999/", "Port out of range 0-65535"),
        ("rabbitmq", "http://127.0.0.1:5672/", "the scheme must be amqp:// or amqps://"),
        ("rabbitmq", "amqp:///vhost", "no host"),
        ("rabbitmq", "127.0.0.1:5672", "the scheme must be amqp:// or amqps://"),
        ("nats", "nats://127.0.0.1:port", "Port could not be cast to integer value"),
        ("nats", "nats//127.0.0.1:4222", "the scheme must be nats://"),
        ("nats", "nats://host name:4222", "it contains spaces or control characters"),
    ],
)
def test_brokers_check_names_a_malformed_url_without_connecting(
    make_crm: Callable[..., crmkit.CRM],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    broker: str,
    url: str,
    problem: str,
) -> None:
    from crmkit.testing import command_line_for

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a malformed URL must not be connected to")

    monkeypatch.setattr(aio_pika, "connect_robust", never)
    monkeypatch.setattr(nats.NATS, "connect", never)
    crm = brokers_crm(make_crm, unique, timeout_seconds=600.0, **{f"{broker}_url": url})
    cli = command_line_for(crm, monkeypatch, tmp_path)
    result = cli.run("brokers", "check")
    assert result.exit_code == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"{broker}: FAILED: malformed URL ")
    assert f"(plugins.brokers.{broker}_url): {problem}" in line
    assert "secret" not in line  # the password is not printed
    consumed = cli.fails("brokers", "consume", "--from", broker)
    assert consumed.startswith("Error: malformed URL ")
    assert problem in consumed


@pytest.mark.parametrize("broker", ["rabbitmq", "nats"])
def test_a_host_that_never_answers_fails_after_the_timeout_naming_host_and_port(
    make_crm: Callable[..., crmkit.CRM],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    broker: str,
) -> None:
    from crmkit.testing import command_line_for

    with socket.socket() as silent:  # takes connections (the backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        url = {
            "rabbitmq": f"amqp://guest:guest@127.0.0.1:{port}/",
            "nats": f"nats://127.0.0.1:{port}",
        }
        crm = brokers_crm(make_crm, unique, timeout_seconds=1.0, **{f"{broker}_url": url[broker]})
        cli = command_line_for(crm, monkeypatch, tmp_path)
        result = cli.run("brokers", "check")
        line = cli.fails("brokers", "consume", "--from", broker)
    assert (
        result.stdout
        == f"{broker}: FAILED: cannot reach {broker} at 127.0.0.1:{port}: no answer within 1 s\n"
    )
    assert line == f"Error: cannot reach {broker} at 127.0.0.1:{port}: no answer within 1 s"


def test_the_relay_counts_a_batch_failed_when_nats_is_unreachable_in_one_log_line(
    make_crm: Callable[..., crmkit.CRM], unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    crm = brokers_crm(make_crm, unique, nats_url=UNREACHABLE["nats"], timeout_seconds=600.0)
    crm.contacts.create({"full_name": "李娜"})
    crm.contacts.create({"full_name": "王芳"})
    caplog.set_level(logging.DEBUG)
    stats = Relay(crm).run_once()
    lines = delivery_log(crm, sink="nats")
    assert stats.delivered == 0
    assert len(lines) >= 2
    assert stats.retried >= len(lines)  # counted failed, to be retried (no backoff here)
    assert {line.status for line in lines} == {"pending"}
    assert all(f"cannot reach nats at 127.0.0.1:1: {REFUSED}" in line.last_error for line in lines)
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems  # one line per failed batch, from the relay, and nothing else
    assert {r.name for r in problems} == {"crmkit.events.relay"}
    assert not any(r.exc_info for r in caplog.records)


def test_a_nats_connection_reconnects_for_ever_once_it_was_made(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from crmkit_brokers.connect import connect_nats
    from crmkit_brokers.testing import NatsServer

    caplog.set_level(logging.DEBUG)
    with NatsServer(tmp_path / "nats") as server:

        async def scenario() -> None:
            connection = await connect_nats(server.url, timeout=1)
            try:
                server.kill()
                # away for several reconnection attempts (one a second)
                await asyncio.sleep(3.5)
                assert not connection.is_closed
                await asyncio.to_thread(server.start)
                for _ in range(300):
                    if connection.is_connected:
                        break
                    await asyncio.sleep(0.1)
                assert connection.is_connected
                await connection.publish("anything", b"x")
                await connection.flush(timeout=5)
            finally:
                await connection.close()

        asyncio.run(scenario())
    assert not any(r.exc_info for r in caplog.records)  # no traceback per attempt
    said = [r.getMessage() for r in caplog.records if r.name == "crmkit_brokers.connect"]
    assert any(line.startswith("nats: disconnected from 127.0.0.1:") for line in said)
    assert said[-1].startswith("nats: reconnected to 127.0.0.1:")
    assert all("\n" not in line for line in said)
