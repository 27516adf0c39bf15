"""A public door to the duplicate check for plugins that prepare records before writing
them (the card scanner's drafts): the same answer the core gets on create, disclosed as the
actor may see it (``crmkit.disclosed_matches``: a record outside their scope is only "a
record you cannot see matches", with its owner)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from crmkit.duplicates import DisclosedMatch
from crmkit.services import collisions
from crmkit.services.disclosure import disclosed_matches
from crmkit.services.operation import Operation


@frozen
class DuplicateCheck:
    """What :func:`check_duplicates` found: every match as the actor may see it."""

    matches: tuple[DisclosedMatch, ...] = ()

    @property
    def visible(self) -> tuple[DisclosedMatch, ...]:
        """The matches the actor may read (id, label, reasons)."""
        return tuple(match for match in self.matches if match.visible)

    @property
    def hidden(self) -> int:
        """How many matches lie outside the actor's read scope."""
        return sum(1 for match in self.matches if not match.visible)

    @property
    def found(self) -> bool:
        """Whether anything matched, visible or not."""
        return bool(self.matches)


def check_duplicates(
    op: Operation, entity: str, values: Mapping[str, Any], record_id: int | None = None
) -> DuplicateCheck:
    """Ask the duplicate check (a duplicate plugin first, the core's exact e-mail/phone
    check last) whether a ``entity`` record with ``values`` would duplicate an existing one,
    without writing anything. ``values`` are raw field values: they are validated and
    normalised as a write would (a bad value is a ``ValidationError``). The matches come
    back disclosed for ``op``'s actor (``crmkit.disclosed_matches``).

    Example::

        with crm.transaction(actor, write=False) as op:
            check = crmkit.check_duplicates(op, "contact", {"full_name": "张伟",
                                                            "phone": "138 1234 5678"})
            for match in check.matches:
                print(match.describe(), match.reasons)
    """
    columns, custom = op.crm.preparer(entity).prepare(
        {k: v for k, v in values.items() if v not in (None, "")}, creating=False
    )
    matches = collisions.find_duplicates(op, entity, {**columns, **custom}, record_id)
    return DuplicateCheck(matches=tuple(disclosed_matches(op, entity, matches)))


__all__ = ["DuplicateCheck", "check_duplicates"]
