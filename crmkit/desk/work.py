"""The desk's work pages: "my day" (with the plugins' dashboard tiles), the pipeline board
(deals by stage, moved between stages), the shared pool with claim, and plugin pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import attrs
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, PathParameter
from litestar.response import Redirect, Template

from crmkit.app import CRM
from crmkit.desk.contributions import collected
from crmkit.desk.extensions import DeskLink, DeskPage, DeskPanel, DeskTile, DeskView
from crmkit.desk.fields import display, label, title_of
from crmkit.desk.render import page, plugin_page_path
from crmkit.desk.session import CSRF_FIELD, DESK_PATH, Cookies, Desk, current_desk
from crmkit.errors import ConflictError, CRMError, NotFoundError, PermissionDenied
from crmkit.permissions.catalogue import ASSIGNABLE
from crmkit.services.transfer import plural

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
#: Path parameters: a record id, a name (an entity's plural, a plugin, an action).
RecordId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]
Name = Annotated[str, PathParameter(max_length=100)]

#: Deals shown per stage column of the board; records per pool page.
BOARD_COLUMN_SIZE = 50
POOL_PAGE_SIZE = 50
#: "My day" warns of records a release policy takes back within this many days.
RELEASE_WARNING_DAYS = 3


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return value.strip() if isinstance(value, str) else ""


def _links(entity: str, items: Any) -> list[DeskLink]:
    return [
        DeskLink(title_of(item), f"{DESK_PATH}/{plural(entity)}/{item['id']}") for item in items
    ]


def work_handlers(crm: CRM, cookies: Cookies) -> list[Any]:
    """The handlers of ``/desk``, ``/desk/board``, ``/desk/pool`` and plugin pages."""

    def desk_of(request: Request[Any, Any, Any]) -> Desk:
        return current_desk(request, crm, cookies)

    def optional(call: Any) -> Any:
        try:
            return call()
        except PermissionDenied:
            return None

    @get("/", sync_to_thread=True, include_in_schema=False)
    def my_day(request: Request[Any, Any, Any]) -> Template:
        desk = desk_of(request)
        _ = desk.gettext
        me = desk.user.id
        tasks = optional(
            lambda: (
                crm.tasks.list(
                    {"owner_id": me, "status": "open"}, sort="due_at", limit=20, actor=desk.user
                ).items
            )
        )
        leads = optional(
            lambda: (
                crm.leads.list(
                    {"owner_id": me, "status": "new"}, sort="-id", limit=10, actor=desk.user
                ).items
            )
        )
        releasing = crm.pool.releasing_soon(
            within_days=RELEASE_WARNING_DAYS, limit=20, actor=desk.user
        )
        tiles = collected(crm, "crmkit_desk_tiles", DeskTile, actor=desk.user, locale=desk.locale)
        return page(
            desk,
            "my_day.html",
            _("My day"),
            notice=request.query_params.get("notice"),
            tasks=[
                {
                    "link": DeskLink(title_of(task), f"{DESK_PATH}/tasks/{task['id']}"),
                    "due": display(task.get("due_at")),
                }
                for task in tasks or []
            ],
            leads=_links("lead", leads or []),
            releasing=[
                {
                    "link": DeskLink(
                        title_of(record), f"{DESK_PATH}/{plural(policy.entity)}/{record['id']}"
                    ),
                    "policy": policy.name,
                    "days": policy.days,
                }
                for policy, record in releasing
            ],
            # a tile's title in the plugin's catalogue, then the desk's
            tiles=[
                attrs.evolve(tile, title=desk.plugin_gettext(plugin)(tile.title))
                for plugin, tile in tiles
            ],
        )

    @get("/board", sync_to_thread=True, include_in_schema=False)
    def board(request: Request[Any, Any, Any]) -> Template:
        desk = desk_of(request)
        _ = desk.gettext
        pipelines = crm.pipelines.all()
        wanted = request.query_params.get("pipeline")
        chosen = next((p for p in pipelines if str(p.id) == wanted), None)
        if chosen is None and pipelines:
            chosen = pipelines[0]
        columns = []
        if chosen is not None:
            stages = crm.pipelines.stages(chosen.id)
            for stage in stages:
                deals = crm.deals.list(
                    {"pipeline_id": chosen.id, "stage_id": stage.id},
                    sort="-id",
                    limit=BOARD_COLUMN_SIZE,
                    actor=desk.user,
                ).items
                columns.append(
                    {
                        "stage": stage,
                        "deals": [
                            {
                                "id": deal["id"],
                                "name": title_of(deal),
                                "amount": display(deal.get("amount")),
                                "currency": deal.get("currency") or "",
                                "version": deal["version"],
                                "href": f"{DESK_PATH}/deals/{deal['id']}",
                            }
                            for deal in deals
                        ],
                    }
                )
        return page(
            desk,
            "board.html",
            _("Pipeline"),
            notice=request.query_params.get("notice"),
            error=None,
            pipelines=pipelines,
            chosen=chosen,
            columns=columns,
            stages=[column["stage"] for column in columns],
        )

    @post(
        "/deals/{record_id:int}/move", sync_to_thread=True, include_in_schema=False, status_code=303
    )
    def move_deal(
        request: Request[Any, Any, Any], record_id: RecordId, data: Form
    ) -> Response[Any]:
        desk = desk_of(request)
        desk.check_csrf(data)
        _ = desk.gettext
        stage = _text(data, "stage_id")
        back = _text(data, "back")
        back = back if back in ("board", "record") else "board"
        version = _text(data, "version")
        deal = crm.deals.get(record_id, actor=desk.user)  # 404 unless readable
        target = (
            f"{DESK_PATH}/board?pipeline={deal['pipeline_id']}"
            if back == "board"
            else f"{DESK_PATH}/deals/{record_id}"
        )
        if not stage.isdigit():
            return _message(desk, _("Choose the stage to move the deal to."), 400)
        try:
            crm.deals.move_to_stage(
                record_id,
                int(stage),
                expected_version=int(version) if version.isdigit() else None,
                actor=desk.user,
            )
        except ConflictError:
            return _message(
                desk,
                _(
                    "Someone else changed this deal after you opened the page, so it was not "
                    "moved: look at it again."
                ),
                409,
                DeskLink(_("Back"), target),
            )
        except CRMError as refused:
            return _message(desk, str(refused), 422, DeskLink(_("Back"), target))
        return Redirect(f"{target}{'&' if '?' in target else '?'}notice=moved", status_code=303)

    @get("/pool", sync_to_thread=True, include_in_schema=False)
    def pool(request: Request[Any, Any, Any]) -> Template:
        desk = desk_of(request)
        _ = desk.gettext
        entity = request.query_params.get("entity") or "lead"
        if entity not in ASSIGNABLE:
            entity = "lead"
        after = request.query_params.get("after") or "0"
        after_id = int(after) if after.isdigit() and len(after) < 19 else 0
        error = None
        records: list[Any] = []
        try:
            records = crm.pool.pool_records(
                entity, limit=POOL_PAGE_SIZE, after_id=after_id, actor=desk.user
            )
        except PermissionDenied as denied:
            error = str(denied)
        return page(
            desk,
            "pool.html",
            _("Shared pool"),
            status=403 if error else 200,
            error=error,
            notice=request.query_params.get("notice"),
            entity=entity,
            entities=[(name, _(label(plural(name)))) for name in ASSIGNABLE],
            records=[
                {
                    "id": r["id"],
                    "title": title_of(r),
                    "href": f"{DESK_PATH}/{plural(entity)}/{r['id']}",
                }
                for r in records
            ],
            next_after=records[-1]["id"] if len(records) == POOL_PAGE_SIZE else None,
        )

    @post("/pool/claim", sync_to_thread=True, include_in_schema=False, status_code=303)
    def claim(request: Request[Any, Any, Any], data: Form) -> Response[Any]:
        desk = desk_of(request)
        desk.check_csrf(data)
        _ = desk.gettext
        entity = _text(data, "entity")
        if entity not in ASSIGNABLE:
            return _message(
                desk, _("Choose what to claim: %(what)s.") % {"what": ", ".join(ASSIGNABLE)}, 400
            )
        raw = data.get("record_id")
        values = raw if isinstance(raw, list) else [raw]
        ids = [int(v) for v in values if isinstance(v, str) and v.isdigit() and len(v) < 19]
        back = f"{DESK_PATH}/pool?entity={entity}"
        if not ids:
            return _message(desk, _("Tick the records to claim."), 400, DeskLink(_("Back"), back))
        try:
            crm.pool.claim(entity, ids, actor=desk.user)
        except NotFoundError as missing:  # owned by someone whose records the user may not see
            status, text = refusal(missing, _)
            return _message(desk, text, status, DeskLink(_("Back"), back))
        except CRMError as refused:
            return _message(desk, str(refused), 409, DeskLink(_("Back"), back))
        return Redirect(f"{back}&notice=claimed", status_code=303)

    def find_page(plugin: str, page_path: str) -> DeskPage:
        wanted = page_path.strip("/")
        found: list[DeskPage] = [
            item
            for owner, item in collected(crm, "crmkit_desk_pages", DeskPage)
            if owner == plugin and item.path.strip("/") == wanted
        ]
        if not found:
            raise NotFoundException(f"no desk page {plugin}/{wanted} (is the plugin enabled?)")
        return found[0]

    def show_page(
        request: Request[Any, Any, Any],
        desk: Desk,
        plugin: str,
        desk_page: DeskPage,
        *,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Template:
        view = DeskView(
            crm=crm,
            actor=desk.user,
            query={key: request.query_params[key] for key in request.query_params},
            locale=desk.locale,
            gettext=desk.plugin_gettext(plugin),
        )
        try:
            result = desk_page.render(view)
        except (PermissionDenied, NotFoundError, NotFoundException):
            raise
        except CRMError as refused:
            return _message(desk, str(refused), 422)
        response = page(
            desk,
            "plugin_page.html",
            desk.plugin_gettext(plugin)(desk_page.title),
            status=status,
            error=error,
            panels=[(plugin, p) for p in result if isinstance(p, DeskPanel)],
            page_path=plugin_page_path(plugin, desk_page),
            query=request.url.query,
        )
        if notice:
            response.context["notice"] = notice
        return response

    @get("/plugins/{plugin:str}/{page_path:path}", sync_to_thread=True, include_in_schema=False)
    def plugin_page(
        request: Request[Any, Any, Any], plugin: Name, page_path: Annotated[str, PathParameter()]
    ) -> Template:
        desk = desk_of(request)
        return show_page(request, desk, plugin, find_page(plugin, page_path))

    @post(
        "/plugins/{plugin:str}/{page_path:path}",
        sync_to_thread=True,
        include_in_schema=False,
        status_code=200,
    )
    def plugin_page_action(
        request: Request[Any, Any, Any],
        plugin: Name,
        page_path: Annotated[str, PathParameter()],
        data: Form,
    ) -> Template:
        desk = desk_of(request)
        desk.check_csrf(data)
        desk_page = find_page(plugin, page_path)
        name = _text(data, "action")
        action = desk_page.actions.get(name)
        if action is None:
            raise NotFoundException(f"no action {name!r} on desk page {plugin}/{desk_page.path}")
        values = {key: _text(data, key) for key in data if key not in (CSRF_FIELD, "action")}
        view = DeskView(
            crm=crm,
            actor=desk.user,
            query={key: request.query_params[key] for key in request.query_params},
            locale=desk.locale,
            gettext=desk.plugin_gettext(plugin),
        )
        try:
            outcome = action(view, values)
        except CRMError as refused:
            status, text = refusal(refused, desk.gettext)
            return show_page(request, desk, plugin, desk_page, error=text, status=status)
        return show_page(request, desk, plugin, desk_page, notice=outcome or desk.gettext("Done."))

    return [my_day, board, move_deal, pool, claim, plugin_page, plugin_page_action]


def _message(desk: Desk, text: str, status: int, link: DeskLink | None = None) -> Template:
    """A page that only says what happened (an error after a form), with a way back."""
    return page(
        desk, "message.html", desk.gettext("Not done"), status=status, error=text, link=link
    )


def refusal(error: CRMError, gettext: Callable[[str], str]) -> tuple[int, str]:
    """The status and message of a page whose action a service refused: 404 with the same
    words as any record the user may not see (nothing about whether it exists)."""
    if isinstance(error, NotFoundError):
        return 404, gettext("This page or record does not exist, or you may not see it.")
    if isinstance(error, PermissionDenied):
        return 403, str(error)
    if isinstance(error, ConflictError):
        return 409, str(error)
    return 422, str(error)
