"""Shared pieces of the insight tests: a CRM with the insight (and loyalty) plugins, deals
moved through stages at chosen times, purchases at chosen times."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import crmkit_insights
import crmkit_loyalty
from crmkit_insights.models import STAGE_MOVES
from crmkit_loyalty import service as loyalty
from sqlalchemy import update

import crmkit

NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)
PROGRAM: dict[str, Any] = {"name": "club", "rates": {"CNY": 1}}


def insight_crm(
    make_crm: Callable[..., crmkit.CRM], *, with_loyalty: bool = True, **settings: Any
) -> crmkit.CRM:
    """A CRM with the insight plugin (and loyalty with one program) and a Sales pipeline."""
    plugins: dict[str, Any] = {"insights": crmkit_insights}
    if with_loyalty:
        plugins["loyalty"] = crmkit_loyalty
    crm = make_crm(plugins=plugins, plugin_settings={"insights": settings} if settings else {})
    crm.pipelines.create("Sales")
    if with_loyalty:
        loyalty.add_program(crm, PROGRAM)
    return crm


def days_before(days: float, now: dt.datetime = NOW) -> dt.datetime:
    """A moment ``days`` before ``now``."""
    return now - dt.timedelta(days=days)


def deal_through(
    crm: crmkit.CRM, stages: list[tuple[str, float]], *, amount: float = 100, **values: Any
) -> int:
    """A deal walked through ``stages`` (name, days before NOW it entered); its stage history
    gets exactly those times."""
    deal = crm.deals.create({"name": "deal", "amount": amount, **values})
    for name, _ in stages[1:]:
        crm.deals.move_to_stage(deal.id, name)
    with crm.transaction() as op:
        rows = op.session.execute(
            STAGE_MOVES.select().where(STAGE_MOVES.c.deal_id == deal.id).order_by(STAGE_MOVES.c.id)
        ).all()
        assert len(rows) == len(stages)
        for row, (_, days) in zip(rows, stages, strict=True):
            op.session.execute(
                update(STAGE_MOVES)
                .where(STAGE_MOVES.c.id == row.id)
                .values(entered_at=days_before(days))
            )
    return int(deal.id)


def customer(
    crm: crmkit.CRM, name: str, purchases: list[tuple[float, float]], **values: Any
) -> int:
    """A contact with a card and purchases ``(amount, days before NOW)``."""
    contact = crm.contacts.create({"full_name": name, **values})
    number = str(loyalty.issue_card(crm, contact.id)["card"])
    for index, (amount, days) in enumerate(purchases):
        loyalty.record_purchase(
            crm,
            number,
            amount,
            receipt_id=f"{contact.id}-{index}",
            items=[{"sku": "T", "category": "tea", "amount": amount, "quantity": 1}],
            occurred_at=days_before(days),
        )
    return int(contact.id)
