"""The plugin's REST routes, mounted by crmkit under ``/plugins/referrals``.

Handlers declare ``crm`` and ``actor``; every service call passes ``actor=actor``, so what a
caller sees follows their permissions exactly as in the core routes. A ``crmkit.CRMError``
(``NotFoundError`` here) becomes problem+json without any code of ours.
"""

from __future__ import annotations

from collections import Counter

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath
from msgspec import Struct

import crmkit


class ReferralStats(Struct):
    """Referrals the caller may read: how many, reward points, and per channel."""

    referrals: int
    reward_points: int
    by_channel: dict[str, int]


class ContactReferrals(Struct):
    """Who a contact referred and who referred them (ids of referral records)."""

    contact_id: int
    referred: list[int]
    referred_by: list[int]


@get("/stats", sync_to_thread=True, summary="Referral counts the caller may read")
def referral_stats(
    crm: NamedDependency[crmkit.CRM], actor: NamedDependency[crmkit.User]
) -> ReferralStats:
    """Counts over the referrals within the caller's read scope."""
    by_channel: Counter[str] = Counter()
    points = 0
    for referral in crm.records("referral").iterate(actor=actor):
        by_channel[referral.channel or "unknown"] += 1
        points += referral.reward_points
    return ReferralStats(
        referrals=sum(by_channel.values()),
        reward_points=points,
        by_channel=dict(by_channel.most_common()),
    )


@get(
    "/contacts/{contact_id:int}",
    sync_to_thread=True,
    summary="The referrals of one contact (404 unless the caller may read the contact)",
)
def contact_referrals(
    contact_id: FromPath[int], crm: NamedDependency[crmkit.CRM], actor: NamedDependency[crmkit.User]
) -> ContactReferrals:
    """Referral ids on both sides of a contact the caller may read."""
    crm.contacts.get(contact_id, actor=actor)  # NotFoundError (404) outside the caller's scope
    referrals = crm.records("referral")
    made = referrals.list({"referrer_contact_id": contact_id}, limit=1000, actor=actor)
    received = referrals.list({"referred_contact_id": contact_id}, limit=1000, actor=actor)
    return ContactReferrals(
        contact_id=contact_id,
        referred=[record.id for record in made.items],
        referred_by=[record.id for record in received.items],
    )


ROUTES = [referral_stats, contact_referrals]
