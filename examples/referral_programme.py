"""The crmkit-referrals plugin at work, embedded in an application.

An installed plugin is switched on with ``crmkit plugins enable referrals``; an application can
also embed a plugin module directly (always on), as here. Needs the example plugin installed
(``pip install -e examples/crmkit-referrals``); runs offline on a throwaway SQLite file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import crmkit_referrals

import crmkit

SETTINGS = {"referrals": {"blocked_domains": ["spam.example"], "reward_points": 200}}


def run(crm: crmkit.CRM) -> None:
    wang = crm.contacts.create(
        {"full_name": "王芳", "wechat_id": "wangfang88", "vip_level": "gold"}
    )
    liu = crm.contacts.create({"full_name": "刘洋", "email": "liu.yang@example.com"})
    referral = crm.records("referral").create(
        {"referrer_contact_id": wang.id, "referred_contact_id": liu.id, "channel": "wechat"}
    )
    print(f"{wang.full_name} referred {liu.full_name}: {referral.reward_points} points")

    try:
        crm.contacts.create({"full_name": "张伟", "email": "zhang@spam.example"})
    except crmkit.PluginError as error:
        print("Refused:", error)

    gold = crm.contacts.list({"vip_level": "gold"}).items
    print("Gold VIPs:", ", ".join(contact.full_name for contact in gold))
    print("Events the plugin saw after commit:", dict(crmkit_referrals.EVENTS_SEEN))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'referrals.db'}"
        settings = crmkit.Settings.from_mapping({"plugins": SETTINGS}, database_url=url)
        plugins = {"referrals": crmkit_referrals}
        with crmkit.open(settings=settings, plugins=plugins, discover=False, upgrade=True) as crm:
            run(crm)


if __name__ == "__main__":
    main()
