"""Segments through the API: create, list, get, change and delete saved segments
(``segment:manage`` to change, ``segment:read`` to read), count and page their members as the
token's user may see them, and what a segment of an entity may filter on."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Router, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from crmkit.api.problems import problem_specs
from crmkit.api.records import record_json
from crmkit.app import CRM
from crmkit.entities.organisation import User
from crmkit.services.cells import MAX_PAGE
from crmkit.services.segments import MAX_NAME, Segment

FILTERS_HELP = (
    "The filter language of lists (FIELD or FIELD__OP: eq, ne, lt, lte, gt, gte, in,"
    " contains, empty), plus relations (`account.city`, or a nested object under `deals`),"
    " measures plugins add, and `segment` naming another segment. Dates take `year_start`,"
    " `today-30d` and the like. See docs/segments.md."
)
SegmentName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
#: One operand: text, a number, true/false or null.
FilterScalar = str | int | float | bool | None
#: A condition's value: an operand, a list of them (``__in``), or a relation's conditions.
FilterValue = (
    str
    | int
    | float
    | bool
    | None
    | list[FilterScalar]
    | dict[str, str | int | float | bool | list[FilterScalar] | None]
)
#: A field of a member record as the entity's own routes show it.
MemberValue = str | int | float | bool | None | list[str] | dict[str, str]


class SegmentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new segment: a name unique across entities, the entity, its filters."""

    name: SegmentName
    entity: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    filters: Annotated[dict[str, FilterValue], msgspec.Meta(description=FILTERS_HELP)] = (
        msgspec.field(default_factory=dict)
    )
    description: Annotated[str, msgspec.Meta(max_length=2000)] = ""


class SegmentChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to change; what is left out stays. ``expected_version`` refuses the change
    (409) if the segment changed since it was read."""

    name: SegmentName | None = None
    filters: Annotated[dict[str, FilterValue], msgspec.Meta(description=FILTERS_HELP)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    expected_version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None


class SegmentOut(msgspec.Struct, kw_only=True):
    """A saved segment."""

    id: int
    name: str
    entity: str
    filters: dict[str, FilterValue]
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str | None
    version: int


class SegmentCount(msgspec.Struct, kw_only=True):
    """How many records of the segment the token's user may see, counted now."""

    name: str
    entity: str
    count: int


class SegmentMembers(msgspec.Struct, kw_only=True):
    """A page of the segment's records (fields as the entity's own routes show them)."""

    items: list[dict[str, MemberValue]]
    next_cursor: str | None


class SegmentVocabulary(msgspec.Struct, kw_only=True):
    """What a segment of the entity may filter on, as the token's user sees it."""

    fields: list[str]
    relations: list[str]
    measures: list[str]


def _out(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        entity=segment.entity,
        filters=dict(segment.filters),
        description=segment.description,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
        created_by=segment.created_by,
        version=segment.version,
    )


def segment_routers(crm: CRM) -> list[Router]:
    """``/segments`` routes and ``/segment-fields/{entity}``."""

    @post(
        "/",
        summary="Save a segment",
        description="An unknown field, relation, measure or segment, a cycle of segments or an"
        " unknown entity is answered 422 naming it (and listing what is known).",
        sync_to_thread=True,
        operation_id="create_segment",
        status_code=201,
        responses=problem_specs(400, 401, 403, 409, 413, 422),
    )
    def create_segment(data: JSONBody[SegmentCreate], actor: NamedDependency[User]) -> SegmentOut:
        made = crm.segments.create(
            data.name, data.entity, data.filters, description=data.description, actor=actor
        )
        return _out(made)

    @get(
        "/",
        summary="List saved segments",
        sync_to_thread=True,
        operation_id="list_segments",
        responses=problem_specs(401, 403, 422),
    )
    def list_segments(
        actor: NamedDependency[User],
        entity: Annotated[
            str | None, QueryParameter(description="Only this entity's segments.", max_length=64)
        ] = None,
    ) -> list[SegmentOut]:
        return [_out(segment) for segment in crm.segments.list(entity, actor=actor)]

    @get(
        "/{name:str}",
        summary="Get a saved segment",
        sync_to_thread=True,
        operation_id="get_segment",
        responses=problem_specs(401, 403, 404),
    )
    def get_segment(name: FromPath[str], actor: NamedDependency[User]) -> SegmentOut:
        return _out(crm.segments.get(name, actor=actor))

    @patch(
        "/{name:str}",
        summary="Change a saved segment",
        sync_to_thread=True,
        operation_id="update_segment",
        responses=problem_specs(400, 401, 403, 404, 409, 413, 422),
    )
    def update_segment(
        name: FromPath[str], data: JSONBody[SegmentChange], actor: NamedDependency[User]
    ) -> SegmentOut:
        changed = crm.segments.update(
            name,
            filters=data.filters,
            new_name=data.name,
            description=data.description,
            expected_version=data.expected_version,
            actor=actor,
        )
        return _out(changed)

    @delete(
        "/{name:str}",
        summary="Delete a saved segment",
        description="Refused (409) while other segments, pool policies or assignment rules"
        " name it.",
        sync_to_thread=True,
        operation_id="delete_segment",
        responses=problem_specs(401, 403, 404, 409),
    )
    def delete_segment(name: FromPath[str], actor: NamedDependency[User]) -> None:
        crm.segments.delete(name, actor=actor)

    @get(
        "/{name:str}/count",
        summary="Count a segment's records now",
        sync_to_thread=True,
        operation_id="count_segment",
        responses=problem_specs(401, 403, 404, 422),
    )
    def count_segment(name: FromPath[str], actor: NamedDependency[User]) -> SegmentCount:
        segment = crm.segments.get(name, actor=actor)
        count = crm.segments.count(segment.name, actor=actor)
        return SegmentCount(name=segment.name, entity=segment.entity, count=count)

    @get(
        "/{name:str}/members",
        summary="A page of a segment's records",
        description="Keyset paging: pass `next_cursor` back as `cursor`. `sort` takes a field,"
        " `-field` for descending.",
        sync_to_thread=True,
        operation_id="list_segment_members",
        responses=problem_specs(400, 401, 403, 404, 422),
    )
    def segment_members(
        name: FromPath[str],
        actor: NamedDependency[User],
        sort: Annotated[str, QueryParameter(max_length=100)] = "id",
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> SegmentMembers:
        page = crm.segments.members(name, sort=sort, limit=limit, cursor=cursor, actor=actor)
        return SegmentMembers(
            items=[record_json(record) for record in page.items], next_cursor=page.next_cursor
        )

    @get(
        "/{entity:str}",
        summary="What a segment of an entity may filter on",
        sync_to_thread=True,
        operation_id="segment_fields",
        responses=problem_specs(401, 403, 422),
    )
    def segment_fields(entity: FromPath[str], actor: NamedDependency[User]) -> SegmentVocabulary:
        known = crm.segments.vocabulary(entity, actor=actor)
        return SegmentVocabulary(
            fields=known["fields"], relations=known["relations"], measures=known["measures"]
        )

    return [
        Router(
            path="/segments",
            route_handlers=[
                create_segment,
                list_segments,
                get_segment,
                update_segment,
                delete_segment,
                count_segment,
                segment_members,
            ],
            tags=["segments"],
        ),
        Router(path="/segment-fields", route_handlers=[segment_fields], tags=["segments"]),
    ]
