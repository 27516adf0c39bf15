"""Loyalty cards, points, tiers, coupons and purchase history for crmkit.

A bundled plugin (``crmkit plugins enable loyalty``) that uses only crmkit's public API:

* programs (:mod:`crmkit_loyalty.programs`): earn rules (a rate per currency unit;
  multipliers by tier, category, store, campaign window, birthday month; plugin rules through
  the ``crmkit_loyalty_earn_rules`` hook), validity with rounding, pending points, tiers on
  rolling qualifying spend or points with a grace period, rewards (coupons);
* cards with a check digit and a QR / barcode image; purchases, redemptions, refunds, lost
  cards, merges (:mod:`crmkit_loyalty.service`, :mod:`crmkit_loyalty.coupons`) on an
  append-only points ledger with a per-member expiry ledger (:mod:`crmkit_loyalty.ledger`);
* the periodic work (:mod:`crmkit_loyalty.jobs`): release, expiry notices, expiry, tier
  review; the CLI group ``crmkit loyalty`` and API routes under ``/plugins/loyalty``.

Needs the ``loyalty`` extra (``pip install "crmkit[loyalty]"``: segno, python-barcode) for the
card images; without it the plugin is listed as failed to load and the rest of crmkit works.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

import crmkit

# The libraries of the extra: a missing one fails the plugin's import (``crmkit plugins
# list`` shows it) without importing them here; they load where they are used.
crmkit.require_modules("barcode", "segno", install="pip install 'crmkit[loyalty]'")

# (the plugin's own modules after the check: a missing library fails before they load)
from crmkit_loyalty.hooks import LoyaltyHooks  # noqa: E402
from crmkit_loyalty.models import (  # noqa: E402
    LoyaltyCard,
    LoyaltyCoupon,
    LoyaltyLedgerEntry,
    LoyaltyLot,
    LoyaltyProgram,
    LoyaltyPurchase,
    LoyaltyReward,
)
from crmkit_loyalty.programs import EarnRule, Program, PurchaseFacts, parse_program  # noqa: E402
from crmkit_loyalty.registry import PLUGIN_NAME, cache_of  # noqa: E402

crmkit_plugin = crmkit.PluginSpec(
    description="Loyalty cards, points, tiers, coupons and purchase history",
    requires=(),
    # what `crmkit --help` lists without importing the plugin
    commands={"loyalty": ("Loyalty cards, points, tiers and coupons (bundled plugin loyalty).")},
)

__all__ = [
    "PLUGIN_NAME",
    "EarnRule",
    "LoyaltyCard",
    "LoyaltyCoupon",
    "LoyaltyHooks",
    "LoyaltyLedgerEntry",
    "LoyaltyLot",
    "LoyaltyProgram",
    "LoyaltyPurchase",
    "LoyaltyReward",
    "Program",
    "PurchaseFacts",
    "crmkit_plugin",
    "parse_program",
]

PERMISSIONS = [
    "loyalty:manage",
    "loyalty:issue",
    "loyalty:earn",
    "loyalty:redeem",
    "loyalty:refund",
]


@crmkit.hookimpl
def crmkit_migrations() -> str:
    """The folder of the plugin's Alembic branch (``loyalty``)."""
    return str(Path(__file__).parent / "migrations")


@crmkit.hookimpl
def crmkit_permissions() -> list[str]:
    """``loyalty:manage`` (programs, expiry, tier review), ``loyalty:issue`` (cards, lost
    cards), ``loyalty:earn`` (purchases), ``loyalty:redeem`` (points, coupons),
    ``loyalty:refund``. Reading a card needs ``contact:read`` on its contact."""
    return list(PERMISSIONS)


@crmkit.hookimpl
def crmkit_settings() -> list[crmkit.SettingSpec]:
    """``[plugins.loyalty]`` in ``crmkit.toml``."""
    return [
        crmkit.SettingSpec(
            "programs",
            list,
            default=[],
            description=(
                "Program definitions (an array of tables; see docs/loyalty.md), written to"
                " the database on enable and by 'crmkit loyalty programs sync'"
            ),
        ),
        crmkit.SettingSpec(
            "default_program",
            str,
            default="",
            description="The program used when a command names none (empty: the only one)",
        ),
        crmkit.SettingSpec(
            "expire_every_minutes",
            int,
            default=60,
            description="How often the worker runs the expiry job (loyalty.expire)",
        ),
        crmkit.SettingSpec(
            "review_tiers_every_hours",
            int,
            default=24,
            description="How often the worker reviews tiers (loyalty.review_tiers)",
        ),
        crmkit.SettingSpec(
            "expiring_notice_days",
            int,
            default=30,
            description="points.expiring goes out this many days before points expire (0: never)",
        ),
    ]


@crmkit.hookimpl
def crmkit_startup(crm: crmkit.CRM) -> None:
    """Declare the earn-rule hook for other plugins."""
    cache_of(crm)


@crmkit.hookimpl
def crmkit_setup(crm: crmkit.CRM, op: crmkit.Operation) -> None:
    """On enable: write the configured programs to the database."""
    from crmkit_loyalty.registry import define_program

    for definition in crm.plugin_settings(PLUGIN_NAME).get("programs") or []:
        define_program(op, definition)


@crmkit.hookimpl
def crmkit_scheduled_jobs(crm: crmkit.CRM) -> list[crmkit.ScheduledJob]:
    """The worker runs ``loyalty.expire`` (release pending points, expiry notices, expiry;
    hourly by default) and ``loyalty.review_tiers`` (daily by default), each occurrence on
    one worker; both are safe to run again (a lot expires once)."""
    from crmkit_loyalty.jobs import expire_job, review_tiers_job

    settings = crm.plugin_settings(PLUGIN_NAME)
    return [
        crmkit.ScheduledJob(
            "loyalty.expire",
            expire_job,
            every_seconds=max(1, int(settings["expire_every_minutes"])) * 60,
            description="Release pending points, send expiry notices, expire due points",
        ),
        crmkit.ScheduledJob(
            "loyalty.review_tiers",
            review_tiers_job,
            every_seconds=max(1, int(settings["review_tiers_every_hours"])) * 3600,
            description="Review tiers: upgrades, grace periods, downgrades",
        ),
    ]


@crmkit.hookimpl
def crmkit_merge_references(
    op: crmkit.Operation, entity: str, survivor_id: int, merged_id: int
) -> Mapping[str, Any] | None:
    """Two contacts merged: the core already re-pointed their cards to the survivor; where
    the survivor now holds two active cards of one program, the later-issued card's points,
    pending points and history move to the earlier one and it is closed as ``merged``."""
    if entity != "contact":
        return None
    from crmkit_loyalty.merging import merge_cards

    return merge_cards(op, survivor_id)


@crmkit.hookimpl
def crmkit_undo_merge_references(
    op: crmkit.Operation,
    entity: str,
    survivor_id: int,
    merged_id: int,
    moved: Mapping[str, Any],
) -> None:
    """Give the merged contact's card back what the merge moved (as far as not spent)."""
    if entity != "contact":
        return
    from crmkit_loyalty.merging import unmerge_cards

    unmerge_cards(op, moved.get(PLUGIN_NAME) or {})


@crmkit.hookimpl
def crmkit_demo_data(crm: crmkit.CRM) -> None:
    """``crmkit demo``: a tea shop's program, cards, purchases, a tier, a coupon."""
    from crmkit_loyalty.demo import load

    load(crm)


@crmkit.hookimpl
def crmkit_desk_record_panels(
    crm: crmkit.CRM, entity: str, record: Mapping[str, Any], actor: crmkit.User, locale: str
) -> list[crmkit.DeskPanel]:
    """On a contact's desk page: its cards (balance, pending points, tier, points expiring
    soon) and its latest purchases, as the signed-in user may see them, in their language
    (the plugin's catalogue: crmkit_loyalty/locale)."""
    if entity != "contact" or not isinstance(record.get("id"), int):
        return []
    from crmkit_loyalty.views import desk_panels

    return desk_panels(crm, record["id"], actor, locale)


@crmkit.hookimpl
def crmkit_desk_tiles(crm: crmkit.CRM, actor: crmkit.User, locale: str) -> list[crmkit.DeskTile]:
    """ "Points expiring soon" on "my day": the signed-in user's members whose points expire
    within ``expiring_notice_days``, with the points and the first date."""
    from crmkit_loyalty.desk import tiles

    return tiles(crm, actor, locale)


@crmkit.hookimpl
def crmkit_desk_pages(crm: crmkit.CRM) -> list[crmkit.DeskPage]:
    """The page /desk/plugins/loyalty/expiring: those members, soonest first (in the menu
    through ``crmkit_desk_menu``)."""
    from crmkit_loyalty.desk import PAGE_PATH, expiring_page

    return [
        crmkit.DeskPage(path=PAGE_PATH, title="Points expiring", render=expiring_page, menu=False)
    ]


@crmkit.hookimpl
def crmkit_desk_menu(crm: crmkit.CRM, actor: crmkit.User) -> list[crmkit.DeskMenuEntry]:
    """ "Points expiring" in the desk's menu, for users who may read contacts."""
    from crmkit_loyalty.desk import menu_entries

    return menu_entries(crm, actor)


@crmkit.hookimpl
def crmkit_cli_commands() -> list[click.Command]:
    """``crmkit loyalty ...``."""
    from crmkit_loyalty.cli import loyalty_group

    return [loyalty_group]


@crmkit.hookimpl
def crmkit_api_routes(crm: crmkit.CRM) -> list[Any]:
    """The REST routes, mounted by the core under ``/plugins/loyalty``."""
    from crmkit_loyalty.api import routes

    return routes()
