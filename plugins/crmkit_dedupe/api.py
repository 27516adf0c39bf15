"""REST routes of the dedupe plugin, mounted by the core under ``/plugins/dedupe``.

Handlers declare the core's ``crm`` and ``actor`` dependencies and call the same services
as the CLI (:mod:`crmkit_dedupe.service`), so behaviour cannot drift; crmkit errors become
problem+json responses in the core's exception handlers.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Body, JSONBody, PathParameter, QueryParameter

import crmkit
from crmkit_dedupe import service

CrmDependency = NamedDependency[crmkit.CRM]
ActorDependency = NamedDependency[crmkit.User | None]
Entity = Annotated[str, QueryParameter(description="The entity (contact, lead, account, ...).")]
CandidateId = Annotated[int, PathParameter(ge=1, description="The candidate pair's id.")]
MergeId = Annotated[int, PathParameter(ge=1, description="The merge's id.")]
#: The problem+json answers of the review's reads.
READ = crmkit.problem_responses(401, 403, 422)


def _merge(result: crmkit.MergeResult) -> dict[str, Any]:
    return {
        "merge_id": result.merge_id,
        "entity": result.entity,
        "survivor_id": result.survivor_id,
        "merged_id": result.merged_id,
        "changes": dict(result.changes),
        "moved": dict(result.moved),
    }


def _export(
    crm: crmkit.CRM, actor: crmkit.User | None, entity: str | None, status: str, fmt: str
) -> Response[str]:
    rows = service.export_candidates(crm, entity=entity, status=status, actor=actor)
    media = "text/csv" if fmt == "csv" else "application/json"
    return Response(
        "".join(service.export_text(rows, fmt)),
        media_type=f"{media}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="dedupe-candidates.{fmt}"'},
    )


class DedupeController(Controller):
    """Scan, review, dismiss, merge, undo and check."""

    path = "/"
    tags = ["dedupe"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/scan", sync_to_thread=True)
    def scan(
        self, crm: CrmDependency, actor: ActorDependency, entity: Entity = "contact"
    ) -> dict[str, int]:
        """Scan every record of ``entity`` and save the candidate pairs."""
        return service.scan(crm, entity, actor=actor)

    @get("/candidates", sync_to_thread=True, responses=READ)
    def candidates(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        entity: Annotated[str | None, QueryParameter(description="Only this entity.")] = None,
        status: Annotated[str, QueryParameter(description="open, dismissed or merged.")] = "open",
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
        after: Annotated[
            str | None,
            QueryParameter(
                description="The next page: the ``cursor`` of the last row of the previous one."
            ),
        ] = None,
    ) -> list[dict[str, Any]]:
        """Candidate pairs, best score first, a page at a time (keyset: each row's
        ``cursor``, passed as ``after``, gives the page after it)."""
        return service.candidates(
            crm, entity=entity, status=status, limit=limit, after=after, actor=actor
        )

    @get(
        "/candidates/export.csv",
        sync_to_thread=True,
        media_type="text/csv; charset=utf-8",
        responses=READ,
    )
    def export_csv(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        entity: Annotated[str | None, QueryParameter(description="Only this entity.")] = None,
        status: Annotated[str, QueryParameter(description="open, dismissed or merged.")] = "open",
    ) -> Response[str]:
        """Every candidate pair with its reasons, best score first, as CSV: one line per pair,
        the reasons joined with "; ", cells a spreadsheet will not run as formulas. The same
        pairs and reasons as the review shows you."""
        return _export(crm, actor, entity, status, "csv")

    @get("/candidates/export.json", sync_to_thread=True, responses=READ)
    def export_json(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        entity: Annotated[str | None, QueryParameter(description="Only this entity.")] = None,
        status: Annotated[str, QueryParameter(description="open, dismissed or merged.")] = "open",
    ) -> Response[str]:
        """Every candidate pair with its reasons, best score first, as a JSON array."""
        return _export(crm, actor, entity, status, "json")

    @post("/candidates/{candidate_id:int}/dismiss", sync_to_thread=True)
    def dismiss(
        self, crm: CrmDependency, actor: ActorDependency, candidate_id: CandidateId
    ) -> dict[str, Any]:
        """Mark a pair as two different customers."""
        return service.dismiss(crm, candidate_id, actor=actor)

    @post("/candidates/{candidate_id:int}/merge", sync_to_thread=True)
    def merge(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        candidate_id: CandidateId,
        data: Annotated[dict[str, Any], Body()] = {},  # noqa: B006 - never mutated
    ) -> dict[str, Any]:
        """Merge a pair: ``{"keep": "a"|"b", "strategy": ..., "fields": {...}}``."""
        result = service.merge(
            crm,
            candidate_id,
            keep=str(data.get("keep", "a")),
            strategy=str(data.get("strategy", "survivor")),
            fields=dict(data.get("fields") or {}),
            actor=actor,
        )
        return _merge(result)

    @post("/merges/{merge_id:int}/undo", sync_to_thread=True)
    def undo(self, crm: CrmDependency, actor: ActorDependency, merge_id: MergeId) -> dict[str, Any]:
        """Undo a merge (refused when either record changed since)."""
        return _merge(crm.merges.undo(merge_id, actor=actor))

    @post("/check", sync_to_thread=True)
    def check(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        data: JSONBody[dict[str, Any]],
        entity: Entity = "contact",
    ) -> list[dict[str, Any]]:
        """The records a new record with these values would match (nothing is written). A
        record outside your scope is only "a record you cannot see matches" (``visible``
        false) with its owner; reasons about fields hidden from you are left out."""
        return [m.as_dict() for m in service.check(crm, entity, data, actor=actor)]


def routes() -> list[Any]:
    """What ``crmkit_api_routes`` returns."""
    return [DedupeController]
