"""A B2B distributor's CRM, one command: python examples/b2b_distributor.py

An industrial-parts distributor selling to factories in 华东 and 华南: key-account value
tiers from last year's purchases; new accounts assigned to the region's sales team by a
territory rule (unmapped regions go to the inside-sales desk); accounts nobody followed up
for 30 days go back to the shared pool, where another rep claims them; and leads met at a
trade fair, entered from their business cards (the bundled cardscan plugin reads the card
images when it is installed: pip install "crmkit[cardscan]"). Runs offline on SQLite.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

import crmkit

FIELDS = [
    {"entity": "account", "name": "annual_purchases", "type": "decimal", "label": "年采购额"},
    {"entity": "account", "name": "tax_no", "type": "text", "unique": True, "label": "税号"},
    {"entity": "lead", "name": "met_at", "type": "text", "label": "展会"},
]
REGIONS = {"华东": "east.rep", "华南": "south.rep"}
TIERS = [(Decimal(1_000_000), "key"), (Decimal(200_000), "growth"), (Decimal(0), "standard")]
ACCOUNTS = [
    ("苏州精工机械有限公司", "华东", "913205001234567890", "1850000"),
    ("宁波海星塑胶制品厂", "华东", "913302001234567891", "420000"),
    ("东莞明达电子有限公司", "华南", "914419001234567892", "96000"),
    ("成都天府自动化设备", "西南", "915101001234567893", "230000"),
]
CARDS = [  # what the card scanner reads from three business cards at 慕尼黑上海电子展
    {"full_name": "赵敏", "company_name": "无锡恒通传动件", "phone": "139 1234 8888",
     "title": "采购经理", "region": "华东"},
    {"full_name": "Kelvin Wong", "company_name": "Shenzhen Brightway Tech", "phone":
     "+86 755 8888 1234", "email": "kelvin@brightway.example", "region": "华南"},
    {"full_name": "趙敏", "company_name": "无锡恒通传动件", "phone": "13912348888",
     "region": "华东"},  # the same person, her card scanned twice in traditional script
]  # fmt: skip


def value_tier(purchases: Decimal) -> str:
    """The key-account tier of a year's purchases."""
    return next(tier for floor, tier in TIERS if purchases >= floor)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = crmkit.Settings.from_mapping(
            {"crmkit": {"custom_fields": FIELDS}},
            database_url=f"sqlite:///{Path(folder) / 'distributor.db'}",
        )
        with crmkit.CRM(settings) as crm:
            crm.upgrade()
            run(crm)


def run(crm: crmkit.CRM) -> None:
    for region, rep in REGIONS.items():
        crm.users.create_team(region)
        crm.users.create(rep, team=region, roles=["sales_rep"])
    crm.users.create("inside.sales", roles=["sales_rep"])
    members = [*REGIONS.values(), "inside.sales"]
    for entity in ("account", "lead"):
        crm.assignment.add_rule(
            entity, "regions", "territory", members, territory_field="region",
            territory=REGIONS, default_member="inside.sales")  # fmt: skip

    print("Accounts, their tier and owner:")
    for name, region, tax_no, purchases in ACCOUNTS:
        account = crm.accounts.create(
            {"name": name, "region": region, "tax_no": tax_no, "annual_purchases": purchases,
             "value_tier": value_tier(Decimal(purchases))})  # fmt: skip
        owner = crm.users.get(str(REGIONS.get(region, "inside.sales")))
        assert account.owner_id == owner.id
        print(f"  {account.value_tier:<8} {account.name} ({region}) → {owner.username}")
    key_accounts = crm.accounts.count({"value_tier": "key"})
    print(f"Key accounts: {key_accounts}")

    crm.pool.add_policy("account", "no follow-up for 30 days", 30)
    later = crmkit.utcnow() + dt.timedelta(days=31)
    released = crm.pool.release("account", now=later)
    print(f"After 31 days without follow-up: {sum(r.records for r in released)} accounts"
          " back in the shared pool")  # fmt: skip
    south = crm.users.get("south.rep")
    pool = crm.pool.pool_records("account", actor=south)
    claimed = crm.pool.claim("account", [pool[0].id], actor=south)
    print(f"south.rep claims {claimed[0].name} from the pool")

    dedupe = crm.installed.get("dedupe")
    if dedupe is not None and dedupe.loaded:
        crm.enable_plugin("dedupe")  # fuzzy duplicates: 趙敏 = 赵敏, phones in any format
    print("Trade-fair leads from business cards:")
    for card in CARDS:
        try:
            lead = crm.leads.create({**card, "met_at": "慕尼黑上海电子展 2026"})
        except crmkit.DuplicateError as error:
            print(f"  {card['full_name']}: refused as a duplicate ({error})")
            continue
        owner = crm.users.get(str(REGIONS.get(card["region"], "inside.sales")))
        flagged = " (flagged: a possible duplicate)" if lead.duplicate_warnings else ""
        print(f"  {lead.full_name} ({lead.company_name}) → {owner.username}{flagged}")
    print(f"Leads: {crm.leads.count()}")


if __name__ == "__main__":
    main()
