"""Demo data of the campaigns plugin (``crmkit demo``): li.na's welcome campaign to the
contacts she may see, started, so ``crmkit worker --once`` queues its first mails."""

from __future__ import annotations

import contextlib

from sqlalchemy import select

import crmkit
from crmkit_campaigns import service

WELCOME = {
    "steps": [
        {
            "kind": "first",
            "subject": {
                "zh": "{{ full_name }}，欢迎了解我们的新品",
                "en": "{{ full_name }}, meet our new range",
            },
            "body": {
                "zh": "{{ full_name }} 您好：\n\n新品目录："
                "{{ track('https://example.cn/catalogue') }}\n\n退订：{{ unsubscribe_url }}",
                "en": "Dear {{ full_name }},\n\nOur catalogue:"
                " {{ track('https://example.cn/catalogue') }}\n\n"
                "Unsubscribe: {{ unsubscribe_url }}",
            },
        },
        {
            "kind": "follow_up",
            "after_days": 3,
            "unless": "click",
            "subject": {
                "zh": "{{ full_name }}，还有问题吗？",
                "en": "Any questions, {{ full_name }}?",
            },
            "body": {
                "zh": "如需报价请直接回复本邮件。\n\n退订：{{ unsubscribe_url }}",
                "en": "Reply to this e-mail for a quote.\n\nUnsubscribe: {{ unsubscribe_url }}",
            },
        },
        {
            "kind": "thank_you",
            "on": "purchase",
            "subject": {"zh": "谢谢您的惠顾", "en": "Thank you for your purchase"},
            "body": {
                "zh": "{{ full_name }}，感谢您的购买！\n\n退订：{{ unsubscribe_url }}",
                "en": "Thank you, {{ full_name }}!\n\nUnsubscribe: {{ unsubscribe_url }}",
            },
        },
    ],
    "window": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
}


def load_demo(crm: crmkit.CRM) -> None:
    """Create and start 欢迎新客户 (welcome) for li.na's contacts."""
    with crm.transaction(write=False) as op:
        rep = op.session.scalar(select(crmkit.User).where(crmkit.User.username == "li.na"))
    if rep is None:
        return
    service.create_campaign(crm, "欢迎新客户", WELCOME, owner="li.na")
    with contextlib.suppress(crmkit.CRMError):  # none of her contacts has an e-mail: a draft
        service.start_campaign(crm, "欢迎新客户")
