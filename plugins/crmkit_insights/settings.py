"""``[plugins.insights]`` in ``crmkit.toml``: what the settings are and how they are checked."""

from __future__ import annotations

from typing import Any

from attrs import frozen

import crmkit
from crmkit_insights.customers import TIER_ENTITIES
from crmkit_insights.registry import PLUGIN_NAME

SPECS = [
    crmkit.SettingSpec(
        "idle_days",
        int,
        default=30,
        description="A deal with no stage change for this many days is idle",
    ),
    crmkit.SettingSpec(
        "tier_entity",
        str,
        default="account",
        description="Value tiers are written to this entity's value_tier: account or contact",
    ),
    crmkit.SettingSpec(
        "tier_cuts",
        list,
        default=[0.8, 0.95],
        description="Cumulative revenue shares closing the first two tiers (the Pareto cut: 0.8)",
    ),
    crmkit.SettingSpec(
        "tier_names",
        list,
        default=["A", "B", "C"],
        description="The three tier names, best first (records without revenue get the last)",
    ),
    crmkit.SettingSpec(
        "tier_window_days",
        int,
        default=365,
        description="Revenue of the last this many days counts for tiers (0: all time)",
    ),
    crmkit.SettingSpec(
        "churn_factor",
        float,
        default=3.0,
        description=(
            "A customer whose gap since the last order is this many times their usual"
            " interval is at risk"
        ),
    ),
    crmkit.SettingSpec(
        "churn_min_orders",
        int,
        default=3,
        description="Churn risk needs at least this many orders (a rhythm to compare with)",
    ),
    crmkit.SettingSpec(
        "advocate_min_orders",
        int,
        default=5,
        description="Lifecycle: an advocate has at least this many orders ...",
    ),
    crmkit.SettingSpec(
        "advocate_within_days", int, default=90, description="... and ordered within this many days"
    ),
    crmkit.SettingSpec(
        "churned_after_days",
        int,
        default=365,
        description="Lifecycle: churned after this many days without an order",
    ),
    crmkit.SettingSpec(
        "tiers_every_hours",
        int,
        default=0,
        description=(
            "The worker writes value tiers this often (0: never; on demand:"
            " crmkit insight tiers --write)"
        ),
    ),
    crmkit.SettingSpec(
        "lifecycle_every_hours",
        int,
        default=0,
        description="The worker moves lifecycle stages this often (0: never)",
    ),
    crmkit.SettingSpec(
        "refresh_every_hours",
        int,
        default=24,
        description="The worker recomputes the customer measures segments use this often",
    ),
    crmkit.SettingSpec(
        "chart_font",
        str,
        default="",
        description=(
            "Font family for charts (empty: the first CJK font installed, e.g. Noto Sans CJK SC)"
        ),
    ),
]


@frozen
class InsightSettings:
    """The checked settings."""

    idle_days: int
    tier_entity: str
    tier_cuts: tuple[float, float]
    tier_names: tuple[str, str, str]
    tier_window_days: int
    churn_factor: float
    churn_min_orders: int
    advocate_min_orders: int
    advocate_within_days: int
    churned_after_days: int
    tiers_every_hours: int
    lifecycle_every_hours: int
    refresh_every_hours: int
    chart_font: str


def _fail(name: str, why: str) -> crmkit.ConfigError:
    return crmkit.ConfigError(f"[plugins.{PLUGIN_NAME}] {name}: {why}")


def settings_of(crm: crmkit.CRM) -> InsightSettings:
    """Read and check ``[plugins.insights]``; a bad value is a ConfigError naming it."""
    raw: dict[str, Any] = crm.plugin_settings(PLUGIN_NAME)
    for name in (
        "idle_days",
        "tier_window_days",
        "churn_min_orders",
        "advocate_min_orders",
        "advocate_within_days",
        "churned_after_days",
        "tiers_every_hours",
        "lifecycle_every_hours",
        "refresh_every_hours",
    ):
        if int(raw[name]) < 0:
            raise _fail(name, "must be 0 or more")
    if raw["tier_entity"] not in TIER_ENTITIES:
        raise _fail("tier_entity", f"must be one of {', '.join(TIER_ENTITIES)}")
    cuts = raw["tier_cuts"]
    try:
        low, high = (float(c) for c in cuts)
    except (TypeError, ValueError):
        raise _fail("tier_cuts", "must be two numbers, e.g. [0.8, 0.95]") from None
    if not 0 < low < high <= 1:
        raise _fail("tier_cuts", "must rise within (0, 1], e.g. [0.8, 0.95]")
    names = [str(n).strip() for n in raw["tier_names"]]
    if len(names) != 3 or not all(names) or len(set(names)) != 3 or max(map(len, names)) > 32:
        raise _fail("tier_names", "must be three different names of 1-32 characters")
    if float(raw["churn_factor"]) <= 1:
        raise _fail("churn_factor", "must be more than 1")
    return InsightSettings(
        idle_days=int(raw["idle_days"]),
        tier_entity=str(raw["tier_entity"]),
        tier_cuts=(low, high),
        tier_names=(names[0], names[1], names[2]),
        tier_window_days=int(raw["tier_window_days"]),
        churn_factor=float(raw["churn_factor"]),
        churn_min_orders=int(raw["churn_min_orders"]),
        advocate_min_orders=int(raw["advocate_min_orders"]),
        advocate_within_days=int(raw["advocate_within_days"]),
        churned_after_days=int(raw["churned_after_days"]),
        tiers_every_hours=int(raw["tiers_every_hours"]),
        lifecycle_every_hours=int(raw["lifecycle_every_hours"]),
        refresh_every_hours=int(raw["refresh_every_hours"]),
        chart_font=str(raw["chart_font"]),
    )
