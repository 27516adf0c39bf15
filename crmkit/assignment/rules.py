"""Rule definitions and how they are judged: conditions on a record's values, members,
candidates, and the decision a rule takes (with the reasons ``crmkit rules test`` shows)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from crmkit.entities.equality import fold_case, same_text

if TYPE_CHECKING:
    from crmkit.app import CRM
    from crmkit.services.operation import Operation

#: The condition operators: the same as the filters of lists (``field__operator``).
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "empty")
_OPERATOR_WORDS = {
    "eq": "=",
    "ne": "≠",
    "lt": "<",
    "lte": "≤",
    "gt": ">",
    "gte": "≥",
    "in": "in",
    "contains": "contains",
    "empty": "is empty",
}


class Strategy(enum.StrEnum):
    """The built-in ways a rule picks one of its members."""

    ROUND_ROBIN = "round_robin"  # take turns, fair across processes
    LEAST_LOADED = "least_loaded"  # the member with the fewest open records of the entity
    WEIGHTED = "weighted"  # take turns in proportion to the members' weights
    TERRITORY = "territory"  # a field value names the member (region → rep)
    FIXED = "fixed"  # always the first available member


#: Strategies that need the rule's turn counter (advanced once per assignment).
TURN_STRATEGIES = frozenset({Strategy.ROUND_ROBIN, Strategy.WEIGHTED, Strategy.TERRITORY})


def _frozen_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


@frozen
class Condition:
    """``field operator value``; ``value`` is already parsed as the field's values are
    (numbers, dates, normalised phone numbers), so it compares like for like, with the same
    equality as list filters (``crmkit.entities.equality``): exact, letter case folded for a
    field declared ``ignore_case`` (``ignore_case`` here)."""

    field: str
    operator: str
    value: Any = None
    ignore_case: bool = False

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether the record with ``values`` meets the condition."""
        actual = values.get(self.field)
        operator = self.operator
        if operator == "empty":
            empty = actual is None or actual == "" or actual == []
            return empty if _truthy(self.value) else not empty
        fold = self.ignore_case
        if operator == "eq":
            return bool(_same(actual, self.value, fold))
        if operator == "ne":
            return not _same(actual, self.value, fold)
        if operator == "in":
            return any(_same(actual, item, fold) for item in self.value)
        if operator == "contains":
            if isinstance(actual, list | tuple):
                return any(_same(item, self.value, fold) for item in actual)
            return actual is not None and fold_case(str(self.value)) in fold_case(str(actual))
        if actual is None:
            return False
        try:
            if operator == "lt":
                return bool(actual < self.value)
            if operator == "lte":
                return bool(actual <= self.value)
            if operator == "gt":
                return bool(actual > self.value)
            return bool(actual >= self.value)
        except TypeError:
            return False

    def describe(self) -> str:
        """``amount ≥ 1000``, ``region in 华东, 华南``."""
        word = _OPERATOR_WORDS[self.operator]
        if self.operator == "empty":
            return f"{self.field} {word}" if _truthy(self.value) else f"{self.field} is not empty"
        if self.operator == "in":
            return f"{self.field} in {', '.join(str(v) for v in self.value)}"
        return f"{self.field} {word} {self.value}"


def _truthy(value: object) -> bool:
    return value is None or value is True or str(value).strip().lower() in {"1", "true", "yes"}


def _same(actual: Any, expected: Any, ignore_case: bool) -> bool:
    if actual is None or expected is None:
        return actual is expected
    if isinstance(actual, str) and isinstance(expected, str):
        return same_text(actual, expected, ignore_case=ignore_case)
    if isinstance(actual, bool) or isinstance(expected, bool):  # bool is an int: not a number
        return actual is expected
    if isinstance(actual, decimal.Decimal | int | float) and isinstance(
        expected, decimal.Decimal | int | float
    ):
        return decimal.Decimal(str(actual)) == decimal.Decimal(str(expected))
    return bool(actual == expected)


def territory_key(crm: CRM, entity: str, name: str) -> Callable[[object], str | None]:
    """How a territory map's values meet the records' values of field ``name``: trimmed, then
    compared with the field's equality (letter case folded only for an ``ignore_case``
    field); a blank value maps to nothing (``None``)."""
    custom = crm.custom_fields.get(entity, {}).get(name)
    fold = custom is not None and custom.ignore_case

    def key(value: object) -> str | None:
        if value is None or value == "":
            return None
        text = str(value).strip()
        return fold_case(text) if fold else text

    return key


def split_filter_key(key: str) -> tuple[str, str]:
    """``"amount__gte"`` → ``("amount", "gte")``; ``"city"`` → ``("city", "eq")``."""
    name, _, operator = key.partition("__")
    return name, operator or "eq"


@frozen
class Member:
    """A user or a team a rule hands records to. ``label`` is how people name it:
    ``alice`` or ``team:East``."""

    label: str
    user_id: int | None = None
    team_id: int | None = None
    weight: int = 1
    capacity: int | None = None
    territory: str | None = None


@frozen
class Rule:
    """One assignment rule, from the database or the config file.

    ``key`` identifies its turn counter (``db:12``, ``config:lead:web leads``)."""

    key: str
    entity: str
    name: str
    strategy: str
    conditions: tuple[Condition, ...] = field(default=(), converter=_frozen_tuple)
    members: tuple[Member, ...] = field(default=(), converter=_frozen_tuple)
    territory_field: str | None = None
    default_member: str | None = None  # the territory strategy's member for unmapped values
    source: str = "database"
    position: int = 0
    #: conditions judged in the database (segments, relations, measures: ``segment=NAME``,
    #: ``account.city=上海``), in the filter syntax
    filters: Mapping[str, Any] = field(factory=dict)

    def failed_condition(self, values: Mapping[str, Any]) -> Condition | None:
        """The first condition ``values`` do not meet, or ``None`` when all hold."""
        return next((c for c in self.conditions if not c.holds(values)), None)


@frozen
class Candidate:
    """A user a rule could pick: active, not away, under capacity. ``open_records`` is set
    for strategies that weigh load (and when a member has a capacity)."""

    user_id: int
    username: str
    team_id: int | None
    member: Member
    open_records: int | None = None


@frozen
class AssignmentRequest:
    """What a strategy decides on: the rule, the record's values, the eligible candidates
    (in member order), and the rule's turn number when the strategy takes turns.

    ``op`` is the operation assigning the record (``None`` only where a strategy is called
    outside one, as in unit tests): read your plugin's settings with
    ``request.crm.plugin_settings("<plugin>")`` and query in its transaction with
    ``request.op.records(...)`` instead of keeping state in module globals."""

    entity: str
    rule: Rule
    values: Mapping[str, Any]
    candidates: tuple[Candidate, ...]
    turn: int = 0
    op: Operation | None = field(default=None, eq=False, repr=False)

    @property
    def crm(self) -> CRM:
        """The CRM of the operation assigning the record."""
        if self.op is None:
            raise ValueError("this AssignmentRequest was made outside an operation")
        return self.op.crm


@frozen
class Choice:
    """A strategy's answer: the candidate, and why in a few words."""

    candidate: Candidate
    reason: str


StrategyFunction = Callable[[AssignmentRequest], "Choice | Candidate | None"]


@frozen
class AssignmentStrategy:
    """A strategy a plugin registers (``crmkit_assignment_strategies``).

    ``choose(request)`` returns one of ``request.candidates`` (or a ``Choice`` with a
    reason), or ``None`` when no candidate fits (the next rule is tried). ``takes_turns``
    asks for the rule's turn counter in ``request.turn`` (fair across processes);
    ``needs_load`` fills ``open_records`` of every candidate."""

    name: str
    choose: StrategyFunction
    description: str = ""
    takes_turns: bool = False
    needs_load: bool = False


@frozen
class Decision:
    """Who gets a record: the user (and their team), the rule and strategy, and why."""

    user_id: int
    username: str
    team_id: int | None
    rule: str
    strategy: str
    reason: str


@frozen
class Explanation:
    """What ``rules test`` shows: each rule tried, in order, and the decision (if any)."""

    entity: str
    steps: tuple[str, ...]
    decision: Decision | None


def away_now(away_until: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether an availability entry (``away_until``, ``None``: open-ended) is in force."""
    return away_until is None or away_until > now
