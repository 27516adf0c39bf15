"""The online duplicate check and the collision policy (撞单), on create, update and import
of contacts, leads and accounts.

The core asks ``crmkit_find_duplicates``; its own fallback (an exact match of the normalised
e-mail or phone among live records) is registered last, so a duplicate plugin answers first.
Each match's action is applied (``block`` refuses, ``warn`` writes and flags, ``allow``
writes), then the collision policy looks at matches owned by somebody else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, any_, bindparam, func, insert, or_, select
from sqlalchemy import column as column_clause
from sqlalchemy.dialects.postgresql import ARRAY

from crmkit.assignment.config import CollisionPolicy
from crmkit.db.base import utcnow
from crmkit.duplicates import DisclosedMatch, DuplicateAction, DuplicateMatch
from crmkit.entities.customers import LeadStatus
from crmkit.entities.organisation import User
from crmkit.errors import DuplicateError
from crmkit.permissions.access import Access, load_access
from crmkit.permissions.models import Notification
from crmkit.plugins import hookimpl
from crmkit.services.disclosure import disclose, disclosed_matches, readable_record_ids_for
from crmkit.services.operation import Operation

if TYPE_CHECKING:
    from crmkit.services.assignment import PendingCreate

#: The entities the duplicate check and the collision policy run on.
CHECKED_ENTITIES = ("contact", "lead", "account")
#: Where the fallback looks for each entity: leads are also compared with contacts.
_LOOK_IN = {"contact": ("contact", "lead"), "lead": ("lead", "contact"), "account": ("account",)}
#: The plugin name the core's fallback is registered under.
CORE_CHECK_NAME = "crmkit-core-duplicates"


class CoreDuplicateCheck:
    """The core's fallback implementation of ``crmkit_find_duplicates`` (always on; runs
    after every plugin's)."""

    @hookimpl(trylast=True)
    def crmkit_find_duplicates(
        self, op: Operation, entity: str, values: Mapping[str, Any], record_id: int | None
    ) -> Sequence[DuplicateMatch] | None:
        """Exact normalised e-mail or phone matches among live records."""
        if entity not in _LOOK_IN:
            return None
        return exact_matches(op, entity, [(0, values, record_id)]).get(0, [])


def exact_matches(
    op: Operation,
    entity: str,
    rows: Sequence[tuple[int, Mapping[str, Any], int | None]],
) -> dict[int, list[DuplicateMatch]]:
    """The fallback check for many rows at once (``(key, values, record_id)``): one query per
    entity looked in, whatever the number of rows. Returns the matches by key."""
    emails = {str(v["email"]) for _, v, _ in rows if v.get("email")}
    phones = {str(v["phone"]) for _, v, _ in rows if v.get("phone")}
    found: dict[int, list[DuplicateMatch]] = {}
    if not emails and not phones:
        return found
    action = op.crm.settings.assignment.fallback_duplicate_action
    for target in _LOOK_IN.get(entity, ()):
        model: Any = op.crm.entity(target).model
        label_column = model.name if target == "account" else model.full_name
        wanted = []
        if emails:
            wanted.append(_one_of(op, model.email, emails))
        if phones:
            wanted.append(_one_of(op, model.phone, phones))
        # Deleted rows are skipped here, not in SQL: on PostgreSQL, ``deleted_at IS NULL`` can
        # be answered from the scoped-list indexes that end with deleted_at, and a planner
        # without statistics (a table filled by this very import) then walks one of them
        # over the whole table instead of the e-mail and phone indexes: 3-8 x slower
        # imports at 30 000-100 000 rows.
        query = select(
            model.id,
            model.email,
            model.phone,
            model.owner_id,
            model.deleted_at,
            label_column.label("label"),
        ).where(or_(*wanted))
        if target == "lead":
            query = query.where(model.status != LeadStatus.CONVERTED)
        existing = [row for row in op.session.execute(query) if row.deleted_at is None]
        if not existing:
            continue
        by_email: dict[str, list[Any]] = {}
        by_phone: dict[str, list[Any]] = {}
        for row in existing:
            if row.email:
                by_email.setdefault(row.email, []).append(row)
            if row.phone:
                by_phone.setdefault(row.phone, []).append(row)
        for key, values, record_id in rows:
            hits: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
            rows_by_id: dict[int, Any] = {}
            for column, index in (("email", by_email), ("phone", by_phone)):
                value = values.get(column)
                for row in index.get(str(value), []) if value else []:
                    if target == entity and row.id == record_id:
                        continue
                    word = "e-mail" if column == "email" else "phone"
                    hits.setdefault(row.id, []).append((f"same {word} {value}", (column,)))
                    rows_by_id[row.id] = row
            for match_id, reasons in hits.items():
                row = rows_by_id[match_id]
                found.setdefault(key, []).append(
                    DuplicateMatch(
                        entity=target,
                        record_id=match_id,
                        score=1.0,
                        action=action,
                        reasons=tuple(reason for reason, _ in reasons),
                        reason_fields=tuple(fields for _, fields in reasons),
                        rule="core: exact e-mail/phone",
                        owner_id=row.owner_id,
                        label=f"{row.label} ({target} {match_id})",
                    )
                )
    return found


def _one_of(op: Operation, column: Any, values: set[str]) -> Any:
    """``column IN values`` with the values as ONE bound parameter (a PostgreSQL array, a
    JSON array on SQLite): an import batch brings a thousand e-mails and phones, and a
    thousand-parameter ``IN`` list costs more to compile than to run."""
    if op.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, sorted(values), type_=ARRAY(String())))
    listed: Any = select(column_clause("value")).select_from(
        func.json_each(bindparam(None, json.dumps(sorted(values)), type_=String()))
    )
    return column.in_(listed.scalar_subquery())


def plugins_answer(op: Operation) -> bool:
    """Whether a plugin (not only the core's fallback) implements the duplicate hook."""
    caller = op.crm.host.manager.hook.crmkit_find_duplicates
    return any(impl.plugin_name != CORE_CHECK_NAME for impl in caller.get_hookimpls())


def find_duplicates(
    op: Operation, entity: str, values: Mapping[str, Any], record_id: int | None
) -> list[DuplicateMatch]:
    """Ask the duplicate hook (plugins first, the core's fallback last)."""
    answer = op.crm.host.call(
        "crmkit_find_duplicates", op=op, entity=entity, values=values, record_id=record_id
    )
    return list(answer or [])


def find_duplicates_many(
    op: Operation, entity: str, rows: Sequence[tuple[int, Mapping[str, Any]]]
) -> dict[int, list[DuplicateMatch]]:
    """The duplicate check for a batch of new rows (``(line, values)``): the plugins' batch
    hook when one answers; else the fallback as one query per entity looked in when every
    plugin answering the one-row hook also declined the batch, or one hook call per row
    when a plugin has only the one-row hook."""
    if plugins_answer(op):
        host = op.crm.host
        if host.implemented("crmkit_find_duplicates_many"):
            answer = host.call("crmkit_find_duplicates_many", op=op, entity=entity, rows=rows)
            if answer is not None:
                return {line: list(answer.get(line, ())) for line, _ in rows}
        if not _batch_declined_by_all(op):
            return {line: find_duplicates(op, entity, values, None) for line, values in rows}
    return exact_matches(op, entity, [(line, values, None) for line, values in rows])


def _batch_declined_by_all(op: Operation) -> bool:
    """Whether every plugin answering the one-row duplicate hook also has the batch hook
    (so its declining the batch means the rows are the fallback's)."""
    hooks = op.crm.host.manager.hook
    one = {i.plugin_name for i in hooks.crmkit_find_duplicates.get_hookimpls()}
    many = {i.plugin_name for i in hooks.crmkit_find_duplicates_many.get_hookimpls()}
    return not (one - many - {CORE_CHECK_NAME})


def judge(
    op: Operation,
    entity: str,
    values: Mapping[str, Any],
    matches: Sequence[DuplicateMatch],
) -> PendingCreate:
    """Apply the matches' actions and the collision policy to a record about to be written
    with ``values``: raise ``DuplicateError`` when refused, else say what to flag."""
    # the write path's module, loaded with the first write (a read-only command never does)
    from crmkit.services.assignment import PendingCreate, operation_state

    exempt = operation_state(op).not_duplicates
    if exempt:
        matches = [m for m in matches if (m.entity, m.record_id) not in exempt]
    if not matches:
        return PendingCreate()
    blocked = [m for m in matches if m.action is DuplicateAction.BLOCK]
    if blocked:
        shown = disclosed_matches(op, entity, blocked)
        raise DuplicateError(_message(op, entity, values, shown, "looks like"), shown)
    owner = values.get("owner_id")
    collisions = tuple(m for m in matches if m.owner_id is not None and m.owner_id != owner)
    policy = op.crm.settings.assignment.collision_policy(entity)
    if collisions and policy is CollisionPolicy.BLOCK:
        shown = disclosed_matches(op, entity, collisions)
        raise DuplicateError(
            _message(op, entity, values, shown, "collides with (owned by someone else)")
            + f"; the collision policy of {entity} is 'block'",
            shown,
        )
    warnings = [m for m in matches if m.action is DuplicateAction.WARN]
    if policy is CollisionPolicy.WARN:
        warnings += [m for m in collisions if m not in warnings]
    return PendingCreate(
        warnings=tuple(warnings), collisions=collisions, collision_policy=policy.value
    )


def flag(op: Operation, entity: str, record_id: int, pending: PendingCreate) -> None:
    """After the write: emit ``<entity>.duplicate_suspected`` for warnings, and for a
    collision ``<entity>.collision`` plus a notice in each other owner's inbox."""
    if pending.warnings:
        op.emit(
            f"{entity}.duplicate_suspected",
            {"matches": [_match_payload(m) for m in pending.warnings]},
            record_type=entity,
            record_id=record_id,
        )
    if not pending.collisions:
        return
    event = op.emit(
        f"{entity}.collision",
        {
            "policy": pending.collision_policy,
            "matches": [_match_payload(m) for m in pending.collisions],
        },
        record_type=entity,
        record_id=record_id,
    )
    who = op.actor.username if op.actor is not None else "the system"
    now = utcnow()
    notices: dict[int, list[DuplicateMatch]] = {}
    for match in pending.collisions:
        assert match.owner_id is not None
        notices.setdefault(match.owner_id, []).append(match)
    owners = {
        user.id: user
        for user in op.session.scalars(select(User).where(User.id.in_(sorted(notices))))
    }
    rows = []
    for owner_id, owned in notices.items():
        user = owners.get(owner_id)
        # the notice is the owner's to read: what it says of the match follows their rights
        # (a deactivated owner's inbox gets the notice with nothing of the record in it)
        access = (
            load_access(op.session, user)
            if user is not None and user.is_active
            else Access(user_id=owner_id, username="", unrestricted=False)
        )
        shown = disclose(op.session, op.crm.entities, access, entity, owned)
        # the reasons quote the values just written: only for an owner who may read the new
        # record; to another they name the fields that matched, and the record is unnamed
        if record_id in readable_record_ids_for(op, access, entity, [record_id]):
            title = f"{who} entered {entity} {record_id}, which matches your customer"
            body = "; ".join(
                f"{m.describe()}: {', '.join(m.reasons)}" if m.reasons else m.describe()
                for m in shown
            )
        else:
            title = f"{who} entered a {entity} you cannot see, which matches your customer"
            hidden = access.hidden_fields(entity)
            body = "; ".join(
                _matched_fields(m, d, hidden | access.hidden_fields(m.entity))
                for m, d in zip(owned, shown, strict=True)
            )
        rows.append(
            {
                "user_id": owner_id,
                "created_at": now,
                "kind": f"{entity}.collision",
                "title": title,
                "body": body,
                "event_id": str(event.id),
                "read_at": None,
            }
        )
    if rows:
        op.session.execute(insert(Notification), rows)


def _matched_fields(match: DuplicateMatch, shown: DisclosedMatch, hidden: frozenset[str]) -> str:
    """A collision notice's line for an owner who may not read the new record: the match as
    they may see it and the fields its reasons drew on (not hidden from them), no values."""
    fields = sorted(
        {name for names in match.reason_fields for name in names if name not in hidden}
        if shown.visible and len(match.reason_fields) == len(match.reasons)
        else ()
    )
    return shown.describe() + (f": matched on {', '.join(fields)}" if fields else "")


def _match_payload(match: DuplicateMatch) -> dict[str, Any]:
    return {
        "entity": match.entity,
        "record_id": match.record_id,
        "score": match.score,
        "action": match.action.value,
        "reasons": list(match.reasons),
        "rule": match.rule,
        "owner_id": match.owner_id,
        "label": match.label,
    }


def _message(
    op: Operation,
    entity: str,
    values: Mapping[str, Any],
    matches: Iterable[DisclosedMatch],
    verb: str,
) -> str:
    """The one-line text of a refusal, made of what the actor may see of each match."""
    hidden = op.access.hidden_fields(entity)
    name = next(
        (values[key] for key in ("full_name", "name") if values.get(key) and key not in hidden),
        "the record",
    )
    parts = []
    for match in matches:
        details = list(match.reasons)
        if match.owner_id is not None:
            details.append(f"owned by {match.owner_name or f'user {match.owner_id}'}")
        parts.append(match.describe() + (f" ({', '.join(details)})" if details else ""))
    return f"{entity} {name!r} {verb} {'; '.join(parts)}"
