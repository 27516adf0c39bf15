"""``crmkit referrals ...``: the plugin's command group.

Registered through the ``crmkit_cli_commands`` hook, so it appears only while the plugin is
enabled. Commands get the CRM the ``crmkit`` command opened (its ``--config`` and
``--database-url``) from ``crmkit.cli_crm()``, and go through the record service like any
other caller.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import click

import crmkit

PAGE = 500  # contacts looked up per query


@click.group(name="referrals")
def referrals_group() -> None:
    """Referrals: who referred whom, and the rewards earned (plugin crmkit-referrals)."""


@referrals_group.command(name="list")
@click.option("--channel", help="Only referrals made through this channel, e.g. wechat.")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="At most this many.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_referrals(channel: str | None, limit: int, as_json: bool) -> None:
    """List referrals, newest first.

    Example: crmkit referrals list --channel wechat --limit 10
    """
    crm = crmkit.cli_crm()
    filters = {"channel": channel} if channel else {}
    referrals = crm.records("referral").list(filters, sort="-id", limit=limit).items
    names = contact_names(crm, _contact_ids(referrals))
    rows = [
        {
            "id": referral.id,
            "referrer": names.get(referral.referrer_contact_id, "?"),
            "referred": names.get(referral.referred_contact_id, "?"),
            "channel": referral.channel,
            "reward_points": referral.reward_points,
        }
        for referral in referrals
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("No referrals yet.")
        return
    for row in rows:
        click.echo(
            f"{row['id']:>5}  {row['referrer']} → {row['referred']}"
            f"  [{row['channel'] or '-'}]  {row['reward_points']} points"
        )


@referrals_group.command(name="stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def referral_stats(as_json: bool) -> None:
    """Count referrals and reward points, per channel and per referrer.

    Example: crmkit referrals stats --json
    """
    crm = crmkit.cli_crm()
    by_channel: Counter[str] = Counter()
    by_referrer: Counter[int] = Counter()
    points = 0
    for referral in crm.records("referral").iterate():
        by_channel[referral.channel or "unknown"] += 1
        by_referrer[referral.referrer_contact_id] += 1
        points += referral.reward_points
    top = by_referrer.most_common(5)
    names = contact_names(crm, [contact_id for contact_id, _ in top])
    stats: dict[str, Any] = {
        "referrals": sum(by_channel.values()),
        "reward_points": points,
        "by_channel": dict(by_channel.most_common()),
        "top_referrers": [
            {"contact_id": contact_id, "name": names.get(contact_id, "?"), "referrals": count}
            for contact_id, count in top
        ],
    }
    if as_json:
        click.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    click.echo(f"Referrals: {stats['referrals']}  Reward points: {points}")
    for channel, count in stats["by_channel"].items():
        click.echo(f"  {channel}: {count}")
    for row in stats["top_referrers"]:
        click.echo(
            f"  top referrer {row['name']} (contact {row['contact_id']}): {row['referrals']}"
        )


def contact_names(crm: crmkit.CRM, contact_ids: Iterable[int]) -> dict[int, str]:
    """The full names of the given contacts, by id (deleted ones are left out)."""
    wanted = sorted(set(contact_ids))
    names: dict[int, str] = {}
    for start in range(0, len(wanted), PAGE):
        chunk = wanted[start : start + PAGE]
        for contact in crm.contacts.list({"id__in": chunk}, limit=len(chunk)).items:
            names[contact.id] = contact.full_name
    return names


def _contact_ids(referrals: Iterable[Any]) -> list[int]:
    ids: list[int] = []
    for referral in referrals:
        ids += [referral.referrer_contact_id, referral.referred_contact_id]
    return ids
