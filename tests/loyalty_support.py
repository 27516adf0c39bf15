"""Shared pieces of the loyalty tests: a CRM with the plugin enabled and a program."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import crmkit_loyalty
from crmkit_loyalty import service

import crmkit

TEA_CLUB: dict[str, Any] = {
    "name": "tea-club",
    "rates": {"CNY": 1},
    "validity": {"months": 12, "round_to": "month"},
    "timezone": "Asia/Shanghai",
    "multipliers": [
        {"when": "category", "value": "tea", "factor": 2},
        {"when": "tier", "value": "gold", "factor": "1.5"},
        {"when": "birthday_month", "factor": 2},
    ],
    "tiers": [{"name": "silver", "threshold": 1000}, {"name": "gold", "threshold": 5000}],
    "tier_grace_days": 30,
    "rewards": [
        {
            "name": "50 off",
            "kind": "fixed",
            "value": 50,
            "cost_points": 500,
            "per_customer_limit": 2,
        },
        {"name": "welcome 10%", "kind": "percent", "value": 10, "valid_days": 7},
    ],
}


def loyalty_crm(make_crm: Callable[..., crmkit.CRM], **program: Any) -> crmkit.CRM:
    """A CRM with the loyalty plugin and the tea-club program (keys overridden by
    ``program``)."""
    crm = make_crm(plugins={"loyalty": crmkit_loyalty})
    service.add_program(crm, {**TEA_CLUB, **program})
    return crm


def member(crm: crmkit.CRM, name: str = "张伟", **values: Any) -> tuple[int, str]:
    """A new contact with a card: (contact id, card number)."""
    contact = crm.contacts.create({"full_name": name, **values})
    card = service.issue_card(crm, contact.id)
    return contact.id, str(card["card"])


def days_ago(days: float) -> dt.datetime:
    """A moment ``days`` before now (UTC)."""
    return crmkit.utcnow() - dt.timedelta(days=days)
