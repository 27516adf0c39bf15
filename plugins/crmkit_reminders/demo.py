"""Demo data of the reminders plugin (``crmkit demo``): li.na's reminders, one of them due."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

import crmkit
from crmkit_reminders import service
from crmkit_reminders.schedule import zone


def load_demo(crm: crmkit.CRM) -> None:
    """Reminders for the demo rep li.na on her first contacts; one is already due (made as
    if it had been added ten minutes ago), so ``crmkit worker --once`` puts it in her inbox."""
    with crm.transaction(write=False) as op:
        rep = op.session.scalar(select(crmkit.User).where(crmkit.User.username == "li.na"))
        if rep is None:
            return
        contacts = list(
            op.session.execute(
                select(crmkit.Contact.id, crmkit.Contact.full_name)
                .where(crmkit.Contact.owner_id == rep.id, crmkit.Contact.deleted_at.is_(None))
                .order_by(crmkit.Contact.id)
                .limit(3)
            )
        )
    if not contacts:
        return
    tz = zone(service.settings_of(crm)["default_timezone"])
    now = crmkit.utcnow()
    local = now.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    first_id, first_name = contacts[0]
    service.add_reminder(
        crm,
        f"回访 {first_name}：报价单",
        at=local - dt.timedelta(minutes=1),
        record_type="contact",
        record_id=first_id,
        owner="li.na",
        now=now - dt.timedelta(minutes=10),
    )
    tomorrow = (local + dt.timedelta(days=1)).replace(hour=10, minute=0)
    for contact_id, name in contacts[1:]:
        service.add_reminder(
            crm,
            f"跟进 {name}",
            at=tomorrow,
            record_type="contact",
            record_id=contact_id,
            owner="li.na",
        )
    service.add_reminder(
        crm,
        "周一销售例会 weekly sales meeting",
        at=(local + dt.timedelta(days=7 - local.weekday())).replace(hour=9, minute=0),
        every="FREQ=WEEKLY;BYDAY=MO",
        owner="li.na",
    )
    crm.records("contact").update(first_id, {"birthday_calendar": "lunar"})
