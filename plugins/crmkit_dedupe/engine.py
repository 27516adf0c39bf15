"""The plugin's work on the database: the key index, the online check and the batch scan."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, func, insert, null, select

import crmkit
from crmkit_dedupe import matching
from crmkit_dedupe.models import DedupeCandidate, DedupeKey
from crmkit_dedupe.rules import DEFAULT_RULES, Rule, check_rules, parse_rules

PLUGIN_NAME = "dedupe"
KEYS: Any = DedupeKey.__table__
CANDIDATES: Any = DedupeCandidate.__table__
_ENGINES: weakref.WeakKeyDictionary[crmkit.CRM, Engine] = weakref.WeakKeyDictionary()


def engine_of(crm: crmkit.CRM) -> Engine:
    """The matching engine of ``crm`` (rules parsed and checked once)."""
    engine = _ENGINES.get(crm)
    if engine is None:
        engine = Engine(crm)
        _ENGINES[crm] = engine
    return engine


def forget(crm: crmkit.CRM) -> None:
    """Drop the cached engine (after the settings or the entities changed)."""
    _ENGINES.pop(crm, None)


class Engine:
    """Rules, the fields they need per entity, and the database work."""

    def __init__(self, crm: crmkit.CRM) -> None:
        settings = crm.plugin_settings(PLUGIN_NAME)
        self.crm = crm
        raw = settings.get("rules") or []
        self.rules: tuple[Rule, ...] = parse_rules(raw) if raw else self._default_rules(crm)
        fields_of = {
            name: [*entity.columns, *crm.custom_fields.get(name, {})]
            for name, entity in crm.entities.items()
        }
        check_rules(self.rules, fields_of)
        self.region = str(settings.get("default_region") or crm.settings.default_region)
        self.max_candidates = int(settings.get("max_candidates", 200))
        self.online = bool(settings.get("online_check", True))
        self._loaders: dict[str, tuple[list[str], Any]] = {}
        #: One key's records, newest first, at most ``max_candidates`` (a switchboard number
        #: or a very common name shared by thousands must not explode the check). Built once:
        #: the same statement object every call, so SQLAlchemy's compiled cache serves it.
        self._lookup = (
            select(DedupeKey.record_id)
            .where(
                DedupeKey.kind == bindparam("kind"),
                DedupeKey.key == bindparam("key"),
                DedupeKey.entity == bindparam("entity"),
            )
            .order_by(DedupeKey.record_id.desc())
            .limit(self.max_candidates)
        )
        self.keyed = matching.keyed_slots(self.rules)
        #: Per checked entity: the slots a candidate must share a key in (only the evidence
        #: when every rule's evidence is compared exactly; see ``exact_evidence_only``).
        self.lookup: dict[str, tuple[frozenset[str], bool]] = {}
        for name in {r.entity for r in self.rules}:
            rules = self.rules_for(name)
            exact = matching.exact_evidence_only(rules)
            self.lookup[name] = (matching.keyed_slots(rules, evidence_only=exact), exact)
        self.fields = {
            name: matching.rule_fields(self.rules, name)
            for name in {r.entity for r in self.rules} | {e for r in self.rules for e in r.against}
        }

    @staticmethod
    def _default_rules(crm: crmkit.CRM) -> tuple[Rule, ...]:
        # The defaults name the core entities' fields; keep only what exists (an integrator
        # may have replaced an entity).
        return tuple(r for r in DEFAULT_RULES if r.entity in crm.entities)

    def rules_for(self, entity: str) -> list[Rule]:
        """The rules checking records of ``entity``."""
        return [rule for rule in self.rules if rule.entity == entity]

    # -- profiles -------------------------------------------------------------------------

    def profile(
        self, entity: str, record_id: int, data: Mapping[str, Any], owner_id: int | None = None
    ) -> matching.Profile:
        """``data`` normalised for the rules."""
        label = str(data.get("full_name") or data.get("name") or "")
        return matching.build_profile(
            entity,
            record_id,
            data,
            self.fields.get(entity, ()),
            self.region,
            owner_id=owner_id,
            label=label,
        )

    def load(self, op: crmkit.Operation, entity: str, ids: Iterable[int]) -> list[matching.Profile]:
        """Profiles of the live records of ``entity`` with ``ids``."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        names, query = self._loader(entity)
        found = []
        for start in range(0, len(wanted), 500):
            # Core execution: plain rows, without the ORM's result machinery per row
            rows = op.session.connection().execute(query, {"ids": wanted[start : start + 500]})
            for row in rows:
                data = dict(zip(names, row[3:], strict=True))
                data.update(row[2] or {})
                found.append(self.profile(entity, row[0], data, row[1]))
        return found

    def _loader(self, entity: str) -> tuple[list[str], Any]:
        """The columns read for ``entity`` and the statement reading them by id (built once
        per entity, so every check reuses one compiled statement)."""
        loader = self._loaders.get(entity)
        if loader is None:
            model: Any = self.crm.entity(entity).model
            names = self._columns(entity)
            columns = [getattr(model, name) for name in names]
            query = select(model.id, model.owner_id, self._custom(entity), *columns).where(
                model.id.in_(bindparam("ids", expanding=True)), model.deleted_at.is_(None)
            )
            loader = self._loaders[entity] = (names, query)
        return loader

    def _custom(self, entity: str) -> Any:
        """The ``custom`` column when a rule compares a custom field of ``entity`` (else a
        NULL: decoding every record's JSON for nothing is a third of a scan's read)."""
        model: Any = self.crm.entity(entity).model
        columns = self.crm.entity(entity).columns
        if any(name not in columns for name, _ in self.fields.get(entity, ())):
            return model.custom
        return null().label("custom")

    def _columns(self, entity: str) -> list[str]:
        columns = self.crm.entity(entity).columns
        names = {name for name, _ in self.fields.get(entity, ())}
        for kind in ("phone", "email"):
            if f"extra_{kind}s" in columns:
                names.add(f"extra_{kind}s")
        for label in ("full_name", "name"):
            if label in columns:
                names.add(label)
        return sorted(name for name in names if name in columns and name not in ("id", "custom"))

    # -- the key index ----------------------------------------------------------------------

    def reindex(self, op: crmkit.Operation, entity: str, record_id: int) -> None:
        """Replace the keys of one record with those of its current values."""
        if entity not in self.fields:
            return
        self.unindex(op, entity, record_id)
        profiles = self.load(op, entity, [record_id])
        if profiles:
            self._insert_keys(op, profiles)

    def unindex(self, op: crmkit.Operation, entity: str, record_id: int) -> None:
        """Remove the keys of one record."""
        op.session.execute(
            delete(DedupeKey).where(DedupeKey.entity == entity, DedupeKey.record_id == record_id)
        )

    def _insert_keys(self, op: crmkit.Operation, profiles: Sequence[matching.Profile]) -> None:
        rows = [
            {"entity": p.entity, "record_id": p.record_id, "kind": kind, "key": key}
            for p in profiles
            for kind, key in sorted(matching.blocking_keys(p, self.keyed))
        ]
        if rows:  # a Core executemany: no ORM bulk machinery per key row
            op.session.connection().execute(insert(KEYS), rows)

    def rebuild(
        self,
        op: crmkit.Operation,
        entities: Iterable[str] | None = None,
        progress: Callable[[int], None] | None = None,
        batch: int = 2000,
    ) -> int:
        """Rebuild the key index of every live record of ``entities`` (default: all the
        rules cover); returns the number of records indexed."""
        count = 0
        for entity in sorted(entities or self.fields):
            op.session.execute(delete(DedupeKey).where(DedupeKey.entity == entity))
            model: Any = self.crm.entity(entity).model
            last = 0
            while True:
                ids = list(
                    op.session.scalars(
                        select(model.id)
                        .where(model.id > last, model.deleted_at.is_(None))
                        .order_by(model.id)
                        .limit(batch)
                    )
                )
                if not ids:
                    break
                self._insert_keys(op, self.load(op, entity, ids))
                count += len(ids)
                last = ids[-1]
                if progress:
                    progress(len(ids))
        return count

    # -- the online check -----------------------------------------------------------------

    def find(
        self,
        op: crmkit.Operation,
        entity: str,
        values: Mapping[str, Any],
        record_id: int | None,
    ) -> list[crmkit.DuplicateMatch]:
        """Matches of a record about to be written, from a few indexed lookups."""
        rules = self.rules_for(entity)
        if not rules:
            return []
        probe = self.profile(entity, record_id or 0, values)
        keys = matching.blocking_keys(probe, self.lookup[entity][0])
        if not keys:
            return []
        targets = sorted({e for rule in rules for e in rule.against})
        found: set[tuple[str, int]] = set()
        for kind, key in sorted(keys):
            for target in targets:
                found.update(
                    (target, rid)
                    for rid in op.session.scalars(
                        self._lookup, {"kind": kind, "key": key, "entity": target}
                    )
                )
        found.discard((entity, record_id or 0))
        result: list[crmkit.DuplicateMatch] = []
        for target in targets:
            ids = [rid for ent, rid in found if ent == target]
            for other in self.load(op, target, ids):
                hit = matching.first_match(rules, probe, other)
                if hit is None:
                    continue
                rule, scored = hit
                result.append(
                    crmkit.DuplicateMatch(
                        target,
                        other.record_id,
                        scored.score,
                        rule.action,
                        scored.reasons,
                        rule=rule.name,
                        owner_id=other.owner_id,
                        label=f"{other.label} ({target} {other.record_id})",
                    )
                )
        result.sort(key=lambda m: (-m.score, m.entity, m.record_id))
        return result

    # -- the batch scan ---------------------------------------------------------------------

    def scan(
        self,
        op: crmkit.Operation,
        entity: str,
        *,
        progress: Callable[[int], None] | None = None,
        max_block: int = 200,
        window: int = 8,
    ) -> dict[str, int]:
        """Compare every live record of ``entity`` with the records its rules check against,
        with blocking; save the matching pairs as open candidates (dismissed pairs stay
        dismissed). Returns counts: records, pairs compared, candidates."""
        rules = self.rules_for(entity)
        if not rules:
            raise crmkit.CRMError(
                f"no dedupe rule checks {entity!r} records; rules exist for:"
                f" {', '.join(sorted({r.entity for r in self.rules})) or 'nothing'}"
            )
        involved = sorted({entity, *(e for r in rules for e in r.against)})
        slots, exact = self.lookup[entity]
        profiles: list[matching.Profile] = []
        if exact:
            # only records sharing an evidence key can match: the key index names them, and
            # only those are read and normalised (no name blocks, no neighbourhood)
            records = 0
            for name in involved:
                records += self._live(op, name)
            profiles = self._sharing_profiles(op, involved, slots)
            if progress:
                progress(records)
        else:
            for name in involved:
                profiles.extend(self._all_profiles(op, name, progress))
            records = len(profiles)
        left, right = matching.candidate_arrays(
            profiles, slots=slots, max_block=max_block, window=window, neighbourhood=not exact
        )
        compared = len(left)
        # both orientations of each pair: the checked record (``a``) is of ``entity``, and
        # within one entity only the lower id checks the higher (one candidate per pair)
        kinds = {name: n for n, name in enumerate(involved)}
        kind = np.fromiter((kinds[p.entity] for p in profiles), np.int64, len(profiles))
        ids = np.fromiter((p.record_id for p in profiles), np.int64, len(profiles))
        mine = kinds[entity]
        lefts, rights = [], []
        for a, b in ((left, right), (right, left)):
            keep = (kind[a] == mine) & ((kind[a] != kind[b]) | (ids[a] < ids[b]))
            lefts.append(a[keep])
            rights.append(b[keep])
        del left, right
        pairs: dict[tuple[str, int, str, int], tuple[Rule, matching.Scored]] = {}
        for i, j, rule, scored in matching.match_pairs(
            rules, profiles, np.concatenate(lefts), np.concatenate(rights)
        ):
            one, other = profiles[i], profiles[j]
            pairs[(one.entity, one.record_id, other.entity, other.record_id)] = (rule, scored)
        decided = {
            (c.entity_a, c.id_a, c.entity_b, c.id_b)
            for c in op.session.scalars(
                select(DedupeCandidate).where(
                    DedupeCandidate.entity_a == entity, DedupeCandidate.status != "open"
                )
            )
        }
        op.session.execute(
            delete(DedupeCandidate).where(
                DedupeCandidate.entity_a == entity, DedupeCandidate.status == "open"
            )
        )
        now = crmkit.utcnow()
        rows = [
            {
                "entity_a": key[0],
                "id_a": key[1],
                "entity_b": key[2],
                "id_b": key[3],
                "score": scored.score,
                "rule": rule.name,
                "action": str(rule.action),
                "reasons": list(scored.reasons),
                "status": "open",
                "found_at": now,
            }
            for key, (rule, scored) in sorted(pairs.items())
            if key not in decided
        ]
        for start in range(0, len(rows), 5000):
            op.session.connection().execute(insert(CANDIDATES), rows[start : start + 5000])
        op.emit(
            "dedupe.scanned",
            {"entity": entity, "records": records, "compared": compared, "found": len(rows)},
        )
        return {"records": records, "compared": compared, "candidates": len(rows)}

    def _live(self, op: crmkit.Operation, entity: str) -> int:
        model: Any = self.crm.entity(entity).model
        query = select(func.count()).select_from(model).where(model.deleted_at.is_(None))
        return int(op.session.scalar(query) or 0)

    def _sharing_profiles(
        self, op: crmkit.Operation, involved: Sequence[str], slots: Iterable[str]
    ) -> list[matching.Profile]:
        """Profiles of the records of ``involved`` that share a key of a kind of ``slots``
        with another record (one grouping query on the key index, then reads by id)."""
        kinds = sorted({slot.rpartition(":")[2] for slot in slots})
        shared = (
            select(DedupeKey.kind, DedupeKey.key)
            .where(DedupeKey.entity.in_(involved), DedupeKey.kind.in_(kinds))
            .group_by(DedupeKey.kind, DedupeKey.key)
            .having(func.count() > 1)
            .subquery()
        )
        query = (
            select(DedupeKey.entity, DedupeKey.record_id)
            .join(shared, (DedupeKey.kind == shared.c.kind) & (DedupeKey.key == shared.c.key))
            .where(DedupeKey.entity.in_(involved))
            .distinct()
        )
        wanted: dict[str, list[int]] = {}
        for name, record_id in op.session.connection().execute(query):
            wanted.setdefault(name, []).append(record_id)
        profiles: list[matching.Profile] = []
        for name in involved:
            profiles.extend(self.load(op, name, wanted.get(name, ())))
        return profiles

    def _all_profiles(
        self,
        op: crmkit.Operation,
        entity: str,
        progress: Callable[[int], None] | None,
        batch: int = 5000,
    ) -> list[matching.Profile]:
        model: Any = self.crm.entity(entity).model
        names = self._columns(entity)
        columns = [getattr(model, name) for name in names]
        query = (
            select(model.id, model.owner_id, self._custom(entity), *columns)
            .where(model.deleted_at.is_(None))
            .order_by(model.id)
            .execution_options(yield_per=batch)
        )
        found = []
        for row in op.session.connection().execute(query):
            data = dict(zip(names, row[3:], strict=True))
            if row[2]:
                data.update(row[2])
            found.append(self.profile(entity, row[0], data, row[1]))
            if progress and len(found) % batch == 0:
                progress(batch)
        if progress:
            progress(len(found) % batch)
        return found
