"""The relay's per-batch statements on PostgreSQL, run on the session's own psycopg connection
(in its transaction) with their arrays bound in binary.

Why not through SQLAlchemy: its psycopg dialect binds every parameter in text form, and
psycopg quotes a text array element by element (a regular-expression check per string):
1.5-2.7 µs per element, measured with psycopg 3.3 (``ListDumper``: 2.7 ms per 1,000 record
keys, 1.8 ms per 1,000 ids; ``ListBinaryDumper``: 0.6 and 0.75 ms). A relay pass sends four
arrays per event (outbox id, sink, record key, whether claimed) plus the acknowledged ids:
about a third of the worker's own CPU per event went to quoting them. ``%(name)b`` binds in
binary. The rows come back as plain tuples, which also skips SQLAlchemy's row processing.

The ids of rows are ``integer``; the arrays are cast in SQL, so whichever integer width
psycopg picks for a list is fine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from crmkit.events.outbox import OPEN_CONDITION, DeliveryStatus

#: The event columns of an outbox row, in the order ``event_from_row`` reads them by name.
EVENT_COLUMNS = "id, event_id, name, occurred_at, actor_id, record_type, record_id, payload"

# The batch's ids are an init plan (ARRAY(...)) computed once, then looked up in the primary
# key: read and marked in one statement and one round trip.
_TAKE_NEW = f"""
UPDATE event_outbox SET dispatched_at = %(now)s
WHERE id = ANY(ARRAY(SELECT id FROM event_outbox WHERE dispatched_at IS NULL
                     ORDER BY id LIMIT %(limit)s))
RETURNING {EVENT_COLUMNS}
"""

# The condition is the partial index's own (literals, not parameters), so the planner uses
# ix_event_deliveries_order for it whatever the plan is generic or custom.
_OPEN_KEYS = f"""
SELECT DISTINCT sink, record_key FROM event_deliveries
WHERE sink = ANY(CAST(%(sinks)b AS varchar[])) AND record_key = ANY(CAST(%(keys)b AS varchar[]))
  AND {OPEN_CONDITION}
"""

_INSERT = """
INSERT INTO event_deliveries (outbox_id, sink, record_key, status, attempts, next_attempt_at,
                              claimed_by, claim_expires_at)
SELECT o, s, k, CASE WHEN h THEN %(in_flight)s ELSE %(pending)s END, CASE WHEN h THEN 1 ELSE 0 END,
       %(now)s, CASE WHEN h THEN %(me)s END, CASE WHEN h THEN %(lease)s END
FROM unnest(CAST(%(outbox_ids)b AS integer[]), CAST(%(sinks)b AS varchar[]),
            CAST(%(keys)b AS varchar[]), CAST(%(heads)b AS boolean[])) AS batch(o, s, k, h)
RETURNING id, outbox_id, sink, attempts
"""

_DELIVERED = """
UPDATE event_deliveries
SET status = %(delivered)s, delivered_at = %(now)s, last_error = NULL, claim_expires_at = NULL
WHERE id = ANY(CAST(%(ids)b AS integer[])) AND claimed_by = %(me)s AND status = %(in_flight)s
"""


def _rows(session: Session, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the session's psycopg connection, in the session's transaction; the
    rows it returns (none for a statement without)."""
    connection: Any = session.connection().connection.driver_connection
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def take_new(session: Session, limit: int, now: dt.datetime) -> list[tuple[Any, ...]]:
    """Mark up to ``limit`` undispatched outbox events dispatched; their rows (the columns of
    :data:`EVENT_COLUMNS`, ``occurred_at`` in UTC) in id order."""
    rows = _rows(session, _TAKE_NEW, {"now": now, "limit": limit})
    rows.sort(key=_first)  # RETURNING follows no particular order
    return rows


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def open_record_keys(
    session: Session, sinks: Sequence[str], keys: Sequence[str]
) -> set[tuple[str, str]]:
    """The (sink, record key) pairs among ``sinks`` × ``keys`` with an open delivery."""
    rows = _rows(session, _OPEN_KEYS, {"sinks": list(sinks), "keys": list(keys)})
    return {(row[0], row[1]) for row in rows}


def insert_deliveries(
    session: Session,
    deliveries: Sequence[tuple[int, str, str, bool]],
    *,
    now: dt.datetime,
    lease: dt.datetime,
    worker_id: str,
) -> dict[tuple[int, str], int]:
    """Write delivery rows (outbox id, sink, record key, whether claimed now) in one
    ``INSERT ... SELECT FROM unnest(<arrays>)``; the ids of the claimed ones by (outbox id,
    sink)."""
    outbox_ids, sinks, keys, heads = zip(*deliveries, strict=True)
    rows = _rows(
        session,
        _INSERT,
        {
            "in_flight": DeliveryStatus.IN_FLIGHT.value,
            "pending": DeliveryStatus.PENDING.value,
            "now": now,
            "lease": lease,
            "me": worker_id,
            "outbox_ids": list(outbox_ids),
            "sinks": list(sinks),
            "keys": list(keys),
            "heads": list(heads),
        },
    )
    return {(row[1], row[2]): row[0] for row in rows if row[3]}


def mark_delivered(
    session: Session, ids: Sequence[int], *, now: dt.datetime, worker_id: str
) -> None:
    """Mark the deliveries ``ids`` this worker holds delivered (one ``UPDATE``)."""
    _rows(
        session,
        _DELIVERED,
        {
            "delivered": DeliveryStatus.DELIVERED.value,
            "in_flight": DeliveryStatus.IN_FLIGHT.value,
            "now": now,
            "me": worker_id,
            "ids": list(ids),
        },
    )
