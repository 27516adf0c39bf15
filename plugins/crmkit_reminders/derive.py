"""Derived reminders: configured once by an admin, made from the data by a scheduled job.

Each rule of ``[[plugins.reminders.rules]]`` turns records into reminders for their owners:

* ``birthday``: a contact's birthday (``birthday``), Gregorian or Chinese lunar (the
  contact's ``birthday_calendar`` custom field, ``gregorian`` by default), ``days_ahead``;
* ``date``: a date field of any entity, custom fields included (contract or subscription
  end), ``days_ahead``;
* ``receivable``: a due-date field; a reminder ``days_ahead`` of it, and one when it is
  overdue, until the ``paid_field`` is true;
* ``no_follow_up``: a record of ``entity`` with no activity for ``days`` (optionally only
  those whose fields equal ``when``: a value tier, a lifecycle stage);
* ``idle_deal``: an open deal that has not changed stage for ``days`` (optionally in
  ``stage`` only).

A reminder's ``source_key`` names the rule, the record and the occasion (the birthday's
year, the date, the quiet spell), so running the job again never makes a second one.
Reminders are due at ``at`` (wall clock) in the owner's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from attrs import frozen
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

import crmkit
from crmkit_reminders.calendar import birthdays_between
from crmkit_reminders.models import Reminder, ReminderPreferences
from crmkit_reminders.schedule import to_utc, zone
from crmkit_reminders.service import ACTIVE, settings_of

KINDS = ("birthday", "date", "receivable", "no_follow_up", "idle_deal")
#: Derived reminders are made this many days before they are due.
LOOKAHEAD_DAYS = 7


@frozen
class Rule:
    """One derived-reminder rule (see the module docstring)."""

    name: str
    kind: str
    entity: str = "contact"
    field: str = ""
    days_ahead: int = 0
    days: int = 14
    at: str = "09:00"
    title: str = ""
    paid_field: str = ""
    stage: str = ""
    when: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise crmkit.ConfigError(
                f"reminder rule {self.name!r}: kind must be one of {', '.join(KINDS)}"
            )
        if self.kind in ("date", "receivable") and not self.field:
            raise crmkit.ConfigError(f"reminder rule {self.name!r}: name the date field")
        try:
            dt.time.fromisoformat(self.at)
        except ValueError:
            raise crmkit.ConfigError(
                f"reminder rule {self.name!r}: at must be a time like 09:00, not {self.at!r}"
            ) from None


def rules_of(crm: crmkit.CRM) -> list[Rule]:
    """The configured rules, checked (unknown keys and bad values name the rule)."""
    rules = []
    for raw in settings_of(crm)["rules"]:
        name = str(raw.get("name", "?"))
        try:
            rule = Rule(**raw)
        except TypeError as error:
            raise crmkit.ConfigError(f"reminder rule {name!r}: {error}") from None
        if rule.entity not in crm.entities:
            raise crmkit.ConfigError(f"reminder rule {name!r}: unknown entity {rule.entity!r}")
        rules.append(rule)
    return rules


def _column(crm: crmkit.CRM, entity: str, name: str) -> Any:
    """The SQL expression of a field: a column, or a custom field's JSON value (text)."""
    model: Any = crm.entity(entity).model
    if name in crm.entity(entity).columns:
        return getattr(model, name)
    if name in crm.custom_fields[entity]:
        return model.custom[name].as_string()
    raise crmkit.ConfigError(f"{entity} has no field {name!r}")


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def derive(crm: crmkit.CRM, *, today: dt.date | None = None) -> dict[str, int]:
    """Run every rule; how many reminders each made."""
    today = today or crmkit.utcnow().date()
    made: dict[str, int] = {}
    with crm.transaction() as op:
        zones = _zones(op, crm)
        for rule in rules_of(crm):
            wanted = list(_wanted(op, crm, rule, today))
            made[rule.name] = _insert(op, crm, rule, wanted, zones, today)
    return made


def _zones(op: crmkit.Operation, crm: crmkit.CRM) -> dict[int, str]:
    zones: dict[int, str] = {}  # a Result has keys(): dict(result) would misread it
    for user_id, name in op.session.execute(
        select(ReminderPreferences.user_id, ReminderPreferences.timezone)
    ):
        zones[user_id] = name
    return zones


def _wanted(
    op: crmkit.Operation, crm: crmkit.CRM, rule: Rule, today: dt.date
) -> Iterable[tuple[int, int, dt.date, str, str]]:
    """``(record id, owner id, day, occasion key, title)`` of each reminder the rule wants."""
    model: Any = crm.entity(rule.entity).model
    live = model.deleted_at.is_(None)
    owned = model.owner_id.is_not(None)
    horizon = today + dt.timedelta(days=LOOKAHEAD_DAYS + rule.days_ahead)
    filters = [_column(crm, rule.entity, key) == value for key, value in rule.when.items()]
    if rule.kind == "birthday":
        calendar = model.custom["birthday_calendar"].as_string()
        query = select(model.id, model.owner_id, model.birthday, calendar, model.full_name)
        for record_id, owner, birth, which, name in op.session.execute(
            query.where(live, owned, model.birthday.is_not(None), *filters)
        ):
            cal = "lunar" if which == "lunar" else "gregorian"
            for birthday in birthdays_between(birth, cal, today, horizon):
                title = rule.title or f"{name} 生日" + ("（农历）" if cal == "lunar" else "")
                yield record_id, owner, birthday, f"{birthday.year}", title
    elif rule.kind in ("date", "receivable"):
        value = _column(crm, rule.entity, rule.field)
        if rule.paid_field:
            paid = _column(crm, rule.entity, rule.paid_field)
            if rule.paid_field in crm.entity(rule.entity).columns:
                filters.append(or_(paid.is_(None), paid.is_(False)))
            else:  # a custom field's JSON value as text: true is "true" or "1"
                filters.append(func.coalesce(paid, "false").not_in(["true", "1"]))
        rows = op.session.execute(
            select(model.id, model.owner_id, value).where(live, owned, *filters)
        )
        for record_id, owner, raw in rows:
            due = _as_date(raw)
            if due is None:
                continue
            label = rule.title or f"{rule.entity} {record_id}: {rule.field} {due.isoformat()}"
            if today <= due <= horizon:
                yield record_id, owner, due, due.isoformat(), label
            elif rule.kind == "receivable" and due < today:
                week = today.isocalendar()
                yield (
                    record_id,
                    owner,
                    today + dt.timedelta(days=rule.days_ahead),
                    f"overdue:{due.isoformat()}:{week.year}-{week.week}",
                    rule.title or f"逾期未收 overdue: {rule.entity} {record_id} due {due}",
                )
    elif rule.kind == "no_follow_up":
        yield from _quiet(op, crm, rule, today, filters)
    else:
        deals: Any = crmkit.Deal
        stages = crmkit.Stage
        cutoff = crmkit.utcnow() - dt.timedelta(days=rule.days)
        query = select(deals.id, deals.owner_id, deals.stage_changed_at, deals.name).where(
            deals.deleted_at.is_(None),
            deals.owner_id.is_not(None),
            deals.closed_at.is_(None),
            deals.stage_changed_at < cutoff,
        )
        if rule.stage:
            query = query.join(stages, stages.id == deals.stage_id).where(stages.name == rule.stage)
        for row in op.session.execute(query):
            yield (
                row.id,
                row.owner_id,
                today,
                f"{row.stage_changed_at:%Y-%m-%d}",
                rule.title or f"{row.name}: {rule.days}+ 天未推进 idle {rule.days}+ days",
            )


def _quiet(
    op: crmkit.Operation, crm: crmkit.CRM, rule: Rule, today: dt.date, filters: list[Any]
) -> Iterable[tuple[int, int, dt.date, str, str]]:
    model: Any = crm.entity(rule.entity).model
    activities: Any = crm.entity("activity").model
    link = getattr(activities, f"{rule.entity}_id", None)
    if link is None:
        raise crmkit.ConfigError(
            f"reminder rule {rule.name!r}: activities do not link {rule.entity}"
        )
    last = (
        select(link.label("record_id"), func.max(activities.occurred_at).label("last"))
        .where(activities.deleted_at.is_(None), link.is_not(None))
        .group_by(link)
        .subquery()
    )
    cutoff = crmkit.utcnow() - dt.timedelta(days=rule.days)
    seen = func.coalesce(last.c.last, model.created_at)
    query = (
        select(model.id, model.owner_id, seen)
        .outerjoin(last, last.c.record_id == model.id)
        .where(model.deleted_at.is_(None), model.owner_id.is_not(None), seen < cutoff, *filters)
    )
    for record_id, owner, when in op.session.execute(query):
        stamp = _as_date(when) or today
        yield (
            record_id,
            owner,
            today,
            f"since:{stamp.isoformat()}",
            rule.title or f"{rule.entity} {record_id}: {rule.days}+ 天未跟进 no follow-up",
        )


def _insert(
    op: crmkit.Operation,
    crm: crmkit.CRM,
    rule: Rule,
    wanted: list[tuple[int, int, dt.date, str, str]],
    zones: Mapping[int, str],
    today: dt.date,
) -> int:
    if not wanted:
        return 0
    settings = settings_of(crm)
    at = dt.time.fromisoformat(rule.at)
    now = crmkit.utcnow()
    rows = []
    for record_id, owner, day, occasion, title in wanted:
        zone_name = zones.get(owner, settings["default_timezone"])
        remind_on = day - dt.timedelta(days=rule.days_ahead)
        local = dt.datetime.combine(max(remind_on, today), at)
        due = max(to_utc(local, zone(zone_name)), now)
        rows.append(
            {
                "owner_id": owner,
                "record_type": rule.entity,
                "record_id": record_id,
                "title": title[:300],
                "note": "",
                "starts_local": local.isoformat(timespec="seconds"),
                "timezone": zone_name,
                "rrule": None,
                "channels": list(settings["default_channels"]),
                "status": ACTIVE,
                "next_due_at": due,
                "occurrence_at": due,
                "fired_count": 0,
                "source": rule.name,
                "source_key": f"{rule.name}:{rule.entity}:{record_id}:{occasion}"[:200],
                "data": {"rule": rule.kind, "day": day.isoformat()},
                "created_at": now,
            }
        )
    maker = (
        postgresql_insert if op.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    made = op.session.execute(
        maker(Reminder)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["source_key"])
        .returning(Reminder.id)
    ).all()
    return len(made)


def derive_job() -> crmkit.ScheduledJob:
    """The hourly job that makes derived reminders (once per hour across workers)."""

    def run(context: crmkit.JobContext) -> str:
        made = derive(context.crm)
        total = sum(made.values())
        return f"made {total} reminder(s)" if total else "idle"

    return crmkit.ScheduledJob(
        "reminders.derive", run, every_seconds=3600, description="derived reminders"
    )
