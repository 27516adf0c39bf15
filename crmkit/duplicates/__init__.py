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


def _reason_fields(values: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(names) for names in values)


@frozen
class DuplicateMatch:
    """An existing record that looks like the same customer as the one being written.

    ``score`` is in [0, 1]; ``reasons`` say in words why (``"same phone +8613812345678"``,
    ``"name 張偉 ~ 张伟 (Traditional/Simplified)"``); ``rule`` names the matching rule and
    ``action`` is what that rule asks for. ``owner_id`` is the match's owner, which the
    collision policy compares with the new record's owner.

    ``reason_fields`` says which fields each reason draws on (``reasons[n]`` on
    ``reason_fields[n]``: ``(("phone", "extra_phones"), ("full_name",))``), so the core can
    leave out a reason about a field a field rule hides from the actor (see
    :class:`DisclosedMatch`). A match without it discloses its reasons only to an actor from
    whom no field of either entity is hidden.
    """

    entity: str
    record_id: int
    score: float
    action: DuplicateAction = field(converter=DuplicateAction)
    reasons: tuple[str, ...] = field(default=(), converter=_reasons)
    rule: str | None = None
    owner_id: int | None = None
    label: str | None = None  # a human name for the match: "張偉 (contact 42)"
    reason_fields: tuple[tuple[str, ...], ...] = field(default=(), converter=_reason_fields)


@frozen
class DisclosedMatch:
    """A :class:`DuplicateMatch` as one actor may see it (``crmkit.disclosed_matches``).

    A record the actor may read (``visible``) keeps its id, score and label, and the reasons
    about fields no field rule hides from the actor. A record outside the actor's scope is
    only "a record you cannot see matches": its entity, the rule and action that matched, and
    the owner (``owner_id``, ``owner_name``) whom 撞单 handling must talk to; no id, no label,
    no score, no reasons. See docs/security.md.
    """

    entity: str
    visible: bool
    action: DuplicateAction = field(converter=DuplicateAction)
    record_id: int | None = None
    score: float | None = None
    reasons: tuple[str, ...] = field(default=(), converter=_reasons)
    rule: str | None = None
    owner_id: int | None = None
    owner_name: str | None = None
    label: str | None = None
    #: how many reasons were left out (about fields hidden from the actor)
    withheld_reasons: int = 0

    def describe(self) -> str:
        """One line for messages: ``张伟 (contact 42)``, or ``a contact you cannot see``."""
        if not self.visible:
            return f"a {self.entity} you cannot see"
        return self.label or f"{self.entity} {self.record_id}"

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of the API (a 409's ``matches``, the dedupe check)."""
        return {
            "entity": self.entity,
            "visible": self.visible,
            "record_id": self.record_id,
            "score": self.score,
            "action": self.action.value,
            "reasons": list(self.reasons),
            "withheld_reasons": self.withheld_reasons,
            "rule": self.rule,
            "owner_id": self.owner_id,
            "owner_name": self.owner_name,
            "label": self.label,
        }


__all__ = ["DisclosedMatch", "DuplicateAction", "DuplicateMatch"]
