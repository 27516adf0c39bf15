"""Record pages of the desk: lists (search, filter, sort, keyset pages), a record with its
follow-up timeline, related records and plugin panels, edit, create, log a call or visit,
and plugin actions.

Every read and write is a call of the same record services the REST API calls, as the
signed-in user: the permission filter, field rules, validation and events are theirs. A
field the user may not see is absent from the records the services return, so it is never
rendered.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, PathParameter
from litestar.response import Redirect, Template

from crmkit.app import CRM
from crmkit.desk.contributions import collected, panels
from crmkit.desk.extensions import DeskAction, DeskLink
from crmkit.desk.fields import (
    CREATE_FIELDS,
    LOG_KINDS,
    Input,
    display,
    edit_inputs,
    entity_by_plural,
    form_inputs,
    input_value,
    label,
    list_columns,
    reference_entities,
    submitted_values,
    title_of,
)
from crmkit.desk.render import page, row_cells
from crmkit.desk.session import DESK_PATH, Cookies, Desk, current_desk
from crmkit.entities.registry import EntityType
from crmkit.errors import ConflictError, CRMError, PermissionDenied, ValidationError
from crmkit.permissions.models import FieldAccess
from crmkit.services.transfer import plural

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
#: Path parameters: a record id, a name (an entity's plural, a plugin, an action).
RecordId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]
Name = Annotated[str, PathParameter(max_length=100)]

#: Records per list page.
PAGE_SIZE = 50
#: Activities on a record's timeline, and records per related list.
TIMELINE_SIZE = 20
RELATED_SIZE = 10


def _entity(crm: CRM, name: str) -> EntityType:
    entity = entity_by_plural(crm, name)
    if entity is None:
        raise NotFoundException(f"the desk has no page {DESK_PATH}/{name}")
    return entity


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def field_rules(desk: Desk, entity: str) -> tuple[frozenset[str], frozenset[str]]:
    """The fields of ``entity`` hidden from the user and those read-only for them."""
    with desk.crm.transaction(desk.user, write=False) as op:
        access = op.access
        if access.unrestricted:
            return frozenset(), frozenset()
        rules = access.field_rules.get(entity, {})
        return (
            frozenset(n for n, a in rules.items() if a is FieldAccess.HIDDEN),
            frozenset(n for n, a in rules.items() if a is FieldAccess.READ_ONLY),
        )


def _visible_inputs(desk: Desk, entity: EntityType, names: list[Input]) -> list[Input]:
    hidden, read_only = field_rules(desk, entity.name)
    return [
        Input(i.name, i.label, i.kind, i.choices, i.required, i.name in read_only)
        for i in names
        if i.name not in hidden
    ]


def _see(path: str, notice: str) -> Redirect:
    """Send the browser on to ``path`` after a change (303 See Other), with a notice."""
    return Redirect(f"{path}{'&' if '?' in path else '?'}notice={notice}", status_code=303)


def record_handlers(crm: CRM, cookies: Cookies) -> list[Any]:
    """The handlers of ``/desk/<plural>`` and ``/desk/<plural>/<id>``."""

    def desk_of(request: Request[Any, Any, Any]) -> Desk:
        return current_desk(request, crm, cookies)

    @get("/{entity_name:str}", sync_to_thread=True, include_in_schema=False)
    def list_page(request: Request[Any, Any, Any], entity_name: Name) -> Template:
        desk = desk_of(request)
        _ = desk.gettext
        entity = _entity(crm, entity_name)
        query = request.query_params
        search = (query.get("q") or "").strip()[:200]
        sort = (query.get("sort") or "id").strip()[:100]
        cursor = query.get("cursor") or None
        field = (query.get("field") or "").strip()[:100]
        value = (query.get("value") or "").strip()[:200]
        mine = bool(query.get("mine"))
        filters: dict[str, object] = {}
        if field and value:
            filters[field] = value
        if mine:
            filters["owner_id"] = desk.user.id
        columns = list_columns(crm, entity)
        error = None
        items: list[Any] = []
        next_cursor = None
        try:
            result = crm.records(entity.name).list(
                filters,
                search=search or None,
                sort=sort,
                limit=PAGE_SIZE,
                cursor=cursor,
                actor=desk.user,
            )
            items, next_cursor = list(result.items), result.next_cursor
        except (ValidationError, PermissionDenied) as problem:
            error = str(problem)
        if items:  # a field hidden from the user is absent from every record they read
            columns = tuple(name for name in columns if name in items[0])
        else:
            hidden, _read_only = field_rules(desk, entity.name)
            columns = tuple(name for name in columns if name not in hidden)
        references = reference_entities(crm, entity)
        rows = []
        for item in items:
            href = f"{DESK_PATH}/{entity_name}/{item['id']}"
            cells = [_cell(item, name, references) for name in columns]
            rows.append({"id": item["id"], "href": href, "cells": row_cells(href, cells)})
        base = {"q": search, "sort": sort, "field": field, "value": value}
        if mine:
            base["mine"] = "1"
        return page(
            desk,
            "list.html",
            _(label(entity_name)),
            status=400 if error else 200,
            error=error,
            notice=query.get("notice"),
            entity=entity,
            entity_name=entity_name,
            columns=[(name, _(label(name))) for name in columns],
            sortable=[(name, _(label(name))) for name in ("id", *columns)],
            filterable=[(name, _(label(name))) for name in columns],
            rows=rows,
            search=search,
            sort=sort,
            field=field,
            value=value,
            mine=mine,
            next_cursor=next_cursor,
            base=base,
            can_create=entity.name in CREATE_FIELDS,
        )

    @get("/{entity_name:str}/{record_id:int}", sync_to_thread=True, include_in_schema=False)
    def record_page(
        request: Request[Any, Any, Any], entity_name: Name, record_id: RecordId
    ) -> Template:
        desk = desk_of(request)
        entity = _entity(crm, entity_name)
        record = crm.records(entity.name).get(record_id, actor=desk.user)
        return _record_page(desk, entity, record, notice=request.query_params.get("notice"))

    def _record_page(
        desk: Desk,
        entity: EntityType,
        record: Any,
        *,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Template:
        _ = desk.gettext
        references = reference_entities(crm, entity)
        values = record.to_dict()
        custom = values.pop("custom", {}) or {}
        values.pop("deleted_at", None)
        fields = [
            (_(label(name)), _cell(values, name, references)) for name in values if name != "id"
        ]
        fields += [(_(label(name)), _cell(custom, name, {})) for name in sorted(custom)]
        timeline: list[Any] = []
        link = f"{entity.name}_id"
        if "activity" in crm.entities and link in crm.entity("activity").columns:
            timeline = list(
                crm.records("activity")
                .list(
                    {link: record["id"]}, sort="-occurred_at", limit=TIMELINE_SIZE, actor=desk.user
                )
                .items
            )
        related = []
        for child in crm.entities.values():
            if child.name in (entity.name, "activity") or link not in child.columns:
                continue
            if link not in reference_entities(crm, child):
                continue
            try:
                children = (
                    crm.records(child.name)
                    .list({link: record["id"]}, limit=RELATED_SIZE, actor=desk.user)
                    .items
                )
            except PermissionDenied:
                continue
            if children:
                related.append(
                    (
                        _(label(plural(child.name))),
                        [
                            DeskLink(
                                title_of(item), f"{DESK_PATH}/{plural(child.name)}/{item['id']}"
                            )
                            for item in children
                        ],
                    )
                )
        plugin_panels = panels(
            crm, "crmkit_desk_record_panels", entity=entity.name, record=record, actor=desk.user
        )
        actions = [
            (plugin, action)
            for plugin, action in collected(crm, "crmkit_desk_actions", DeskAction, actor=desk.user)
            if action.entity == entity.name
        ]
        stages: list[Any] = []
        if entity.name == "deal" and "pipeline_id" in record:
            stages = crm.pipelines.stages(record["pipeline_id"])
        entity_name = plural(entity.name)
        return page(
            desk,
            "record.html",
            title_of(record),
            status=status,
            notice=notice,
            error=error,
            entity=entity,
            entity_name=entity_name,
            entity_label=_(entity.label or label(entity.name)),
            record=record,
            fields=fields,
            timeline=[
                {
                    "when": display(item.get("occurred_at")),
                    "kind": _(label(str(item.get("kind", "")))),
                    "subject": item.get("subject", ""),
                    "body": item.get("body") or "",
                    "href": f"{DESK_PATH}/activities/{item['id']}",
                }
                for item in timeline
            ],
            can_log=bool(
                timeline is not None
                and "activity" in crm.entities
                and link in crm.entity("activity").columns
            ),
            log_kinds=[(kind, _(label(kind))) for kind in LOG_KINDS],
            related=related,
            panels=plugin_panels,
            actions=actions,
            stages=stages,
            path=f"{DESK_PATH}/{entity_name}/{record['id']}",
        )

    @get("/{entity_name:str}/{record_id:int}/edit", sync_to_thread=True, include_in_schema=False)
    def edit_page(
        request: Request[Any, Any, Any], entity_name: Name, record_id: RecordId
    ) -> Template:
        desk = desk_of(request)
        entity = _entity(crm, entity_name)
        record = crm.records(entity.name).get(record_id, actor=desk.user)
        return _edit_form(desk, entity, entity_name, record, None)

    def _edit_form(
        desk: Desk,
        entity: EntityType,
        entity_name: Name,
        record: Any,
        submitted: dict[str, Any] | None,
        *,
        error: str | None = None,
        field_errors: dict[str, str] | None = None,
        status: int = 200,
        version: int | None = None,
    ) -> Template:
        _ = desk.gettext
        visible = [*record.keys(), *(record.get("custom") or {}).keys()]
        inputs = _visible_inputs(desk, entity, edit_inputs(crm, entity, visible))
        custom = record.get("custom") or {}
        values = {
            item.name: (
                _text(submitted, item.name)
                if submitted is not None
                else input_value(record.get(item.name, custom.get(item.name)))
            )
            for item in inputs
        }
        return page(
            desk,
            "form.html",
            _("Edit %(name)s") % {"name": title_of(record)},
            status=status,
            error=error,
            inputs=[(item, _(item.label)) for item in inputs],
            values=values,
            field_errors=field_errors or {},
            action=f"{DESK_PATH}/{entity_name}/{record['id']}/edit",
            cancel=f"{DESK_PATH}/{entity_name}/{record['id']}",
            version=version if version is not None else record["version"],
        )

    @post(
        "/{entity_name:str}/{record_id:int}/edit",
        sync_to_thread=True,
        include_in_schema=False,
        status_code=303,
    )
    def edit_submit(
        request: Request[Any, Any, Any], entity_name: Name, record_id: RecordId, data: Form
    ) -> Response[Any]:
        desk = desk_of(request)
        desk.check_csrf(data)
        _ = desk.gettext
        entity = _entity(crm, entity_name)
        service = crm.records(entity.name)
        record = service.get(record_id, actor=desk.user)
        version_text = _text(data, "version")
        if not version_text.isdigit():
            return _edit_form(
                desk,
                entity,
                entity_name,
                record,
                data,
                error=_("The form is missing the record's version: reload the page and try again."),
                status=400,
            )
        visible = [*record.keys(), *(record.get("custom") or {}).keys()]
        inputs = _visible_inputs(desk, entity, edit_inputs(crm, entity, visible))
        changes = submitted_values(inputs, data, record)
        if not changes:
            return _see(f"{DESK_PATH}/{entity_name}/{record_id}", "saved")
        try:
            service.update(record_id, changes, expected_version=int(version_text), actor=desk.user)
        except ConflictError:
            current = service.get(record_id, actor=desk.user)
            return _edit_form(
                desk,
                entity,
                entity_name,
                current,
                data,
                error=_(
                    "Someone else changed this record after you opened it, so nothing was "
                    "saved. The form keeps what you typed; the page below it shows the record "
                    "as it is now. Save again to overwrite their change."
                ),
                status=409,
                version=current["version"],
            )
        except ValidationError as invalid:
            return _edit_form(
                desk,
                entity,
                entity_name,
                record,
                data,
                error=_("Nothing was saved: correct the fields marked below."),
                field_errors={e.field: e.message for e in invalid.errors},
                status=422,
            )
        except PermissionDenied as denied:
            return _edit_form(
                desk, entity, entity_name, record, data, error=str(denied), status=403
            )
        return _see(f"{DESK_PATH}/{entity_name}/{record_id}", "saved")

    @get("/{entity_name:str}/new", sync_to_thread=True, include_in_schema=False)
    def new_page(request: Request[Any, Any, Any], entity_name: Name) -> Template:
        desk = desk_of(request)
        entity = _entity(crm, entity_name)
        return _new_form(desk, entity, entity_name, None)

    def _new_form(
        desk: Desk,
        entity: EntityType,
        entity_name: Name,
        submitted: dict[str, Any] | None,
        *,
        error: str | None = None,
        field_errors: dict[str, str] | None = None,
        status: int = 200,
    ) -> Template:
        _ = desk.gettext
        names = CREATE_FIELDS.get(entity.name)
        if names is None:
            raise NotFoundException(f"the desk does not create {plural(entity.name)}")
        inputs = _visible_inputs(desk, entity, form_inputs(crm, entity, names))
        return page(
            desk,
            "form.html",
            _("New %(what)s") % {"what": _(entity.label or label(entity.name)).lower()},
            status=status,
            error=error,
            inputs=[(item, _(item.label)) for item in inputs],
            values={item.name: _text(submitted or {}, item.name) for item in inputs},
            field_errors=field_errors or {},
            action=f"{DESK_PATH}/{entity_name}/new",
            cancel=f"{DESK_PATH}/{entity_name}",
            version=None,
        )

    @post("/{entity_name:str}/new", sync_to_thread=True, include_in_schema=False, status_code=303)
    def new_submit(request: Request[Any, Any, Any], entity_name: Name, data: Form) -> Response[Any]:
        desk = desk_of(request)
        desk.check_csrf(data)
        _ = desk.gettext
        entity = _entity(crm, entity_name)
        names = CREATE_FIELDS.get(entity.name)
        if names is None:
            raise NotFoundException(f"the desk does not create {plural(entity.name)}")
        inputs = _visible_inputs(desk, entity, form_inputs(crm, entity, names))
        values = {k: v for k, v in submitted_values(inputs, data, None).items() if v is not None}
        try:
            record = crm.records(entity.name).create(values, actor=desk.user)
        except ValidationError as invalid:
            return _new_form(
                desk,
                entity,
                entity_name,
                data,
                error=_("Nothing was saved: correct the fields marked below."),
                field_errors={e.field: e.message for e in invalid.errors},
                status=422,
            )
        except CRMError as refused:
            return _new_form(desk, entity, entity_name, data, error=str(refused), status=409)
        return _see(f"{DESK_PATH}/{entity_name}/{record['id']}", "created")

    @post(
        "/{entity_name:str}/{record_id:int}/log",
        sync_to_thread=True,
        include_in_schema=False,
        status_code=303,
    )
    def log_activity(
        request: Request[Any, Any, Any], entity_name: Name, record_id: RecordId, data: Form
    ) -> Response[Any]:
        desk = desk_of(request)
        desk.check_csrf(data)
        _ = desk.gettext
        entity = _entity(crm, entity_name)
        record = crm.records(entity.name).get(record_id, actor=desk.user)  # 404 unless readable
        kind = _text(data, "kind")
        if kind not in LOG_KINDS:
            return _record_page(
                desk,
                entity,
                record,
                error=_("Choose what to log: %(kinds)s.") % {"kinds": ", ".join(LOG_KINDS)},
                status=400,
            )
        notes = _text(data, "notes")
        subject = notes.splitlines()[0][:120] if notes else _(label(kind))
        try:
            crm.records("activity").create(
                {
                    "kind": kind,
                    "subject": subject,
                    "body": notes or None,
                    f"{entity.name}_id": record_id,
                },
                actor=desk.user,
            )
        except CRMError as refused:
            return _record_page(desk, entity, record, error=str(refused), status=422)
        return _see(f"{DESK_PATH}/{entity_name}/{record_id}", "logged")

    @post(
        "/{entity_name:str}/{record_id:int}/actions/{plugin:str}/{action:str}",
        sync_to_thread=True,
        include_in_schema=False,
        status_code=303,
    )
    def run_action(
        request: Request[Any, Any, Any],
        entity_name: Name,
        record_id: RecordId,
        plugin: Name,
        action: Name,
        data: Form,
    ) -> Response[Any]:
        desk = desk_of(request)
        desk.check_csrf(data)
        entity = _entity(crm, entity_name)
        record = crm.records(entity.name).get(record_id, actor=desk.user)
        found = [
            item
            for owner, item in collected(crm, "crmkit_desk_actions", DeskAction, actor=desk.user)
            if owner == plugin and item.name == action and item.entity == entity.name
        ]
        if not found:
            raise NotFoundException(f"no action {plugin}/{action} on {plural(entity.name)}")
        try:
            outcome = found[0].run(crm, record_id, desk.user)
        except CRMError as refused:
            return _record_page(desk, entity, record, error=str(refused), status=422)
        fresh = crm.records(entity.name).get(record_id, actor=desk.user)
        response = _record_page(desk, entity, fresh)
        response.context["notice"] = outcome or desk.gettext("Done.")
        return response

    return [
        list_page,
        record_page,
        edit_page,
        edit_submit,
        new_page,
        new_submit,
        log_activity,
        run_action,
    ]


def _cell(values: Any, name: str, references: dict[str, str]) -> Any:
    """A field's value for a page: a link for a reference to a record, else text."""
    value = values.get(name)
    target = references.get(name)
    if target is not None and isinstance(value, int):
        return DeskLink(f"#{value}", f"{DESK_PATH}/{plural(target)}/{value}")
    return display(value)
