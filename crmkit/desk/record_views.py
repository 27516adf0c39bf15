"""Assembling the desk's record pages: one function per page (a list, a record, its edit
form, a new-record form) and one per form's inputs, called by the handlers in
:mod:`crmkit.desk.records` for the page itself and for the page shown again after a refused
form.

Every read is a call of the same record services the REST API calls, as the signed-in user:
a field the user may not see is absent from the records the services return, so it is never
rendered. Owners and teams are shown by name, looked up for the whole page in one statement
(:func:`crmkit.services.names.names_of`) from the ids on the records the user read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from litestar.exceptions import NotFoundException
from litestar.response import Template

from crmkit.desk.contributions import collected, panels
from crmkit.desk.extensions import DeskAction, DeskLink
from crmkit.desk.fields import (
    CREATE_FIELDS,
    LOG_KINDS,
    Input,
    display,
    edit_inputs,
    form_inputs,
    input_value,
    label,
    list_columns,
    reference_entities,
    title_of,
)
from crmkit.desk.render import page, table_rows
from crmkit.desk.session import DESK_PATH, Desk
from crmkit.entities.registry import EntityType
from crmkit.errors import PermissionDenied, ValidationError
from crmkit.permissions.models import FieldAccess
from crmkit.services.names import Names, names_of
from crmkit.services.operation import Operation
from crmkit.services.transfer import plural

#: Records per list page.
PAGE_SIZE = 50
#: Activities on a record's timeline, and records per related list.
TIMELINE_SIZE = 20
RELATED_SIZE = 10
NO_NAMES = Names(users={}, teams={})


def form_text(form: Mapping[str, Any], name: str) -> str:
    """A form field as stripped text (the last value if it was sent more than once)."""
    value = form.get(name)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def field_rules(op: Operation, entity: str) -> tuple[frozenset[str], frozenset[str]]:
    """The fields of ``entity`` hidden from ``op``'s actor and those read-only for them."""
    access = op.access
    if access.unrestricted:
        return frozenset(), frozenset()
    rules = access.field_rules.get(entity, {})
    return (
        frozenset(n for n, a in rules.items() if a is FieldAccess.HIDDEN),
        frozenset(n for n, a in rules.items() if a is FieldAccess.READ_ONLY),
    )


def _visible(desk: Desk, entity: EntityType, inputs: list[Input]) -> list[Input]:
    """``inputs`` without the fields hidden from the user, read-only ones marked."""
    with desk.crm.transaction(desk.user, write=False) as op:
        hidden, read_only = field_rules(op, entity.name)
    return [
        Input(i.name, i.label, i.kind, i.choices, i.required, i.name in read_only)
        for i in inputs
        if i.name not in hidden
    ]


def edit_inputs_of(desk: Desk, entity: EntityType, record: Mapping[str, Any]) -> list[Input]:
    """The inputs of ``record``'s edit form: every editable field the user can see, custom
    fields without a value too (so they can be filled in; hidden ones are left out below)."""
    visible = [*record.keys(), *desk.crm.custom_fields[entity.name]]
    return _visible(desk, entity, edit_inputs(desk.crm, entity, visible))


def new_inputs_of(desk: Desk, entity: EntityType) -> list[Input]:
    """The inputs of the new-record form of ``entity`` (404 for an entity the desk does not
    create from a form)."""
    names = CREATE_FIELDS.get(entity.name)
    if names is None:
        raise NotFoundException(f"the desk does not create {plural(entity.name)}")
    return _visible(desk, entity, form_inputs(desk.crm, entity, names))


def people_names(
    op: Operation, records: list[Mapping[str, Any]], users: tuple[str, ...] = ("owner_id",)
) -> Names:
    """The names of the users in the ``users`` columns of ``records`` (their owners unless
    told) and of their teams (one statement)."""
    if not records or not any(name in records[0] for name in (*users, "team_id")):
        return NO_NAMES
    return names_of(
        op,
        users=(r.get(column) for r in records for column in users),
        teams=(r.get("team_id") for r in records),
    )


def cell(values: Any, name: str, references: Mapping[str, str], names: Names) -> Any:
    """A field's value for a page: a link for a reference to a record, a name for an owner
    or team, else text."""
    value = values.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        if name == "owner_id":
            return names.users.get(value, f"#{value}")
        if name == "team_id":
            return names.teams.get(value, f"#{value}")
        target = references.get(name)
        if target is not None:
            return DeskLink(f"#{value}", f"{DESK_PATH}/{plural(target)}/{value}")
    return display(value)


#: Columns of a record naming the users who created and last changed it.
AUTHOR_COLUMNS = ("created_by_id", "updated_by_id")


def reference_titles(
    op: Operation, values: Mapping[str, Any], references: Mapping[str, str]
) -> dict[tuple[str, int], str]:
    """The titles of the records ``values`` refers to that ``op``'s actor may read (one
    statement per entity referred to, in the page's transaction): ``(entity, id)`` → title.
    A record the actor may not read keeps its ``#id``."""
    wanted: dict[str, set[int]] = {}
    for name, target in references.items():
        value = values.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            wanted.setdefault(target, set()).add(value)
    titles: dict[tuple[str, int], str] = {}
    for target, ids in wanted.items():
        try:
            found = op.records(target).list({"id__in": sorted(ids)}, limit=len(ids)).items
        except PermissionDenied:
            continue
        titles.update({(target, item["id"]): title_of(item) for item in found})
    return titles


def record_cell(
    values: Mapping[str, Any],
    name: str,
    references: Mapping[str, str],
    names: Names,
    titles: Mapping[tuple[str, int], str],
) -> Any:
    """A field of a record page: as :func:`cell`, with the creator and last editor by name
    and a reference labelled with the title of the record it links to."""
    value = values.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        if name in AUTHOR_COLUMNS:
            return names.users.get(value, f"#{value}")
        target = references.get(name)
        if target is not None and (target, value) in titles:
            return DeskLink(titles[(target, value)], f"{DESK_PATH}/{plural(target)}/{value}")
    return cell(values, name, references, names)


def list_view(
    desk: Desk, entity: EntityType, entity_name: str, query: Mapping[str, str]
) -> Template:
    """A list page: the API's search, a field filter, "mine only", sorting and keyset
    paging, with owners and teams by name; one transaction."""
    crm = desk.crm
    _ = desk.gettext
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
    names = NO_NAMES
    with crm.transaction(desk.user, write=False) as op:
        try:
            result = crm.records(entity.name, op=op).list(
                filters, search=search or None, sort=sort, limit=PAGE_SIZE, cursor=cursor
            )
            items, next_cursor = list(result.items), result.next_cursor
        except (ValidationError, PermissionDenied) as problem:
            error = str(problem)
        if items:  # a field hidden from the user is absent from every record they read
            columns = tuple(name for name in columns if name in items[0])
            names = people_names(op, items)
        else:
            hidden, _read_only = field_rules(op, entity.name)
            columns = tuple(name for name in columns if name not in hidden)
    references = reference_entities(crm, entity)
    prefix = f"{DESK_PATH}/{entity_name}/"
    chosen = set(entity.choices)  # a fixed value ("prospect") is shown in the UI's language
    rows = table_rows(
        [
            (
                item["id"],
                f"{prefix}{item['id']}",
                [
                    _(item[name])
                    if name in chosen and isinstance(item.get(name), str)
                    else cell(item, name, references, names)
                    for name in columns
                ],
            )
            for item in items
        ]
    )
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
        cursor=cursor,
        can_create=entity.name in CREATE_FIELDS,
    )


def _related(desk: Desk, entity: EntityType, record: Mapping[str, Any]) -> list[Any]:
    """The records of other entities that point at ``record`` (a few of each kind)."""
    crm = desk.crm
    _ = desk.gettext
    link = f"{entity.name}_id"
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
            links = [
                DeskLink(title_of(item), f"{DESK_PATH}/{plural(child.name)}/{item['id']}")
                for item in children
            ]
            related.append((_(label(plural(child.name))), links))
    return related


def _timeline(desk: Desk, entity: EntityType, record: Mapping[str, Any]) -> list[Any] | None:
    """The activities about ``record``, latest first (``None``: activities do not point at
    this entity)."""
    crm = desk.crm
    _ = desk.gettext
    link = f"{entity.name}_id"
    if "activity" not in crm.entities or link not in crm.entity("activity").columns:
        return None
    activities = (
        crm.records("activity")
        .list({link: record["id"]}, sort="-occurred_at", limit=TIMELINE_SIZE, actor=desk.user)
        .items
    )
    return [
        {
            "when": display(item.get("occurred_at")),
            "kind": _(label(str(item.get("kind", "")))),
            "subject": item.get("subject", ""),
            "body": item.get("body") or "",
            "href": f"{DESK_PATH}/activities/{item['id']}",
        }
        for item in activities
    ]


def field_label(desk: Desk, entity: str, name: str) -> str:
    """A field's label in the user's language: a custom field's own label (else its name)
    looked up in the catalogue of the plugin that declared it (its ``source``), then the
    desk's; a built-in field's in the desk's."""
    custom = desk.crm.custom_fields.get(entity, {}).get(name)
    if custom is None:
        return desk.gettext(label(name))
    return desk.plugin_gettext(custom.source)(custom.label or label(name))


def _translated(action: DeskAction, gettext: Callable[[str], str]) -> DeskAction:
    """``action`` with its label and confirmation in the user's language (the plugin's
    catalogue, then the desk's)."""
    confirm = gettext(action.confirm) if action.confirm else ""
    return attrs.evolve(action, label=gettext(action.label), confirm=confirm)


def record_view(
    desk: Desk,
    entity: EntityType,
    record: Any,
    *,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Template:
    """A record page: its fields (owner and team by name), its timeline, related records,
    the plugins' panels and actions, and the forms to log a follow-up or move a deal."""
    crm = desk.crm
    _ = desk.gettext
    references = reference_entities(crm, entity)
    values = record.to_dict()
    custom = values.pop("custom", {}) or {}
    values.pop("deleted_at", None)
    with crm.transaction(desk.user, write=False) as op:
        names = people_names(op, [values], users=("owner_id", *AUTHOR_COLUMNS))
        titles = reference_titles(op, values, references)
    fields = [
        (
            field_label(desk, entity.name, name),
            _(values[name])  # a fixed value ("prospect") in the UI's language
            if name in entity.choices and isinstance(values.get(name), str)
            else record_cell(values, name, references, names, titles),
        )
        for name in values
        if name != "id"
    ]
    fields += [
        (field_label(desk, entity.name, name), cell(custom, name, {}, NO_NAMES))
        for name in sorted(custom)
    ]
    timeline = _timeline(desk, entity, record)
    actions = [
        (plugin, _translated(action, desk.plugin_gettext(plugin)))
        for plugin, action in collected(
            crm, "crmkit_desk_actions", DeskAction, actor=desk.user, locale=desk.locale
        )
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
        timeline=timeline or [],
        can_log=timeline is not None,
        log_kinds=[(kind, _(label(kind))) for kind in LOG_KINDS],
        related=_related(desk, entity, record),
        panels=panels(
            crm,
            "crmkit_desk_record_panels",
            entity=entity.name,
            record=record,
            actor=desk.user,
            locale=desk.locale,
        ),
        actions=actions,
        stages=stages,
        path=f"{DESK_PATH}/{entity_name}/{record['id']}",
    )


def edit_view(
    desk: Desk,
    entity: EntityType,
    record: Any,
    inputs: list[Input],
    submitted: Mapping[str, Any] | None = None,
    *,
    error: str | None = None,
    field_errors: Mapping[str, str] | None = None,
    status: int = 200,
    version: int | None = None,
) -> Template:
    """A record's edit form: the record's values, or what was ``submitted`` when the form
    comes back refused (with ``error`` and a message per field)."""
    _ = desk.gettext
    custom = record.get("custom") or {}
    values = {
        item.name: (
            form_text(submitted, item.name)
            if submitted is not None
            else input_value(record.get(item.name, custom.get(item.name)))
        )
        for item in inputs
    }
    path = f"{DESK_PATH}/{plural(entity.name)}/{record['id']}"
    return page(
        desk,
        "form.html",
        _("Edit %(name)s") % {"name": title_of(record)},
        status=status,
        error=error,
        inputs=[(item, field_label(desk, entity.name, item.name)) for item in inputs],
        values=values,
        field_errors=field_errors or {},
        action=f"{path}/edit",
        cancel=path,
        version=version if version is not None else record["version"],
    )


def new_view(
    desk: Desk,
    entity: EntityType,
    inputs: list[Input],
    submitted: Mapping[str, Any] | None = None,
    *,
    error: str | None = None,
    field_errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> Template:
    """The form creating a record of ``entity`` (again with what was ``submitted`` when it
    comes back refused)."""
    _ = desk.gettext
    path = f"{DESK_PATH}/{plural(entity.name)}"
    return page(
        desk,
        "form.html",
        _("New %(what)s") % {"what": _(entity.label or label(entity.name)).lower()},
        status=status,
        error=error,
        inputs=[(item, field_label(desk, entity.name, item.name)) for item in inputs],
        values={item.name: form_text(submitted or {}, item.name) for item in inputs},
        field_errors=field_errors or {},
        action=f"{path}/new",
        cancel=path,
        version=None,
    )
