"""Reminders and message channels: ``python bench/reminders_bench.py [--reminders N]``.

Measures on PostgreSQL (the production engine), each in a fresh database:

* **in-app delivery**: N reminders due in the same minute, fired by 1 and by 2 worker
  processes (each a real ``Scheduler`` pass loop with the reminders plugin's shared job),
  until every reminder is fired; then checked: N inbox rows, N ``sent`` log entries, no key
  twice, no reminder left. Next to it, the **raw baseline** a hand-written job would be:
  one ``INSERT INTO notifications SELECT ... FROM reminders`` plus one ``UPDATE`` (no
  delivery log, no claims, no recurrence), in one transaction.
* **killed worker**: 2 workers, one killed with SIGKILL mid-run; the survivor finishes; the
  same checks (no duplicate, none lost).
* **e-mail**: M queued e-mails delivered by ``crm.messages.deliver_pending`` to a local
  aiosmtpd server (a process of its own) that accepts everything; next to it the raw
  baseline: ``smtplib`` sending the same messages over one connection.

Runs alternate A/B and every run is printed. The machine is shared: print ``uptime``
alongside.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import crmkit_reminders  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from dbs import databases  # noqa: E402

import crmkit  # noqa: E402

USERS = 100


def open_crm(url: str, **settings: object) -> crmkit.CRM:
    data = {"crmkit": settings, "plugins": {}}
    return crmkit.CRM(
        crmkit.Settings.from_mapping(data, database_url=url),
        plugins={"reminders": crmkit_reminders},
        discover=False,
    )


def prepare(url: str, count: int) -> None:
    """Users and ``count`` one-off in-app reminders due a few seconds ago."""
    crm = open_crm(url)
    crm.upgrade()
    for index in range(USERS):
        crm.users.create(f"rep{index:03d}")
    with crm.engine.begin() as connection:
        connection.execute(
            sa.text(
                """
                INSERT INTO reminders (owner_id, title, note, starts_local, timezone, channels,
                    status, next_due_at, occurrence_at, fired_count, source, data, created_at)
                SELECT u.id, '回访客户 #' || g, '', '2026-12-08T10:00:00', 'Asia/Shanghai',
                    '["inapp"]', 'active', now() - interval '5 seconds',
                    now() - interval '5 seconds', 0, 'manual', '{}', now()
                FROM generate_series(1, :count) AS g
                JOIN users u ON u.id = (SELECT min(id) FROM users) + (g % :users)
                """
            ),
            {"count": count, "users": USERS},
        )
        connection.execute(sa.text("ANALYZE reminders"))
    crm.close()


def worker(url: str, name: str, ready: object = None) -> None:
    """A worker process: scheduler passes until the reminders job is idle. With ``ready`` (a
    barrier) it starts work only once every worker has opened its CRM, so the timing counts
    delivery, not process start-up."""
    from crmkit.services.scheduler import Scheduler

    crm = open_crm(url)
    scheduler = Scheduler(crm, name)
    job = next(j for j in scheduler.jobs() if j.name == "reminders.deliver")
    if ready is not None:
        ready.wait()  # type: ignore[attr-defined]
    while True:
        outcome = scheduler.run_job(job, crmkit.utcnow())
        if outcome.error:
            raise SystemExit(outcome.error)
        if outcome.summary == "idle":
            break
    crm.close()


def check(url: str, count: int) -> str:
    """Inbox rows, sent log entries, duplicate keys, reminders left."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        notes = connection.scalar(sa.text("SELECT count(*) FROM notifications"))
        sent = connection.scalar(
            sa.text("SELECT count(*) FROM message_deliveries WHERE kind = 'reminder'")
        )
        keys = connection.scalar(
            sa.text("SELECT count(DISTINCT key) FROM message_deliveries WHERE kind = 'reminder'")
        )
        left = connection.scalar(sa.text("SELECT count(*) FROM reminders WHERE status = 'active'"))
        fired_twice = connection.scalar(
            sa.text("SELECT count(*) FROM reminders WHERE fired_count <> 1")
        )
    engine.dispose()
    ok = notes == sent == keys == count and left == 0 and fired_twice == 0
    return (
        f"inbox {notes}, logged {sent}, distinct keys {keys}, left {left},"
        f" fired twice {fired_twice}: {'OK' if ok else 'WRONG'}"
    )


def run_workers(url: str, workers: int, kill_after: float | None = None) -> float:
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(workers + 1)
    processes = [context.Process(target=worker, args=(url, f"w{i}", ready)) for i in range(workers)]
    for process in processes:
        process.start()
    ready.wait()  # every worker has opened its CRM: the clock starts now
    started = time.perf_counter()
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(processes[0].pid or 0, signal.SIGKILL)
        print(f"    killed worker w0 (pid {processes[0].pid}) after {kill_after:.1f} s")
        processes[0].join()
        # the survivor may have finished before the kill: run one more to mop up
        processes[1].join()
        mop = context.Process(target=worker, args=(url, "w2"))
        mop.start()
        mop.join()
    else:
        for process in processes:
            process.join()
    return time.perf_counter() - started


def raw_baseline(url: str) -> float:
    engine = sa.create_engine(url)
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                """
                INSERT INTO notifications (user_id, created_at, kind, title, body, event_id)
                SELECT owner_id, now(), 'reminder', title, note, NULL FROM reminders
                WHERE next_due_at <= now() AND status = 'active'
                """
            )
        )
        connection.execute(
            sa.text(
                "UPDATE reminders SET status = 'fired', next_due_at = NULL,"
                " fired_count = fired_count + 1 WHERE next_due_at <= now() AND status = 'active'"
            )
        )
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# -- e-mail ----------------------------------------------------------------------------------


class Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        return "250 OK"


def serve_sink(port: int) -> None:
    """An SMTP server that accepts everything, in a process of its own (so it does not share
    the measured process's GIL, as a real mail relay would not)."""
    from aiosmtpd.controller import Controller

    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    while True:
        time.sleep(3600)


def start_sink(port: int) -> multiprocessing.Process:
    process = multiprocessing.get_context("spawn").Process(target=serve_sink, args=(port,))
    process.start()
    deadline = time.monotonic() + 120  # a spawned process imports for a while on a busy machine
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the SMTP sink did not start")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def email_run(url: str, count: int, port: int, connections: int) -> float:
    crm = open_crm(
        url,
        email={
            "host": "127.0.0.1",
            "port": port,
            "from_address": "crm@shop.example",
            "connections": connections,
        },
        messages={"batch_size": 500},
    )
    crm.upgrade()
    crm.messages.send_many(
        [
            crmkit.Message(
                channel="email",
                to=f"customer{i}@example.cn",
                subject="中秋快乐",
                body="祝您和家人中秋快乐！" * 5,
                unsubscribe=True,
            )
            for i in range(count)
        ]
    )
    started = time.perf_counter()
    stats = crm.messages.deliver_pending("bench", rounds=count)
    elapsed = time.perf_counter() - started
    assert stats.sent == count, stats
    crm.close()
    return elapsed


def smtplib_baseline(count: int, port: int) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(count):
            message = EmailMessage()
            message["From"] = "crm@shop.example"
            message["To"] = f"customer{i}@example.cn"
            message["Subject"] = "中秋快乐"
            message.set_content("祝您和家人中秋快乐！" * 5)
            smtp.send_message(message)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reminders", type=int, default=100_000)
    parser.add_argument("--emails", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=2, help="A/B alternations")
    parser.add_argument("--skip-email", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--skip-inapp", action="store_true")
    arguments = parser.parse_args()
    count = arguments.reminders
    print(f"load before: {uptime()}")
    with databases("postgresql") as dbs:
        for round_number in range(1, 0 if arguments.skip_inapp else arguments.rounds + 1):
            for label, workers in (("raw baseline", 0), ("1 worker", 1), ("2 workers", 2)):
                url = dbs.fresh()
                prepare(url, count)
                if workers == 0:
                    elapsed = raw_baseline(url)
                    verdict = "(no log, no claims)"
                else:
                    elapsed = run_workers(url, workers)
                    verdict = check(url, count)
                print(
                    f"round {round_number} {label:<12} {count} in-app: {elapsed:6.1f} s"
                    f" ({count / elapsed:,.0f}/s) {verdict} | {uptime()}",
                    flush=True,
                )
                dbs.drop(url)
        if not arguments.skip_kill and not arguments.skip_inapp:
            url = dbs.fresh()
            prepare(url, count)
            elapsed = run_workers(url, 2, kill_after=1.5)
            print(f"killed-worker run: {elapsed:.1f} s; {check(url, count)} | {uptime()}")
            dbs.drop(url)
        if not arguments.skip_email:
            port = free_port()
            sink = start_sink(port)
            try:
                for round_number in range(1, arguments.rounds + 1):
                    elapsed = smtplib_baseline(arguments.emails, port)
                    print(
                        f"round {round_number} smtplib, 1 connection   {arguments.emails}"
                        f" e-mails: {elapsed:5.1f} s ({arguments.emails / elapsed:,.0f}/s)"
                    )
                    for connections in (1, 4):
                        url = dbs.fresh()
                        elapsed = email_run(url, arguments.emails, port, connections)
                        print(
                            f"round {round_number} crmkit, {connections} connection(s)"
                            f" {arguments.emails} e-mails: {elapsed:5.1f} s"
                            f" ({arguments.emails / elapsed:,.0f}/s) | {uptime()}",
                            flush=True,
                        )
                        dbs.drop(url)
            finally:
                sink.kill()


if __name__ == "__main__":
    main()
