"""The inbound side: apply ``contact.upsert`` messages another system sends through a queue.

A message is JSON::

    {"type": "contact.upsert", "idempotency_key": "erp-42-v7",
     "match": "email", "contact": {"full_name": "王芳", "email": "wang@example.cn"}}

``match`` names the field that finds an existing contact (``email``, ``phone`` or any field
the contact has; none: always create). The message is applied in one transaction together
with a row keyed by ``idempotency_key``: a message delivered twice (brokers deliver at least
once) is applied once; the second time it is acknowledged and skipped. A message that cannot
be applied (bad JSON, unknown type, a field the CRM refuses) is answered with a
:class:`Rejected` naming the problem; the consumer then drops or dead-letters it instead of
retrying it for ever.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import crmkit
from crmkit_brokers.models import InboundMessage

UPSERT = "contact.upsert"


class Rejected(Exception):
    """The message can never be applied; the reason names the problem."""


@frozen
class Applied:
    """What one message did: ``created``, ``updated`` or ``duplicate`` (already applied)."""

    outcome: str
    record_id: int | None
    key: str


def parse(body: bytes) -> tuple[str, str | None, dict[str, Any]]:
    """The idempotency key, match field and contact values of a ``contact.upsert`` body;
    :class:`Rejected` for anything else."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise Rejected(f"the message is not JSON: {error}") from None
    if not isinstance(message, dict):
        raise Rejected("the message must be a JSON object")
    if message.get("type") != UPSERT:
        raise Rejected(f"unknown message type {message.get('type')!r}: only {UPSERT!r} is applied")
    key = message.get("idempotency_key")
    if not isinstance(key, str) or not key.strip() or len(key) > 200:
        raise Rejected("idempotency_key must be a non-empty string of at most 200 characters")
    contact = message.get("contact")
    if not isinstance(contact, dict) or not contact:
        raise Rejected("contact must be an object of field values")
    match = message.get("match")
    if match is not None and (not isinstance(match, str) or match not in contact):
        raise Rejected("match must name one of the fields given in contact")
    return key.strip(), match, contact


def apply_message(crm: crmkit.CRM, body: bytes) -> Applied:
    """Apply one ``contact.upsert`` message at most once (see the module docstring)."""
    key, match, values = parse(body)
    try:
        with crm.transaction() as op:
            seen = op.session.scalar(select(InboundMessage).where(InboundMessage.key == key))
            if seen is not None:
                return Applied("duplicate", seen.record_id, key)
            contacts = op.records("contact")
            existing = None
            if match is not None:
                found = contacts.list({match: values[match]}, limit=2).items
                if len(found) > 1:
                    raise Rejected(f"{match}={values[match]!r} matches more than one contact")
                existing = found[0] if found else None
            if existing is None:
                record = contacts.create(values)
                outcome, record_id = "created", int(record.id)
            else:
                record_id = int(existing.id)
                changes = {name: value for name, value in values.items() if name != "id"}
                contacts.update(record_id, changes)
                outcome = "updated"
            op.session.add(
                InboundMessage(key=key, kind=UPSERT, record_id=record_id, outcome=outcome)
            )
            op.session.flush()
            return Applied(outcome, record_id, key)
    except IntegrityError:
        # Another consumer applied the same key at the same moment: its transaction won.
        with crm.transaction(write=False) as op:
            seen = op.session.scalar(select(InboundMessage).where(InboundMessage.key == key))
        if seen is None:
            raise
        return Applied("duplicate", seen.record_id, key)
    except crmkit.CRMError as error:
        raise Rejected(str(error)) from None
