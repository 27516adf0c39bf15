"""The assignment settings of ``crmkit.toml``: ``[crmkit.assignment]`` (rules, collision
policy, hand-over) and ``[crmkit.pool]`` (release policies, claim limits)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from attrs import field, frozen

from crmkit.duplicates import DuplicateAction
from crmkit.errors import ConfigError

_E = TypeVar("_E", bound=enum.StrEnum)


class CollisionPolicy(enum.StrEnum):
    """What happens when a new or changed record matches one somebody else owns (撞单)."""

    BLOCK = "block"  # refuse the write (DuplicateError)
    WARN = "warn"  # write it, flag it (warning + event), notify the owner
    ALLOW_AND_NOTIFY = "allow_and_notify"  # write it, notify the owner


class HandoverFallback(enum.StrEnum):
    """Where a deactivated user's record goes when no assignment rule matches it."""

    MANAGER = "manager"  # their manager (up the chain), else the shared pool
    POOL = "pool"  # the shared pool


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@frozen
class RuleConfig:
    """An assignment rule written in the config file (``[[crmkit.assignment.rules]]``)."""

    entity: str
    name: str
    strategy: str
    members: tuple[str, ...] = field(default=(), converter=_names)
    when: Mapping[str, Any] = field(factory=dict)
    weights: Mapping[str, int] = field(factory=dict)
    capacity: Mapping[str, int] = field(factory=dict)
    territory_field: str | None = None
    territory: Mapping[str, str] = field(factory=dict)
    default_member: str | None = None


@frozen
class PoolPolicyConfig:
    """A release policy written in the config file (``[[crmkit.pool.policies]]``)."""

    entity: str
    name: str
    days: int
    when: Mapping[str, Any] = field(factory=dict)


@frozen
class ClaimLimits:
    """How much one user may take from the pool: claims per day and open records owned
    (``None``: no limit)."""

    claims_per_day: int | None = 20
    max_owned: int | None = None


@frozen
class AssignmentSettings:
    """Everything configurable about assignment, the pool and collisions."""

    rules: tuple[RuleConfig, ...] = ()
    collision: Mapping[str, CollisionPolicy] = field(factory=dict)
    fallback_duplicate_action: DuplicateAction = DuplicateAction.WARN
    handover_without_rule: HandoverFallback = HandoverFallback.POOL
    pool_policies: tuple[PoolPolicyConfig, ...] = ()
    claim_limits: Mapping[str, ClaimLimits] = field(factory=dict)
    release_interval_seconds: float = 3600.0

    def collision_policy(self, entity: str) -> CollisionPolicy:
        """The collision policy of ``entity`` (``default`` applies to the others)."""
        return self.collision.get(entity) or self.collision.get("default") or CollisionPolicy.WARN

    def limits(self, entity: str) -> ClaimLimits:
        """The claim limits of ``entity`` (``default`` applies to the others)."""
        return self.claim_limits.get(entity) or self.claim_limits.get("default") or ClaimLimits()

    @classmethod
    def from_mapping(
        cls, assignment: Mapping[str, Any], pool: Mapping[str, Any], where: str
    ) -> AssignmentSettings:
        """Parse ``[crmkit.assignment]`` and ``[crmkit.pool]``, naming any bad key."""
        _refuse_unknown(
            assignment,
            {"rules", "collision", "fallback_duplicate_action", "handover_without_rule"},
            "crmkit.assignment",
            where,
        )
        _refuse_unknown(
            pool, {"policies", "limits", "release_interval_seconds"}, "crmkit.pool", where
        )
        try:
            rules = tuple(RuleConfig(**spec) for spec in assignment.get("rules", []))
            policies = tuple(PoolPolicyConfig(**spec) for spec in pool.get("policies", []))
            limits = {
                entity: ClaimLimits(**spec) for entity, spec in dict(pool.get("limits", {})).items()
            }
            collision = {
                entity: _enum(CollisionPolicy, value, f"crmkit.assignment.collision.{entity}")
                for entity, value in dict(assignment.get("collision", {})).items()
            }
            fallback = _enum(
                DuplicateAction,
                assignment.get("fallback_duplicate_action", "warn"),
                "crmkit.assignment.fallback_duplicate_action",
            )
            handover = _enum(
                HandoverFallback,
                assignment.get("handover_without_rule", "pool"),
                "crmkit.assignment.handover_without_rule",
            )
            interval = float(pool.get("release_interval_seconds", 3600.0))
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None
        names = [(rule.entity, rule.name) for rule in rules]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise ConfigError(
                f"{where}: assignment rule {twice[1]!r} of {twice[0]} is defined twice"
            )
        for policy in policies:
            if policy.days < 1:
                raise ConfigError(
                    f"{where}: pool policy {policy.name!r} needs days of at least 1,"
                    f" not {policy.days}"
                )
        return cls(
            rules=rules,
            collision=collision,
            fallback_duplicate_action=fallback,
            handover_without_rule=handover,
            pool_policies=policies,
            claim_limits=limits,
            release_interval_seconds=interval,
        )


def _refuse_unknown(section: Mapping[str, Any], known: set[str], name: str, where: str) -> None:
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {name}.{unknown[0]}; known: {', '.join(sorted(known))}"
        )


def _enum(kind: type[_E], value: object, key: str) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ValueError(f"{key} must be one of {choices}, not {value!r}") from None
