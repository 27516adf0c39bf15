"""Concurrent work on one card, with real connections: redemptions never overdraw it and
none is lost; one idempotency key from many clients at once acts once; two expiry runs at
once expire each lot once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from crmkit_loyalty import jobs, service, views
from loyalty_support import days_ago, loyalty_crm, member

import crmkit


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; each result or exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as error:  # noqa: BLE001 - collected and asserted on by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_fifty_concurrent_redemptions_never_overdraw_a_card(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = loyalty_crm(make_crm, multipliers=[], tiers=[])
    _, number = member(crm)
    service.record_purchase(crm, number, 300)
    results = in_threads(50, lambda _: service.redeem(crm, number, 10))
    done = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, crmkit.ValidationError)]
    assert len(done) == 30
    assert len(refused) == 20, [r for r in results if not isinstance(r, dict)][:3]
    assert views.card(crm, number)["balance"] == 0
    assert sorted(r["balance"] for r in done) == list(range(0, 300, 10))
    kinds = [row["kind"] for row in views.statement(crm, number)]
    assert kinds.count("redeem") == 30


def test_one_key_sent_by_many_clients_at_once_acts_once(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = loyalty_crm(make_crm, multipliers=[], tiers=[])
    _, number = member(crm)
    service.record_purchase(crm, number, 100)
    results = in_threads(10, lambda _: service.redeem(crm, number, 10, key="till-7-0001"))
    assert all(isinstance(r, dict) for r in results), results
    assert {r["balance"] for r in results} == {90}
    assert views.card(crm, number)["balance"] == 90


def test_two_expiry_runs_at_once_expire_each_lot_once(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = loyalty_crm(make_crm, multipliers=[], tiers=[])
    numbers = []
    for index in range(12):
        _, number = member(crm, f"会员{index}")
        service.record_purchase(crm, number, 100 + index, occurred_at=days_ago(420))
        numbers.append(number)
    now = crmkit.utcnow() + dt.timedelta(seconds=1)
    results = in_threads(2, lambda _: jobs.expire_points(crm, now=now))
    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["expired"] for r in results) == sum(100 + i for i in range(12))
    for number in numbers:
        assert [row["kind"] for row in views.statement(crm, number)] == ["earn", "expire"]
