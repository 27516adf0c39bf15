"""The campaigns API, mounted under ``/plugins/campaigns``: the caller's campaigns
(``campaign:manage``), and the public click-tracking redirect."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Redirect

import crmkit
from crmkit_campaigns import service

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Templates = Annotated[
    dict[
        Annotated[str, msgspec.Meta(max_length=16)],
        Annotated[str, msgspec.Meta(max_length=100_000)],
    ],
    msgspec.Meta(max_length=20),
]
Scalar = str | int | float | bool | None


class StepIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One step: ``kind`` first, follow_up (``after_days``, ``unless`` reply or click) or
    thank_you (``on`` purchase or form); ``subject`` and ``body`` per language."""

    kind: Annotated[str, msgspec.Meta(max_length=16)]
    subject: Templates
    body: Templates
    after_days: Annotated[float, msgspec.Meta(ge=0, le=365)] = 0
    unless: Annotated[str, msgspec.Meta(max_length=16)] = "reply"
    on: Annotated[str, msgspec.Meta(max_length=16)] = ""


class WindowIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """When mails may go out: days (mon..sun), start and end (HH:MM), timezone (IANA)."""

    days: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=3)]], msgspec.Meta(max_length=7)
    ] = msgspec.field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    start: Annotated[str, msgspec.Meta(max_length=8)] = "00:00"
    end: Annotated[str, msgspec.Meta(max_length=8)] = "23:59"
    timezone: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class Definition(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A campaign's definition: audience (``segment`` or ``filters``), steps, window."""

    steps: Annotated[list[StepIn], msgspec.Meta(min_length=1, max_length=20)]
    segment: Name | None = None
    filters: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=100)], Scalar], msgspec.Meta(max_length=50)
    ] = msgspec.field(default_factory=dict)
    window: WindowIn | None = None
    allow_same_day: bool = False


class CampaignCreate(Definition, kw_only=True, forbid_unknown_fields=True):
    """A new campaign of the caller."""

    name: Name


class TestSend(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which step to send to the caller's own address, rendered for which contact."""

    step: Annotated[int, msgspec.Meta(ge=1, le=20)] = 1
    contact_id: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    language: Annotated[str, msgspec.Meta(min_length=1, max_length=16)] | None = None


FilterValue = str | int | float | bool | None | list[str | int | float | bool | None]


class CampaignStepOut(msgspec.Struct, kw_only=True):
    """A stored step of a campaign."""

    kind: str
    subject: dict[str, str]
    body: dict[str, str]
    after_days: float
    unless: str
    on: str


class CampaignWindowOut(msgspec.Struct, kw_only=True):
    """A campaign's schedule window."""

    days: list[str]
    start: str
    end: str
    timezone: str


class CampaignOut(msgspec.Struct, kw_only=True):
    """A campaign; ``members`` counts its members by status (when one campaign is read)."""

    id: int
    name: str
    status: str
    owner: str | None
    segment: str | None
    filters: dict[str, FilterValue]
    steps: list[CampaignStepOut]
    window: CampaignWindowOut
    allow_same_day: bool
    audience: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    members: dict[str, int]


class CampaignTestSent(msgspec.Struct, kw_only=True):
    """Where a test mail went and its delivery-log status and key."""

    address: str
    status: str
    key: str


def _raw(data: Definition) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "steps": [msgspec.to_builtins(step) for step in data.steps],
        "allow_same_day": data.allow_same_day,
    }
    if data.filters:  # none given: an update keeps the audience
        raw["filters"] = dict(data.filters)
    if data.segment is not None:
        raw["segment"] = data.segment
    if data.window is not None:
        window = msgspec.to_builtins(data.window)
        if window.get("timezone") is None:
            window.pop("timezone", None)
        raw["window"] = window
    return raw


def _out(info: service.CampaignInfo) -> CampaignOut:
    return CampaignOut(
        id=info.id,
        name=info.name,
        status=info.status,
        owner=info.owner,
        segment=info.segment,
        filters=dict(info.filters),
        steps=[msgspec.convert(step, CampaignStepOut) for step in info.steps],
        window=msgspec.convert(dict(info.window), CampaignWindowOut),
        allow_same_day=info.allow_same_day,
        audience=info.audience,
        created_at=info.created_at,
        started_at=info.started_at,
        members=dict(info.members),
    )


def routes(crm: crmkit.CRM) -> list[Any]:
    """The route handlers."""
    problems = crmkit.problem_responses

    @post(
        "/",
        sync_to_thread=True,
        status_code=201,
        operation_id="create_campaign",
        summary="Save a campaign of the caller as a draft",
        responses=problems(400, 401, 403, 409, 413, 422),
    )
    def create(data: JSONBody[CampaignCreate], actor: NamedDependency[crmkit.User]) -> CampaignOut:
        return _out(service.create_campaign(crm, data.name, _raw(data), actor=actor))

    @get(
        "/",
        sync_to_thread=True,
        operation_id="list_campaigns",
        summary="The caller's campaigns (an admin's: all)",
        responses=problems(401, 403),
    )
    def listing(actor: NamedDependency[crmkit.User]) -> list[CampaignOut]:
        return [_out(info) for info in service.list_campaigns(crm, actor=actor)]

    @get(
        "/{name:str}",
        sync_to_thread=True,
        operation_id="get_campaign",
        summary="A campaign with its members counted by status",
        responses=problems(401, 403, 404),
    )
    def show(name: str, actor: NamedDependency[crmkit.User]) -> CampaignOut:
        return _out(service.get_campaign(crm, name, actor=actor))

    @put(
        "/{name:str}",
        sync_to_thread=True,
        operation_id="update_campaign",
        summary="Replace a campaign's definition",
        responses=problems(400, 401, 403, 404, 409, 413, 422),
    )
    def replace(
        name: str, data: JSONBody[Definition], actor: NamedDependency[crmkit.User]
    ) -> CampaignOut:
        return _out(service.update_campaign(crm, name, _raw(data), actor=actor))

    @post(
        "/{name:str}/start",
        sync_to_thread=True,
        status_code=200,
        operation_id="start_campaign",
        summary="Start (or resume) a campaign",
        responses=problems(400, 401, 403, 404, 409, 422),
    )
    def start(name: str, actor: NamedDependency[crmkit.User]) -> CampaignOut:
        return _out(service.start_campaign(crm, name, actor=actor))

    @post(
        "/{name:str}/pause",
        sync_to_thread=True,
        status_code=200,
        operation_id="pause_campaign",
        summary="Pause a running campaign",
        responses=problems(401, 403, 404, 409),
    )
    def pause(name: str, actor: NamedDependency[crmkit.User]) -> CampaignOut:
        return _out(service.pause_campaign(crm, name, actor=actor))

    @post(
        "/{name:str}/test",
        sync_to_thread=True,
        status_code=200,
        operation_id="test_send_campaign",
        summary="Send one step to the caller's own e-mail address",
        responses=problems(400, 401, 403, 404, 413, 422),
    )
    def test(
        name: str, data: JSONBody[TestSend], actor: NamedDependency[crmkit.User]
    ) -> CampaignTestSent:
        record = service.send_test(
            crm,
            name,
            step=data.step,
            contact_id=data.contact_id,
            language=data.language,
            actor=actor,
        )
        return CampaignTestSent(address=record.address, status=record.status, key=record.key)

    @delete(
        "/{name:str}",
        sync_to_thread=True,
        operation_id="delete_campaign",
        summary="Delete a campaign and its members",
        responses=problems(401, 403, 404),
    )
    def remove(name: str, actor: NamedDependency[crmkit.User]) -> None:
        service.delete_campaign(crm, name, actor=actor)

    @get(
        "/click/{token:str}",
        sync_to_thread=True,
        exclude_from_auth=True,
        security=[],
        operation_id="campaign_click",
        summary="A tracked link of a campaign mail (public: the token is signed)",
        responses=problems(400),
        status_code=302,
        media_type=MediaType.TEXT,
    )
    def click(token: str) -> Response[Any]:
        from crmkit_campaigns.tracking import record_click

        return Redirect(record_click(crm, token), status_code=302)

    return [create, listing, show, replace, start, pause, test, remove, click]
