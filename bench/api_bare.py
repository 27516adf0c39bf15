"""The bare baseline of the API benchmark: Litestar + SQLAlchemy, no crmkit.

Two endpoints run the same SQL crmkit runs for a sales rep (``contact:read`` scope "own"):
one contact by id, and a page of 50 of the rep's contacts in id order. No token check, no
permission loading, no field rules, no audit: what is left is the framework, the connection
pool and the query. The engine is crmkit's own (``make_engine``: the same pool, the same
``pool_pre_ping`` on PostgreSQL, the same SQLite pragmas) with crmkit's read-only
transactions (a plain ``BEGIN`` on SQLite), so the connection handling is not part of the
difference. Served by uvicorn from ``bench/api_bench.py``, with the same options as crmkit:
``BARE_DATABASE_URL=... BARE_OWNER_ID=... uvicorn api_bare:app``.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmkit.db.engine import READ_ONLY, make_engine
from crmkit.entities.customers import Contact
from crmkit.events.payloads import to_json

engine = make_engine(os.environ["BARE_DATABASE_URL"]).execution_options(**{READ_ONLY: True})
OWNER = int(os.environ["BARE_OWNER_ID"])
COLUMNS = [column.key for column in Contact.__table__.columns if column.key != "deleted_at"]


def _json(contact: Contact) -> dict[str, Any]:
    values = {key: getattr(contact, key) for key in COLUMNS if key != "custom"}
    values.update(contact.custom or {})
    return to_json(values)  # type: ignore[no-any-return]


@get("/contacts/{record_id:int}", sync_to_thread=True)
def get_contact(record_id: FromPath[int]) -> dict[str, Any]:
    with Session(engine) as session:
        contact = session.scalars(
            select(Contact).where(
                Contact.deleted_at.is_(None), Contact.owner_id == OWNER, Contact.id == record_id
            )
        ).one_or_none()
        if contact is None:
            raise NotFoundException()
        return _json(contact)


@get("/contacts", sync_to_thread=True)
def list_contacts() -> dict[str, Any]:
    with Session(engine) as session:
        rows = list(
            session.scalars(
                select(Contact)
                .where(Contact.deleted_at.is_(None), Contact.owner_id == OWNER)
                .order_by(Contact.id)
                .limit(51)
            )
        )
        return {
            "items": [_json(c) for c in rows[:50]],
            "next_cursor": "x" if len(rows) > 50 else None,
        }


app = Litestar([get_contact, list_contacts])
