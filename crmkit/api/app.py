"""The REST API app: :func:`create_app` builds a Litestar app serving one CRM.

Routes: every entity under ``/<plural>`` (core and plugin entities alike), ``/webhooks``,
``/segments``,
the web desk under ``/desk`` (:mod:`crmkit.desk`),
the public ``/forms/{key}``, each enabled plugin's routes under ``/plugins/<name>``, and the
OpenAPI 3.1 schema at ``/schema`` (``/schema/openapi.json``, an interactive page at
``/schema/swagger``, also ``/schema/redoc``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec
from litestar import Litestar, Router, get
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, Operation, SecurityScheme, Tag
from litestar.routes import HTTPRoute

from crmkit.api.actions import action_routers
from crmkit.api.auth import TokenAuthentication, provide_actor
from crmkit.api.forms import form_router
from crmkit.api.messages import message_router
from crmkit.api.problems import EXCEPTION_HANDLERS, problem_specs
from crmkit.api.records import record_router
from crmkit.api.schemas import EntitySchemas
from crmkit.api.segments import segment_routers
from crmkit.api.webhooks import webhook_router
from crmkit.app import CRM
from crmkit.desk.app import desk_router, root, template_config, with_desk_errors
from crmkit.desk.session import DESK_PATH
from crmkit.entities.organisation import User
from crmkit.errors import PluginError

PLUGIN_PREFIX = "/plugins"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crmkit")
    except PackageNotFoundError:
        return "0"


def plugin_routers(crm: CRM) -> list[Router]:
    """Each enabled plugin's routes (``crmkit_api_routes``) in a router of its own under
    ``/plugins/<name>``; a plugin whose hook fails stops the app with an error naming it."""
    routers: list[Router] = []
    for name in crm.host.names:
        plugin = crm.installed[name]
        try:
            handlers = plugin.call_own("crmkit_api_routes", crm=crm)
        except Exception as error:
            raise PluginError(
                name, f"plugin {name!r} failed in crmkit_api_routes: {error}"
            ) from error
        if handlers:
            routers.append(
                Router(path=f"{PLUGIN_PREFIX}/{name}", route_handlers=list(handlers), tags=[name])
            )
    return routers


def create_app(
    crm: CRM, *, debug: bool = False, trusted_proxies: Sequence[str] | None = None
) -> Litestar:
    """The API of ``crm``: routes, token authentication, problem+json errors, OpenAPI.
    ``trusted_proxies`` (addresses or networks whose X-Forwarded-For is believed) replaces
    the setting ``crmkit.api.trusted_proxies`` when given."""
    crm.require_schema()
    settings = crm.settings.api
    every = {
        name: EntitySchemas(entity, crm.custom_fields[name])
        for name, entity in sorted(crm.entities.items())
    }
    routers: list[Any] = [
        record_router(crm, crm.entities[name], schemas, every) for name, schemas in every.items()
    ]
    routers += action_routers(crm, every)
    routers += [webhook_router(crm), form_router(crm, trusted_proxies), message_router(crm), health]
    routers += segment_routers(crm)
    routers += plugin_routers(crm)
    routers += [desk_router(crm), root]
    openapi = OpenAPIConfig(
        title="crmkit API",
        version=_version(),
        description="The REST API of a crmkit CRM. Authenticate with an API token: "
        "`Authorization: Bearer <token>` (crmkit tokens issue USER NAME). Errors are RFC 9457 "
        "problem+json.",
        path=settings.docs_path,
        render_plugins=[SwaggerRenderPlugin(), RedocRenderPlugin(), JsonRenderPlugin()],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(
                    type="http", scheme="bearer", description="An API token (crmk_...)."
                )
            }
        ),
        security=[{"BearerToken": []}],
        tags=[Tag(name="forms", description="Public lead-capture forms (no token).")],
        use_handler_docstrings=False,
    )
    app = Litestar(
        route_handlers=routers,
        dependencies={
            "crm": Provide(lambda: crm, use_cache=True, sync_to_thread=False),
            "actor": Provide(provide_actor, sync_to_thread=False),
        },
        middleware=[
            DefineMiddleware(
                TokenAuthentication,
                crm=crm,
                # the desk signs its users in itself (sessions, not tokens)
                exclude=[f"^{settings.docs_path}", "^/health$", f"^{DESK_PATH}(/|$)", "^/$"],
            )
        ],
        exception_handlers=with_desk_errors(crm, EXCEPTION_HANDLERS),
        openapi_config=openapi,
        template_config=template_config(),
        request_max_body_size=settings.max_body_bytes,
        debug=debug,
        signature_namespace={"CRM": CRM, "User": User},
    )
    with_problem_responses(app)
    return app


class PublicOperation(Operation):
    """A route that needs no token, documented with ``security: []``: Litestar leaves a
    handler's empty ``security`` out of the document, and the route would then inherit the
    document's bearer requirement (an API explorer and a generated client would send a
    token the route does not want)."""

    def to_schema(self) -> dict[str, Any]:
        schema = super().to_schema()
        schema["security"] = []
        return schema


def with_problem_responses(app: Litestar) -> None:
    """Give every documented route, core or plugin, the problem+json answers it can give and
    does not declare itself: 400 and 422 (a request it cannot read or take), 401 and 403
    unless it is public, 404 when its path names something. Without them Litestar documents
    an anonymous 400 schema of its own, which client generators cannot read. A public route
    (``exclude_from_auth``) is documented as needing no token (:class:`PublicOperation`)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.include_in_schema is False:
                continue
            statuses = {400, 422}
            public = handler.opt.get("exclude_from_auth") or handler.security == []
            if not public:
                statuses |= {401, 403}
            elif handler.operation_class is Operation:
                handler.operation_class = PublicOperation
            if route.path_parameters:
                statuses.add(404)
            declared = dict(handler.responses or {})
            missing = statuses - set(declared)
            if missing:
                handler.responses = {**problem_specs(*missing), **declared}


class Health(msgspec.Struct):
    """The answer of ``/health``."""

    status: Literal["ok"]


@get(
    "/health",
    summary="Liveness check (no token)",
    exclude_from_auth=True,
    security=[],
    operation_id="health",
)
async def health() -> Health:
    """``{"status": "ok"}`` while the process serves."""
    return Health(status="ok")
