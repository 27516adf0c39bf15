"""A tailored CRM in Python: a Shanghai consultancy's client book, built on crmkit.

Custom fields come from settings (as they would from crmkit.toml), the pipeline has the firm's
own stages, and a subscriber prints deal events as they commit. Runs offline on a throwaway
SQLite file:  python examples/tailored_crm.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import crmkit

CUSTOM_FIELDS = [
    {"entity": "contact", "name": "wechat_id", "type": "text", "label": "WeChat"},
    {"entity": "contact", "name": "decision_maker", "type": "boolean"},
    {"entity": "deal", "name": "service_line", "type": "choice", "choices": ["audit", "training"]},
]
STAGES = [("初步接洽", 10, "open"), ("需求诊断", 30, "open"), ("方案报价", 60, "open")]
STAGES += [("签约", 100, "won"), ("流失", 0, "lost")]


def show(event: crmkit.Event) -> None:
    """A subscriber: called after each committed deal event."""
    if event.name == "deal.created":
        print(f"  deal {event.record_id} opened: {event.payload['name']}")
    elif event.name == "deal.stage_changed":
        print(f"  deal {event.record_id}: {event.payload['from_stage']} → {event.payload['stage']}")


def build(crm: crmkit.CRM) -> None:
    crm.subscribe("deal.*", show)
    crm.pipelines.create("咨询项目", STAGES, default=True)

    account = crm.accounts.create({"name": "上海明远贸易有限公司", "city": "上海"})
    zhang = crm.contacts.create(
        {"full_name": "张伟", "account_id": account.id, "phone": "138 1234 5678",
         "wechat_id": "zhangwei_sh", "decision_maker": "是"})  # fmt: skip
    crm.contacts.create({"full_name": "李娜", "account_id": account.id, "phone": "021-6234 5678"})

    print("A deal moves through the firm's own stages:")
    deal = crm.deals.create(
        {"name": "供应链诊断", "account_id": account.id, "contact_id": zhang.id,
         "amount": "180000", "service_line": "audit"})  # fmt: skip
    for stage in ("需求诊断", "方案报价", "签约"):
        crm.deals.move_to_stage(deal.id, stage)
    crm.activities.create(
        {"kind": "visit", "subject": "现场访谈：仓储流程", "deal_id": deal.id,
         "customer_request": "月底前要初稿", "watch_points": "财务总监对预算敏感"})  # fmt: skip

    print("A trade-show lead from Taipei becomes a customer:")
    lead = crm.leads.create(
        {"full_name": "陳美玲", "company_name": "台北晨光科技股份有限公司",
         "phone": "+886 2 2345 6789", "source_channel": "trade_show"})  # fmt: skip
    converted = crm.leads.convert(lead.id, deal={"amount": "60000", "service_line": "training"})
    crm.contacts.update(converted.contact_id, {"wechat_id": "meiling_tw"})

    print("Filters on custom fields:")
    deciders = crm.contacts.list({"decision_maker": True}).items
    on_wechat = crm.contacts.list({"wechat_id__empty": False}, sort="full_name").items
    training = crm.deals.list({"service_line": "training"}).items
    print("  decision makers:", ", ".join(c.full_name for c in deciders))
    print("  on WeChat:", ", ".join(f"{c.full_name} {c.phone}" for c in on_wechat))
    print("  training deals:", ", ".join(f"{d.name} ¥{d.amount}" for d in training))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'consultancy.db'}"
        config = {"crmkit": {"default_region": "CN", "custom_fields": CUSTOM_FIELDS}}
        settings = crmkit.Settings.from_mapping(config, database_url=url)
        with crmkit.open(settings=settings, upgrade=True) as crm:
            build(crm)


if __name__ == "__main__":
    main()
