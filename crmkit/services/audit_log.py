"""Reading the audit log, and the in-app notification inbox.

The log is written by :mod:`crmkit.permissions.audit` in the same transaction as each change;
the database refuses to update or delete its entries. Reading it needs ``audit:read``. Each
user reads their own inbox; reading or marking somebody else's needs ``audit:read`` too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import select, update
from sqlalchemy.orm import aliased

from crmkit.db.base import utcnow
from crmkit.entities.organisation import User
from crmkit.errors import FieldError, ValidationError
from crmkit.permissions.models import AuditEntry, Notification
from crmkit.services.users import find_user

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation

#: The most entries one query returns.
MAX_AUDIT_LIMIT = 10_000
#: The name the log shows for changes made by the system (no acting user).
SYSTEM_ACTOR = "system"


@frozen
class AuditRecord:
    """One audit log entry. ``changes`` maps each field to ``[before, after]`` (for
    sensitive operations: the facts of the operation); ``actor`` is a username or
    ``system``."""

    id: int
    occurred_at: dt.datetime
    actor: str
    actor_id: int | None
    operation: str
    entity: str | None
    record_id: int | None
    changes: dict[str, Any]
    sensitive: bool
    detail: str


@frozen
class InboxMessage:
    """A notification in a user's inbox."""

    id: int
    username: str
    created_at: dt.datetime
    kind: str
    title: str
    body: str
    event_id: str | None
    read_at: dt.datetime | None


class AuditLog:
    """Query the audit log; read and mark users' notifications."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def query(
        self,
        *,
        user: str | None = None,
        entity: str | None = None,
        record_id: int | None = None,
        operation: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        sensitive: bool | None = None,
        limit: int = 100,
        actor: User | None = None,
    ) -> list[AuditRecord]:
        """Entries matching every filter given, newest first, at most ``limit``.

        ``user`` is the acting user's name (``"system"`` for changes without one);
        ``operation`` matches exactly, or by prefix with a trailing ``*`` (``"role.*"``);
        ``since`` is inclusive and ``until`` exclusive (both timezone-aware). Needs
        ``audit:read``.
        """
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise ValidationError([FieldError("limit", f"must be between 1 and {MAX_AUDIT_LIMIT}")])
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.tzinfo is None:
                raise ValidationError(
                    [FieldError(name, "needs a time zone (e.g. 2025-06-01T00:00+08:00)")]
                )
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("audit:read")
            acting = aliased(User)
            query = select(AuditEntry, acting.username).outerjoin(
                acting, acting.id == AuditEntry.actor_id
            )
            if user is not None:
                query = query.where(_actor_condition(op, user))
            if entity is not None:
                query = query.where(AuditEntry.entity == entity)
            if record_id is not None:
                query = query.where(AuditEntry.record_id == record_id)
            if operation is not None:
                if operation.endswith("*"):
                    prefix = operation[:-1]
                    query = query.where(AuditEntry.operation.startswith(prefix, autoescape=True))
                else:
                    query = query.where(AuditEntry.operation == operation)
            if since is not None:
                query = query.where(AuditEntry.occurred_at >= since)
            if until is not None:
                query = query.where(AuditEntry.occurred_at < until)
            if sensitive is not None:
                query = query.where(AuditEntry.sensitive.is_(sensitive))
            query = query.order_by(AuditEntry.id.desc()).limit(limit)
            return [
                AuditRecord(
                    id=entry.id,
                    occurred_at=entry.occurred_at,
                    actor=username or (SYSTEM_ACTOR if entry.actor_id is None else "?"),
                    actor_id=entry.actor_id,
                    operation=entry.operation,
                    entity=entry.entity,
                    record_id=entry.record_id,
                    changes=dict(entry.changes or {}),
                    sensitive=entry.sensitive,
                    detail=entry.detail,
                )
                for entry, username in op.session.execute(query)
            ]

    def inbox(
        self, user: str | None, *, unread_only: bool = True, actor: User | None = None
    ) -> list[InboxMessage]:
        """The notifications of ``user`` (``None``: of every user), newest first; only the
        unread ones unless ``unread_only`` is false."""
        with self.crm.transaction(actor, write=False) as op:
            query = select(Notification, User.username).join(User, User.id == Notification.user_id)
            query = query.where(*_inbox_conditions(op, actor, user))
            if unread_only:
                query = query.where(Notification.read_at.is_(None))
            query = query.order_by(Notification.id.desc())
            return [
                InboxMessage(
                    id=note.id,
                    username=username,
                    created_at=note.created_at,
                    kind=note.kind,
                    title=note.title,
                    body=note.body,
                    event_id=note.event_id,
                    read_at=note.read_at,
                )
                for note, username in op.session.execute(query)
            ]

    def mark_read(self, user: str | None, ids: Iterable[int], *, actor: User | None = None) -> int:
        """Mark notifications of ``user`` (``None``: of anyone) read; ids of other users'
        notifications and ones already read are skipped. Returns how many were marked."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        with self.crm.transaction(actor) as op:
            result = op.session.execute(
                update(Notification)
                .where(
                    Notification.id.in_(wanted),
                    Notification.read_at.is_(None),
                    *_inbox_conditions(op, actor, user),
                )
                .values(read_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _actor_condition(op: Operation, username: str) -> Any:
    """Entries made by ``username``, or by the system for ``"system"`` (unless a user has
    that name)."""
    if username == SYSTEM_ACTOR:
        found = op.session.scalar(select(User.id).where(User.username == username))
        if found is None:
            return AuditEntry.actor_id.is_(None)
    return AuditEntry.actor_id == find_user(op.session, username).id


def _inbox_conditions(op: Operation, actor: User | None, username: str | None) -> list[Any]:
    """Which notifications the call may touch: the actor's own need nothing more; anyone
    else's (or everyone's) need ``audit:read``."""
    if username is None:
        op.access.require("audit:read")
        return []
    user = find_user(op.session, username)
    if actor is None or actor.id != user.id:
        op.access.require("audit:read")
    return [Notification.user_id == user.id]
