"""Actions beyond create/read/update/delete: converting a lead, moving a deal to a stage.

Like the record routes they are thin calls of the same services the CLI uses
(``crmkit leads convert``, ``crmkit deals move``), made as the token's user.
"""

from typing import Annotated, Any

import msgspec
from litestar import Response, Router, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody

from crmkit.api.problems import PreconditionFailed, problem_specs
from crmkit.api.records import IF_MATCH_HELP, etag, expected_version, record_json
from crmkit.api.schemas import SQL_INT, EntitySchemas, RecordId
from crmkit.app import CRM
from crmkit.entities.organisation import User
from crmkit.errors import ConflictError


class LeadConversion(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How to convert: attach to an existing account, and whether to open a deal."""

    account_id: SQL_INT | None = None
    create_deal: bool = True


class Converted(msgspec.Struct, kw_only=True):
    """What converting the lead created or linked."""

    lead_id: int
    contact_id: int
    account_id: int | None
    deal_id: int | None


class StageMove(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The stage to move to: its name or id (in the deal's pipeline)."""

    stage: str | SQL_INT


def action_routers(crm: CRM, every: dict[str, EntitySchemas]) -> list[Router]:
    """``POST /leads/{id}/convert`` and ``POST /deals/{id}/move``."""
    deal_type = every["deal"].record

    @post(
        "/{record_id:int}/convert",
        summary="Convert a lead into a contact, an account and a deal",
        sync_to_thread=True,
        status_code=200,
        operation_id="convert_lead",
        responses=problem_specs(401, 403, 404, 409, 413, 422),
    )
    def convert_lead(
        record_id: RecordId, data: JSONBody[LeadConversion], actor: NamedDependency[User]
    ) -> Converted:
        result = crm.leads.convert(
            record_id, account_id=data.account_id, create_deal=data.create_deal, actor=actor
        )
        return Converted(
            lead_id=result.lead_id,
            contact_id=result.contact_id,
            account_id=result.account_id,
            deal_id=result.deal_id,
        )

    def move_deal(
        record_id: RecordId,
        data: JSONBody[StageMove],
        actor: NamedDependency[User],
        if_match: Annotated[
            str | None, HeaderParameter(name="If-Match", description=IF_MATCH_HELP)
        ] = None,
    ) -> Response[deal_type]:  # type: ignore[valid-type]
        version = expected_version(if_match)
        try:
            deal: Any = crm.deals.move_to_stage(
                record_id, data.stage, expected_version=version, actor=actor
            )
        except ConflictError as error:
            if version is not None:
                raise PreconditionFailed(str(error)) from None
            raise
        return Response(record_json(deal), headers={"ETag": etag(deal)})

    move = post(
        "/{record_id:int}/move",
        summary="Move a deal to a stage of its pipeline (by name or id)",
        description="Won and lost stages close the deal; emits deal.stage_changed.",
        sync_to_thread=True,
        status_code=200,
        operation_id="move_deal",
        responses=problem_specs(401, 403, 404, 409, 412, 413, 422),
    )(move_deal)
    return [
        Router(path="/leads", route_handlers=[convert_lead], tags=["leads"]),
        Router(path="/deals", route_handlers=[move], tags=["deals"]),
    ]
