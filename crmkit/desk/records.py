"""Record pages of the desk: lists (search, filter, sort, keyset pages), a record with its
follow-up timeline, related records and plugin panels, edit, create, log a call or visit,
and plugin actions.

The handlers here read the request, call the record services (the same the REST API calls,
as the signed-in user: the permission filter, field rules, validation and events are
theirs) and hand the page to one function per page in :mod:`crmkit.desk.record_views`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, PathParameter
from litestar.response import Redirect, Template

from crmkit.app import CRM
from crmkit.desk.contributions import collected
from crmkit.desk.extensions import DeskAction
from crmkit.desk.fields import LOG_KINDS, entity_by_plural, label, submitted_values
from crmkit.desk.record_views import (
    edit_inputs_of,
    edit_view,
    form_text,
    list_view,
    new_inputs_of,
    new_view,
    record_view,
)
from crmkit.desk.session import DESK_PATH, Cookies, Desk, current_desk
from crmkit.entities.registry import EntityType
from crmkit.errors import ConflictError, CRMError, PermissionDenied, ValidationError
from crmkit.services.transfer import plural

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
#: Path parameters: a record id, a name (an entity's plural, a plugin, an action).
RecordId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]
Name = Annotated[str, PathParameter(max_length=100)]


def _entity(crm: CRM, name: str) -> EntityType:
    entity = entity_by_plural(crm, name)
    if entity is None:
        raise NotFoundException(f"the desk has no page {DESK_PATH}/{name}")
    return entity


def _see(path: str, notice: str) -> Redirect:
    """Send the browser on to ``path`` after a change (303 See Other), with a notice."""
    return Redirect(f"{path}{'&' if '?' in path else '?'}notice={notice}", status_code=303)


def record_handlers(crm: CRM, cookies: Cookies) -> list[Any]:
    """The handlers of ``/desk/<plural>`` and ``/desk/<plural>/<id>``."""

    def desk_of(request: Request[Any, Any, Any]) -> Desk:
        return current_desk(request, crm, cookies)

    def readable(desk: Desk, entity_name: str, record_id: int) -> tuple[EntityType, Any]:
        """The entity of a page and its record (404 unless the user may read it)."""
        entity = _entity(crm, entity_name)
        return entity, crm.records(entity.name).get(record_id, actor=desk.user)

    @get("/{entity_name:str}", sync_to_thread=True, include_in_schema=False)
    def list_page(request: Request[Any, Any, Any], entity_name: Name) -> Template:
        desk = desk_of(request)
        entity = _entity(crm, entity_name)
        return list_view(desk, entity, entity_name, request.query_params)

    @get("/{entity_name:str}/{record_id:int}", sync_to_thread=True, include_in_schema=False)
    def record_page(
        request: Request[Any, Any, Any], entity_name: Name, record_id: RecordId
    ) -> Template:
        desk = desk_of(request)
        entity, record = readable(desk, entity_name, record_id)
        return record_view(desk, entity, record, notice=request.query_params.get("notice"))

    @get("/{entity_name:str}/{record_id:int}/edit", sync_to_thread=True, include_in_schema=False)
    def edit_page(
        request: Request[Any, Any, Any], entity_name: Name, record_id: RecordId
    ) -> Template:
        desk = desk_of(request)
        entity, record = readable(desk, entity_name, record_id)
        return edit_view(desk, entity, record, edit_inputs_of(desk, entity, record))

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
        entity, record = readable(desk, entity_name, record_id)
        inputs = edit_inputs_of(desk, entity, record)
        version_text = form_text(data, "version")
        if not version_text.isdigit():
            return edit_view(
                desk,
                entity,
                record,
                inputs,
                data,
                error=_("The form is missing the record's version: reload the page and try again."),
                status=400,
            )
        changes = submitted_values(inputs, data, record)
        back = f"{DESK_PATH}/{entity_name}/{record_id}"
        if not changes:
            return _see(back, "saved")
        service = crm.records(entity.name)
        try:
            service.update(record_id, changes, expected_version=int(version_text), actor=desk.user)
        except ConflictError:
            current = service.get(record_id, actor=desk.user)
            return edit_view(
                desk,
                entity,
                current,
                inputs,
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
            return edit_view(
                desk,
                entity,
                record,
                inputs,
                data,
                error=_("Nothing was saved: correct the fields marked below."),
                field_errors={e.field: e.message for e in invalid.errors},
                status=422,
            )
        except PermissionDenied as denied:
            return edit_view(desk, entity, record, inputs, data, error=str(denied), status=403)
        return _see(back, "saved")

    @get("/{entity_name:str}/new", sync_to_thread=True, include_in_schema=False)
    def new_page(request: Request[Any, Any, Any], entity_name: Name) -> Template:
        desk = desk_of(request)
        entity = _entity(crm, entity_name)
        return new_view(desk, entity, new_inputs_of(desk, entity))

    @post("/{entity_name:str}/new", sync_to_thread=True, include_in_schema=False, status_code=303)
    def new_submit(request: Request[Any, Any, Any], entity_name: Name, data: Form) -> Response[Any]:
        desk = desk_of(request)
        desk.check_csrf(data)
        _ = desk.gettext
        entity = _entity(crm, entity_name)
        inputs = new_inputs_of(desk, entity)
        values = {k: v for k, v in submitted_values(inputs, data, None).items() if v is not None}
        try:
            record = crm.records(entity.name).create(values, actor=desk.user)
        except ValidationError as invalid:
            return new_view(
                desk,
                entity,
                inputs,
                data,
                error=_("Nothing was saved: correct the fields marked below."),
                field_errors={e.field: e.message for e in invalid.errors},
                status=422,
            )
        except CRMError as refused:
            return new_view(desk, entity, inputs, data, error=str(refused), status=409)
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
        entity, record = readable(desk, entity_name, record_id)
        kind = form_text(data, "kind")
        if kind not in LOG_KINDS:
            return record_view(
                desk,
                entity,
                record,
                error=_("Choose what to log: %(kinds)s.") % {"kinds": ", ".join(LOG_KINDS)},
                status=400,
            )
        notes = form_text(data, "notes")
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
            return record_view(desk, entity, record, error=str(refused), status=422)
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
        entity, record = readable(desk, entity_name, record_id)
        found = [
            item
            for owner, item in collected(
                crm, "crmkit_desk_actions", DeskAction, actor=desk.user, locale=desk.locale
            )
            if owner == plugin and item.name == action and item.entity == entity.name
        ]
        if not found:
            raise NotFoundException(f"no action {plugin}/{action} on {plural(entity.name)}")
        try:
            outcome = found[0].run(crm, record_id, desk.user)
        except CRMError as refused:
            return record_view(desk, entity, record, error=str(refused), status=422)
        fresh = crm.records(entity.name).get(record_id, actor=desk.user)
        response = record_view(desk, entity, fresh)
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
