"""An import batch writes its lots and earn entries one of two ways (crmkit_loyalty.
batch_credits): by the database, from the purchases just written, or from Python, one lot
per purchase as a single purchase builds it. Whatever the history and the program, both
write the same lots, the same ledger and the same balances."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from crmkit_loyalty import batch_credits, importing, programs, registry, service
from crmkit_loyalty.models import LoyaltyCard, LoyaltyLedgerEntry, LoyaltyLot, LoyaltyPurchase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loyalty_support import loyalty_crm
from sqlalchemy import select

import crmkit

SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

PROGRAMS: dict[str, dict[str, Any]] = {
    "month-end, return window": {
        "validity": {"months": 12, "round_to": "month"},
        "pending_days": 14,
    },
    "exact time, no window": {"validity": {"days": 30, "round_to": "none"}, "pending_days": 0},
    "day end in a zone with summer time": {
        "validity": {"months": 6, "days": 3, "round_to": "day"},
        "timezone": "America/New_York",
        "pending_days": 7,
    },
    "never expire": {"validity": {}, "pending_days": 1},
}

# a receipt: (which of three cards, amount in cents, days ago, minutes into the day, tea?)
receipts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2),
        st.integers(min_value=1, max_value=300_000),  # under 1.00 earns no points
        st.integers(min_value=0, max_value=500),
        st.integers(min_value=0, max_value=24 * 60 - 1),
        st.booleans(),
    ),
    min_size=1,
    max_size=15,
)

# Each example's receipts carry a tag of their own. Not id(history): CPython reuses the id of
# a freed list, so a later example could take an earlier one's tag, and with it its receipts
# (an import skips a receipt id it already has; a prefix query finds both examples' rows).
_examples = itertools.count()


def _rows(
    numbers: list[str], history: list[tuple[int, int, int, int, bool]], tag: str, now: dt.datetime
) -> Any:
    return [
        {
            "card": numbers[card],
            "receipt_id": f"{tag}{index}",
            "amount": f"{cents / 100:.2f}",
            "occurred_at": (now - dt.timedelta(days=age, minutes=minute)).isoformat(),
            "category": "tea" if tea else "",
        }
        for index, (card, cents, age, minute, tea) in enumerate(history)
    ]


def _written(crm: crmkit.CRM, numbers: list[str]) -> list[Any]:
    """Per card: its balance, pending points, lots and ledger, with receipts for ids."""
    out = []
    with crm.transaction(write=False) as op:
        for number in numbers:
            card = op.session.scalars(select(LoyaltyCard).where(LoyaltyCard.number == number)).one()
            lots = op.session.execute(
                select(
                    LoyaltyPurchase.receipt_id,
                    LoyaltyLot.points,
                    LoyaltyLot.remaining,
                    LoyaltyLot.pending,
                    LoyaltyLot.earned_at,
                    LoyaltyLot.available_at,
                    LoyaltyLot.expires_at,
                    LoyaltyLot.notified_at,
                )
                .join(LoyaltyPurchase, LoyaltyPurchase.id == LoyaltyLot.purchase_id)
                .where(LoyaltyLot.card_id == card.id)
                .order_by(LoyaltyLot.id)
            ).all()
            entries = op.session.execute(
                select(
                    LoyaltyLedgerEntry.kind,
                    LoyaltyLedgerEntry.points,
                    LoyaltyLedgerEntry.pending,
                    LoyaltyPurchase.receipt_id,
                    LoyaltyLedgerEntry.lot_id,
                    LoyaltyLedgerEntry.note,
                )
                .join(LoyaltyPurchase, LoyaltyPurchase.id == LoyaltyLedgerEntry.purchase_id)
                .where(LoyaltyLedgerEntry.card_id == card.id)
                .order_by(LoyaltyLedgerEntry.id)
            ).all()
            out.append(
                (
                    card.balance,
                    card.pending,
                    [(receipt[1:], *rest) for receipt, *rest in lots],
                    [
                        (kind, points, pending, receipt[1:], *rest)
                        for kind, points, pending, receipt, *rest in entries
                    ],
                )
            )
    return out


@pytest.mark.parametrize("program", list(PROGRAMS), ids=list(PROGRAMS))
def test_the_database_and_python_write_the_same_lots_and_ledger(
    make_crm: Callable[..., crmkit.CRM], monkeypatch: pytest.MonkeyPatch, program: str
) -> None:
    crm = loyalty_crm(make_crm, **PROGRAMS[program])

    @SETTINGS
    @given(history=receipts, batch_size=st.sampled_from([3, 1000]))
    def check(history: list[tuple[int, int, int, int, bool]], batch_size: int) -> None:
        numbers = {}
        for path in ("database", "python"):
            numbers[path] = [
                str(service.issue_card(crm, crm.contacts.create({"full_name": "刘洋"}).id)["card"])
                for _ in range(3)
            ]
        tag, now = f"{next(_examples)}-", crmkit.utcnow()
        importing.import_purchases(
            crm, _rows(numbers["database"], history, "D" + tag, now), batch_size=batch_size
        )
        with monkeypatch.context() as patch:
            patch.setattr(batch_credits, "_by_database", lambda credits, cards: False)
            importing.import_purchases(
                crm, _rows(numbers["python"], history, "P" + tag, now), batch_size=batch_size
            )
        assert _written(crm, numbers["database"]) == _written(crm, numbers["python"])

    check()


EARNING: dict[str, dict[str, Any]] = {
    # rules that look at the amount, category, currency and store only: an import remembers
    # the points per combination (importing._Points)
    "category and store": {
        "rates": {"CNY": 1, "HKD": "0.9"},
        "multipliers": [
            {"when": "category", "value": "tea", "factor": 2},
            {"when": "store", "value": "西湖店", "factor": "1.5"},
        ],
        "tiers": [],
    },
    # a campaign looks at the time: computed per row
    "campaign": {
        "rates": {"CNY": 1, "HKD": "0.9"},
        "multipliers": [
            {"when": "category", "value": "tea", "factor": 2},
            {
                "when": "campaign",
                "factor": 3,
                "start": "2026-01-01T00:00:00+08:00",
                "end": "2026-12-01T00:00:00+08:00",
            },
        ],
        "tiers": [],
    },
}

# a receipt: (card, amount in cents from a few prices, currency, store, category or items,
# days ago)
earning_receipts = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1),
        st.sampled_from([100, 3899, 3900, 12_850, 99_999]),
        st.sampled_from(["CNY", "HKD", " cny"]),
        st.sampled_from(["", "西湖店", "三里屯店"]),
        st.sampled_from(["", "tea", "teaware", "items"]),
        st.integers(min_value=0, max_value=400),
    ),
    min_size=2,
    max_size=30,
)


@pytest.mark.parametrize("program", list(EARNING), ids=list(EARNING))
def test_an_import_earns_what_the_program_rules_say_for_each_purchase(
    make_crm: Callable[..., crmkit.CRM], program: str
) -> None:
    """Every imported purchase earns ``Program.points_for`` of its own facts, whether the
    import remembered the points of an earlier purchase alike or computed them."""
    crm = loyalty_crm(make_crm, **EARNING[program])

    @settings(SETTINGS, max_examples=25)
    @given(history=earning_receipts)
    def check(history: list[tuple[int, int, str, str, str, int]]) -> None:
        numbers = [
            str(service.issue_card(crm, crm.contacts.create({"full_name": "刘洋"}).id)["card"])
            for _ in range(2)
        ]
        tag, now = f"E{next(_examples)}-", crmkit.utcnow()
        rows = []
        for index, (card, cents, currency, store, kind, age) in enumerate(history):
            amount = f"{cents / 100:.2f}"
            row = {
                "card": numbers[card],
                "receipt_id": f"{tag}{index}",
                "amount": amount,
                "currency": currency,
                "store": store,
                "occurred_at": (now - dt.timedelta(days=age)).isoformat(),
            }
            if kind == "items":
                half = f"{cents // 2 / 100:.2f}"
                rest = f"{(cents - cents // 2) / 100:.2f}"
                row["items"] = [
                    {"amount": half, "category": "tea"},
                    {"amount": rest, "category": "snacks"},
                ]
            else:
                row["category"] = kind
            rows.append(row)
        importing.import_purchases(crm, rows, batch_size=7)
        with crm.transaction(write=False) as op:
            stored = op.session.scalars(
                select(LoyaltyPurchase).where(LoyaltyPurchase.receipt_id.startswith(tag))
            ).all()
            rules = registry.program_by_id(op, stored[0].program_id, 1)
        assert len(stored) == len(rows)
        for purchase in stored:
            facts = programs.PurchaseFacts(
                program=rules.name,
                card_number="",
                contact_id=purchase.contact_id,
                amount=purchase.amount,
                currency=purchase.currency,
                occurred_at=purchase.occurred_at,
                store=purchase.store,
                items=tuple(purchase.items),
                tier=None,
                birthday=None,
            )
            assert purchase.points == rules.points_for(facts), purchase.receipt_id

    check()


def test_without_allocated_ids_an_import_writes_what_the_bulk_insert_writes(
    make_crm: Callable[..., crmkit.CRM], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no safe block of ids can be picked (``crmkit.allocate_ids`` answers None), the
    purchases go in one by one with RETURNING: the same purchases, lots and ledger."""
    crm = loyalty_crm(make_crm, **EARNING["category and store"])
    now = crmkit.utcnow()
    numbers: dict[str, list[str]] = {}
    for path in ("bulk", "returning"):
        numbers[path] = [
            str(service.issue_card(crm, crm.contacts.create({"full_name": "刘洋"}).id)["card"])
            for _ in range(2)
        ]
    history = [(0, 3899, "", 3), (1, 12_850, "tea", 40), (0, 100, "items", 200), (1, 99_999, "", 0)]

    def rows(path: str) -> list[dict[str, Any]]:
        out = []
        for index, (card, cents, kind, age) in enumerate(history):
            row: dict[str, Any] = {
                "card": numbers[path][card],
                "receipt_id": f"{path[0]}{index}",
                "amount": f"{cents / 100:.2f}",
                "store": "西湖店" if index % 2 else "",
                "occurred_at": (now - dt.timedelta(days=age)).isoformat(),
            }
            if kind == "items":
                row["items"] = [{"amount": "0.50", "category": "tea"}, {"amount": "0.50"}]
            else:
                row["category"] = kind
            out.append(row)
        return out

    importing.import_purchases(crm, rows("bulk"))
    with monkeypatch.context() as patch:
        patch.setattr(crmkit, "allocate_ids", lambda *args: None)
        importing.import_purchases(crm, rows("returning"))

    def purchases(path: str) -> list[Any]:
        with crm.transaction(write=False) as op:
            return [
                (p.receipt_id[1:], p.amount, p.currency, p.store, p.items, p.points)
                for p in op.session.scalars(
                    select(LoyaltyPurchase)
                    .join(LoyaltyCard, LoyaltyCard.id == LoyaltyPurchase.card_id)
                    .where(LoyaltyCard.number.in_(numbers[path]))
                    .order_by(LoyaltyPurchase.receipt_id)
                )
            ]

    bulk = purchases("bulk")
    assert len(bulk) == len(history)
    assert any(items for *_, items, _ in bulk)  # the item lists are compared too
    assert bulk == purchases("returning")
    assert _written(crm, numbers["bulk"]) == _written(crm, numbers["returning"])
