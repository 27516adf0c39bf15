"""A public door to the duplicate check for plugins that prepare records before writing
them (the card scanner's drafts): the same answer the core gets on create, with what the
actor may not see withheld."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from crmkit.duplicates import DuplicateMatch
from crmkit.services import collisions
from crmkit.services.operation import Operation
from crmkit.services.queries import RECORD_ID, visible_by_id


@frozen
class DuplicateCheck:
    """What :func:`check_duplicates` found.

    ``matches`` are the existing records the actor may read, with the check's reasons;
    ``hidden`` counts the matches outside the actor's read scope: the caller may say "a
    record you cannot see matches" (the collision rule needs that), never what it holds.
    """

    matches: tuple[DuplicateMatch, ...] = ()
    hidden: int = 0

    @property
    def found(self) -> bool:
        """Whether anything matched, visible or not."""
        return bool(self.matches) or self.hidden > 0


def check_duplicates(
    op: Operation, entity: str, values: Mapping[str, Any], record_id: int | None = None
) -> DuplicateCheck:
    """Ask the duplicate check (a duplicate plugin first, the core's exact e-mail/phone
    check last) whether a ``entity`` record with ``values`` would duplicate an existing one,
    without writing anything. ``values`` are raw field values: they are validated and
    normalised as a write would (a bad value is a ``ValidationError``). Matches the actor
    cannot read are counted in ``hidden`` and nothing else about them is returned.

    Example::

        with crm.transaction(actor, write=False) as op:
            check = crmkit.check_duplicates(op, "contact", {"full_name": "张伟",
                                                            "phone": "138 1234 5678"})
            for match in check.matches:
                print(match.label, match.reasons)
    """
    crm = op.crm
    columns, custom = crm.preparer(entity).prepare(
        {k: v for k, v in values.items() if v not in (None, "")}, creating=False
    )
    prepared = {**columns, **custom}
    matches = collisions.find_duplicates(op, entity, prepared, record_id)
    shown: list[DuplicateMatch] = []
    hidden = 0
    for match in matches:
        if _may_read(op, match.entity, match.record_id):
            shown.append(match)
        else:
            hidden += 1
    return DuplicateCheck(matches=tuple(shown), hidden=hidden)


def _may_read(op: Operation, entity: str, record_id: int) -> bool:
    if op.access.unrestricted:
        return True
    if op.access.scope(f"{entity}:read") is None:
        return False
    query = visible_by_id(op, op.crm.entity(entity))
    return op.session.scalars(query, {RECORD_ID: record_id}).first() is not None


__all__ = ["DuplicateCheck", "check_duplicates"]
