"""The duplicate contract shared by the core and duplicate-detection plugins.

The core asks ``crmkit_find_duplicates`` when a contact, lead or account is created or updated
(and the collision policy of the assignment rules uses the same answer). A plugin answers
with :class:`DuplicateMatch` objects; the core ships a simple exact e-mail/phone check as the
fallback for when no plugin answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from attrs import field, frozen


class DuplicateAction(StrEnum):
    """What a matching rule asks the core to do with a new or changed record."""

    BLOCK = "block"  # refuse the write; the error lists the matches
    WARN = "warn"  # write it, and flag it (event + the record's ``duplicate_warnings``)
    ALLOW = "allow"  # write it; the match is only reported


def _reasons(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@frozen
class DuplicateMatch:
    """An existing record that looks like the same customer as the one being written.

    ``score`` is in [0, 1]; ``reasons`` say in words why (``"same phone +8613812345678"``,
    ``"name 張偉 ~ 张伟 (Traditional/Simplified)"``); ``rule`` names the matching rule and
    ``action`` is what that rule asks for. ``owner_id`` is the match's owner, which the
    collision policy compares with the new record's owner.
    """

    entity: str
    record_id: int
    score: float
    action: DuplicateAction = field(converter=DuplicateAction)
    reasons: tuple[str, ...] = field(default=(), converter=_reasons)
    rule: str | None = None
    owner_id: int | None = None
    label: str | None = None  # a human name for the match: "張偉 (contact 42)"


__all__ = ["DuplicateAction", "DuplicateMatch"]
