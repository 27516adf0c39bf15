"""What a duplicate check or a collision may tell an actor about records they cannot read.

A duplicate check compares the caller's values with every live record, whatever the caller's
scope: the collision policy (撞单) must see a customer another rep owns. Its answer, though,
is the caller's to read, so it goes through :func:`disclosed_matches` first:

* a record the actor may read (``<entity>:read`` covers it) keeps its id, score and label,
  and the reasons whose fields no field rule hides from the actor;
* a record outside the actor's scope is "a record you cannot see matches": its entity, the
  rule and action that matched, and its owner (id and user name), the person 撞单 handling
  must talk to. Never its id, label, score or reasons.

The 409 of a refused create or update, the warnings a write returns, an import's row
warnings, the dedupe plugin's check and its review all use these rules (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, false, select
from sqlalchemy.orm import Session

from crmkit.duplicates import DisclosedMatch, DuplicateMatch
from crmkit.entities.organisation import User
from crmkit.permissions.access import Access
from crmkit.services.operation import Operation
from crmkit.services.queries import scope_condition

#: The fields a match's label is made of: a label is withheld when either is hidden.
LABEL_FIELDS = frozenset({"full_name", "name"})
_CHUNK = 500


def readable_record_ids(op: Operation, entity: str, ids: Iterable[int]) -> frozenset[int]:
    """The ids among ``ids`` of live ``entity`` records the actor may read (their
    ``<entity>:read`` scope covers them). An actor without that permission reads none;
    an unknown entity has none."""
    return _readable(op.session, op.crm.entities, op.access, entity, ids)


def readable_record_ids_for(
    op: Operation, access: Access, entity: str, ids: Iterable[int]
) -> frozenset[int]:
    """:func:`readable_record_ids` for another user's ``access`` (what a notice written for
    them, in the actor's operation, may name)."""
    return _readable(op.session, op.crm.entities, access, entity, ids)


def readable_ids_query(op: Operation, entity: str) -> Select[Any]:
    """``SELECT id`` of the live ``entity`` records the actor may read, to use inside a query
    of your own (``candidate.id_b IN readable_ids_query(op, "contact")``): the SQL twin of
    :func:`readable_record_ids`. Selects nothing for an actor without ``<entity>:read``."""
    kind = op.crm.entity(entity)
    model: Any = kind.model
    access = op.access
    query = select(model.id).where(model.deleted_at.is_(None))
    if access.scope(kind.permission("read")) is None:
        return query.where(false())
    condition = scope_condition(access, op.crm.entities, kind)
    return query if condition is None else query.where(condition)


def _readable(
    session: Session,
    entities: Mapping[str, Any],
    access: Access,
    entity: str,
    ids: Iterable[int],
) -> frozenset[int]:
    wanted = sorted({int(i) for i in ids})
    kind = entities.get(entity)
    if not wanted or kind is None or access.scope(kind.permission("read")) is None:
        return frozenset()
    model: Any = kind.model
    condition = scope_condition(access, entities, kind)
    found: set[int] = set()
    for start in range(0, len(wanted), _CHUNK):
        query = select(model.id).where(
            model.id.in_(wanted[start : start + _CHUNK]), model.deleted_at.is_(None)
        )
        if condition is not None:
            query = query.where(condition)
        found.update(session.scalars(query))
    return frozenset(found)


def disclosed_matches(
    op: Operation, entity: str, matches: Sequence[DuplicateMatch]
) -> list[DisclosedMatch]:
    """``matches`` of a record of ``entity`` as the operation's actor may see them (see the
    module docstring and :class:`crmkit.DisclosedMatch`), in the same order."""
    return disclose(op.session, op.crm.entities, op.access, entity, matches)


def disclose(
    session: Session,
    entities: Mapping[str, Any],
    access: Access,
    entity: str,
    matches: Sequence[DuplicateMatch],
) -> list[DisclosedMatch]:
    """:func:`disclosed_matches` for any actor's ``access`` (a collision notice is written
    for the other owner, whose rights differ from the actor's)."""
    if not matches:
        return []
    readable: dict[str, frozenset[int]] = {}
    for target in {m.entity for m in matches}:
        ids = [m.record_id for m in matches if m.entity == target]
        readable[target] = _readable(session, entities, access, target, ids)
    owners = {m.owner_id for m in matches if m.owner_id is not None}
    names: dict[int, str] = (
        dict(session.execute(select(User.id, User.username).where(User.id.in_(owners))).all())
        if owners
        else {}
    )
    own_hidden = access.hidden_fields(entity)
    shown: list[DisclosedMatch] = []
    for match in matches:
        owner_name = names.get(match.owner_id) if match.owner_id is not None else None
        if match.record_id not in readable[match.entity]:
            shown.append(
                DisclosedMatch(
                    entity=match.entity,
                    visible=False,
                    action=match.action,
                    rule=match.rule,
                    owner_id=match.owner_id,
                    owner_name=owner_name,
                )
            )
            continue
        hidden = own_hidden | access.hidden_fields(match.entity)
        reasons = _disclosed_reasons(match, hidden)
        shown.append(
            DisclosedMatch(
                entity=match.entity,
                visible=True,
                action=match.action,
                record_id=match.record_id,
                score=match.score,
                reasons=reasons,
                rule=match.rule,
                owner_id=match.owner_id,
                owner_name=owner_name,
                label=None if hidden & LABEL_FIELDS else match.label,
                withheld_reasons=len(match.reasons) - len(reasons),
            )
        )
    return shown


def _disclosed_reasons(match: DuplicateMatch, hidden: frozenset[str]) -> tuple[str, ...]:
    """The reasons about fields none of which is ``hidden``. Without ``reason_fields`` (or
    with a count that does not fit) the reasons are all-or-nothing: shown only when nothing
    is hidden."""
    if not hidden:
        return match.reasons
    fields = match.reason_fields
    if len(fields) != len(match.reasons):
        return ()
    return tuple(
        reason
        for reason, names in zip(match.reasons, fields, strict=True)
        if names and not hidden.intersection(names)
    )
