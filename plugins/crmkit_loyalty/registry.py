"""Programs as the services use them: parsed once per program version and process."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

import crmkit
from crmkit_loyalty.hooks import LoyaltyHooks
from crmkit_loyalty.models import LoyaltyProgram, LoyaltyReward
from crmkit_loyalty.programs import Program, parse_program

PLUGIN_NAME = "loyalty"
EARN_HOOK = "crmkit_loyalty_earn_rules"


class ProgramCache:
    """Parsed programs of one CRM by id, each with the version it was parsed at."""

    def __init__(self) -> None:
        self.programs: dict[int, tuple[int, Program]] = {}
        self.lock = threading.Lock()
        self.hooks_declared = False


_CACHES: weakref.WeakKeyDictionary[crmkit.CRM, ProgramCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_of(crm: crmkit.CRM) -> ProgramCache:
    """The program cache of ``crm`` (made on first use; the earn hook declared then)."""
    cache = _CACHES.get(crm)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.get(crm)
            if cache is None:
                crm.add_hookspecs(LoyaltyHooks)
                cache = _CACHES[crm] = ProgramCache()
    return cache


def program_by_id(op: crmkit.Operation, program_id: int, version: int) -> Program:
    """The program ``program_id`` as of ``version`` (read from the database only when the
    cached one is older)."""
    cache = cache_of(op.crm)
    cached = cache.programs.get(program_id)
    if cached is not None and cached[0] == version:
        return cached[1]
    row = op.session.get(LoyaltyProgram, program_id)
    if row is None:
        raise crmkit.NotFoundError("loyalty program", program_id)
    program = parse_program(row.definition)
    with cache.lock:
        cache.programs[program_id] = (row.version, program)
    return program


def program_by_name(op: crmkit.Operation, name: str | None) -> tuple[int, Program]:
    """The program called ``name`` (``None``: the only one, or the setting
    ``default_program``); a clear error naming the known programs."""
    rows = list(
        op.session.execute(select(LoyaltyProgram.id, LoyaltyProgram.name, LoyaltyProgram.version))
    )
    if name is None:
        name = op.crm.plugin_settings(PLUGIN_NAME).get("default_program") or None
    if name is None and len(rows) == 1:
        name = rows[0].name
    for row in rows:
        if row.name == name:
            return row.id, program_by_id(op, row.id, row.version)
    known = ", ".join(sorted(row.name for row in rows)) or "none yet (crmkit loyalty programs add)"
    if name is None:
        raise crmkit.ValidationError(
            [crmkit.FieldError("program", f"name the program; known: {known}")], "loyalty"
        )
    raise crmkit.NotFoundError("loyalty program", f"{name!r} (known: {known})")


def define_program(op: crmkit.Operation, definition: Mapping[str, Any]) -> tuple[int, Program]:
    """Create or replace a program from its definition (its rewards follow: new ones are
    added, changed ones updated, removed ones stop being issued)."""
    program = parse_program(definition)
    stored = program.describe()
    row = op.session.scalars(
        select(LoyaltyProgram).where(LoyaltyProgram.name == program.name).with_for_update()
    ).first()
    now = crmkit.utcnow()
    if row is None:
        row = LoyaltyProgram(
            name=program.name, definition=stored, version=1, created_at=now, updated_at=now
        )
        op.session.add(row)
        op.session.flush()
        changed = True
    else:
        changed = row.definition != stored
        if changed:
            row.definition = stored
            row.version += 1
            row.updated_at = now
            op.session.flush()
    existing = {
        reward.name: reward
        for reward in op.session.scalars(
            select(LoyaltyReward).where(LoyaltyReward.program_id == row.id)
        )
    }
    for reward in program.rewards:
        values = {
            "kind": reward.kind,
            "value": reward.value,
            "cost_points": reward.cost_points,
            "valid_days": reward.valid_days,
            "per_customer_limit": reward.per_customer_limit,
            "active": True,
        }
        found = existing.pop(reward.name, None)
        if found is None:
            op.session.add(LoyaltyReward(program_id=row.id, name=reward.name, **values))
        else:
            for key, value in values.items():
                setattr(found, key, value)
    if existing:
        op.session.execute(
            update(LoyaltyReward)
            .where(LoyaltyReward.id.in_([r.id for r in existing.values()]))
            .values(active=False)
        )
    op.session.flush()
    if changed:
        op.emit("loyalty.program_defined", {"program": program.name, "version": row.version})
    return row.id, program
