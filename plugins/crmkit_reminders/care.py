"""Care messages to customers: on a holiday or their birthday, a templated message in the
contact's language, sent through the core channels (e-mail by default) with one-click
unsubscribe, logged as an activity on the contact.

Each ``[[plugins.reminders.care]]`` rule names the occasion (``holiday``: a festival name,
alias or date, see :mod:`crmkit_reminders.calendar`; or ``birthday``), a ``segment``
(contact fields that must be equal, such as ``{lifecycle_stage = "customer"}``), the
``channel``, the local ``send_at`` time, and ``subject``/``body`` templates per language
(``zh``, ``en``; the contact's ``language`` field picks one, ``zh`` by default).

Templates are Jinja2 in a sandbox with strict undefined names: they see the contact's fields
(``full_name``, ``family_name``, ``title``, custom fields ...), ``holiday``, ``year`` and
``unsubscribe_url``. A template that does not parse or names an unknown field is refused when
the rule is checked (``crmkit reminders care check``), naming the rule and the problem. The
delivery key ``care:<rule>:<date>:<contact>`` makes each contact get each occasion once;
an unsubscribed address gets nothing.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

import crmkit
from crmkit_reminders.calendar import birthdays_between, check_holiday, is_holiday
from crmkit_reminders.schedule import zone
from crmkit_reminders.service import settings_of

LANGUAGES = ("zh", "en")
_ENVIRONMENT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@frozen
class CareRule:
    """One care-message rule (see the module docstring)."""

    name: str
    subject: Mapping[str, str]
    body: Mapping[str, str]
    holiday: str = ""
    birthday: bool = False
    segment: Mapping[str, Any] = field(factory=dict)
    channel: str = "email"
    send_at: str = "09:00"


def _context(
    crm: crmkit.CRM, contact: Mapping[str, Any], extra: Mapping[str, Any]
) -> dict[str, Any]:
    values = {key: value for key, value in contact.items() if key != "custom"}
    for name in crm.custom_fields["contact"]:
        values[name] = (contact.get("custom") or {}).get(name)
    return {**values, **extra}


def care_rules(crm: crmkit.CRM) -> list[CareRule]:
    """The configured rules, each checked: occasion, channel, templates against every
    contact field."""
    rules = []
    sample: dict[str, Any] = dict.fromkeys(crm.entity("contact").columns, "")
    sample["custom"] = dict.fromkeys(crm.custom_fields["contact"], "")
    extra = {"holiday": "", "year": 2026, "unsubscribe_url": ""}
    for raw in settings_of(crm)["care"]:
        name = str(raw.get("name", "?"))
        try:
            rule = CareRule(**raw)
        except TypeError as error:
            raise crmkit.ConfigError(f"care rule {name!r}: {error}") from None
        if bool(rule.holiday) == rule.birthday:
            raise crmkit.ConfigError(f"care rule {name!r}: give a holiday or birthday = true")
        if rule.holiday:
            try:
                rule = CareRule(**{**raw, "holiday": check_holiday(rule.holiday)})
            except crmkit.ValidationError as error:
                raise crmkit.ConfigError(f"care rule {name!r}: {error}") from None
        if rule.channel not in crm.messages.channels():
            raise crmkit.ConfigError(f"care rule {name!r}: unknown channel {rule.channel!r}")
        for part in ("subject", "body"):
            templates = getattr(rule, part)
            if "zh" not in templates:
                raise crmkit.ConfigError(f"care rule {name!r}: {part} needs a zh template")
            for language, text in templates.items():
                if language not in LANGUAGES:
                    raise crmkit.ConfigError(
                        f"care rule {name!r}: {part}.{language}: languages are zh and en"
                    )
                try:
                    _ENVIRONMENT.from_string(text).render(_context(crm, sample, extra))
                except TemplateError as error:
                    raise crmkit.ConfigError(
                        f"care rule {name!r}: {part}.{language} does not render: {error}"
                    ) from None
        rules.append(rule)
    return rules


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render a care template in the sandbox (strict undefined names)."""
    return _ENVIRONMENT.from_string(template).render(dict(context))


def _contacts(crm: crmkit.CRM, op: crmkit.Operation, rule: CareRule) -> list[dict[str, Any]]:
    model = crmkit.Contact
    query = select(model.__table__).where(model.deleted_at.is_(None))
    for key, value in rule.segment.items():
        if key in crm.entity("contact").columns:
            query = query.where(getattr(model, key) == value)
        elif key in crm.custom_fields["contact"]:
            query = query.where(model.custom[key].as_string() == str(value))
        else:
            raise crmkit.ConfigError(f"care rule {rule.name!r}: contacts have no field {key!r}")
    return [dict(row._mapping) for row in op.session.execute(query)]


def send_care(
    crm: crmkit.CRM, *, now: dt.datetime | None = None, only: str | None = None
) -> dict[str, crmkit.SendResult]:
    """Send every care message due today and past its ``send_at``, both in each contact's
    time zone (the ``timezone`` field, else the default); each rule's result. Running it
    again the same day sends nothing twice."""
    now = now or crmkit.utcnow()
    default_zone = zone(settings_of(crm)["default_timezone"])
    results: dict[str, crmkit.SendResult] = {}
    for rule in care_rules(crm):
        if only is not None and rule.name != only:
            continue
        send_at = dt.time.fromisoformat(rule.send_at)
        days = [now.date() + dt.timedelta(days=offset) for offset in (-1, 0, 1)]
        if rule.holiday and not any(is_holiday(rule.holiday, day) for day in days):
            continue  # not the holiday anywhere on earth now: no need to read the segment
        with crm.transaction() as op:
            messages = []
            for contact in _contacts(crm, op, rule):
                # the occasion and send_at are the contact's own day and wall clock
                local = now.astimezone(_zone_of(contact, default_zone))
                today = local.date()
                if local.time() < send_at:
                    continue
                if rule.holiday and not is_holiday(rule.holiday, today):
                    continue
                if rule.birthday:
                    birth = contact.get("birthday")
                    calendar = (contact.get("custom") or {}).get("birthday_calendar")
                    if birth is None or not list(
                        birthdays_between(birth, calendar or "gregorian", today, today)
                    ):
                        continue
                language = (contact.get("custom") or {}).get("language") or "zh"
                subject = rule.subject.get(language) or rule.subject["zh"]
                body = rule.body.get(language) or rule.body["zh"]
                address = contact.get("email") or ""
                extra = {
                    "holiday": rule.holiday or "birthday",
                    "year": today.year,
                    "unsubscribe_url": crm.messages.unsubscribe_url(rule.channel, address)
                    if address and rule.channel == "email"
                    else "",
                }
                context = _context(crm, contact, extra)
                messages.append(
                    crmkit.Message(
                        channel=rule.channel,
                        contact_id=contact["id"],
                        subject=render(subject, context),
                        body=render(body, context),
                        kind="care",
                        key=f"care:{rule.name}:{today.isoformat()}:{contact['id']}",
                        record_type="contact",
                        record_id=contact["id"],
                        unsubscribe=rule.channel == "email",
                        log_activity=True,
                        data={"rule": rule.name},
                    )
                )
            results[rule.name] = crm.messages.send_many(messages, op=op, now=now)
    return results


def _zone_of(contact: Mapping[str, Any], default: zoneinfo.ZoneInfo) -> zoneinfo.ZoneInfo:
    """The contact's time zone (its ``timezone`` field), else the default; an unknown name
    falls back to the default rather than stopping everyone's messages."""
    name = (contact.get("custom") or {}).get("timezone")
    if not name:
        return default
    try:
        return zoneinfo.ZoneInfo(str(name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return default


def care_job() -> crmkit.ScheduledJob:
    """The job that sends the day's care messages (every 10 minutes; each once)."""

    def run(context: crmkit.JobContext) -> str:
        results = send_care(context.crm, now=context.now)
        queued = sum(r.queued + r.sent for r in results.values())
        return f"care: {queued} message(s)" if queued else "idle"

    return crmkit.ScheduledJob(
        "reminders.care", run, every_seconds=600, description="holiday and birthday care messages"
    )
