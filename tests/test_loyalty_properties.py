"""Property tests of the points ledger: whatever sequence of purchases, imports of purchase
history, redemptions, refunds, releases and expiry runs happens, a card's balance is the sum
of its ledger, the lots hold exactly the balance, the balance is never below zero unless the
program allows it, and spending takes the soonest-expiring points first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from crmkit_loyalty import importing, jobs, service
from crmkit_loyalty.models import LoyaltyCard, LoyaltyLedgerEntry, LoyaltyLot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loyalty_support import loyalty_crm
from sqlalchemy import func, select

import crmkit

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

earn = st.tuples(
    st.just("earn"),
    st.integers(min_value=1, max_value=2000),  # amount
    st.integers(min_value=0, max_value=500),  # days ago
)
redeem = st.tuples(st.just("redeem"), st.integers(min_value=1, max_value=1500), st.just(0))
refund = st.tuples(st.just("refund"), st.integers(min_value=0, max_value=20), st.booleans())
expire = st.tuples(st.just("expire"), st.integers(min_value=0, max_value=400), st.just(0))
# a batch import of purchase history: (amount, days ago) per receipt
history = st.tuples(
    st.just("import"),
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=2000), st.integers(min_value=0, max_value=500)
        ),
        min_size=1,
        max_size=5,
    ),
    st.just(0),
)
operations = st.lists(
    st.one_of(earn, earn, redeem, refund, expire, history), min_size=1, max_size=12
)


def run(crm: crmkit.CRM, number: str, steps: list[tuple[str, int, Any]]) -> None:
    receipts: list[str] = []
    for index, (kind, first, second) in enumerate(steps):
        try:
            if kind == "earn":
                when = crmkit.utcnow() - dt.timedelta(days=second, minutes=index)
                receipt = f"{number}-{index}"
                service.record_purchase(crm, number, first, receipt_id=receipt, occurred_at=when)
                receipts.append(receipt)
            elif kind == "import":
                rows = [
                    {
                        "card": number,
                        "receipt_id": f"{number}-{index}-{line}",
                        "amount": amount,
                        "occurred_at": crmkit.utcnow() - dt.timedelta(days=age, minutes=line),
                    }
                    for line, (amount, age) in enumerate(first)
                ]
                importing.import_purchases(crm, rows, batch_size=2)
                receipts += [row["receipt_id"] for row in rows]
            elif kind == "redeem":
                service.redeem(crm, number, first)
            elif kind == "refund" and receipts:
                receipt = receipts[first % len(receipts)]
                service.refund(crm, receipt, amount="1.00" if second else None)
            elif kind == "expire":
                jobs.expire_points(crm, now=crmkit.utcnow() + dt.timedelta(days=first))
        except (crmkit.ValidationError, crmkit.ConflictError):
            pass  # refused (more than the balance, refunded already): must change nothing


def check_invariants(crm: crmkit.CRM, number: str, allow_negative: bool) -> None:
    with crm.transaction(write=False) as op:
        card = op.session.scalars(select(LoyaltyCard).where(LoyaltyCard.number == number)).one()
        points, pending = op.session.execute(
            select(
                func.coalesce(func.sum(LoyaltyLedgerEntry.points), 0),
                func.coalesce(func.sum(LoyaltyLedgerEntry.pending), 0),
            ).where(LoyaltyLedgerEntry.card_id == card.id)
        ).one()
        live, held = op.session.execute(
            select(
                func.coalesce(func.sum(LoyaltyLot.remaining).filter(~LoyaltyLot.pending), 0),
                func.coalesce(func.sum(LoyaltyLot.remaining).filter(LoyaltyLot.pending), 0),
            ).where(LoyaltyLot.card_id == card.id)
        ).one()
        negative_lots = op.session.scalar(
            select(func.count()).where(LoyaltyLot.card_id == card.id, LoyaltyLot.remaining < 0)
        )
    assert card.balance == points
    assert card.pending == pending
    assert live == max(card.balance, 0)
    assert held == card.pending
    assert negative_lots == 0
    assert card.pending >= 0
    if not allow_negative:
        assert card.balance >= 0


@pytest.mark.parametrize("allow_negative", [False, True], ids=["never-negative", "may-go-negative"])
def test_the_balance_is_always_the_sum_of_the_ledger(
    make_crm: Callable[..., crmkit.CRM], allow_negative: bool
) -> None:
    crm = loyalty_crm(
        make_crm, allow_negative=allow_negative, multipliers=[], tiers=[], pending_days=3
    )

    @SETTINGS
    @given(steps=operations)
    def check(steps: list[tuple[str, int, Any]]) -> None:
        contact = crm.contacts.create({"full_name": "李娜"})
        number = str(service.issue_card(crm, contact.id)["card"])
        run(crm, number, steps)
        check_invariants(crm, number, allow_negative)

    check()


def test_spending_takes_the_soonest_expiring_lots_first(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = loyalty_crm(make_crm, multipliers=[], tiers=[], validity={"days": 400})

    @SETTINGS
    @given(
        ages=st.lists(st.integers(min_value=0, max_value=390), min_size=1, max_size=8),
        spend=st.integers(min_value=1, max_value=5000),
    )
    def check(ages: list[int], spend: int) -> None:
        contact = crm.contacts.create({"full_name": "陈思"})
        number = str(service.issue_card(crm, contact.id)["card"])
        for index, age in enumerate(ages):
            when = crmkit.utcnow() - dt.timedelta(days=age, minutes=index)
            service.record_purchase(crm, number, 100 + index, occurred_at=when)
        total = sum(100 + index for index in range(len(ages)))
        if spend > total:
            with pytest.raises(crmkit.ValidationError):
                service.redeem(crm, number, spend)
            return
        service.redeem(crm, number, spend)
        with crm.transaction(write=False) as op:
            lots = list(
                op.session.execute(
                    select(LoyaltyLot.expires_at, LoyaltyLot.points, LoyaltyLot.remaining)
                    .join(LoyaltyCard, LoyaltyCard.id == LoyaltyLot.card_id)
                    .where(LoyaltyCard.number == number)
                    .order_by(LoyaltyLot.expires_at, LoyaltyLot.id)
                )
            )
        # in expiry order: fully spent lots, at most one partly spent, then untouched ones
        states = [
            "spent" if lot.remaining == 0 else "partly" if lot.remaining < lot.points else "whole"
            for lot in lots
        ]
        assert states == sorted(states, key=["spent", "partly", "whole"].index)
        assert states.count("partly") <= 1
        assert sum(lot.points - lot.remaining for lot in lots) == spend

    check()
