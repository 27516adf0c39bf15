"""Use cases behind the CLI commands and the API routes: scan, review, dismiss, merge.

Every function runs in one transaction and checks the actor's permissions: ``dedupe:scan``
for a scan, ``dedupe:review`` to list and dismiss candidates, the core's
``<entity>:merge`` (through ``crm.merges``) to merge one.

What an answer tells about other records follows the core's disclosure rules
(``crmkit.disclosed_matches``): the review lists only pairs whose two records the reviewer may
read (a pair with a record outside their scope does not exist for them: 404 on dismiss or
merge), without reasons about fields hidden from them; the check names a record outside the
caller's scope only as "a record you cannot see matches", with its owner.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy import and_, or_, select

import crmkit
from crmkit_dedupe import matching
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


def check(
    crm: crmkit.CRM,
    entity: str,
    values: Mapping[str, Any],
    *,
    actor: crmkit.User | None = None,
) -> list[crmkit.DisclosedMatch]:
    """The records a new ``entity`` record with ``values`` would match (nothing is written),
    as the actor may see them. Needs ``<entity>:create`` or ``<entity>:read``."""
    crm.entity(entity)
    with crm.transaction(actor, write=False) as op:
        access = op.access
        if access.scope(f"{entity}:create") is None:
            access.require(f"{entity}:read")
        found = engine_of(crm).find(op, entity, values, None)
        return crmkit.disclosed_matches(op, entity, found)


def candidates(
    crm: crmkit.CRM,
    *,
    entity: str | None = None,
    status: str = "open",
    limit: int = 50,
    after: str | None = None,
    actor: crmkit.User | None = None,
) -> list[dict[str, Any]]:
    """Candidate pairs, best score first, with both records' labels: only pairs whose two
    records the actor may read, without reasons about fields hidden from them.

    Pages by keyset: each row carries its ``cursor``; pass the last row's as ``after`` for
    the next page (stable while candidates are decided or added meanwhile)."""
    if status not in STATUSES:
        raise crmkit.ValidationError(
            [crmkit.FieldError("status", f"must be one of {', '.join(STATUSES)}")]
        )
    position = _position(after) if after is not None else None
    with crm.transaction(actor, write=False) as op:
        op.access.require("dedupe:review")
        query = select(DedupeCandidate).where(DedupeCandidate.status == status)
        if status != "open":
            # the decided ones are in a partial index (status <> 'open'); SQLite uses it only
            # when the query repeats its condition
            query = query.where(DedupeCandidate.status != "open")
        if entity:
            query = query.where(DedupeCandidate.entity_a == entity)
        if not op.access.unrestricted:
            query = query.where(*_readable_pairs(op))
        if position is not None:
            score, last = position
            query = query.where(
                or_(
                    DedupeCandidate.score < score,
                    and_(DedupeCandidate.score == score, DedupeCandidate.id > last),
                )
            )
        query = query.order_by(DedupeCandidate.score.desc(), DedupeCandidate.id).limit(limit)
        rows = [_disclosed(op, c) for c in op.session.scalars(query)]
        engine = engine_of(crm)
        for row in rows:
            for side in ("a", "b"):
                kind = row[f"entity_{side}"]
                found = engine.load(op, kind, [row[f"id_{side}"]])
                hidden = op.access.hidden_fields(kind)
                shown = found and not hidden.intersection(crmkit.LABEL_FIELDS)
                row[f"label_{side}"] = found[0].label if shown else None
            row["cursor"] = f"{float(row['score'])!r}:{row['id']}"
        return rows


def _position(after: str) -> tuple[float, int]:
    """The (score, id) a ``cursor`` names; a ``ValidationError`` for anything else."""
    score, _, last = after.partition(":")
    try:
        position = (float(score), int(last))
    except ValueError:
        position = None
    if position is None or position[0] != position[0]:  # NaN is no position either
        raise crmkit.ValidationError(
            [crmkit.FieldError("after", "must be the cursor of a row of the previous page")]
        )
    return position


EXPORT_COLUMNS = (
    "id",
    "entity_a",
    "id_a",
    "label_a",
    "entity_b",
    "id_b",
    "label_b",
    "score",
    "rule",
    "action",
    "status",
    "reasons",
)
EXPORT_FORMATS = ("csv", "json")


def export_candidates(
    crm: crmkit.CRM,
    *,
    entity: str | None = None,
    status: str = "open",
    actor: crmkit.User | None = None,
    page: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Every candidate :func:`candidates` shows the actor, best score first, a page of
    ``page`` at a time (keyset: one transaction per page)."""
    after = None
    while True:
        rows = candidates(crm, entity=entity, status=status, limit=page, after=after, actor=actor)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1]["cursor"]


def export_text(rows: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The rows as CSV (a header, one line per pair, the reasons joined with "; ", cells a
    spreadsheet will not run as formulas) or as a JSON array, in pieces to write or send."""
    if fmt not in EXPORT_FORMATS:
        raise crmkit.ValidationError(
            [crmkit.FieldError("format", f"must be one of {', '.join(EXPORT_FORMATS)}")]
        )
    return _json_text(rows) if fmt == "json" else _csv_text(rows)


def _json_text(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield "["
    for n, row in enumerate(rows):
        shown = {key: row.get(key) for key in (*EXPORT_COLUMNS, "withheld_reasons")}
        yield ("," if n else "") + "\n" + json.dumps(shown, ensure_ascii=False, default=str)
    yield "\n]\n"


def _csv_text(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        cells = {**row, "reasons": "; ".join(row.get("reasons") or ())}
        writer.writerow(
            [
                crmkit.formula_safe("" if cells.get(c) is None else str(cells[c]))
                for c in EXPORT_COLUMNS
            ]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _readable_pairs(op: crmkit.Operation) -> list[Any]:
    """SQL conditions: both records of a candidate are ones the actor may read."""
    rules = engine_of(op.crm).rules
    entities = sorted({e for rule in rules for e in (rule.entity, *rule.against)})
    conditions = []
    for side in ("a", "b"):
        kind = getattr(DedupeCandidate, f"entity_{side}")
        record = getattr(DedupeCandidate, f"id_{side}")
        conditions.append(
            or_(
                *(
                    and_(kind == name, record.in_(crmkit.readable_ids_query(op, name)))
                    for name in entities
                )
            )
        )
    return conditions


def _disclosed(op: crmkit.Operation, candidate: DedupeCandidate) -> dict[str, Any]:
    """The candidate as JSON, its reasons about fields hidden from the actor left out."""
    row = candidate.as_dict()
    access = op.access
    hidden = access.hidden_fields(candidate.entity_a) | access.hidden_fields(candidate.entity_b)
    if not hidden:
        return row
    rule = next((r for r in engine_of(op.crm).rules if r.name == candidate.rule), None)
    kept = []
    for reason in row["reasons"]:
        fields = matching.fields_of_reason(rule, reason) if rule is not None else ()
        if fields and not hidden.intersection(fields):
            kept.append(reason)
    row["withheld_reasons"] = len(row["reasons"]) - len(kept)
    row["reasons"] = kept
    return row


def _candidate(op: crmkit.Operation, candidate_id: int) -> DedupeCandidate:
    """The candidate, locked; not found when it does not exist or when either of its
    records is one the actor may not read (a pair they may not see does not exist for them)."""
    row = op.session.get(DedupeCandidate, candidate_id, with_for_update=True)
    if row is None or not _both_readable(op, row):
        raise crmkit.NotFoundError("dedupe candidate", candidate_id)
    return row


def _both_readable(op: crmkit.Operation, row: DedupeCandidate) -> bool:
    if op.access.unrestricted:
        return True
    return all(
        record_id in crmkit.readable_record_ids(op, kind, [record_id])
        for kind, record_id in ((row.entity_a, row.id_a), (row.entity_b, row.id_b))
    )


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
