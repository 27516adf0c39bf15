"""Running the assignment rules: which member gets a new record (inside its creating
transaction), ``rules test`` explanations, bulk assignment of unowned records, availability,
and the ownership history every change of owner writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from attrs import define, field, frozen
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crmkit.assignment.config import RuleConfig
from crmkit.assignment.load import open_condition
from crmkit.assignment.models import (
    AssignmentCursor,
    AssignmentMember,
    AssignmentRule,
    OwnershipChange,
    UserAvailability,
)
from crmkit.assignment.rules import (
    OPERATORS,
    AssignmentRequest,
    AssignmentStrategy,
    Candidate,
    Condition,
    Decision,
    Explanation,
    Member,
    Rule,
    Strategy,
    away_now,
    split_filter_key,
    territory_key,
)
from crmkit.assignment.strategies import BUILTIN_STRATEGIES, as_choice
from crmkit.db.base import utcnow
from crmkit.duplicates import DuplicateMatch
from crmkit.entities.custom_fields import FieldType
from crmkit.entities.organisation import Team, User
from crmkit.errors import ConfigError, CRMError, FieldError, ValidationError
from crmkit.permissions.audit import audit_rows
from crmkit.permissions.catalogue import ASSIGNABLE
from crmkit.services.operation import Operation
from crmkit.services.queries import _coerce_operand
from crmkit.services.segment_filters import SegmentCompiler, is_segment_key, values_match

if TYPE_CHECKING:
    from crmkit.app import CRM

TEAM_PREFIX = "team:"


@define
class PendingCreate:
    """What the checks before an insert decided for one new record, applied once it has
    its id: the assignment, duplicate warnings and collisions."""

    decision: Decision | None = None
    warnings: tuple[DuplicateMatch, ...] = ()
    collisions: tuple[DuplicateMatch, ...] = ()
    collision_policy: str | None = None


@define
class _OperationState:
    rules: dict[str, list[Rule]] = field(factory=dict)
    strategies: dict[str, AssignmentStrategy] | None = None
    pending: dict[int, PendingCreate] = field(factory=dict)
    reasons: list[tuple[str, str]] = field(factory=list)
    #: Records that are not duplicates of what this operation writes: the lead a
    #: conversion turns into a contact is the same customer, not a collision.
    not_duplicates: set[tuple[str, int]] = field(factory=set)


_STATES: WeakKeyDictionary[Operation, _OperationState] = WeakKeyDictionary()


def operation_state(op: Operation) -> _OperationState:
    """Per-operation caches (rules, strategies) and the pending per-record decisions."""
    state = _STATES.get(op)
    if state is None:
        state = _STATES[op] = _OperationState()
    return state


# -- strategies and rules -------------------------------------------------------------------


def strategies(op: Operation) -> dict[str, AssignmentStrategy]:
    """The built-in strategies and those enabled plugins register, by name."""
    state = operation_state(op)
    if state.strategies is None:
        found = dict(BUILTIN_STRATEGIES)
        for group in op.crm.host.call("crmkit_assignment_strategies"):
            for strategy in group:
                if strategy.name in found:
                    raise ConfigError(f"assignment strategy {strategy.name!r} is declared twice")
                found[strategy.name] = strategy
        state.strategies = found
    return state.strategies


def parse_conditions(crm: CRM, entity: str, when: Mapping[str, Any]) -> tuple[Condition, ...]:
    """Conditions from filter syntax (``{"amount__gte": 1000}``), operands parsed like the
    field's values; a missing field, a bad operator or value is a ``ValidationError``."""
    preparer = crm.preparer(entity)
    known = sorted(set(preparer.writable) | set(preparer.custom_fields))
    conditions: list[Condition] = []
    entity_type = crm.entity(entity)
    for key, raw in when.items():
        if is_segment_key(crm, entity_type, key):
            continue  # judged in the database: see database_conditions
        name, operator = split_filter_key(key)
        if name not in preparer.writable and name not in preparer.custom_fields:
            raise ValidationError(
                [FieldError(name, f"is not a field of {entity}; fields: {', '.join(known)}")],
                entity,
            )
        if operator not in OPERATORS:
            raise ValidationError(
                [FieldError(key, f"unknown operator {operator!r}; use {', '.join(OPERATORS)}")],
                entity,
            )
        value: Any
        if operator == "empty":
            value = raw
        elif operator == "in":
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            value = tuple(_coerce_operand(preparer, name, item) for item in items)
        elif operator == "contains":
            value = raw
        else:
            value = _coerce_operand(preparer, name, raw)
        custom = preparer.custom_fields.get(name)
        ignore_case = custom is not None and custom.ignore_case
        conditions.append(Condition(name, operator, value, ignore_case))
    return tuple(conditions)


def database_conditions(crm: CRM, entity: str, when: Mapping[str, Any]) -> dict[str, Any]:
    """The conditions of ``when`` judged in the database (segments, relations, measures),
    which :func:`parse_conditions` leaves out."""
    entity_type = crm.entity(entity)
    return {key: value for key, value in when.items() if is_segment_key(crm, entity_type, key)}


def _choices_of(crm: CRM, entity: str, name: str) -> tuple[str, ...] | None:
    choices = crm.entity(entity).choices.get(name)
    if choices:
        return tuple(str(c) for c in choices)
    custom = crm.custom_fields[entity].get(name)
    if custom is not None and custom.type in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
        return tuple(custom.choices)
    return None


def _rule_key_config(entity: str, name: str) -> str:
    return f"config:{entity}:{name}"


def load_rules(op: Operation, entity: str) -> list[Rule]:
    """The rules of ``entity`` in the order they are tried: the config file's first (in file
    order), then the database's by position. Cached for the operation."""
    state = operation_state(op)
    cached = state.rules.get(entity)
    if cached is not None:
        return cached
    # Rules change rarely and only by adding and removing them (a new rule has a new
    # created_at): one cheap aggregate tells whether this process's copy is current.
    fingerprint = tuple(
        op.session.execute(
            select(
                func.count(), func.max(AssignmentRule.id), func.max(AssignmentRule.created_at)
            ).where(AssignmentRule.entity == entity)
        ).one()
    )
    shared = _PROCESS_CACHE.setdefault(op.crm, {})
    hit = shared.get(entity)
    if hit is not None and hit[0] == fingerprint:
        state.rules[entity] = hit[1]
        return hit[1]
    rules = _read_rules(op, entity) if fingerprint[0] or _has_config_rules(op, entity) else []
    shared[entity] = (fingerprint, rules)
    state.rules[entity] = rules
    return rules


def _has_config_rules(op: Operation, entity: str) -> bool:
    return any(spec.entity == entity for spec in op.crm.settings.assignment.rules)


#: Per CRM, per entity: the rules as last read, with the fingerprint they were read at.
_PROCESS_CACHE: WeakKeyDictionary[CRM, dict[str, tuple[tuple[Any, ...], list[Rule]]]] = (
    WeakKeyDictionary()
)


def _read_rules(op: Operation, entity: str) -> list[Rule]:
    rules = [
        _config_rule(op, spec, index)
        for index, spec in enumerate(op.crm.settings.assignment.rules)
        if spec.entity == entity
    ]
    stored = list(
        op.session.scalars(
            select(AssignmentRule)
            .where(AssignmentRule.entity == entity)
            .order_by(AssignmentRule.position, AssignmentRule.id)
        )
    )
    if stored:
        members: dict[int, list[AssignmentMember]] = {}
        for member in op.session.scalars(
            select(AssignmentMember)
            .where(AssignmentMember.rule_id.in_([r.id for r in stored]))
            .order_by(AssignmentMember.position, AssignmentMember.id)
        ):
            members.setdefault(member.rule_id, []).append(member)
        user_ids = {m.user_id for ms in members.values() for m in ms if m.user_id is not None}
        team_ids = {m.team_id for ms in members.values() for m in ms if m.team_id is not None}
        usernames = dict(
            op.session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()
        )
        teams = dict(
            op.session.execute(select(Team.id, Team.name).where(Team.id.in_(team_ids))).all()
        )
        for row in stored:
            rule_members = tuple(
                Member(
                    label=usernames[m.user_id]
                    if m.user_id is not None
                    else TEAM_PREFIX + teams[m.team_id or 0],
                    user_id=m.user_id,
                    team_id=m.team_id,
                    weight=m.weight,
                    capacity=m.capacity,
                    territory=m.territory,
                )
                for m in members.get(row.id, [])
            )
            rules.append(
                Rule(
                    key=f"db:{row.id}",
                    entity=entity,
                    name=row.name,
                    strategy=row.strategy,
                    conditions=parse_conditions(op.crm, entity, row.conditions),
                    filters=database_conditions(op.crm, entity, row.conditions),
                    members=rule_members,
                    territory_field=row.options.get("territory_field"),
                    default_member=row.options.get("default_member"),
                    source="database",
                    position=row.position,
                )
            )
    return rules


def _config_rule(op: Operation, spec: RuleConfig, index: int) -> Rule:
    where = f"assignment rule {spec.name!r} of {spec.entity} (config file)"
    try:
        members = resolve_members(op, spec)
        conditions = parse_conditions(op.crm, spec.entity, spec.when)
        check_rule_shape(
            op, spec.entity, spec.strategy, members, spec.territory_field, spec.default_member
        )
    except CRMError as error:
        raise ConfigError(f"{where}: {error}") from None
    return Rule(
        key=_rule_key_config(spec.entity, spec.name),
        entity=spec.entity,
        name=spec.name,
        strategy=spec.strategy,
        conditions=conditions,
        filters=database_conditions(op.crm, spec.entity, spec.when),
        members=members,
        territory_field=spec.territory_field,
        default_member=spec.default_member,
        source="config",
        position=index,
    )


def resolve_members(op: Operation, spec: RuleConfig) -> tuple[Member, ...]:
    """Members from labels (``alice``, ``team:East``) with their weights, capacities and
    territories; an unknown user or team, or a weight/capacity/territory naming no member,
    is a ``CRMError`` naming it."""
    labels = list(spec.members)
    territory_of: dict[str, list[str]] = {}
    for value, label in spec.territory.items():
        territory_of.setdefault(label, []).append(str(value))
        if label not in labels:
            labels.append(label)
    if spec.default_member is not None and spec.default_member not in labels:
        labels.append(spec.default_member)
    for kind, mapping in (("weight", spec.weights), ("capacity", spec.capacity)):
        stray = sorted(set(mapping) - set(labels))
        if stray:
            raise CRMError(f"{kind} given for {stray[0]!r}, which is not a member of the rule")
        for label, number in mapping.items():
            if (
                not isinstance(number, int)
                or isinstance(number, bool)
                or number < (1 if kind == "weight" else 0)
            ):
                raise CRMError(f"{kind} of {label!r} must be a whole number, not {number!r}")
    if not labels:
        raise CRMError("a rule needs at least one member (a username or team:NAME)")
    users = {u.username: u for u in op.session.scalars(select(User))}
    teams = {t.name: t for t in op.session.scalars(select(Team))}
    members: list[Member] = []
    for label in labels:
        team_id = user_id = None
        if label.startswith(TEAM_PREFIX):
            team = teams.get(label[len(TEAM_PREFIX) :])
            if team is None:
                known = ", ".join(sorted(teams)) or "none"
                raise CRMError(f"team {label[len(TEAM_PREFIX) :]!r} does not exist; teams: {known}")
            team_id = team.id
        else:
            user = users.get(label)
            if user is None:
                raise CRMError(
                    f"user {label!r} does not exist (a team is written team:NAME);"
                    f" users: {', '.join(sorted(users)) or 'none'}"
                )
            user_id = user.id
        territories: list[str | None] = list(territory_of.get(label, [])) or [None]
        for territory in territories:
            members.append(
                Member(
                    label=label,
                    user_id=user_id,
                    team_id=team_id,
                    weight=int(spec.weights.get(label, 1)),
                    capacity=spec.capacity.get(label),
                    territory=territory,
                )
            )
    return tuple(members)


def check_rule_shape(
    op: Operation,
    entity: str,
    strategy: str,
    members: Sequence[Member],
    territory_field: str | None,
    default_member: str | None,
) -> None:
    """The strategy exists; a territory rule names its field and maps every value of a field
    with fixed choices (a gap is an error unless a default member takes the rest)."""
    if entity not in ASSIGNABLE:
        raise CRMError(
            f"{entity} records are not assigned by rules; rules apply to {', '.join(ASSIGNABLE)}"
        )
    known = strategies(op)
    if strategy not in known:
        raise CRMError(
            f"unknown assignment strategy {strategy!r}; known: {', '.join(sorted(known))}"
            " (plugins add more through crmkit_assignment_strategies)"
        )
    if strategy != Strategy.TERRITORY:
        if territory_field is not None or any(m.territory for m in members):
            raise CRMError(f"a territory map needs strategy 'territory', not {strategy!r}")
        return
    preparer = op.crm.preparer(entity)
    if territory_field is None:
        raise CRMError(
            "strategy 'territory' needs a territory field (the field whose value"
            " names the member, e.g. region)"
        )
    if territory_field not in preparer.writable and territory_field not in preparer.custom_fields:
        raise CRMError(f"territory field {territory_field!r} is not a field of {entity}")
    fold = territory_key(op.crm, entity, territory_field)
    mapped = {fold(m.territory) for m in members if m.territory}
    if not mapped:
        raise CRMError("strategy 'territory' needs a territory map (value=member, ...)")
    choices = _choices_of(op.crm, entity, territory_field)
    if choices is not None and default_member is None:
        gaps = [c for c in choices if fold(c) not in mapped]
        if gaps:
            raise CRMError(
                f"the territory map has gaps: no member for {territory_field} ="
                f" {', '.join(repr(g) for g in gaps)}; map them or give a default member"
            )


# -- choosing a member -----------------------------------------------------------------------


def _candidates(
    op: Operation,
    rule: Rule,
    *,
    now: dt.datetime,
    exclude_user_id: int | None,
    want_load: bool,
) -> tuple[list[Candidate], list[str]]:
    """The rule's members as users (a team is its active users), minus the inactive, the
    away and those at capacity; and what was skipped, in words."""
    user_ids = {m.user_id for m in rule.members if m.user_id is not None}
    team_ids = {m.team_id for m in rule.members if m.team_id is not None}
    # Core tables, not ORM entities: this runs on every assigned create
    users_table: Any = User.__table__
    away_table: Any = UserAvailability.__table__
    query = select(
        users_table.c.id,
        users_table.c.username,
        users_table.c.team_id,
        users_table.c.is_active,
        away_table.c.away_until,
        away_table.c.user_id.label("away"),
    ).outerjoin(away_table, away_table.c.user_id == users_table.c.id)
    connection = op.session.connection()
    rows = (
        list(connection.execute(query.where(users_table.c.id.in_(user_ids))).all())
        if user_ids
        else []
    )
    by_team: dict[int, list[Any]] = {}
    if team_ids:
        for row in connection.execute(
            query.where(users_table.c.team_id.in_(team_ids), users_table.c.is_active).order_by(
                users_table.c.username
            )
        ):
            by_team.setdefault(row.team_id, []).append(row)
            rows.append(row)
    users = {row.id: row for row in rows}
    away = {row.id: row.away_until for row in rows if row.away is not None}
    skipped: list[str] = []
    seen: set[tuple[int, str | None]] = set()
    pairs: list[tuple[Member, Any]] = []
    for member in rule.members:
        expanded = (
            [users[member.user_id]]
            if member.user_id is not None
            else by_team.get(member.team_id or 0, [])
        )
        if not expanded and member.team_id is not None:
            skipped.append(f"{member.label} (no active users)")
        for user in expanded:
            if (user.id, member.territory) in seen:
                continue
            seen.add((user.id, member.territory))
            if not user.is_active:
                skipped.append(f"{user.username} (deactivated)")
            elif user.id == exclude_user_id:
                skipped.append(f"{user.username} (the record's departing owner)")
            elif user.id in away and away_now(away[user.id], now):
                until = away[user.id]
                skipped.append(
                    f"{user.username} (away" + (f" until {until:%Y-%m-%d %H:%M})" if until else ")")
                )
            else:
                pairs.append((member, user))
    loads: dict[int, int] = {}
    if pairs and (want_load or any(m.capacity is not None for m, _ in pairs)):
        model: Any = op.crm.entity(rule.entity).model
        loads = dict(
            op.session.execute(
                select(model.owner_id, func.count())
                .where(
                    model.owner_id.in_({u.id for _, u in pairs}),
                    model.deleted_at.is_(None),
                    open_condition(rule.entity, model),
                )
                .group_by(model.owner_id)
            ).all()
        )
    candidates: list[Candidate] = []
    for member, user in pairs:
        load = loads.get(user.id, 0)
        if member.capacity is not None and load >= member.capacity:
            skipped.append(
                f"{user.username} (at capacity: {load}/{member.capacity} open {rule.entity}s)"
            )
            continue
        candidates.append(
            Candidate(
                user.id, user.username, user.team_id, member, load if loads or want_load else None
            )
        )
    return candidates, skipped


def advance_turn(op: Operation, rule_key: str, *, peek: bool = False) -> int:
    """The rule's next turn number (0, 1, 2, ...), counted in the database: one atomic
    ``UPDATE ... RETURNING`` that row-locks the cursor on PostgreSQL until the transaction
    ends, so processes assigning at the same time take strict turns. ``peek`` reads the
    next number without taking it."""
    table: Any = AssignmentCursor.__table__
    if peek:
        position = op.session.scalar(
            select(AssignmentCursor.position).where(AssignmentCursor.rule_key == rule_key)
        )
        return int(position or 0)
    statement = (
        update(table)
        .where(table.c.rule_key == rule_key)
        .values(position=table.c.position + 1)
        .returning(table.c.position)
    )
    position = op.session.execute(statement).scalar()
    if position is None:
        dialect = op.session.get_bind().dialect.name
        maker = postgresql_insert if dialect == "postgresql" else sqlite_insert
        op.session.execute(
            maker(table).values(rule_key=rule_key, position=0).on_conflict_do_nothing()
        )
        position = op.session.execute(statement).scalar_one()
    return int(position) - 1


def choose_owner(
    op: Operation,
    entity: str,
    values: Mapping[str, Any],
    *,
    exclude_user_id: int | None = None,
    explain: bool = False,
    now: dt.datetime | None = None,
) -> Explanation:
    """Try the rules of ``entity`` in order on a record with ``values``; the first rule
    whose conditions hold and whose strategy finds an available member decides. With
    ``explain`` nothing changes (the turn counters are only read)."""
    steps: list[str] = []
    now = now or utcnow()
    known = strategies(op)
    for rule in load_rules(op, entity):
        failed = rule.failed_condition(values)
        if failed is not None:
            if explain:
                steps.append(
                    f"rule {rule.name!r}: skipped: {failed.describe()} does not hold"
                    f" ({failed.field} is {values.get(failed.field)!r})"
                )
            continue
        if rule.filters and not values_match(op, op.crm.entity(entity), values, rule.filters):
            if explain:
                held = ", ".join(f"{k}={v}" for k, v in rule.filters.items())
                steps.append(f"rule {rule.name!r}: skipped: {held} does not hold")
            continue
        strategy = known.get(rule.strategy)
        if strategy is None:
            raise CRMError(
                f"assignment rule {rule.name!r} of {entity} uses strategy {rule.strategy!r},"
                " which no enabled plugin provides: enable the plugin or remove the rule"
            )
        candidates, skipped = _candidates(
            op, rule, now=now, exclude_user_id=exclude_user_id, want_load=strategy.needs_load
        )
        note = f"; skipped {', '.join(skipped)}" if skipped else ""
        turn = 0
        if strategy.takes_turns and candidates:
            turn = advance_turn(op, rule.key, peek=explain)
        request = AssignmentRequest(entity, rule, values, tuple(candidates), turn, op=op)
        choice = as_choice(strategy.choose(request), rule.strategy)
        if choice is None:
            if rule.strategy == Strategy.TERRITORY and candidates:
                value = values.get(rule.territory_field or "")
                why = f"no territory member for {rule.territory_field} = {value!r}"
            elif candidates:
                why = (
                    f"strategy {rule.strategy!r} declined all {len(candidates)} available member(s)"
                )
            else:
                why = "no member available"
            steps.append(f"rule {rule.name!r}: conditions hold but {why}{note}")
            continue
        chosen = choice.candidate
        if choice.candidate not in candidates:
            raise CRMError(
                f"strategy {rule.strategy!r} chose {chosen.username!r}, who is not one of the"
                " rule's available members"
            )
        decision = Decision(
            chosen.user_id,
            chosen.username,
            chosen.team_id,
            rule.name,
            rule.strategy,
            choice.reason,
        )
        held = ", ".join(c.describe() for c in rule.conditions) or "no conditions"
        steps.append(
            f"rule {rule.name!r} ({rule.strategy}): matches ({held}) → {chosen.username}:"
            f" {choice.reason}{note}"
        )
        return Explanation(entity, tuple(steps), decision)
    if not steps:
        steps.append(f"no assignment rule of {entity} applies")
    return Explanation(entity, tuple(steps), None)


def assign_new(op: Operation, entity: str, values: Mapping[str, Any]) -> Decision | None:
    """The member a new record without an owner gets, or ``None`` (no rules, none match)."""
    if entity not in ASSIGNABLE or not load_rules(op, entity):
        return None
    return choose_owner(op, entity, values).decision


# -- ownership history -----------------------------------------------------------------------


@contextmanager
def ownership_reason(op: Operation, reason: str, detail: str = "") -> Iterator[None]:
    """Owner changes made inside are recorded with this reason (``claim``, ``handover``,
    ``rule``); plain updates record ``update``."""
    state = operation_state(op)
    state.reasons.append((reason, detail))
    try:
        yield
    finally:
        state.reasons.pop()


def note_owner_change(
    op: Operation,
    entity: str,
    record_id: int,
    previous: int | None,
    owner: int | None,
    *,
    reason: str | None = None,
    detail: str = "",
) -> None:
    """Write a row of the ownership history and emit ``<entity>.assigned`` (a new owner) or
    ``<entity>.released`` (back to the shared pool)."""
    if reason is None:
        reasons = operation_state(op).reasons
        reason, detail = reasons[-1] if reasons else ("update", detail)
    history: Any = OwnershipChange.__table__
    op.session.connection().execute(
        history.insert(),
        [
            {
                "entity": entity,
                "record_id": record_id,
                "previous_owner_id": previous,
                "owner_id": owner,
                "reason": reason,
                "detail": detail[:300],
                "actor_id": op.actor_id,
                "batch": None,
                "changed_at": utcnow(),
            }
        ],
    )
    payload = {"owner_id": owner, "previous_owner_id": previous, "reason": reason, "detail": detail}
    name = f"{entity}.assigned" if owner is not None else f"{entity}.released"
    op.emit(name, payload, record_type=entity, record_id=record_id)


@frozen
class OwnershipEntry:
    """One line of a record's ownership history, with usernames."""

    changed_at: dt.datetime
    previous_owner: str | None
    owner: str | None
    reason: str
    detail: str
    actor: str | None


# -- the service -----------------------------------------------------------------------------


@frozen
class RunResult:
    """What ``assign run`` did: records assigned, and those no rule matched."""

    assigned: int
    unmatched: int


class AssignmentService:
    """Assignment rules (define, list, remove, test), bulk assignment, availability and the
    ownership history. Reach it as ``crm.assignment``."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def rules(self, entity: str | None = None, *, actor: User | None = None) -> list[Rule]:
        """The rules (of ``entity``, or of every assignable entity) in the order they are
        tried. Needs ``assignment:manage``."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("assignment:manage")
            entities = [entity] if entity else list(ASSIGNABLE)
            for name in entities:
                self.crm.entity(name)
            return [rule for name in entities for rule in load_rules(op, name)]

    def add_rule(
        self,
        entity: str,
        name: str,
        strategy: str,
        members: Sequence[str] = (),
        *,
        when: Mapping[str, Any] | None = None,
        weights: Mapping[str, int] | None = None,
        capacity: Mapping[str, int] | None = None,
        territory_field: str | None = None,
        territory: Mapping[str, str] | None = None,
        default_member: str | None = None,
        position: int | None = None,
        actor: User | None = None,
    ) -> Rule:
        """Add a rule of ``entity`` (tried after the existing ones, or at ``position``,
        1-based among the database rules). Members are usernames or ``team:NAME``.

        A missing field, user, team or strategy, a weight or capacity of a non-member, or a
        territory map with gaps is refused with an error naming it; nothing is written.
        Needs ``assignment:manage``.

        Example::

            crm.assignment.add_rule("lead", "web leads", "round_robin", ["alice", "bob"],
                                    when={"source_channel": "web"})
        """
        spec = RuleConfig(
            entity=entity,
            name=name,
            strategy=strategy,
            members=members,
            when=dict(when or {}),
            weights=dict(weights or {}),
            capacity=dict(capacity or {}),
            territory_field=territory_field,
            territory=dict(territory or {}),
            default_member=default_member,
        )
        with self.crm.transaction(actor) as op:
            op.access.require("assignment:manage")
            self.crm.entity(entity)
            if not name.strip():
                raise CRMError("a rule needs a name")
            taken = {rule.name for rule in load_rules(op, entity)}
            if name in taken:
                raise CRMError(f"{entity} already has an assignment rule named {name!r}")
            resolved = resolve_members(op, spec)
            parse_conditions(self.crm, entity, spec.when)
            in_database = database_conditions(self.crm, entity, spec.when)
            if in_database:
                with op.elevated():
                    SegmentCompiler(op, explain=True).conditions(
                        self.crm.entity(entity), in_database
                    )
            check_rule_shape(op, entity, strategy, resolved, territory_field, default_member)
            stored = list(
                op.session.scalars(
                    select(AssignmentRule)
                    .where(AssignmentRule.entity == entity)
                    .order_by(AssignmentRule.position, AssignmentRule.id)
                )
            )
            if position is None or position > len(stored):
                index = len(stored)
            elif position < 1:
                raise CRMError(f"position must be 1 or more, not {position}")
            else:
                index = position - 1
            for offset, row in enumerate(stored[index:], start=index + 2):
                row.position = offset
            rule = AssignmentRule(
                entity=entity,
                name=name,
                position=index + 1,
                strategy=strategy,
                conditions={key: _json_operand(value) for key, value in spec.when.items()},
                options={"territory_field": territory_field, "default_member": default_member},
            )
            op.session.add(rule)
            op.session.flush()
            op.session.add_all(
                AssignmentMember(
                    rule_id=rule.id,
                    position=number,
                    user_id=member.user_id,
                    team_id=member.team_id,
                    weight=member.weight,
                    capacity=member.capacity,
                    territory=member.territory,
                )
                for number, member in enumerate(resolved)
            )
            op.session.flush()
            facts = {
                "entity": entity,
                "name": name,
                "strategy": strategy,
                "members": [m.label for m in resolved],
                "when": spec.when,
            }
            audit_rows(op, "assignment.rule_added", "assignment_rule", [(rule.id, facts)])
            op.emit(
                "assignment.rule_added", facts, record_type="assignment_rule", record_id=rule.id
            )
            operation_state(op).rules.pop(entity, None)
            return next(r for r in load_rules(op, entity) if r.name == name)

    def remove_rule(self, entity: str, name: str, *, actor: User | None = None) -> None:
        """Remove a rule of ``entity`` (and its turn counter). Rules of the config file are
        removed by editing the file. Needs ``assignment:manage``."""
        with self.crm.transaction(actor) as op:
            op.access.require("assignment:manage")
            self.crm.entity(entity)
            if any(
                spec.entity == entity and spec.name == name
                for spec in self.crm.settings.assignment.rules
            ):
                raise CRMError(
                    f"rule {name!r} of {entity} is defined in the config file: remove it there"
                )
            rule = op.session.scalars(
                select(AssignmentRule).where(
                    AssignmentRule.entity == entity, AssignmentRule.name == name
                )
            ).one_or_none()
            if rule is None:
                names = [r.name for r in load_rules(op, entity)]
                raise CRMError(
                    f"{entity} has no assignment rule named {name!r};"
                    f" rules: {', '.join(names) or 'none'}"
                )
            op.session.execute(delete(AssignmentMember).where(AssignmentMember.rule_id == rule.id))
            op.session.execute(
                delete(AssignmentCursor).where(AssignmentCursor.rule_key == f"db:{rule.id}")
            )
            op.session.delete(rule)
            op.session.flush()
            facts = {"entity": entity, "name": name}
            audit_rows(op, "assignment.rule_removed", "assignment_rule", [(rule.id, facts)])
            op.emit(
                "assignment.rule_removed", facts, record_type="assignment_rule", record_id=rule.id
            )

    def test(
        self, entity: str, values: Mapping[str, object], *, actor: User | None = None
    ) -> Explanation:
        """Which rule and member a record with ``values`` would get, and why; changes
        nothing (the turn counters are read, not advanced). Needs ``assignment:manage``."""
        with self.crm.transaction(actor, write=False) as op:
            op.access.require("assignment:manage")
            columns, custom = self.crm.preparer(entity).prepare(values, creating=False)
            return choose_owner(op, entity, {**columns, **custom}, explain=True)

    def run(
        self,
        entity: str,
        *,
        batch_size: int = 500,
        progress: Callable[[int], None] | None = None,
        actor: User | None = None,
    ) -> RunResult:
        """Give every unowned open record of ``entity`` to the member its rules choose (one
        transaction per batch; records no rule matches stay unowned). ``progress(n)`` is
        called after each batch. Needs ``assignment:manage``."""
        model: Any = self.crm.entity(entity).model
        assigned = unmatched = 0
        last_id = 0
        while True:
            with self.crm.transaction(actor) as op:
                op.access.require("assignment:manage")
                records = list(
                    op.session.scalars(
                        select(model)
                        .where(
                            model.owner_id.is_(None),
                            model.deleted_at.is_(None),
                            open_condition(entity, model),
                            model.id > last_id,
                        )
                        .order_by(model.id)
                        .limit(batch_size)
                    )
                )
                if not records:
                    return RunResult(assigned, unmatched)
                service = op.records(entity)
                with op.elevated():
                    for record in records:
                        decision = choose_owner(op, entity, service.snapshot(record)).decision
                        if decision is None:
                            unmatched += 1
                            continue
                        with ownership_reason(
                            op, "rule", f"rule {decision.rule}: {decision.reason}"
                        ):
                            service.update(
                                record.id,
                                {"owner_id": decision.user_id, "team_id": decision.team_id},
                            )
                        assigned += 1
                last_id = records[-1].id
            if progress:
                progress(len(records))

    def set_away(
        self,
        username: str,
        *,
        until: dt.datetime | None = None,
        note: str = "",
        actor: User | None = None,
    ) -> None:
        """Mark a user away (until ``until``, or until :meth:`set_back`): rules skip them.
        A user may mark themselves; others need ``assignment:manage``."""
        with self.crm.transaction(actor) as op:
            user = self._subject(op, username)
            entry = op.session.get(UserAvailability, user.id)
            if entry is None:
                entry = UserAvailability(user_id=user.id)
                op.session.add(entry)
            entry.away_since = utcnow()
            entry.away_until = until
            entry.note = note
            op.session.flush()
            op.emit(
                "user.away",
                {"username": username, "until": until, "note": note},
                record_type="user",
                record_id=user.id,
            )

    def set_back(self, username: str, *, actor: User | None = None) -> None:
        """Mark a user available again."""
        with self.crm.transaction(actor) as op:
            user = self._subject(op, username)
            op.session.execute(delete(UserAvailability).where(UserAvailability.user_id == user.id))
            op.emit("user.back", {"username": username}, record_type="user", record_id=user.id)

    def _subject(self, op: Operation, username: str) -> User:
        from crmkit.services.users import find_user

        user = find_user(op.session, username)
        if op.actor is None or op.actor.id != user.id:
            op.access.require("assignment:manage")
        return user

    def history(
        self, entity: str, record_id: int, *, actor: User | None = None
    ) -> list[OwnershipEntry]:
        """Every change of owner of a record, oldest first (the actor must be able to read
        the record)."""
        with self.crm.transaction(actor, write=False) as op:
            op.records(entity).get(record_id)
            rows = list(
                op.session.scalars(
                    select(OwnershipChange)
                    .where(OwnershipChange.entity == entity, OwnershipChange.record_id == record_id)
                    .order_by(OwnershipChange.id)
                )
            )
            ids = {r.owner_id for r in rows} | {r.previous_owner_id for r in rows}
            ids |= {r.actor_id for r in rows}
            names = dict(
                op.session.execute(
                    select(User.id, User.username).where(User.id.in_(ids - {None}))
                ).all()
            )
            return [
                OwnershipEntry(
                    row.changed_at,
                    names.get(row.previous_owner_id) if row.previous_owner_id else None,
                    names.get(row.owner_id) if row.owner_id else None,
                    row.reason,
                    row.detail,
                    names.get(row.actor_id) if row.actor_id else None,
                )
                for row in rows
            ]


def _json_operand(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value
