"""The built-in strategies. Each takes an :class:`AssignmentRequest` whose candidates are
already eligible (active, not away, under capacity) and returns a :class:`Choice` or
``None``."""

from __future__ import annotations

from collections.abc import Sequence

from crmkit.assignment.rules import (
    AssignmentRequest,
    AssignmentStrategy,
    Candidate,
    Choice,
    Strategy,
    territory_key,
)


def weighted_schedule(weights: Sequence[int]) -> list[int]:
    """Indexes into ``weights`` in smooth weighted round-robin order (nginx's): over one
    cycle of ``sum(weights)`` turns index ``i`` appears exactly ``weights[i]`` times, and the
    turns of each are spread out rather than bunched (weights 5, 1, 1 → a a b a c a a)."""
    total = sum(weights)
    current = [0] * len(weights)
    order: list[int] = []
    for _ in range(total):
        for index, weight in enumerate(weights):
            current[index] += weight
        best = max(range(len(weights)), key=lambda i: (current[i], -i))
        current[best] -= total
        order.append(best)
    return order


def round_robin(request: AssignmentRequest) -> Choice | None:
    """Take turns: the rule's n-th assignment goes to candidate n mod count."""
    candidates = request.candidates
    if not candidates:
        return None
    chosen = candidates[request.turn % len(candidates)]
    return Choice(chosen, f"round-robin turn {request.turn} of {len(candidates)} member(s)")


def weighted(request: AssignmentRequest) -> Choice | None:
    """Take turns in proportion to the members' weights."""
    candidates = request.candidates
    if not candidates:
        return None
    weights = [max(c.member.weight, 0) for c in candidates]
    if sum(weights) == 0:
        return None
    schedule = weighted_schedule(weights)
    chosen = candidates[schedule[request.turn % len(schedule)]]
    return Choice(
        chosen, f"weighted turn {request.turn}: weight {chosen.member.weight} of {sum(weights)}"
    )


def least_loaded(request: AssignmentRequest) -> Choice | None:
    """The candidate with the fewest open records of the entity (first in member order on
    a tie)."""
    if not request.candidates:
        return None
    chosen = min(request.candidates, key=lambda c: c.open_records or 0)
    loads = ", ".join(f"{c.username} {c.open_records or 0}" for c in request.candidates)
    return Choice(chosen, f"fewest open {request.entity}s ({loads})")


def territory(request: AssignmentRequest) -> Choice | None:
    """The member the territory map names for the record's value of the territory field
    (turns among a team's users); unmapped values go to the rule's default member."""
    rule = request.rule
    value = request.values.get(rule.territory_field or "")
    key_of = territory_key(request.crm, request.entity, rule.territory_field or "")
    key = key_of(value)
    mapped = any(key_of(m.territory) == key for m in rule.members if key is not None)
    how = f"territory {rule.territory_field} = {value}"
    if mapped:
        wanted = [c for c in request.candidates if key_of(c.member.territory) == key]
    elif rule.default_member is not None:
        wanted = [c for c in request.candidates if c.member.label == rule.default_member]
        how = f"{rule.territory_field} = {value} is not in the territory map: default member"
    else:
        return None
    if not wanted:
        return None
    chosen = wanted[request.turn % len(wanted)]
    return Choice(chosen, how)


def fixed(request: AssignmentRequest) -> Choice | None:
    """Always the first available member."""
    if not request.candidates:
        return None
    return Choice(request.candidates[0], "fixed member")


BUILTIN_STRATEGIES: dict[str, AssignmentStrategy] = {
    Strategy.ROUND_ROBIN: AssignmentStrategy(
        Strategy.ROUND_ROBIN, round_robin, "take turns", takes_turns=True
    ),
    Strategy.WEIGHTED: AssignmentStrategy(
        Strategy.WEIGHTED, weighted, "take turns by weight", takes_turns=True
    ),
    Strategy.LEAST_LOADED: AssignmentStrategy(
        Strategy.LEAST_LOADED, least_loaded, "fewest open records", needs_load=True
    ),
    Strategy.TERRITORY: AssignmentStrategy(
        Strategy.TERRITORY, territory, "a field value names the member", takes_turns=True
    ),
    Strategy.FIXED: AssignmentStrategy(Strategy.FIXED, fixed, "a fixed user or team"),
}


def as_choice(answer: Choice | Candidate | None, strategy: str) -> Choice | None:
    """A plugin strategy may return a bare candidate: wrap it with a reason."""
    if answer is None or isinstance(answer, Choice):
        return answer
    return Choice(answer, f"chosen by strategy {strategy!r}")
