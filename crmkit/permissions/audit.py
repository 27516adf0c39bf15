"""Writing the audit log and raising sensitive-operation alerts.

Every write is audited with field-level before/after values, in the same transaction as the
write. Sensitive operations (exports, bulk deletes, merges, permission and role changes,
unusually wide reads) are flagged: the entry is marked ``sensitive``, a
``security.sensitive_operation`` event is emitted, and every active admin gets a notice on
each channel of ``[crmkit.messages] admin_alert_channels`` (the in-app inbox by default;
``email`` too if configured), through the message channels like every other message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from crmkit.db.base import utcnow
from crmkit.db.engine import bulk_insert
from crmkit.entities.organisation import Role, User
from crmkit.events.payloads import to_json
from crmkit.messages.outbox import Message, queue_messages
from crmkit.permissions.models import AuditEntry, UserRole

if TYPE_CHECKING:
    from crmkit.services.operation import Operation

#: A single read returning more records than this is flagged as unusually wide.
WIDE_READ_THRESHOLD = 1000


def audit_rows(
    op: Operation,
    operation: str,
    entity: str | None,
    changes: Sequence[tuple[int | None, Mapping[str, Any]]],
    *,
    sensitive: bool = False,
    detail: str = "",
    json_ready: bool = False,
) -> None:
    """Append one audit entry per ``(record_id, changes)`` in one statement.

    ``changes`` maps a field to ``[before, after]`` (``None`` for "no value"); with
    ``json_ready`` the values are JSON-ready already (``to_json`` was applied)."""
    if not changes:
        return
    now = utcnow()
    bulk_insert(
        op.session.connection(),
        AuditEntry.__table__,  # type: ignore[arg-type]
        [
            {
                "occurred_at": now,
                "actor_id": op.actor_id,
                "operation": operation,
                "entity": entity,
                "record_id": record_id,
                "changes": fields if json_ready else op_json(op, fields),
                "sensitive": sensitive,
                "detail": detail,
            }
            for record_id, fields in changes
        ],
    )


def op_json(op: Operation, value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` in JSON-ready form."""
    result: dict[str, Any] = to_json(value)
    return result


def flag_sensitive(
    op: Operation,
    operation: str,
    *,
    entity: str | None = None,
    record_id: int | None = None,
    detail: str,
    facts: Mapping[str, Any] | None = None,
) -> None:
    """Audit a sensitive operation, emit ``security.sensitive_operation`` and notify admins,
    all in the current transaction (a refused operation alerts nobody)."""
    audit_rows(
        op, operation, entity, [(record_id, dict(facts or {}))], sensitive=True, detail=detail
    )
    actor = op.actor.username if op.actor is not None else "system"
    event = op.emit(
        "security.sensitive_operation",
        {
            "operation": operation,
            "actor": actor,
            "entity": entity,
            "detail": detail,
            **dict(facts or {}),
        },
        record_type=entity,
        record_id=record_id,
    )
    admin_role = (
        select(UserRole.user_id).join(Role, Role.id == UserRole.role_id).where(Role.name == "admin")
    )
    admins = list(
        op.session.scalars(
            select(User.id).where(User.is_active, or_(User.is_admin, User.id.in_(admin_role)))
        )
    )
    if admins:
        channels = op.crm.messages.channels()
        queue_messages(
            op.session,
            channels,
            [
                Message(
                    channel=channel,
                    user_id=admin_id,
                    subject=f"{actor}: {operation}",
                    body=detail,
                    kind="security.sensitive_operation",
                    key=f"alert:{event.id}:{channel}:{admin_id}",
                    data={"event_id": str(event.id)},
                )
                for admin_id in admins
                for channel in op.crm.settings.messages.admin_alert_channels
            ],
        )
