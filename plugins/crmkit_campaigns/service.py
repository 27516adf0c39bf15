"""What users do with campaigns: create, list, show, start, pause, delete, test-send.

Every function takes the CRM and an optional ``actor``; ``None`` is the system (the CLI, the
worker). Permissions are checked here, once: every operation needs ``campaign:manage``; a
user sees and changes only the campaigns they own unless they are unrestricted (admin). The
audience of a campaign is always evaluated as its owner sees the contacts (a rep's campaign
reaches only contacts the rep may read; a campaign without owner, made by the system, all).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any

from attrs import frozen
from sqlalchemy import delete, func, insert, literal, select

import crmkit
from crmkit_campaigns import definition
from crmkit_campaigns.models import Campaign, CampaignMember

PLUGIN_NAME = "campaigns"
MANAGE = "campaign:manage"
STATUSES = ("draft", "running", "paused", "finished")
NAME_MAX = 200
#: What a plain e-mail address looks like (one @, a dot in the domain, no spaces).
ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@frozen
class CampaignInfo:
    """A campaign as users see it."""

    id: int
    name: str
    status: str
    owner: str | None
    segment: str | None
    filters: Mapping[str, Any]
    steps: list[dict[str, Any]]
    window: Mapping[str, Any]
    allow_same_day: bool
    audience: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    members: Mapping[str, int]


def settings_of(crm: crmkit.CRM) -> dict[str, Any]:
    """The plugin's validated settings."""
    return crm.plugin_settings(PLUGIN_NAME)


def _error(field: str, message: str) -> crmkit.ValidationError:
    return crmkit.ValidationError([crmkit.FieldError(field, message)], "campaign")


def _user(op: crmkit.Operation, username: str) -> crmkit.User:
    user = op.session.scalar(select(crmkit.User).where(crmkit.User.username == username))
    if user is None or not user.is_active:
        raise _error("owner", f"no active user {username!r}")
    return user


def _find(op: crmkit.Operation, name: str) -> Campaign:
    """The campaign named ``name`` that the actor may manage (else: not found, so a rep
    learns nothing of other people's campaigns)."""
    op.access.require(MANAGE)
    query = select(Campaign).where(Campaign.name == name)
    if not op.access.unrestricted:
        query = query.where(Campaign.owner_id == op.actor_id)
    campaign = op.session.scalar(query)
    if campaign is None:
        raise crmkit.NotFoundError("campaign", name)
    return campaign


def _members(op: crmkit.Operation, campaign_id: int) -> dict[str, int]:
    rows = op.session.execute(
        select(CampaignMember.status, func.count())
        .where(CampaignMember.campaign_id == campaign_id)
        .group_by(CampaignMember.status)
    )
    return {str(status): int(count) for status, count in rows}


def _info(op: crmkit.Operation, campaign: Campaign, *, counts: bool = False) -> CampaignInfo:
    owner = op.session.get(crmkit.User, campaign.owner_id) if campaign.owner_id else None
    return CampaignInfo(
        id=campaign.id,
        name=campaign.name,
        status=campaign.status,
        owner=owner.username if owner else None,
        segment=campaign.segment,
        filters=dict(campaign.filters),
        steps=list(campaign.steps),
        window=dict(campaign.window),
        allow_same_day=campaign.allow_same_day,
        audience=campaign.audience,
        created_at=campaign.created_at,
        started_at=campaign.started_at,
        members=_members(op, campaign.id) if counts else {},
    )


def check_definition(crm: crmkit.CRM, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The checked, storable form of a definition (``steps``, ``window``, ``segment`` or
    ``filters``, ``allow_same_day``); ``ValidationError`` naming the first problem."""
    if not isinstance(raw, Mapping):
        raise _error("definition", "must be a table of steps, window, segment or filters")
    unknown = sorted(set(raw) - {"steps", "window", "segment", "filters", "allow_same_day"})
    if unknown:
        raise _error("definition", f"unknown key(s) {', '.join(map(str, unknown))}")
    settings = settings_of(crm)
    steps = definition.parse_steps(
        crm,
        raw.get("steps"),
        languages=settings["languages"],
        default_language=settings["default_language"],
    )
    window = definition.parse_window(raw.get("window"), settings["timezone"])
    segment = raw.get("segment")
    filters = raw.get("filters") or {}
    if segment is not None and (not isinstance(segment, str) or not segment.strip()):
        raise _error("segment", "must be a segment name")
    if not isinstance(filters, Mapping):
        raise _error("filters", "must be a table of field = value (as the contact list takes)")
    if segment and filters:
        raise _error("segment", "give a segment or filters, not both")
    same_day = raw.get("allow_same_day", False)
    if not isinstance(same_day, bool):
        raise _error("allow_same_day", "must be true or false")
    return {
        "steps": [step.as_json() for step in steps],
        "window": window.as_json(),
        "segment": segment.strip() if segment else None,
        "filters": dict(filters),
        "allow_same_day": same_day,
    }


def audience_ids(op: crmkit.Operation, campaign: Campaign) -> Any:
    """``SELECT id`` of the contacts in the campaign's audience as ``op``'s actor sees them
    (the caller opens ``op`` as the campaign's owner): the saved segment's members
    (``crm.segments.member_ids``) or the contacts its filters name (the same filter
    language, relations and ``segment = NAME`` included)."""
    if campaign.segment:
        return op.crm.segments.member_ids(op, campaign.segment)
    return op.records("contact").ids_query(campaign.filters or None)


def create_campaign(
    crm: crmkit.CRM,
    name: str,
    raw: Mapping[str, Any],
    *,
    owner: str | None = None,
    actor: crmkit.User | None = None,
) -> CampaignInfo:
    """Save a campaign as a draft (nobody is mailed until it starts). Its owner is the
    actor; the system may name one (``owner``) or none. Templates naming unknown variables,
    an unknown filter field, a bad window: ``ValidationError``, nothing saved."""
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise _error("name", f"a printable name of 1 to {NAME_MAX} characters")
    checked = check_definition(crm, raw)
    with crm.transaction(actor, write=False) as op:
        op.access.require(MANAGE)
        if actor is not None:
            if owner is not None and owner != actor.username and not op.access.unrestricted:
                raise crmkit.PermissionDenied(f"{actor.username} may only own their campaigns")
            owner_user: crmkit.User | None = actor if owner is None else _user(op, owner)
        else:
            owner_user = _user(op, owner) if owner is not None else None
    _check_audience(crm, owner_user, checked)
    with crm.transaction(actor) as op:
        op.access.require(MANAGE)
        if op.session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
            raise crmkit.ConflictError(f"a campaign named {name!r} exists already")
        op.session.add(
            Campaign(
                name=name,
                status="draft",
                owner_id=owner_user.id if owner_user else None,
                created_at=crmkit.utcnow(),
                **checked,
            )
        )
    with crm.transaction(actor, write=False) as op:
        return _info(op, _find(op, name))


def _check_audience(crm: crmkit.CRM, owner: crmkit.User | None, checked: Mapping[str, Any]) -> None:
    """Build the audience query once, as the owner, so an unknown filter field or segment
    fails when the campaign is saved, not when it starts."""
    probe = Campaign(segment=checked["segment"], filters=checked["filters"])
    if probe.segment:
        entity = crm.segments.entity_of(probe.segment, actor=owner)
        if entity != "contact":
            raise _error("segment", f"segment {probe.segment!r} selects {entity}s, not contacts")
    with crm.transaction(owner, write=False) as owner_op:
        audience_ids(owner_op, probe)


def update_campaign(
    crm: crmkit.CRM, name: str, raw: Mapping[str, Any], *, actor: crmkit.User | None = None
) -> CampaignInfo:
    """Replace a campaign's definition (steps, window, audience) with a checked one; a
    definition without ``segment`` or ``filters`` keeps the audience. A started campaign
    keeps its members and audience: new steps apply from their next mail on."""
    with crm.transaction(actor, write=False) as op:
        campaign = _find(op, name)
        owner = op.session.get(crmkit.User, campaign.owner_id) if campaign.owner_id else None
        kept = {"segment": campaign.segment, "filters": dict(campaign.filters)}
    if "segment" not in raw and "filters" not in raw:  # no audience given: it stays
        raw = {**raw, **{key: value for key, value in kept.items() if value}}
    checked = check_definition(crm, raw)
    _check_audience(crm, owner, checked)
    with crm.transaction(actor) as op:
        campaign = _find(op, name)
        if campaign.status != "draft" and (
            checked["segment"] != campaign.segment or checked["filters"] != campaign.filters
        ):
            raise crmkit.ConflictError(
                f"campaign {name!r} has started: its audience can no longer change"
            )
        for key, value in checked.items():
            setattr(campaign, key, value)
    with crm.transaction(actor, write=False) as op:
        return _info(op, _find(op, name))


def list_campaigns(crm: crmkit.CRM, *, actor: crmkit.User | None = None) -> list[CampaignInfo]:
    """The campaigns the actor manages, oldest first."""
    with crm.transaction(actor, write=False) as op:
        op.access.require(MANAGE)
        query = select(Campaign).order_by(Campaign.id)
        if not op.access.unrestricted:
            query = query.where(Campaign.owner_id == op.actor_id)
        return [_info(op, campaign) for campaign in op.session.scalars(query)]


def get_campaign(crm: crmkit.CRM, name: str, *, actor: crmkit.User | None = None) -> CampaignInfo:
    """One campaign with its members counted by status."""
    with crm.transaction(actor, write=False) as op:
        return _info(op, _find(op, name), counts=True)


def start_campaign(
    crm: crmkit.CRM,
    name: str,
    *,
    actor: crmkit.User | None = None,
    now: dt.datetime | None = None,
) -> CampaignInfo:
    """Start a draft (its audience, as the owner sees it, becomes its members, each due for
    the first mail now; one set-based insert) or resume a paused campaign. An audience with
    no contact that has an e-mail address is refused, naming the campaign; nothing changes."""
    now = now or crmkit.utcnow()
    with crm.transaction(actor, write=False) as op:
        campaign = _find(op, name)
        status, campaign_id, owner_id = campaign.status, campaign.id, campaign.owner_id
        owner = op.session.get(crmkit.User, owner_id) if owner_id else None
    if status == "running":
        raise crmkit.ConflictError(f"campaign {name!r} is running already")
    if status == "finished":
        raise crmkit.ConflictError(f"campaign {name!r} is finished")
    if status == "paused":
        with crm.transaction(actor) as op:
            _find(op, name).status = "running"
        return get_campaign(crm, name, actor=actor)
    with crm.transaction(owner) as op:
        found = op.session.get(Campaign, campaign_id)
        if found is None:
            raise crmkit.NotFoundError("campaign", name)
        campaign = found
        contact = crmkit.Contact
        chosen = (
            select(
                literal(campaign_id),
                contact.id,
                literal("active"),
                literal(0),
                literal(now, CampaignMember.__table__.c.next_due_at.type),
                literal(now, CampaignMember.__table__.c.joined_at.type),
            )
            .where(
                contact.id.in_(audience_ids(op, campaign)),
                contact.email.is_not(None),
                contact.email != "",
            )
            .order_by(contact.id)
        )
        columns = ["campaign_id", "contact_id", "status", "step", "next_due_at", "joined_at"]
        op.session.execute(insert(CampaignMember).from_select(columns, chosen))
        count = int(
            op.session.scalar(select(func.count()).where(CampaignMember.campaign_id == campaign_id))
            or 0
        )
        if count == 0:
            where = f"segment {campaign.segment!r}" if campaign.segment else "its filters"
            raise crmkit.CRMError(
                f"campaign {name!r} has an empty audience: {where} match(es) no contact with"
                " an e-mail address that its owner may see; nothing was started"
            )
        campaign.audience = count
        campaign.status = "running"
        campaign.started_at = now
    return get_campaign(crm, name, actor=actor)


def pause_campaign(crm: crmkit.CRM, name: str, *, actor: crmkit.User | None = None) -> CampaignInfo:
    """Pause a running campaign (nobody is mailed until it is started again)."""
    with crm.transaction(actor) as op:
        campaign = _find(op, name)
        if campaign.status != "running":
            raise crmkit.ConflictError(f"campaign {name!r} is {campaign.status}, not running")
        campaign.status = "paused"
    return get_campaign(crm, name, actor=actor)


def delete_campaign(crm: crmkit.CRM, name: str, *, actor: crmkit.User | None = None) -> None:
    """Delete a campaign and its members (the delivery log and activities stay)."""
    with crm.transaction(actor) as op:
        campaign = _find(op, name)
        op.session.execute(delete(CampaignMember).where(CampaignMember.campaign_id == campaign.id))
        op.session.delete(campaign)


def send_test(
    crm: crmkit.CRM,
    name: str,
    *,
    step: int = 1,
    contact_id: int | None = None,
    language: str | None = None,
    user: str | None = None,
    actor: crmkit.User | None = None,
) -> crmkit.DeliveryRecord:
    """Send one step of a campaign to oneself: to the actor's own e-mail address (the
    system names the user, ``user``), rendered for a contact that user may read
    (``contact_id``) or for a sample whose fields show their names."""
    settings = settings_of(crm)
    with crm.transaction(actor, write=False) as op:
        campaign = _find(op, name)
        steps = definition.load_steps(campaign.steps)
        campaign_id = campaign.id
        recipient = actor
        if recipient is None:
            if user is None:
                raise _error("user", "name the user whose address gets the test")
            recipient = _user(op, user)
    if not 1 <= step <= len(steps):
        raise _error("step", f"campaign {name!r} has steps 1 to {len(steps)}")
    chosen = steps[step - 1]
    values: dict[str, Any] = {field: f"[{field}]" for field in definition.template_names(crm)}
    if contact_id is not None:  # as the recipient sees it; what they may not see stays empty
        values = dict.fromkeys(values, "")
        values.update(dict(crm.records("contact").get(contact_id, actor=recipient)))
    address = recipient.email
    if not address:
        raise _error("user", f"user {recipient.username!r} has no e-mail address")
    language = language or str(values.get("language") or settings["default_language"])
    if language not in chosen.subject:
        language = settings["default_language"]
    context = render_context(crm, campaign_id, name, values, contact_id or 0, address)
    return crm.messages.send(
        "email",
        "[test] " + definition.render(chosen.subject[language], context),
        definition.render(chosen.body[language], context),
        to=address,
        kind="campaign-test",
        key=f"campaign-test:{campaign_id}:{uuid.uuid4().hex}",
    )


def render_context(
    crm: crmkit.CRM,
    campaign_id: int,
    campaign_name: str,
    values: Mapping[str, Any],
    contact_id: int,
    address: str,
) -> dict[str, Any]:
    """What a template sees: the contact's fields, ``campaign``, ``unsubscribe_url`` and
    ``track(url)``."""
    from crmkit_campaigns.tracking import tracked_url

    context = {key: value for key, value in values.items() if key != "custom"}
    context.update(values.get("custom") or {})
    context["campaign"] = campaign_name
    context["unsubscribe_url"] = crm.messages.unsubscribe_url("email", address)

    def track(url: str) -> str:
        return tracked_url(crm, campaign_id, contact_id, url)

    context["track"] = track
    return context
