"""REST routes of the dedupe plugin, mounted by the core under ``/plugins/dedupe``.

Handlers declare the core's ``crm`` and ``actor`` dependencies and call the same services
as the CLI (:mod:`crmkit_dedupe.service`), so behaviour cannot drift; crmkit errors become
problem+json responses in the core's exception handlers.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.params import Body

import crmkit
from crmkit_dedupe import service
from crmkit_dedupe.engine import engine_of


def _match(match: crmkit.DuplicateMatch) -> dict[str, Any]:
    return {
        "entity": match.entity,
        "record_id": match.record_id,
        "score": match.score,
        "action": str(match.action),
        "reasons": list(match.reasons),
        "rule": match.rule,
        "owner_id": match.owner_id,
        "label": match.label,
    }


def _merge(result: crmkit.MergeResult) -> dict[str, Any]:
    return {
        "merge_id": result.merge_id,
        "entity": result.entity,
        "survivor_id": result.survivor_id,
        "merged_id": result.merged_id,
        "changes": dict(result.changes),
        "moved": dict(result.moved),
    }


class DedupeController(Controller):
    """Scan, review, dismiss, merge, undo and check."""

    path = "/"
    tags = ["dedupe"]  # noqa: RUF012 - Litestar reads this class attribute

    @post("/scan", sync_to_thread=True)
    def scan(
        self, crm: crmkit.CRM, actor: crmkit.User | None, entity: str = "contact"
    ) -> dict[str, int]:
        """Scan every record of ``entity`` and save the candidate pairs."""
        return service.scan(crm, entity, actor=actor)

    @get("/candidates", sync_to_thread=True)
    def candidates(
        self,
        crm: crmkit.CRM,
        actor: crmkit.User | None,
        entity: str | None = None,
        status: str = "open",
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Candidate pairs, best score first."""
        return service.candidates(crm, entity=entity, status=status, limit=limit, actor=actor)

    @post("/candidates/{candidate_id:int}/dismiss", sync_to_thread=True)
    def dismiss(
        self, crm: crmkit.CRM, actor: crmkit.User | None, candidate_id: int
    ) -> dict[str, Any]:
        """Mark a pair as two different customers."""
        return service.dismiss(crm, candidate_id, actor=actor)

    @post("/candidates/{candidate_id:int}/merge", sync_to_thread=True)
    def merge(
        self,
        crm: crmkit.CRM,
        actor: crmkit.User | None,
        candidate_id: int,
        data: dict[str, Any] = Body(default={}),  # noqa: B008 - Litestar's parameter marker
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
    def undo(self, crm: crmkit.CRM, actor: crmkit.User | None, merge_id: int) -> dict[str, Any]:
        """Undo a merge (refused when either record changed since)."""
        return _merge(crm.merges.undo(merge_id, actor=actor))

    @post("/check", sync_to_thread=True)
    def check(
        self,
        crm: crmkit.CRM,
        actor: crmkit.User | None,
        data: dict[str, Any],
        entity: str = "contact",
    ) -> list[dict[str, Any]]:
        """The records a new record with these values would match (nothing is written)."""
        with crm.transaction(actor, write=False) as op:
            op.access.require(f"{entity}:read")
            return [_match(m) for m in engine_of(crm).find(op, entity, data, None)]


def routes() -> list[Any]:
    """What ``crmkit_api_routes`` returns."""
    return [DedupeController]
