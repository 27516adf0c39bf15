"""REST routes of the dedupe plugin, mounted by the core under ``/plugins/dedupe``.

Handlers declare the core's ``crm`` and ``actor`` dependencies and call the same services
as the CLI (:mod:`crmkit_dedupe.service`), so behaviour cannot drift; crmkit errors become
problem+json responses in the core's exception handlers.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
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


#: A field's value in a merge's changes (JSON: text, number, yes/no, choices, links, null).
FieldValue = str | int | float | bool | list[str] | dict[str, str] | None


class ScanResult(msgspec.Struct, kw_only=True):
    """What a scan did."""

    records: int
    compared: int
    candidates: int


class Candidate(msgspec.Struct, kw_only=True):
    """A candidate pair: record ``a`` (the one the rule checked) may be a duplicate of ``b``.
    The labels are null for a record whose name fields are hidden from you; reasons about
    hidden fields are left out (``withheld_reasons`` says how many)."""

    id: int
    entity_a: str
    id_a: int
    entity_b: str
    id_b: int
    score: float
    rule: str
    action: str
    reasons: list[str]
    status: Literal["open", "dismissed", "merged"]
    found_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by_id: int | None
    merge_id: int | None
    withheld_reasons: int = 0
    label_a: str | None = None
    label_b: str | None = None
    cursor: Annotated[
        str | None, msgspec.Meta(description="Pass it as `after` for the page after this row.")
    ] = None


class MergeRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How to merge a pair: which record survives, and how the fields are chosen."""

    keep: Literal["a", "b"] = "a"
    strategy: str = "survivor"
    fields: dict[str, str] = msgspec.field(default_factory=dict)


class MergeDone(msgspec.Struct, kw_only=True):
    """What a merge (or its undo) did: the fields changed on the survivor
    (``field: [before, after]``) and the references moved per table."""

    merge_id: int
    entity: str
    survivor_id: int
    merged_id: int
    changes: dict[str, list[FieldValue]]
    moved: dict[str, int]


def _merge(result: crmkit.MergeResult) -> MergeDone:
    return MergeDone(
        merge_id=result.merge_id,
        entity=result.entity,
        survivor_id=result.survivor_id,
        merged_id=result.merged_id,
        changes=dict(result.changes),
        moved=dict(result.moved),
    )


def _export(
    crm: crmkit.CRM, actor: crmkit.User | None, entity: str | None, status: str, fmt: str
) -> Response[Any]:
    """The export as text (CSV, or the JSON of a list of candidates)."""
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
    ) -> ScanResult:
        """Scan every record of ``entity`` and save the candidate pairs."""
        return msgspec.convert(service.scan(crm, entity, actor=actor), ScanResult)

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
    ) -> list[Candidate]:
        """Candidate pairs, best score first, a page at a time (keyset: each row's
        ``cursor``, passed as ``after``, gives the page after it)."""
        rows = service.candidates(
            crm, entity=entity, status=status, limit=limit, after=after, actor=actor
        )
        return [msgspec.convert(row, Candidate, strict=False) for row in rows]

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
    ) -> Response[list[Candidate]]:
        """Every candidate pair with its reasons, best score first, as a JSON array."""
        return _export(crm, actor, entity, status, "json")

    @post("/candidates/{candidate_id:int}/dismiss", sync_to_thread=True)
    def dismiss(
        self, crm: CrmDependency, actor: ActorDependency, candidate_id: CandidateId
    ) -> Candidate:
        """Mark a pair as two different customers."""
        return msgspec.convert(
            service.dismiss(crm, candidate_id, actor=actor), Candidate, strict=False
        )

    @post("/candidates/{candidate_id:int}/merge", sync_to_thread=True)
    def merge(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        candidate_id: CandidateId,
        data: Annotated[MergeRequest | None, Body()] = None,
    ) -> MergeDone:
        """Merge a pair: ``{"keep": "a"|"b", "strategy": ..., "fields": {...}}`` (no body:
        keep ``a``, the survivor's values)."""
        request = data or MergeRequest()
        result = service.merge(
            crm,
            candidate_id,
            keep=request.keep,
            strategy=request.strategy,
            fields=request.fields,
            actor=actor,
        )
        return _merge(result)

    @post("/merges/{merge_id:int}/undo", sync_to_thread=True)
    def undo(self, crm: CrmDependency, actor: ActorDependency, merge_id: MergeId) -> MergeDone:
        """Undo a merge (refused when either record changed since)."""
        return _merge(crm.merges.undo(merge_id, actor=actor))

    @post("/check", sync_to_thread=True)
    def check(
        self,
        crm: CrmDependency,
        actor: ActorDependency,
        data: JSONBody[dict[str, FieldValue]],
        entity: Entity = "contact",
    ) -> list[crmkit.MatchedRecord]:
        """The records a new record with these values would match (nothing is written). A
        record outside your scope is only "a record you cannot see matches" (``visible``
        false) with its owner; reasons about fields hidden from you are left out."""
        return [crmkit.MatchedRecord.of(m) for m in service.check(crm, entity, data, actor=actor)]


def routes() -> list[Any]:
    """What ``crmkit_api_routes`` returns."""
    return [DedupeController]
