"""A retail chain's CRM, one command: python examples/retail_chain.py

A tea-shop chain with stores in 上海, 北京 and 广州: each store is a team and its territory;
new members are assigned to the store of their city; a member number is unique across the
chain (case-insensitive); members whose birthday is this month get a greeting in their
store clerk's in-app inbox, sent once per year however often the job runs; and, when the
bundled loyalty plugin is installed (``pip install "crmkit[loyalty]"``), members get cards
and earn points. Runs offline on a throwaway SQLite file.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import tempfile
from pathlib import Path

import crmkit

STORES = {"上海": "sh.clerk", "北京": "bj.clerk", "广州": "gz.clerk"}
MEMBER_FIELDS = [
    {"entity": "contact", "name": "member_no", "type": "text", "unique": True,
     "ignore_case": True, "label": "会员号"},
    {"entity": "contact", "name": "home_store", "type": "choice", "choices": list(STORES)},
]  # fmt: skip
MEMBERS = [
    ("王芳", "上海", "TEA-0001", "1990-12-08"),
    ("刘洋", "北京", "TEA-0002", "1985-03-21"),
    ("陈家明", "广州", "TEA-0003", "1978-12-30"),
    ("張偉", "上海", "TEA-0004", "1992-07-02"),
]


def open_chain(folder: Path) -> crmkit.CRM:
    settings = crmkit.Settings.from_mapping(
        {"crmkit": {"custom_fields": MEMBER_FIELDS}},
        database_url=f"sqlite:///{folder / 'chain.db'}",
    )
    crm = crmkit.CRM(settings)
    crm.upgrade()
    return crm


def set_up_stores(crm: crmkit.CRM) -> None:
    """A team per store, a clerk per team, and the territory rule for new members."""
    for city, clerk in STORES.items():
        crm.users.create_team(f"{city}店")
        crm.users.create(clerk, team=f"{city}店", roles=["sales_rep"])
    crm.assignment.add_rule(
        "contact",
        "member's store",
        "territory",
        list(STORES.values()),
        territory_field="city",
        territory=dict(STORES),
    )


def join_members(crm: crmkit.CRM) -> list[crmkit.Contact]:
    members = []
    for name, city, number, birthday in MEMBERS:
        member = crm.contacts.create(
            {"full_name": name, "city": city, "member_no": number, "home_store": city,
             "birthday": birthday})  # fmt: skip
        clerk = crm.users.get(STORES[city])
        assert member.owner_id == clerk.id, "the territory rule gives members to their store"
        members.append(member)
        print(f"  {member.member_no} {member.full_name} → {STORES[city]}")
    try:
        crm.contacts.create({"full_name": "王 芳", "city": "上海", "member_no": "tea-0001"})
    except crmkit.ValidationError as error:
        print(f"  a second card number tea-0001 is refused: {error}")
    return members


def birthday_greetings(crm: crmkit.CRM, today: dt.date) -> int:
    """Greet this month's birthdays through the clerks' inboxes (idempotent per year)."""
    messages = []
    for member in list(crm.contacts.iterate()):
        if member.birthday is None or member.birthday.month != today.month:
            continue
        clerk = crm.users.get(STORES[member.city])
        messages.append(
            crmkit.Message(
                channel="inapp",
                user_id=clerk.id,
                subject=f"{member.full_name} 本月生日",
                body=f"会员 {member.member_no} 生日 {member.birthday:%m-%d}，请送上祝福。",
                key=f"birthday:{today.year}:{member.id}",
            )
        )
    return crm.messages.send_many(messages).sent


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, open_chain(Path(folder)) as crm:
        print("Stores and members:")
        set_up_stores(crm)
        join_members(crm)
        december = dt.date(2026, 12, 4)
        first = birthday_greetings(crm, december)
        again = birthday_greetings(crm, december)
        print(f"Birthday greetings: {first} sent to the clerks' inboxes; run again: {again}")
        assert (first, again) == (2, 0), "王芳 and 陈家明 have December birthdays, greeted once"
        if importlib.util.find_spec("crmkit_loyalty") and crm.installed.get("loyalty"):
            if crm.installed["loyalty"].loaded:
                crm.enable_plugin("loyalty")
                print("Loyalty plugin enabled: members can now get cards (crmkit loyalty ...)")
        else:
            print('Loyalty cards: pip install "crmkit[loyalty]" and enable the plugin')


if __name__ == "__main__":
    main()
