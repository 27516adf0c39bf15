"""The shared pool (公海): records without an owner. Release policies send records nobody
followed up back to it, in one set-based statement per policy; users claim from it within
their limits; every move is in the ownership history."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import frozen
from sqlalchemy import delete, exists, func, insert, select, update

from crmkit.assignment.config import PoolPolicyConfig
from crmkit.assignment.load import open_condition
from crmkit.assignment.models import OwnershipChange, PoolClaim, PoolPolicy
from crmkit.db.base import utcnow
from crmkit.db.engine import bulk_insert
from crmkit.entities.followup import Activity
from crmkit.entities.organisation import User
from crmkit.errors import CRMError, NotFoundError, PermissionDenied
from crmkit.permissions.audit import audit_rows
from crmkit.permissions.catalogue import ASSIGNABLE
from crmkit.permissions.models import Notification
from crmkit.services.assignment import ownership_reason
from crmkit.services.disclosure import readable_record_ids
from crmkit.services.operation import Operation
from crmkit.services.segment_filters import SegmentCompiler
from crmkit.services.views import Record

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.scheduler import JobContext, ScheduledJob

#: The activity column that links a follow-up to a record of each entity.
_ACTIVITY_LINK = {
    "account": Activity.account_id,
    "contact": Activity.contact_id,
    "lead": Activity.lead_id,
    "deal": Activity.deal_id,
}


@frozen
class Policy:
    """A release policy: records of ``entity`` matching ``when`` go back to the pool after
    ``days`` without a follow-up activity or a change of owner."""

    entity: str
    name: str
    days: int
    when: Mapping[str, Any]
    source: str = "database"


@frozen
class Released:
    """What one policy released: how many records, from how many owners."""

    entity: str
    policy: str
    records: int
    owners: int


class PoolService:
    """Release policies, releasing, listing and claiming. Reach it as ``crm.pool``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    # -- policies --------------------------------------------------------------------------

    def policies(self, entity: str | None = None, *, actor: User | None = None) -> list[Policy]:
        """The release policies (the config file's, then the database's)."""
        with self.crm.transaction(actor, write=False) as op:
            return _policies(op, entity)

    def add_policy(
        self,
        entity: str,
        name: str,
        days: int,
        *,
        when: Mapping[str, Any] | None = None,
        actor: User | None = None,
    ) -> Policy:
        """Add a release policy. A bad entity, field, operator or a ``days`` under 1 is
        refused with nothing written. Needs ``assignment:manage``.

        Example::

            crm.pool.add_policy("account", "B/C tier after 30 days", 30,
                                when={"value_tier__in": ["b", "c"]})
        """
        with self.crm.transaction(actor) as op:
            op.access.require("assignment:manage")
            _check_policy(op, entity, name, days, when or {})
            if any(p.name == name for p in _policies(op, entity)):
                raise CRMError(f"{entity} already has a pool policy named {name!r}")
            row = PoolPolicy(entity=entity, name=name, days=days, conditions=dict(when or {}))
            op.session.add(row)
            op.session.flush()
            facts = {"entity": entity, "name": name, "days": days, "when": dict(when or {})}
            audit_rows(op, "pool.policy_added", "pool_policy", [(row.id, facts)])
            op.emit("pool.policy_added", facts, record_type="pool_policy", record_id=row.id)
            return Policy(entity, name, days, dict(when or {}))

    def remove_policy(self, entity: str, name: str, *, actor: User | None = None) -> None:
        """Remove a release policy of the database. Needs ``assignment:manage``."""
        with self.crm.transaction(actor) as op:
            op.access.require("assignment:manage")
            if any(
                p.entity == entity and p.name == name
                for p in self.crm.settings.assignment.pool_policies
            ):
                raise CRMError(
                    f"pool policy {name!r} of {entity} is in the config file: remove it there"
                )
            removed = op.session.execute(
                delete(PoolPolicy).where(PoolPolicy.entity == entity, PoolPolicy.name == name)
            ).rowcount  # type: ignore[attr-defined]
            if not removed:
                names = [p.name for p in _policies(op, entity)]
                raise CRMError(
                    f"{entity} has no pool policy named {name!r};"
                    f" policies: {', '.join(names) or 'none'}"
                )
            audit_rows(
                op, "pool.policy_removed", "pool_policy", [(None, {"entity": entity, "name": name})]
            )

    # -- release ---------------------------------------------------------------------------

    def due(
        self,
        entity: str | None = None,
        *,
        now: dt.datetime | None = None,
        actor: User | None = None,
    ) -> dict[str, int]:
        """How many records each policy would release now (``policy name`` → count)."""
        now = now or utcnow()
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("assignment:manage")
            counts = {}
            for policy in _policies(op, entity):
                query = _due_query(op, policy, now)
                counted = select(func.count()).select_from(query.subquery())
                counts[f"{policy.entity}:{policy.name}"] = int(op.session.scalar(counted) or 0)
            return counts

    def release(
        self,
        entity: str | None = None,
        *,
        now: dt.datetime | None = None,
        actor: User | None = None,
    ) -> list[Released]:
        """Send every record due under a policy back to the pool, in one transaction: one
        set-based ``INSERT ... SELECT`` into the ownership history and one ``UPDATE`` per
        policy, then a ``<entity>.released`` event per record and one inbox notice per former
        owner. Needs ``assignment:manage`` (the worker runs it as the system)."""
        now = now or utcnow()
        results: list[Released] = []
        with self.crm.transaction(actor) as op:
            op.access.require("assignment:manage")
            for policy in _policies(op, entity):
                results.append(_release(op, policy, now))
        return results

    def releasing_soon(
        self,
        *,
        within_days: int = 3,
        limit: int = 20,
        now: dt.datetime | None = None,
        actor: User | None = None,
    ) -> list[tuple[Policy, Record]]:
        """The actor's own records a release policy will send back to the pool within
        ``within_days`` unless they follow them up (the desk's "my day"), with the policy
        that would release each; only entities the actor may read."""
        when = (now or utcnow()) + dt.timedelta(days=within_days)
        found: list[tuple[Policy, Record]] = []
        with self.crm.transaction(actor, write=False) as op:
            if op.actor is None:
                return []
            for policy in _policies(op, None):
                if op.access.scope(f"{policy.entity}:read") is None or len(found) >= limit:
                    continue
                model: Any = self.crm.entity(policy.entity).model
                due = _due_query(op, policy, when).where(model.owner_id == op.actor.id)
                ids = [row.id for row in op.session.execute(due.limit(limit - len(found)))]
                if not ids:
                    continue
                service = op.records(policy.entity)
                rows = op.session.scalars(select(model).where(model.id.in_(ids)))
                found += [(policy, service.view(op, row)) for row in rows]
        return found

    # -- list and claim --------------------------------------------------------------------

    def pool_records(
        self, entity: str, *, limit: int = 50, after_id: int = 0, actor: User | None = None
    ) -> list[Record]:
        """Records of ``entity`` in the pool (no owner, open), by id. Needs ``pool:claim``:
        the pool is visible to everyone who may claim from it."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("pool:claim")
            model: Any = self.crm.entity(entity).model
            rows = op.session.scalars(
                select(model)
                .where(
                    model.owner_id.is_(None),
                    model.deleted_at.is_(None),
                    open_condition(entity, model),
                    model.id > after_id,
                )
                .order_by(model.id)
                .limit(limit)
            )
            service = op.records(entity)
            return [service.view(op, row) for row in rows]

    def claim(
        self, entity: str, record_ids: Sequence[int], *, actor: User | None = None
    ) -> list[Record]:
        """Take records from the pool: they become the actor's, all or none. Refused, with
        nothing changed, for a record not in the pool and over the actor's limits (claims
        per day, open records owned; ``[crmkit.pool.limits]``). Needs ``pool:claim``.
        A record the actor may not read is "not found" (never who owns it)."""
        if entity not in ASSIGNABLE:
            raise CRMError(
                f"{entity} records are not claimed; the pool holds {', '.join(ASSIGNABLE)}"
            )
        ids = sorted(set(record_ids))
        if not ids:
            raise CRMError("name at least one record to claim")
        with self.crm.transaction(actor) as op:
            op.access.require("pool:claim")
            if op.actor is None:
                raise PermissionDenied("only a user can claim records from the pool")
            model: Any = self.crm.entity(entity).model
            # one claimer at a time per user: their limits are counted, then used
            op.session.scalars(select(User.id).where(User.id == op.actor.id).with_for_update())
            rows = {
                row.id: row
                for row in op.session.scalars(
                    select(model)
                    .where(model.id.in_(ids), model.deleted_at.is_(None))
                    .with_for_update()
                )
            }
            for record_id in ids:
                row = rows.get(record_id)
                if row is None:
                    raise NotFoundError(entity, record_id)
                if row.owner_id is not None:
                    raise _not_in_pool(op, entity, row)
            _check_limits(op, entity, model, len(ids))
            service = op.records(entity)
            now = utcnow()
            with op.elevated(), ownership_reason(op, "claim", "claimed from the pool"):
                for record_id in ids:
                    service.update(
                        record_id, {"owner_id": op.actor.id, "team_id": op.actor.team_id}
                    )
            op.session.execute(
                insert(PoolClaim),
                [
                    {
                        "user_id": op.actor.id,
                        "entity": entity,
                        "record_id": record_id,
                        "claimed_at": now,
                    }
                    for record_id in ids
                ],
            )
            for record_id in ids:
                op.emit(
                    f"{entity}.claimed",
                    {"owner_id": op.actor.id},
                    record_type=entity,
                    record_id=record_id,
                )
            return [service.view(op, rows[record_id]) for record_id in ids]


def _not_in_pool(op: Operation, entity: str, row: Any) -> CRMError:
    """Why an owned record cannot be claimed, saying only what the claimer may see: a
    record outside their ``<entity>:read`` scope is "not found", as one that does not exist
    (the pool is everyone's to see, the owned records are not); the owner is named only to
    a claimer from whom no field rule hides ``owner_id``."""
    if row.id not in readable_record_ids(op, entity, [row.id]):
        return NotFoundError(entity, row.id)
    if "owner_id" in op.access.hidden_fields(entity) and not op.access.unrestricted:
        return CRMError(f"{entity} {row.id} is not in the pool: it has an owner")
    owner = op.session.get(User, row.owner_id)
    who = owner.username if owner is not None else f"user {row.owner_id}"
    return CRMError(f"{entity} {row.id} is not in the pool: {who} owns it")


def _check_limits(op: Operation, entity: str, model: Any, wanted: int) -> None:
    assert op.actor is not None
    limits = op.crm.settings.assignment.limits(entity)
    if limits.claims_per_day is not None:
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        claimed = int(
            op.session.scalar(
                select(func.count()).where(
                    PoolClaim.user_id == op.actor.id,
                    PoolClaim.entity == entity,
                    PoolClaim.claimed_at >= today,
                )
            )
            or 0
        )
        if claimed + wanted > limits.claims_per_day:
            raise CRMError(
                f"claim limit: {op.actor.username} may claim {limits.claims_per_day} {entity}s"
                f" a day and has claimed {claimed} today; {wanted} more would exceed it"
            )
    if limits.max_owned is not None:
        owned = int(
            op.session.scalar(
                select(func.count())
                .select_from(model)
                .where(
                    model.owner_id == op.actor.id,
                    model.deleted_at.is_(None),
                    open_condition(entity, model),
                )
            )
            or 0
        )
        if owned + wanted > limits.max_owned:
            raise CRMError(
                f"ownership limit: {op.actor.username} may own {limits.max_owned} open"
                f" {entity}s and owns {owned}; claiming {wanted} more would exceed it"
            )


def _policies(op: Operation, entity: str | None) -> list[Policy]:
    configured = [
        Policy(p.entity, p.name, p.days, dict(p.when), source="config")
        for p in op.crm.settings.assignment.pool_policies
        if entity is None or p.entity == entity
    ]
    query = select(PoolPolicy).order_by(PoolPolicy.entity, PoolPolicy.id)
    if entity is not None:
        query = query.where(PoolPolicy.entity == entity)
    stored = [
        Policy(p.entity, p.name, p.days, dict(p.conditions)) for p in op.session.scalars(query)
    ]
    return configured + stored


def _check_policy(
    op: Operation, entity: str, name: str, days: int, when: Mapping[str, Any]
) -> None:
    op.crm.entity(entity)
    if entity not in _ACTIVITY_LINK:
        raise CRMError(f"pool policies apply to {', '.join(_ACTIVITY_LINK)}, not {entity}")
    if not name.strip():
        raise CRMError("a pool policy needs a name")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise CRMError(f"days must be a whole number of at least 1, not {days!r}")
    entity_type = op.crm.entity(entity)
    with op.elevated():  # a policy applies to every record, whoever defines it
        SegmentCompiler(op, explain=True).conditions(entity_type, when)


def _due_query(op: Operation, policy: Policy, now: dt.datetime) -> Any:
    """``SELECT id, owner_id`` of the records ``policy`` releases at ``now``: owned, live,
    open, in the segment, older than the cutoff, with no activity and no change of owner
    since the cutoff. One statement, anti-joins instead of per-record look-ups."""
    entity_type = op.crm.entity(policy.entity)
    model: Any = entity_type.model
    cutoff = now - dt.timedelta(days=policy.days)
    link = _ACTIVITY_LINK[policy.entity]
    followed_up = exists().where(
        link == model.id, Activity.deleted_at.is_(None), Activity.occurred_at >= cutoff
    )
    moved = exists().where(
        OwnershipChange.entity == policy.entity,
        OwnershipChange.record_id == model.id,
        OwnershipChange.changed_at >= cutoff,
    )
    with op.elevated():  # the policy's segment, over every record
        segment = SegmentCompiler(op).conditions(entity_type, policy.when)
    return select(model.id, model.owner_id).where(
        model.owner_id.is_not(None),
        model.deleted_at.is_(None),
        model.created_at < cutoff,
        open_condition(policy.entity, model),
        ~followed_up,
        ~moved,
        *segment,
    )


def _release(op: Operation, policy: Policy, now: dt.datetime) -> Released:
    model: Any = op.crm.entity(policy.entity).model
    batch = str(uuid.uuid4())
    detail = f"pool policy {policy.name!r}: no follow-up for {policy.days} days"
    history: Any = OwnershipChange.__table__
    # The scan is one statement; its rows are written back in bulk. (An INSERT ... SELECT
    # of the same anti-joins took 8 s where the SELECT takes 0.7 s at 400 000 accounts on
    # PostgreSQL: the planner does not treat the inserting form the same way.)
    due = list(
        op.session.execute(_due_query(op, policy, now).order_by(model.id).with_for_update(of=model))
    )
    if due:
        bulk_insert(
            op.session.connection(),
            history,
            [
                {
                    "entity": policy.entity,
                    "record_id": record_id,
                    "previous_owner_id": owner_id,
                    "owner_id": None,
                    "reason": "release",
                    "detail": detail,
                    "actor_id": op.actor_id,
                    "batch": batch,
                    "changed_at": now,
                }
                for record_id, owner_id in due
            ],
        )
    released = select(OwnershipChange.record_id).where(OwnershipChange.batch == batch)
    op.session.execute(
        update(model)
        .where(model.id.in_(released))
        .values(owner_id=None, version=model.version + 1, updated_at=now, updated_by_id=op.actor_id)
        .execution_options(synchronize_session=False)
    )
    rows = [(record_id, owner_id) for record_id, owner_id in due]
    by_owner: dict[int, list[int]] = {}
    for record_id, owner_id in rows:
        by_owner.setdefault(owner_id or 0, []).append(record_id)
        op.emit(
            f"{policy.entity}.released",
            {"previous_owner_id": owner_id, "policy": policy.name, "days": policy.days},
            record_type=policy.entity,
            record_id=record_id,
        )
    if rows:
        audit_rows(
            op,
            "pool.release",
            policy.entity,
            [(record_id, {"owner_id": [owner_id, None]}) for record_id, owner_id in rows],
        )
        op.session.execute(
            insert(Notification),
            [
                {
                    "user_id": owner_id,
                    "created_at": now,
                    "kind": f"{policy.entity}.released",
                    "title": f"{len(ids)} {policy.entity}(s) went back to the shared pool",
                    "body": f"{detail}: "
                    + ", ".join(f"{policy.entity} {i}" for i in ids[:50])
                    + (" …" if len(ids) > 50 else ""),
                    "event_id": None,
                    "read_at": None,
                }
                for owner_id, ids in by_owner.items()
            ],
        )
    return Released(policy.entity, policy.name, len(rows), len(by_owner))


def check_config_policies(op: Operation, policies: Sequence[PoolPolicyConfig]) -> None:
    """Validate the config file's policies (fields, operators) against the entities."""
    for policy in policies:
        _check_policy(op, policy.entity, policy.name, policy.days, policy.when)


def release_job(crm: CRM) -> ScheduledJob:
    """The scheduled job that runs :meth:`PoolService.release` every
    ``[crmkit.pool] release_interval_seconds`` (once per interval across all workers)."""
    from crmkit.services.scheduler import ScheduledJob

    def release(context: JobContext) -> str:
        results = context.crm.pool.release()
        released = [result for result in results if result.records]
        return "; ".join(
            f"{result.policy}: released {result.records} {result.entity}(s)" for result in released
        )

    return ScheduledJob(
        "pool.release",
        release,
        every_seconds=crm.settings.assignment.release_interval_seconds,
        description="release records to the shared pool per the pool policies",
    )
