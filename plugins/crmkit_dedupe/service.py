"""Use cases behind the CLI commands and the API routes: scan, review, dismiss, merge.

Every function runs in one transaction and checks the actor's permissions: ``dedupe:scan``
for a scan, ``dedupe:review`` to list and dismiss candidates, the core's
``<entity>:merge`` (through ``crm.merges``) to merge one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select

import crmkit
from crmkit_dedupe.engine import engine_of
from crmkit_dedupe.models import DedupeCandidate

STATUSES = ("open", "dismissed", "merged")


def scan(
    crm: crmkit.CRM,
    entity: str,
    *,
    actor: crmkit.User | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Scan every live ``entity`` record for duplicates; save the candidate pairs."""
    crm.entity(entity)
    with crm.transaction(actor) as op:
        op.access.require("dedupe:scan")
        return engine_of(crm).scan(op, entity, progress=progress)


def candidates(
    crm: crmkit.CRM,
    *,
    entity: str | None = None,
    status: str = "open",
    limit: int = 50,
    actor: crmkit.User | None = None,
) -> list[dict[str, Any]]:
    """Candidate pairs, best score first, with both records' labels."""
    if status not in STATUSES:
        raise crmkit.ValidationError(
            [crmkit.FieldError("status", f"must be one of {', '.join(STATUSES)}")]
        )
    with crm.transaction(actor, write=False) as op:
        op.access.require("dedupe:review")
        query = select(DedupeCandidate).where(DedupeCandidate.status == status)
        if status != "open":
            # the decided ones are in a partial index (status <> 'open'); SQLite uses it only
            # when the query repeats its condition
            query = query.where(DedupeCandidate.status != "open")
        if entity:
            query = query.where(DedupeCandidate.entity_a == entity)
        query = query.order_by(DedupeCandidate.score.desc(), DedupeCandidate.id).limit(limit)
        rows = [c.as_dict() for c in op.session.scalars(query)]
        engine = engine_of(crm)
        for row in rows:
            for side in ("a", "b"):
                found = engine.load(op, row[f"entity_{side}"], [row[f"id_{side}"]])
                row[f"label_{side}"] = found[0].label if found else None
        return rows


def _candidate(op: crmkit.Operation, candidate_id: int) -> DedupeCandidate:
    row = op.session.get(DedupeCandidate, candidate_id, with_for_update=True)
    if row is None:
        raise crmkit.NotFoundError("dedupe candidate", candidate_id)
    return row


def dismiss(
    crm: crmkit.CRM, candidate_id: int, *, actor: crmkit.User | None = None
) -> dict[str, Any]:
    """Mark a candidate pair as not the same customer (later scans keep it dismissed)."""
    with crm.transaction(actor) as op:
        op.access.require("dedupe:review")
        row = _candidate(op, candidate_id)
        if row.status != "open":
            raise crmkit.ConflictError(f"candidate {candidate_id} is already {row.status}")
        row.status = "dismissed"
        row.decided_at = crmkit.utcnow()
        row.decided_by_id = op.actor_id
        op.emit("dedupe.dismissed", row.as_dict())
        return row.as_dict()


def merge(
    crm: crmkit.CRM,
    candidate_id: int,
    *,
    keep: str = "a",
    strategy: str = "survivor",
    fields: Mapping[str, str] | None = None,
    actor: crmkit.User | None = None,
) -> crmkit.MergeResult:
    """Merge the two records of a candidate pair; ``keep`` says which survives (``a``, the
    record the rule checked, or ``b``)."""
    if keep not in ("a", "b"):
        raise crmkit.ValidationError([crmkit.FieldError("keep", "must be 'a' or 'b'")])
    with crm.transaction(actor) as op:
        op.access.require("dedupe:review")
        row = _candidate(op, candidate_id)
        if row.status != "open":
            raise crmkit.ConflictError(f"candidate {candidate_id} is already {row.status}")
        if row.entity_a != row.entity_b:
            raise crmkit.ValidationError(
                [
                    crmkit.FieldError(
                        "candidate",
                        f"a {row.entity_a} and a {row.entity_b} cannot be merged; convert the"
                        " lead instead (crmkit leads convert)",
                    )
                ]
            )
        survivor, merged = (row.id_a, row.id_b) if keep == "a" else (row.id_b, row.id_a)
        result = crm.merges.merge(
            row.entity_a, survivor, merged, strategy=strategy, fields=fields, op=op
        )
        row.status = "merged"
        row.merge_id = result.merge_id
        row.decided_at = crmkit.utcnow()
        row.decided_by_id = op.actor_id
        return result
