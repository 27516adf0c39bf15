"""Demo data for ``crmkit demo``: a tea shop's program, cards, a year of purchases, a tier,
a coupon and points about to expire."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import select

import crmkit
from crmkit_loyalty import coupons, service

DEMO_PROGRAM: dict[str, Any] = {
    "name": "tea-club",
    "rates": {"CNY": 1},
    "timezone": "Asia/Shanghai",
    "validity": {"months": 12, "round_to": "month"},
    "pending_days": 7,
    "multipliers": [
        {"when": "category", "value": "tea", "factor": 2},
        {"when": "tier", "value": "gold", "factor": "1.5"},
        {"when": "birthday_month", "factor": 2},
    ],
    "tiers": [{"name": "silver", "threshold": 2000}, {"name": "gold", "threshold": 8000}],
    "tier_grace_days": 30,
    "rewards": [
        {"name": "满500减50", "kind": "fixed", "value": 50, "cost_points": 500},
        {"name": "新会员9折", "kind": "percent", "value": 10, "per_customer_limit": 1},
    ],
}
STORES = ("上海南京路店", "杭州西湖店", "廣州天河店")
ITEMS = (("龙井 250g", "tea", 388), ("紫砂壶", "teaware", 680), ("普洱饼", "tea", 268))


def load(crm: crmkit.CRM, members: int = 8, seed: int = 14) -> None:
    """The demo program, cards for the first ``members`` contacts, their purchases over the
    last year (one member reaches silver), a redemption, a coupon and a refund."""
    rng = random.Random(seed)
    service.add_program(crm, DEMO_PROGRAM)
    with crm.transaction(write=False) as op:
        contact_ids = list(
            op.session.scalars(
                select(crmkit.Contact.id)
                .where(crmkit.Contact.deleted_at.is_(None))
                .order_by(crmkit.Contact.id)
                .limit(members)
            )
        )
    now = crmkit.utcnow()
    for index, contact_id in enumerate(contact_ids):
        number = str(service.issue_card(crm, contact_id)["card"])
        for visit in range(3 + index % 5):
            sku, category, price = rng.choice(ITEMS)
            quantity = 1 + rng.randrange(3) + (3 if index == 0 else 0)
            service.record_purchase(
                crm,
                number,
                price * quantity,
                receipt_id=f"DEMO-{contact_id}-{visit}",
                items=[
                    {
                        "sku": sku,
                        "category": category,
                        "amount": price * quantity,
                        "quantity": quantity,
                    }
                ],
                store=rng.choice(STORES),
                occurred_at=now - dt.timedelta(days=rng.randint(1, 350), hours=rng.randint(0, 9)),
            )
        if index == 0:
            coupons.issue_coupon(crm, number, "满500减50")
            service.redeem(crm, number, 200, note="茶具清洁套装")
        if index == 1:
            coupons.issue_coupon(crm, number, "新会员9折")
            service.refund(crm, f"DEMO-{contact_id}-0")
