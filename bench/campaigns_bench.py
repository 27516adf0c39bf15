"""Campaign e-mail throughput: ``python bench/campaigns_bench.py [--emails N] [--rounds R]``.

Per engine (SQLite and PostgreSQL), each run on a fresh database with N contacts (10
recipient domains) and one campaign whose first step renders subject and body per contact
(Jinja2 sandbox, the contact's fields, a tracked link and the unsubscribe link):

* **crmkit**: the clock runs from the campaign's start (the audience becomes its members)
  through the sending passes (render, per-domain counters, same-day rule, one
  ``send_many`` per batch) and the core delivery to an aiosmtpd server until the SMTP
  server has accepted all N (``[crmkit.email] connections`` 1 and 4); then checked: N
  mails accepted, N ``sent`` log rows with N distinct keys, N e-mail activities.
* **bare smtplib**: the raw baseline in the same run: a loop over one ``smtplib`` connection
  that formats each text with an f-string, builds the message (same headers but the
  unsubscribe pair, same size) and sends it: no template engine, no log, no activity.

The SMTP server is a process of its own that accepts everything and counts. Rounds
alternate (baseline, crmkit 1 connection, crmkit 4 connections); every run is printed with
``uptime``: the machine is shared.
"""

from __future__ import annotations

import argparse
import multiprocessing
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

import crmkit_campaigns  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from crmkit_campaigns import service  # noqa: E402
from crmkit_campaigns.sending import run_campaigns  # noqa: E402
from dbs import databases  # noqa: E402

import crmkit  # noqa: E402

DOMAINS = [f"mail{i}.example.cn" for i in range(10)]
DEFINITION = {
    "steps": [
        {
            "kind": "first",
            "subject": {"zh": "{{ full_name }}，春季新品上市", "en": "{{ full_name }}, spring"},
            "body": {
                "zh": "{{ full_name }} 您好：\n\n{% if title %}{{ title }}，{% endif %}"
                "春季新品目录：{{ track('https://shop.example.cn/spring') }}\n\n"
                "如需报价请直接回复本邮件。\n\n退订：{{ unsubscribe_url }}",
                "en": "Dear {{ full_name }}: {{ track('https://shop.example.cn/spring') }}"
                " {{ unsubscribe_url }}",
            },
        }
    ]
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Counter:
    """Accepts every message and counts them in a shared value."""

    def __init__(self, count: object) -> None:
        self.count = count

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        with self.count.get_lock():  # type: ignore[attr-defined]
            self.count.value += 1  # type: ignore[attr-defined]
        return "250 OK"


def serve(port: int, count: object) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(Counter(count), hostname="127.0.0.1", port=port)
    controller.start()
    while True:
        time.sleep(3600)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int, count: object) -> multiprocessing.Process:
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(port, count))
    process.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the SMTP server did not start")


def open_crm(url: str, port: int, connections: int) -> crmkit.CRM:
    data = {
        "crmkit": {
            "email": {
                "host": "127.0.0.1",
                "port": port,
                "from_address": "news@shop.example.cn",
                "connections": connections,
            },
            "messages": {"batch_size": 500},
            "api": {"public_url": "https://crm.shop.example.cn"},
        },
        "plugins": {"campaigns": {"per_domain_per_minute": 10**9, "per_domain_per_day": 10**9}},
    }
    crm = crmkit.CRM(
        crmkit.Settings.from_mapping(data, database_url=url),
        plugins={"campaigns": crmkit_campaigns},
        discover=False,
    )
    crm.upgrade()
    return crm


def prepare(crm: crmkit.CRM, count: int) -> None:
    crm.pipelines.create("Sales")
    crm.contacts.create_many(
        (
            i,
            {
                "full_name": f"客户{i:06d}",
                "title": "采购经理" if i % 2 else None,
                "email": f"customer{i}@{DOMAINS[i % len(DOMAINS)]}",
            },
        )
        for i in range(count)
    )
    service.create_campaign(crm, "春季", DEFINITION)


def crmkit_run(url: str, count: int, port: int, connections: int, received: object) -> str:
    crm = open_crm(url, port, connections)
    prepare(crm, count)
    before = received.value  # type: ignore[attr-defined]
    started = time.perf_counter()
    service.start_campaign(crm, "春季")
    while True:
        queued = sum(r.sent for r in run_campaigns(crm))
        stats = crm.messages.deliver_pending("bench", rounds=10**6)
        if not queued and stats.idle:
            break
    elapsed = time.perf_counter() - started
    accepted = received.value - before  # type: ignore[attr-defined]
    with crm.engine.connect() as connection:
        sent, keys = connection.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT key) FROM message_deliveries"
                " WHERE status = 'sent' AND kind = 'campaign'"
            )
        ).one()
        activities = connection.execute(
            sa.text("SELECT count(*) FROM activities WHERE kind = 'email'")
        ).scalar()
    crm.close()
    verdict = (
        "OK"
        if accepted == sent == keys == activities == count
        else f"MISMATCH accepted {accepted} sent {sent} keys {keys} activities {activities}"
    )
    return f"{elapsed:6.2f} s ({count / elapsed:,.0f}/s) {verdict}"


def smtplib_run(count: int, port: int) -> str:
    """What a hand-written script does: per contact, format the text, build the message,
    send it, over one connection (no template engine, no log, no activity, no retries)."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(count):
            name = f"客户{i:06d}"
            message = EmailMessage()
            message["From"] = "news@shop.example.cn"
            message["To"] = f"customer{i}@{DOMAINS[i % len(DOMAINS)]}"
            message["Subject"] = f"{name}，春季新品上市"
            message.set_content(
                f"{name} 您好：\n\n春季新品目录：https://crm.shop.example.cn/plugins/"
                f"campaigns/click/{'x' * 80}\n\n如需报价请直接回复本邮件。\n\n退订："
                f"https://crm.shop.example.cn/messages/unsubscribe/{'y' * 90}"
            )
            smtp.send_message(message)
    elapsed = time.perf_counter() - started
    return f"{elapsed:6.2f} s ({count / elapsed:,.0f}/s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3, help="A/B alternations")
    parser.add_argument("--engines", default="sqlite,postgresql")
    arguments = parser.parse_args()
    count = arguments.emails
    received = multiprocessing.get_context("spawn").Value("q", 0)
    port = free_port()
    server = start_server(port, received)
    print(f"load before: {uptime()}", flush=True)
    try:
        for engine in arguments.engines.split(","):
            with databases(engine) as dbs:
                for round_number in range(1, arguments.rounds + 1):
                    line = smtplib_run(count, port)
                    print(
                        f"{engine:<10} round {round_number} bare smtplib, 1 connection:"
                        f" {count} e-mails {line} | {uptime()}",
                        flush=True,
                    )
                    for connections in (1, 4):
                        url = dbs.fresh()
                        line = crmkit_run(url, count, port, connections, received)
                        print(
                            f"{engine:<10} round {round_number} crmkit campaign,"
                            f" {connections} connection(s): {count} e-mails {line}"
                            f" | {uptime()}",
                            flush=True,
                        )
                        dbs.drop(url)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
