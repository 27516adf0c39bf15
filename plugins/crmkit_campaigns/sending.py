"""The sending pass: the worker's job (and ``crmkit campaigns run``), set-based.

For each running campaign, one transaction per batch of up to ``batch_size`` due members:

1. members who replied (an inbound e-mail activity) stop (``replied``); members whose
   address is on the e-mail do-not-contact list stop with its reason (``unsubscribed``,
   ``bounced`` ...): two UPDATE statements per pass, whatever the audience;
2. outside the schedule window nothing is sent;
3. the due members are read with their contact in one query; those their owner may no
   longer see, or deleted, leave (``left``); an unusable address is ``invalid``;
4. a contact mailed today by any campaign waits for tomorrow (unless the campaign has
   ``allow_same_day``); per-domain limits (:mod:`crmkit_campaigns.limits`) move the surplus
   to the next minute;
5. the rest are rendered (their language's templates) and handed to the core message queue
   in one ``send_many`` (delivery key ``campaign:<campaign>:<step>:<contact>``: each step
   reaches a contact once; an unsubscribed address gets nothing; each sent mail becomes an
   e-mail activity on the contact; a bounce puts the address on the do-not-contact list);
6. the members move on in one executemany UPDATE.

The SMTP work happens in the core's delivery job, outside these transactions, with retries.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import evolve, frozen
from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import aliased

import crmkit
from crmkit_campaigns import definition
from crmkit_campaigns.limits import day_start, take
from crmkit_campaigns.models import Campaign, CampaignMember
from crmkit_campaigns.service import ADDRESS, render_context, settings_of

M = CampaignMember
STOPPED_BY_LIST = ("unsubscribed", "bounced", "complained", "manual")


@frozen
class PassResult:
    """What one pass did for one campaign."""

    campaign: str
    sent: int = 0
    thanked: int = 0
    skipped: int = 0
    deferred: int = 0
    suppressed: int = 0
    invalid: int = 0
    replied: int = 0
    opted_out: int = 0
    left: int = 0
    done: int = 0
    window_closed: bool = False

    def add(self, other: PassResult) -> PassResult:
        """The sum of two results of the same campaign."""
        return evolve(
            self,
            **{
                name: getattr(self, name) + getattr(other, name)
                for name in (
                    "sent",
                    "thanked",
                    "skipped",
                    "deferred",
                    "suppressed",
                    "invalid",
                    "replied",
                    "opted_out",
                    "left",
                    "done",
                )
            },
            window_closed=self.window_closed or other.window_closed,
        )


def stop_finished(op: crmkit.Operation, campaign_id: int, now: dt.datetime) -> tuple[int, int]:
    """Stop members who replied and members on the do-not-contact list; how many of each."""
    activity = crmkit.Activity
    replied = exists().where(
        activity.contact_id == M.contact_id,
        activity.kind == "email",
        activity.custom["direction"].as_string() == "inbound",
        activity.occurred_at >= M.joined_at,
        activity.deleted_at.is_(None),
    )
    result = op.session.execute(
        update(M)
        .where(M.campaign_id == campaign_id, M.status == "active", replied)
        .values(status="replied", replied_at=now, next_due_at=None)
        .execution_options(synchronize_session=False)
    )
    stopped_replies = int(result.rowcount or 0)  # type: ignore[attr-defined]
    contact = crmkit.Contact
    suppression = crmkit.Suppression
    reason = (
        select(suppression.reason)
        .join(contact, suppression.address == contact.email)
        .where(contact.id == M.contact_id, suppression.channel == "email")
        .limit(1)
        .scalar_subquery()
    )
    result = op.session.execute(
        update(M)
        .where(
            M.campaign_id == campaign_id,
            M.status.in_(("active", "done", "replied")),
            reason.is_not(None),
        )
        .values(status=func.coalesce(reason, "manual"), next_due_at=None)
        .execution_options(synchronize_session=False)
    )
    return stopped_replies, int(result.rowcount or 0)  # type: ignore[attr-defined]


def _next_sequence_step(
    steps: Sequence[definition.Step], after: int, clicked: bool
) -> tuple[definition.Step | None, int]:
    """The next sequence step to send after position ``after`` (follow-ups ``unless =
    "click"`` are skipped for a member who clicked) and how many were skipped."""
    skipped = 0
    for step in steps[after:]:
        if step.kind == "thank_you":
            continue
        if step.kind == "follow_up" and step.unless == "click" and clicked:
            skipped += 1
            continue
        return step, skipped
    return None, skipped


def _following_delay(steps: Sequence[definition.Step], after: int) -> float | None:
    """Days until the sequence step after position ``after`` (``None``: the sequence ends)."""
    for step in steps[after:]:
        if step.kind == "follow_up":
            return step.after_days
    return None


def run_batch(
    crm: crmkit.CRM,
    campaign: Campaign,
    steps: Sequence[definition.Step],
    scope: Any,
    now: dt.datetime,
    settings: Mapping[str, Any],
    hidden: frozenset[str] = frozenset(),
) -> tuple[PassResult, int]:
    """One batch of due members of ``campaign``, in one transaction; the result and how many
    members it read (0: nothing is due). Fields in ``hidden`` (those the owner's field rules
    hide) render empty: the sent mail is logged as an activity the owner can read."""
    result = PassResult(campaign.name)
    contact = crmkit.Contact
    thank_steps = {step.on: step for step in steps if step.kind == "thank_you"}
    other = aliased(CampaignMember)
    today = day_start(now, settings["timezone"])
    mailed_today = (
        exists()
        .where(other.contact_id == M.contact_id, other.last_sent_at >= today)
        .label("mailed_today")
    )
    visible = (
        contact.id.in_(scope).label("visible")
        if scope is not None
        else (contact.id == contact.id).label("visible")
    )
    sequence_due = and_(M.status == "active", M.next_due_at <= now)
    due = sequence_due
    if thank_steps:
        thank_due = and_(
            M.converted_by.in_(sorted(thank_steps)),
            M.thanked_at.is_(None),
            M.status.in_(("active", "done", "replied")),
        )
        due = or_(sequence_due, thank_due)
    fields = [column for column in contact.__table__.c if column.key != "id"]
    query = (
        select(
            M.contact_id,
            M.status,
            M.step,
            M.next_due_at,
            M.clicked_at,
            M.converted_by,
            M.thanked_at,
            M.last_sent_at,
            mailed_today,
            visible,
            *fields,
        )
        .join(contact, contact.id == M.contact_id)
        .where(M.campaign_id == campaign.id, due)
        .order_by(M.contact_id)
        .limit(int(settings["batch_size"]))
    )
    default_language = settings["default_language"]
    with crm.transaction() as op:
        if crm.engine.dialect.name == "postgresql":
            query = query.with_for_update(of=M.__table__, skip_locked=True)
        rows = op.session.execute(query).all()
        if not rows:
            return result, 0
        changes: list[dict[str, Any]] = []
        to_send: list[tuple[Any, definition.Step, str, str]] = []  # row, step, kind, address
        counts = dict.fromkeys(("left", "invalid", "deferred", "skipped", "done"), 0)
        for row in rows:
            change = {
                "cid": row.contact_id,
                "new_status": row.status,
                "new_step": row.step,
                "new_due": row.next_due_at,
                "new_sent": row.last_sent_at,
                "new_thanked": row.thanked_at,
            }
            changes.append(change)
            if row.deleted_at is not None or not row.visible:
                change.update(new_status="left", new_due=None)
                counts["left"] += 1
                continue
            address = (row.email or "").strip().lower()
            if not ADDRESS.match(address):
                change.update(new_status="invalid", new_due=None)
                counts["invalid"] += 1
                continue
            thank = (
                thank_steps.get(row.converted_by or "")
                if row.converted_by and row.thanked_at is None
                else None
            )
            if thank is not None:
                to_send.append((row, thank, "thank_you", address))
                continue
            chosen, skipped = _next_sequence_step(steps, row.step, row.clicked_at is not None)
            counts["skipped"] += skipped
            if chosen is None:
                change.update(new_status="done", new_due=None, new_step=len(steps))
                counts["done"] += 1
                continue
            change["new_step"] = chosen.position - 1  # until it is sent
            to_send.append((row, chosen, "sequence", address))
        by_id = {change["cid"]: change for change in changes}
        # one campaign mail per contact per day (across campaigns) unless allowed
        if not campaign.allow_same_day:
            waiting = [item for item in to_send if item[0].mailed_today]
            tomorrow = day_start(today + dt.timedelta(hours=36), settings["timezone"])
            for row, _, kind, _ in waiting:
                if kind == "sequence":
                    by_id[row.contact_id]["new_due"] = tomorrow
                counts["deferred"] += 1
            to_send = [item for item in to_send if not item[0].mailed_today]
        wanted: dict[str, int] = {}
        for _, _, _, address in to_send:
            domain = address.rsplit("@", 1)[1]
            wanted[domain] = wanted.get(domain, 0) + 1
        granted = take(op, wanted, now, settings)
        next_minute = now.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        messages: list[crmkit.Message] = []
        for row, step, kind, address in to_send:
            domain = address.rsplit("@", 1)[1]
            change = by_id[row.contact_id]
            if granted.get(domain, 0) <= 0:
                if kind == "sequence":
                    change["new_due"] = next_minute
                counts["deferred"] += 1
                continue
            granted[domain] -= 1
            values = {column.key: getattr(row, column.key) for column in fields}
            values["id"] = row.contact_id
            if hidden:
                values = {k: "" if k in hidden else v for k, v in values.items()}
                custom = values.get("custom") or {}
                values["custom"] = {k: "" if k in hidden else v for k, v in custom.items()}
            language = str((values.get("custom") or {}).get("language") or default_language)
            if language not in step.subject:
                language = default_language
            context = render_context(
                crm, campaign.id, campaign.name, values, row.contact_id, address
            )
            messages.append(
                crmkit.Message(
                    channel="email",
                    to=address,
                    contact_id=row.contact_id,
                    subject=definition.render(step.subject[language], context),
                    body=definition.render(step.body[language], context),
                    kind="campaign",
                    key=f"campaign:{campaign.id}:{step.position}:{row.contact_id}",
                    record_type="contact",
                    record_id=row.contact_id,
                    unsubscribe=True,
                    log_activity=True,
                    data={"campaign": campaign.id, "step": step.position},
                )
            )
            change["new_sent"] = now
            if kind == "thank_you":
                change["new_thanked"] = now
                if change["new_status"] == "active":
                    change.update(new_status="done", new_due=None)
                result = evolve(result, thanked=result.thanked + 1)
            else:
                change["new_step"] = step.position
                delay = _following_delay(steps, step.position)
                if delay is None:
                    change.update(new_status="done", new_due=None)
                else:
                    change["new_due"] = now + dt.timedelta(days=delay)
                result = evolve(result, sent=result.sent + 1)
        sent = crm.messages.send_many(messages, op=op, now=now)
        table: Any = M.__table__
        op.session.connection().execute(
            update(table)
            .where(table.c.campaign_id == campaign.id, table.c.contact_id == bindparam("cid"))
            .values(
                status=bindparam("new_status"),
                step=bindparam("new_step"),
                next_due_at=bindparam("new_due"),
                last_sent_at=bindparam("new_sent"),
                thanked_at=bindparam("new_thanked"),
            ),
            changes,
        )
    return (
        evolve(
            result,
            suppressed=sent.suppressed,
            left=counts["left"],
            invalid=counts["invalid"],
            deferred=counts["deferred"],
            skipped=counts["skipped"],
            done=counts["done"],
        ),
        len(rows),
    )


def run_campaign(
    crm: crmkit.CRM,
    campaign_id: int,
    *,
    now: dt.datetime | None = None,
    budget_seconds: float = 20.0,
) -> PassResult | None:
    """One pass over a running campaign: stop, then batch after batch until nothing is due
    or ``budget_seconds`` passed. ``None`` if the campaign is not running."""
    now = now or crmkit.utcnow()
    settings = settings_of(crm)
    with crm.transaction(write=False) as op:
        campaign = op.session.get(Campaign, campaign_id)
        if campaign is None or campaign.status != "running":
            return None
        op.session.expunge(campaign)
        owner = op.session.get(crmkit.User, campaign.owner_id) if campaign.owner_id else None
    steps = definition.load_steps(campaign.steps)
    window = definition.load_window(campaign.window, settings["timezone"])
    with crm.transaction() as op:
        replied, opted_out = stop_finished(op, campaign_id, now)
    result = PassResult(campaign.name, replied=replied, opted_out=opted_out)
    if not window.is_open(now):
        return evolve(result, window_closed=True)
    scope = None
    hidden: frozenset[str] = frozenset()
    if owner is not None:
        with crm.transaction(owner, write=False) as owner_op:
            scope = crmkit.readable_ids_query(owner_op, "contact")
            if not owner_op.access.unrestricted:
                hidden = owner_op.access.hidden_fields("contact")
    started = time.monotonic()
    while True:
        batch, read = run_batch(crm, campaign, steps, scope, now, settings, hidden)
        result = result.add(batch)
        if not read or time.monotonic() - started > budget_seconds:
            return result
        if batch.sent + batch.thanked == 0 and batch.left + batch.invalid + batch.done == 0:
            return result  # only deferred members are due: nothing more this pass


def run_campaigns(
    crm: crmkit.CRM, *, now: dt.datetime | None = None, only: str | None = None
) -> list[PassResult]:
    """One pass over every running campaign (or the one named ``only``)."""
    with crm.transaction(write=False) as op:
        query = select(Campaign.id).where(Campaign.status == "running").order_by(Campaign.id)
        if only is not None:
            query = query.where(Campaign.name == only)
        ids = list(op.session.scalars(query))
    results = []
    for campaign_id in ids:
        outcome = run_campaign(crm, campaign_id, now=now)
        if outcome is not None:
            results.append(outcome)
    return results


def campaigns_job() -> crmkit.ScheduledJob:
    """The worker's job: a pass over the running campaigns every 15 seconds (one worker at
    a time; the mails themselves go out through the core delivery job)."""

    def run(context: crmkit.JobContext) -> str:
        results = run_campaigns(context.crm, now=context.now)
        queued = sum(r.sent + r.thanked for r in results)
        return f"campaigns: {queued} mail(s) queued" if queued else "idle"

    return crmkit.ScheduledJob(
        "campaigns.send",
        run,
        every_seconds=15,
        description="due campaign mails into the message queue",
    )
