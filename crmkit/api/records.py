"""The record routes of one entity: POST, GET one, PATCH, DELETE, GET list, and the lists of
related records (``/accounts/{id}/contacts``).

Handlers are thin: they turn HTTP into a service call made as the token's user and the result
back into JSON. This module builds handler functions per entity, with the entity's body types
as annotations (so it does not use postponed annotations: Litestar reads the real types).
"""

from collections.abc import Mapping
from typing import Annotated, Any

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.datastructures import MultiDict
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, QueryParameter

from crmkit.api.problems import PreconditionFailed, problem_specs
from crmkit.api.schemas import EntitySchemas, RecordId, body_values
from crmkit.app import CRM
from crmkit.entities.organisation import User
from crmkit.entities.registry import EntityType
from crmkit.errors import ConflictError, FieldError, ValidationError
from crmkit.events.payloads import to_json
from crmkit.services.cells import MAX_PAGE, plural
from crmkit.services.queries import OPERATORS
from crmkit.services.views import Record

SORT_HELP = "Field to sort by; -field sorts descending."
LIMIT_HELP = "Records per page."
CURSOR_HELP = "The next_cursor of the previous page."
SEARCH_HELP = "Free-text search over name, company, e-mail and phone."
IF_MATCH_HELP = "The ETag you read: the change is refused (412) if the record changed since."

#: Query parameters of a list that are not filters.
LIST_PARAMETERS = frozenset({"sort", "limit", "cursor", "q"})


def record_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the API shows it: built-in and custom fields side by side."""
    values = record.to_dict() if isinstance(record, Record) else dict(record)
    custom = values.pop("custom", None) or {}
    values.pop("deleted_at", None)
    values.update(custom)
    return to_json(values)  # type: ignore[no-any-return]


def saved_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record just created or changed, with the duplicate warnings of the write (a list,
    empty when the write matched nothing under a ``warn`` rule)."""
    values = record_json(record)
    warnings = record.duplicate_warnings if isinstance(record, Record) else ()
    values["duplicate_warnings"] = [to_json(match.as_dict()) for match in warnings]
    return values


def etag(record: Mapping[str, Any]) -> str:
    """The entity tag of a record: its version."""
    return f'"{record["version"]}"'


def expected_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header names (``"3"``, ``W/"3"``); ``*`` or none: any."""
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    # ASCII digits only, and few: str.isdigit() also takes "²" and "١", which int() refuses
    # or reads, and int() of 10 000 digits is a ValueError of its own
    if not (0 < len(text) <= 18 and text.isascii() and text.isdigit()):
        raise ValidationError([FieldError("If-Match", 'must be an ETag this API sent, like "3"')])
    return int(text)


def filters_from_query(query: MultiDict[str]) -> dict[str, object]:
    """Filters from query parameters: ``city=上海``, ``amount__gte=100``, ``tier__in=A,B``
    (or ``tier__in`` repeated), ``email__empty=true``. An unknown operator is named."""
    filters: dict[str, object] = {}
    for key in query:
        if key in LIST_PARAMETERS:
            continue
        values = query.getall(key)
        _, _, operator = key.partition("__")
        if operator and operator not in OPERATORS:
            raise ValidationError(
                [
                    FieldError(
                        key, f"unknown operator {operator!r}; use one of {', '.join(OPERATORS)}"
                    )
                ]
            )
        if operator == "in":
            filters[key] = [part for value in values for part in value.split(",") if part]
        else:
            filters[key] = values[-1]
    return filters


def _list_description(entity: EntityType, crm: CRM) -> str:
    fields = sorted(
        name for name in entity.columns if name not in ("custom", "deleted_at")
    ) + sorted(crm.custom_fields[entity.name])
    return (
        f"A page of {plural(entity.name)} the token's user may read.\n\n"
        "Filter with query parameters `FIELD=VALUE` or `FIELD__OP=VALUE`, OP one of "
        f"{', '.join(OPERATORS)} (`in`: comma-separated or repeated; `empty`: true/false). "
        "Values are read like input: a phone number matches however it is typed. "
        f"Fields: {', '.join(fields)}.\n\n"
        "`q` searches name, company, e-mail and phone (Chinese and Latin text); `sort` takes "
        "a field, `-field` for descending; pass `next_cursor` back as `cursor` for the next page."
    )


def record_router(
    crm: CRM, entity: EntityType, schemas: EntitySchemas, every: Mapping[str, EntitySchemas]
) -> Router:
    """The routes of one entity under ``/<plural>``."""
    name = entity.name
    path = f"/{plural(name)}"
    tag = plural(name)
    create_type = schemas.create
    update_type = schemas.update
    record_type = schemas.record
    saved_type = schemas.saved
    page_type = schemas.page
    label = entity.label or name

    def service() -> Any:
        return crm.records(name)

    def list_records(
        request: Request[Any, Any, Any],
        actor: NamedDependency[User],
        sort: Annotated[str, QueryParameter(description=SORT_HELP)] = "id",
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description=LIMIT_HELP)] = 50,
        cursor: Annotated[str | None, QueryParameter(description=CURSOR_HELP)] = None,
        q: Annotated[str | None, QueryParameter(description=SEARCH_HELP)] = None,
    ) -> page_type:  # type: ignore[valid-type]
        page = service().list(
            filters_from_query(request.query_params),
            search=q,
            sort=sort,
            limit=limit,
            cursor=cursor,
            actor=actor,
        )
        return {
            "items": [record_json(record) for record in page.items],
            "next_cursor": page.next_cursor,
        }

    def create_record(
        data: JSONBody[create_type],  # type: ignore[valid-type]
        actor: NamedDependency[User],
    ) -> Response[saved_type]:  # type: ignore[valid-type]
        record = service().create(body_values(data), actor=actor)
        return Response(
            saved_json(record),
            status_code=201,
            headers={"ETag": etag(record), "Location": f"{path}/{record['id']}"},
        )

    def get_record(record_id: RecordId, actor: NamedDependency[User]) -> Response[record_type]:  # type: ignore[valid-type]
        record = service().get(record_id, actor=actor)
        return Response(record_json(record), headers={"ETag": etag(record)})

    def update_record(
        record_id: RecordId,
        data: JSONBody[update_type],  # type: ignore[valid-type]
        actor: NamedDependency[User],
        if_match: Annotated[
            str | None, HeaderParameter(name="If-Match", description=IF_MATCH_HELP)
        ] = None,
    ) -> Response[saved_type]:  # type: ignore[valid-type]
        version = expected_version(if_match)
        try:
            record = service().update(
                record_id, body_values(data), expected_version=version, actor=actor
            )
        except ConflictError as error:
            if version is not None and not hasattr(error, "matches"):
                raise PreconditionFailed(str(error)) from None
            raise
        return Response(saved_json(record), headers={"ETag": etag(record)})

    def delete_record(
        record_id: RecordId,
        actor: NamedDependency[User],
        if_match: Annotated[
            str | None, HeaderParameter(name="If-Match", description=IF_MATCH_HELP)
        ] = None,
    ) -> None:
        version = expected_version(if_match)
        try:
            service().delete(record_id, expected_version=version, actor=actor)
        except ConflictError as error:
            if version is not None:
                raise PreconditionFailed(str(error)) from None
            raise

    read_errors = problem_specs(400, 401, 403, 404, 422)
    handlers = [
        get(
            "/",
            summary=f"List {plural(label)}",
            description=_list_description(entity, crm),
            sync_to_thread=True,
            operation_id=f"list_{plural(name)}",
            responses=problem_specs(400, 401, 403, 422),
        )(list_records),
        post(
            "/",
            summary=f"Create {label}",
            sync_to_thread=True,
            operation_id=f"create_{name}",
            responses=problem_specs(400, 401, 403, 409, 413, 422),
        )(create_record),
        get(
            "/{record_id:int}",
            summary=f"Get one {label}",
            sync_to_thread=True,
            operation_id=f"get_{name}",
            responses=read_errors,
        )(get_record),
        patch(
            "/{record_id:int}",
            summary=f"Change fields of {label}",
            description="Send only the fields to change; null clears one. With If-Match, "
            "a record changed since that ETag answers 412.",
            sync_to_thread=True,
            operation_id=f"update_{name}",
            responses=problem_specs(400, 401, 403, 404, 409, 412, 413, 422),
        )(update_record),
        delete(
            "/{record_id:int}",
            summary=f"Delete {label} (soft delete)",
            sync_to_thread=True,
            operation_id=f"delete_{name}",
            responses=problem_specs(400, 401, 403, 404, 409, 412, 422),
        )(delete_record),
    ]
    handlers += _related_handlers(crm, entity, every)
    return Router(path=path, route_handlers=handlers, tags=[tag])


def _related_handlers(
    crm: CRM, parent: EntityType, every: Mapping[str, EntitySchemas]
) -> list[Any]:
    """``GET /<parents>/{id}/<children>`` for each entity with a ``<parent>_id`` column that
    points at ``parent``: the parent must be readable, the children are listed with the
    same scope and filters as ``GET /<children>?<parent>_id=<id>``."""
    handlers: list[Any] = []
    parent_table = parent.model.__table__
    for child in crm.entities.values():
        if child.name not in every:
            continue
        column_name = f"{parent.name}_id"
        prop = child.columns.get(column_name)
        if prop is None:
            continue
        keys = prop.columns[0].foreign_keys
        if not any(key.column.table is parent_table for key in keys):
            continue
        handlers.append(_related_handler(crm, parent, child, column_name, every[child.name]))
    return handlers


def _related_handler(
    crm: CRM, parent: EntityType, child: EntityType, column: str, schemas: EntitySchemas
) -> Any:
    parent_name, child_name = parent.name, child.name
    page_type = schemas.page

    def list_related(
        record_id: RecordId,
        request: Request[Any, Any, Any],
        actor: NamedDependency[User],
        sort: Annotated[str, QueryParameter(description=SORT_HELP)] = "id",
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description=LIMIT_HELP)] = 50,
        cursor: Annotated[str | None, QueryParameter(description=CURSOR_HELP)] = None,
        q: Annotated[str | None, QueryParameter(description=SEARCH_HELP)] = None,
    ) -> page_type:  # type: ignore[valid-type]
        crm.records(parent_name).get(record_id, actor=actor)  # 404 unless readable
        filters = filters_from_query(request.query_params)
        filters[column] = record_id
        page = crm.records(child_name).list(
            filters, search=q, sort=sort, limit=limit, cursor=cursor, actor=actor
        )
        return {
            "items": [record_json(record) for record in page.items],
            "next_cursor": page.next_cursor,
        }

    return get(
        f"/{{record_id:int}}/{plural(child_name)}",
        summary=f"List the {plural(child_name)} of a {parent_name}",
        description=f"Like GET /{plural(child_name)}?{column}=ID, after checking that the"
        f" {parent_name} is readable (404 if not).",
        sync_to_thread=True,
        operation_id=f"list_{plural(child_name)}_of_{parent_name}",
        responses=problem_specs(400, 401, 403, 404, 422),
    )(list_related)
