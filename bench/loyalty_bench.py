"""Loyalty benchmarks: purchase-history import, earn/redeem latency, one hot card.

Each figure is measured next to the bare SQL a hand-written integration would run, in the
same run, alternating crmkit (A) and bare (B) round by round:

* import: a year of purchases for every member; crmkit's ``import_purchases`` (checks, earn
  rules, purchase + lot + ledger rows, card balances, tiers) against bare ``INSERT`` of the
  purchase rows plus ``UPDATE cards SET balance = balance + ?`` (batched ``executemany``, one
  transaction per batch, card ids looked up once);
* earn / redeem: one client, one call at a time on random cards, p50 / p95 of
  ``record_purchase`` / ``redeem`` against one bare transaction (earn: INSERT purchase +
  UPDATE balance; redeem: SELECT ... FOR UPDATE + UPDATE + INSERT ledger);
* hot card: 50 threads redeeming 1 point at a time from one card holding fewer points than
  they ask for: redemptions per second, and the card never overdrawn.

Run it with any Python that has ``crmkit[loyalty]`` installed (the bench or tests
environments do):

    .nox/tests-sqlite/bin/python bench/loyalty_bench.py --members 2000 --rounds 3

and the import alone for the issue's 100 000 members (about 1.2 million purchases), one
engine per run to stay within a quiet slot:

    .nox/tests-sqlite/bin/python bench/loyalty_bench.py --members 100000 --import-only \
        --backend sqlite --rounds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import random
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crmkit_loyalty
import psycopg
from crmkit_loyalty import importing, service
from crmkit_loyalty.cards import new_number
from dbs import BACKENDS, Databases, libpq_url, sqlite_path
from machine import machine_info

import crmkit

PROGRAM = {
    "name": "tea-club",
    "rates": {"CNY": 1},
    "validity": {"months": 12, "round_to": "month"},
    "multipliers": [{"when": "category", "value": "tea", "factor": 2}],
    "tiers": [{"name": "silver", "threshold": 3000}, {"name": "gold", "threshold": 10000}],
}
CATEGORIES = ("tea", "teaware", "snacks", "gift")
STORES = ("上海南京路店", "北京三里屯店", "杭州西湖店", "广州天河店")


def load() -> str:
    """The load average now (1, 5, 15 min)."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile (nearest rank) in milliseconds."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


# -- data ----------------------------------------------------------------------------------


def seed(url: str, members: int) -> list[tuple[int, str]]:
    """Contacts, the program and one card each; returns (card id, number)."""
    crm = crmkit.open(url, plugins={"loyalty": crmkit_loyalty}, discover=False, upgrade=True)
    try:
        service.add_program(crm, PROGRAM)
        names = "张王李赵刘陈杨黄周吴"
        crm.contacts.create_many(
            ((i + 2, {"full_name": f"{names[i % 10]}会员{i}"}) for i in range(members)),
            batch_size=2000,
        )
        with crm.transaction() as op:
            connection = op.session.connection()
            contact_ids = [
                row[0] for row in connection.exec_driver_sql("SELECT id FROM contacts ORDER BY id")
            ]
            program_id = connection.exec_driver_sql("SELECT id FROM loyalty_programs").scalar()
            now = crmkit.utcnow()
            cards = [
                {
                    "number": new_number("88"),
                    "program_id": program_id,
                    "contact_id": contact_id,
                    "status": "active",
                    "balance": 0,
                    "pending": 0,
                    "issued_at": now,
                }
                for contact_id in contact_ids
            ]
            crmkit.bulk_insert(connection, crmkit_loyalty.LoyaltyCard.__table__, cards)  # type: ignore[arg-type]
            rows = connection.exec_driver_sql("SELECT id, number FROM loyalty_cards ORDER BY id")
            return [(row[0], row[1]) for row in rows]
    finally:
        crm.close()


def history(cards: list[tuple[int, str]], per_member: int, seed_value: int) -> list[dict[str, Any]]:
    """A year of purchases: ``per_member`` on average per card, realistic amounts."""
    rng = random.Random(seed_value)
    now = crmkit.utcnow()
    rows = []
    for _, number in cards:
        for _ in range(max(1, int(rng.expovariate(1 / per_member)))):
            amount = decimal.Decimal(rng.choice((38, 68, 88, 128, 168, 288, 388, 588, 988))) + (
                decimal.Decimal(rng.randint(0, 99)) / 100
            )
            rows.append(
                {
                    "card": number,
                    "receipt_id": f"R{len(rows):09d}",
                    "amount": str(amount),
                    "currency": "CNY",
                    "occurred_at": (
                        now - dt.timedelta(minutes=rng.randint(60, 365 * 24 * 60))
                    ).isoformat(),
                    "store": rng.choice(STORES),
                    "category": rng.choice(CATEGORIES),
                }
            )
    return rows


# -- bare SQL ------------------------------------------------------------------------------


class Bare:
    """A hand-written integration's SQL on a raw DB-API connection."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        if backend == "sqlite":
            self.connection: Any = sqlite3.connect(
                sqlite_path(url), timeout=60, isolation_level=None, check_same_thread=False
            )
            # the durability crmkit's connections have (WAL is the database file's own mode)
            self.connection.execute("PRAGMA synchronous = NORMAL")
            self.mark = "?"
        else:
            self.connection = psycopg.connect(libpq_url(url), autocommit=True)
            self.mark = "%s"

    def begin(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE" if self.backend == "sqlite" else "BEGIN")

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def close(self) -> None:
        self.connection.close()

    def import_rows(self, rows: list[dict[str, Any]], batch: int = 2000) -> None:
        cursor = self.connection.cursor()
        found = cursor.execute("SELECT id, number FROM loyalty_cards").fetchall()
        ids = {number: card_id for card_id, number in found}
        program_id = cursor.execute("SELECT id FROM loyalty_programs").fetchone()[0]
        insert = self.sql(
            "INSERT INTO loyalty_purchases (program_id, card_id, contact_id, receipt_id, amount,"
            " currency, store, occurred_at, items, points, refunded_amount, refunded_points,"
            " recorded_at) VALUES (?, ?, (SELECT contact_id FROM loyalty_cards WHERE id = ?),"
            " ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)"
        )
        bump = self.sql("UPDATE loyalty_cards SET balance = balance + ? WHERE id = ?")
        now = crmkit.utcnow().isoformat()
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            self.begin()
            values = []
            bumps = []
            for row in chunk:
                card_id = ids[row["card"]]
                points = int(decimal.Decimal(row["amount"]))
                values.append(
                    (
                        program_id,
                        card_id,
                        card_id,
                        row["receipt_id"],
                        row["amount"],
                        "CNY",
                        row["store"],
                        row["occurred_at"],
                        # the items as crmkit stores them: one of the row's category
                        json.dumps([{"amount": row["amount"], "category": row["category"]}]),
                        points,
                        now,
                    )
                )
                bumps.append((points, card_id))
            cursor.executemany(insert, values)
            cursor.executemany(bump, bumps)
            self.connection.execute("COMMIT")

    def earn(self, card_id: int, receipt: str) -> None:
        cursor = self.connection.cursor()
        self.begin()
        cursor.execute(
            self.sql(
                "INSERT INTO loyalty_purchases (program_id, card_id, contact_id, receipt_id,"
                " amount, currency, store, occurred_at, items, points, refunded_amount,"
                " refunded_points, recorded_at) VALUES (1, ?, 1, ?, 88, 'CNY', NULL, ?, '[]',"
                " 88, 0, 0, ?)"
            ),
            (card_id, receipt, crmkit.utcnow().isoformat(), crmkit.utcnow().isoformat()),
        )
        cursor.execute(
            self.sql("UPDATE loyalty_cards SET balance = balance + 88 WHERE id = ?"), (card_id,)
        )
        self.connection.execute("COMMIT")

    def redeem(self, card_id: int, points: int) -> bool:
        cursor = self.connection.cursor()
        self.begin()
        lock = "" if self.backend == "sqlite" else " FOR UPDATE"
        balance = cursor.execute(
            self.sql(f"SELECT balance FROM loyalty_cards WHERE id = ?{lock}"), (card_id,)
        ).fetchone()[0]
        if balance < points:
            self.connection.execute("ROLLBACK")
            return False
        cursor.execute(
            self.sql("UPDATE loyalty_cards SET balance = balance - ? WHERE id = ?"),
            (points, card_id),
        )
        cursor.execute(
            self.sql(
                "INSERT INTO loyalty_ledger (card_id, kind, points, pending, at)"
                " VALUES (?, 'redeem', ?, 0, ?)"
            ),
            (card_id, -points, crmkit.utcnow().isoformat()),
        )
        self.connection.execute("COMMIT")
        return True


# -- the measurements ------------------------------------------------------------------------


def measure_import(
    dbs: Databases, base: str, rows: list[dict[str, Any]], rounds: int
) -> dict[str, Any]:
    crmkit_rates, bare_rates, loads = [], [], []
    cpu: dict[str, list[float]] = {"crmkit": [], "bare": []}  # this process's CPU seconds
    for _ in range(rounds):
        loads.append(load())
        url = dbs.clone(base)
        crm = crmkit.open(url, plugins={"loyalty": crmkit_loyalty}, discover=False)
        started, used = time.perf_counter(), time.process_time()
        result = importing.import_purchases(crm, rows)
        crmkit_rates.append(len(rows) / (time.perf_counter() - started))
        cpu["crmkit"].append(time.process_time() - used)
        assert result.imported == len(rows)
        crm.close()
        dbs.drop(url)
        url = dbs.clone(base)
        bare = Bare(dbs.backend, url)
        started, used = time.perf_counter(), time.process_time()
        bare.import_rows(rows)
        bare_rates.append(len(rows) / (time.perf_counter() - started))
        cpu["bare"].append(time.process_time() - used)
        bare.close()
        dbs.drop(url)
    return {"crmkit": crmkit_rates, "bare": bare_rates, "load": loads, "cpu": cpu}


def measure_calls(
    crm: crmkit.CRM, bare: Bare, cards: list[tuple[int, str]], calls: int, rounds: int, actor: Any
) -> dict[str, list[float]]:
    rng = random.Random(7)
    times: dict[str, Any] = {k: [] for k in ("earn", "earn_bare", "redeem", "redeem_bare")}
    times["rounds"] = []  # per round: the load, then where each kind's calls start
    per_round = max(1, calls // rounds)
    counter = 0
    for _ in range(rounds):
        times["rounds"].append(load())
        for _ in range(per_round):
            card_id, number = rng.choice(cards)
            counter += 1
            started = time.perf_counter()
            service.record_purchase(
                crm, number, "88.00", receipt_id=f"L{id(times)}-{counter}", actor=actor
            )
            times["earn"].append(time.perf_counter() - started)
        for _ in range(per_round):
            card_id, number = rng.choice(cards)
            counter += 1
            started = time.perf_counter()
            bare.earn(card_id, f"B{id(times)}-{counter}")
            times["earn_bare"].append(time.perf_counter() - started)
        for _ in range(per_round):
            card_id, number = rng.choice(cards)
            started = time.perf_counter()
            service.redeem(crm, number, 1, actor=actor)
            times["redeem"].append(time.perf_counter() - started)
        for _ in range(per_round):
            card_id, number = rng.choice(cards)
            started = time.perf_counter()
            bare.redeem(card_id, 1)
            times["redeem_bare"].append(time.perf_counter() - started)
    return times


def hot_card(
    crm: crmkit.CRM, url: str, backend: str, card: tuple[int, str], clients: int, each: int
) -> dict[str, Any]:
    card_id, number = card
    results: dict[str, Any] = {}
    for kind in ("crmkit", "bare"):
        with crm.transaction() as op:  # set the balance: fewer points than asked for
            op.session.connection().exec_driver_sql(
                f"UPDATE loyalty_cards SET balance = 0 WHERE id = {card_id}"
            )
            op.session.connection().exec_driver_sql(
                f"UPDATE loyalty_lots SET remaining = 0 WHERE card_id = {card_id}"
            )
        service.record_purchase(crm, number, str(clients * each * 4 // 5), receipt_id=f"HOT-{kind}")
        balance_before = int(service_card(crm, number)["balance"])
        barrier = threading.Barrier(clients)
        done = [0] * clients
        refused = [0] * clients
        failed: list[str] = []  # any other error (a pool timeout, say): reported, not hidden

        def work(
            index: int,
            kind: str = kind,
            barrier: threading.Barrier = barrier,
            done: list[int] = done,
            refused: list[int] = refused,
            failed: list[str] = failed,
        ) -> None:
            bare = Bare(backend, url) if kind == "bare" else None
            barrier.wait()
            for _ in range(each):
                if bare is not None:
                    ok = bare.redeem(card_id, 1)
                else:
                    try:
                        service.redeem(crm, number, 1)
                        ok = True
                    except crmkit.ValidationError:
                        ok = False
                    except Exception as error:  # noqa: BLE001 - counted and reported
                        failed.append(type(error).__name__)
                        continue
                if ok:
                    done[index] += 1
                else:
                    refused[index] += 1
            if bare is not None:
                bare.close()

        threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        balance_after = int(service_card(crm, number)["balance"]) if kind == "crmkit" else None
        results[kind] = {
            "attempts_per_s": clients * each / elapsed,
            "redeemed": sum(done),
            "refused": sum(refused),
            "failed": sorted({name: failed.count(name) for name in failed}.items()),
            "balance_before": balance_before,
            "overdrawn": (balance_after or 0) < 0 or sum(done) > balance_before,
        }
    return results


def service_card(crm: crmkit.CRM, number: str) -> dict[str, Any]:
    from crmkit_loyalty import views

    return views.card(crm, number)


def run_backend(backend: str, arguments: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "load_start": load()}
    with Databases(backend) as dbs:
        base = dbs.fresh()
        cards = seed(base, arguments.members)
        rows = history(cards, arguments.per_member, seed_value=2026)
        out["purchases"] = len(rows)
        out["members"] = len(cards)
        out["import"] = measure_import(dbs, base, rows, arguments.rounds)
        if arguments.import_only:
            out["load_end"] = load()
            return out
        url = dbs.clone(base)
        crm = crmkit.open(url, plugins={"loyalty": crmkit_loyalty}, discover=False)
        importing.import_purchases(crm, rows)
        bare = Bare(backend, url)
        out["calls_system"] = measure_calls(
            crm, bare, cards, arguments.calls, arguments.rounds, None
        )
        admin = crm.users.create("till-admin", admin=True)
        out["calls_user"] = measure_calls(
            crm, bare, cards, arguments.calls, arguments.rounds, admin
        )
        bare.close()
        out["hot"] = hot_card(crm, url, backend, cards[0], 50, arguments.hot_each)
        crm.close()
    out["load_end"] = load()
    return out


def _ms(values: list[float]) -> str:
    """p50 / p95 / p99 in milliseconds."""
    return " / ".join(f"{percentile(values, share):.2f}" for share in (0.5, 0.95, 0.99))


def _calls_table(t: dict[str, Any], label: str) -> list[str]:
    """Every round of the earn / redeem calls, then all of them, crmkit next to bare."""
    rounds = t["rounds"]
    per_round = len(t["earn"]) // len(rounds)
    lines = [
        f"| {label}: round (load at its start) | earn crmkit | earn bare | redeem crmkit"
        " | redeem bare |",
        "| --- | --- | --- | --- | --- |",
    ]
    for index, at in enumerate(rounds):
        part = slice(index * per_round, (index + 1) * per_round)
        cells = [_ms(t[kind][part]) for kind in ("earn", "earn_bare", "redeem", "redeem_bare")]
        lines.append(f"| {index + 1} ({at.split()[0]}) | " + " | ".join(cells) + " |")
    cells = [_ms(t[kind]) for kind in ("earn", "earn_bare", "redeem", "redeem_bare")]
    lines.append(f"| all {len(t['earn'])} calls | " + " | ".join(cells) + " |")
    return lines


def report(results: list[dict[str, Any]]) -> str:
    """The results as Markdown tables, one set per engine."""
    lines = []
    for r in results:
        imp = r["import"]
        lines += [
            f"**{r['backend']}**: {r['members']} members, {r['purchases']} purchases;"
            f" load {r['load_start']} -> {r['load_end']}",
            "",
            "| import round (load at its start) | crmkit purchases/s | bare purchases/s"
            " | crmkit / bare | client CPU s crmkit / bare |",
            "| --- | --- | --- | --- | --- |",
        ]
        for index, (mine, bare, at) in enumerate(
            zip(imp["crmkit"], imp["bare"], imp["load"], strict=True)
        ):
            ratio = mine / bare
            used = f"{imp['cpu']['crmkit'][index]:.2f} / {imp['cpu']['bare'][index]:.2f}"
            lines.append(
                f"| {index + 1} ({at.split()[0]}) | {mine:,.0f} | {bare:,.0f} | {ratio:.2f}x"
                f" | {used} |"
            )
        lines.append("")
        if "calls_system" not in r:
            continue  # --import-only
        lines.append("p50 / p95 / p99 in ms, one client, one call at a time:")
        lines.append("")
        lines += _calls_table(r["calls_system"], "system actor")
        lines.append("")
        lines += _calls_table(r["calls_user"], "admin user")
        lines.append("")
        mine, bare = r["hot"]["crmkit"], r["hot"]["bare"]
        lines += [
            "| hot card, 50 clients | attempts/s | redeemed / refused | overdrawn | other errors |",
            "| --- | --- | --- | --- | --- |",
            f"| crmkit | {mine['attempts_per_s']:,.0f} | {mine['redeemed']} / {mine['refused']}"
            f" (balance {mine['balance_before']}) | {mine['overdrawn']}"
            f" | {mine['failed'] or 'none'} |",
            f"| bare | {bare['attempts_per_s']:,.0f} | {bare['redeemed']} / {bare['refused']}"
            f" | | {bare['failed'] or 'none'} |",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument(
        "--per-member", type=int, default=12, help="purchases per member a year (mean)"
    )
    parser.add_argument("--calls", type=int, default=300, help="timed earn and redeem calls each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hot-each", type=int, default=10, help="redemptions per hot-card client")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument(
        "--import-only",
        action="store_true",
        help="only the import rounds (the 100 000-member history of the issue's goal)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    arguments = parser.parse_args(argv)
    print(json.dumps(machine_info(), ensure_ascii=False, indent=1))
    results = [run_backend(backend, arguments) for backend in arguments.backend or BACKENDS]
    if arguments.json:
        arguments.json.write_text(json.dumps(results, default=str), encoding="utf-8")
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
