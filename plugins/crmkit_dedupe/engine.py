"""The plugin's work on the database: the key index, the online check and the batch scan."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Integer,
    String,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

import crmkit
from crmkit_dedupe import matching
from crmkit_dedupe.models import DedupeCandidate, DedupeKey
from crmkit_dedupe.rules import PLUGIN_NAME, Rule, configured_rules

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
        self.rules: tuple[Rule, ...] = configured_rules(crm)
        self.region = str(settings.get("default_region") or crm.settings.default_region)
        self.max_candidates = int(settings.get("max_candidates", 200))
        self.online = bool(settings.get("online_check", True))
        self._loaders: dict[str, Any] = {}
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
        #: The same per key, for many keys at once (an import batch): each key's newest
        #: ``max_candidates`` records, ranked in the query.
        ranked = (
            select(
                DedupeKey.kind,
                DedupeKey.key,
                DedupeKey.entity,
                DedupeKey.record_id,
                func.row_number()
                .over(
                    partition_by=(DedupeKey.kind, DedupeKey.key, DedupeKey.entity),
                    order_by=DedupeKey.record_id.desc(),
                )
                .label("rank"),
            )
            .where(
                DedupeKey.kind.in_(bindparam("kinds", expanding=True)),
                DedupeKey.key.in_(bindparam("keys", expanding=True)),
                DedupeKey.entity.in_(bindparam("entities", expanding=True)),
            )
            .subquery()
        )
        #: On PostgreSQL, the same as a lateral join over the keys given as arrays: one
        #: index range per key and entity, stopped after ``max_candidates`` (the planner
        #: cannot misjudge it on a key table that grew since it was last analysed).
        self._lookup_lateral = text(
            "SELECT k.kind, k.key, e.entity, d.record_id"
            " FROM unnest(CAST(:kinds AS varchar[]), CAST(:keys AS varchar[])) AS k(kind, key)"
            " CROSS JOIN unnest(CAST(:entities AS varchar[])) AS e(entity)"
            " CROSS JOIN LATERAL (SELECT dedupe_keys.record_id FROM dedupe_keys"
            " WHERE dedupe_keys.kind = k.kind AND dedupe_keys.key = k.key"
            " AND dedupe_keys.entity = e.entity"
            " ORDER BY dedupe_keys.record_id DESC LIMIT :cap) AS d"
        ).bindparams(
            bindparam("kinds", type_=ARRAY(String())),
            bindparam("keys", type_=ARRAY(String())),
            bindparam("entities", type_=ARRAY(String())),
            bindparam("cap", type_=Integer()),
        )
        self._lookup_many = select(
            ranked.c.kind, ranked.c.key, ranked.c.entity, ranked.c.record_id
        ).where(ranked.c.rank <= self.max_candidates)
        #: Per open operation, the import rows :meth:`find_many` profiled (by ``id``, with the
        #: values, so that a reused id is never mistaken): :meth:`file_created` reuses them.
        self._probes: weakref.WeakKeyDictionary[
            crmkit.Operation, dict[int, tuple[Mapping[str, Any], matching.Profile]]
        ] = weakref.WeakKeyDictionary()
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
        #: Per entity: the slots of its records some check looks up (the lookup slots of
        #: every entity whose rules check against it), the only keys worth filing (with the
        #: built-in rules: phones, e-mails and dates, no names), and the fields they need.
        self.filed: dict[str, frozenset[str]] = {}
        for name in self.fields:
            self.filed[name] = frozenset(
                slot
                for checked, (slots, _) in self.lookup.items()
                if any(name in rule.against for rule in self.rules_for(checked))
                for slot in slots
            )
        self.key_fields = {
            name: [
                (f, c)
                for f, c in fields
                if f"{f}:{c}" in self.filed[name] | self.lookup.get(name, (frozenset(), False))[0]
            ]
            for name, fields in self.fields.items()
        }

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

    def key_profile(self, entity: str, record_id: int, data: Mapping[str, Any]) -> matching.Profile:
        """``data`` normalised only in the fields whose keys are filed or looked up."""
        return matching.build_profile(
            entity, record_id, data, self.key_fields.get(entity, ()), self.region
        )

    def load(self, op: crmkit.Operation, entity: str, ids: Iterable[int]) -> list[matching.Profile]:
        """Profiles of the live records of ``entity`` with ``ids``."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        query = self._loader(entity)
        builder = self.builder(entity)
        found: list[matching.Profile] = []
        for start in range(0, len(wanted), 500):
            # Core execution: plain rows, without the ORM's result machinery per row
            rows = op.session.connection().execute(query, {"ids": wanted[start : start + 500]})
            found.extend(builder.profiles(rows.all()))
        return found

    def builder(self, entity: str) -> matching.ProfileBuilder:
        """A profile builder for rows read by :meth:`_select` (its memo lives as long as it)."""
        return matching.ProfileBuilder(
            entity, self._columns(entity), self.fields.get(entity, ()), self.region
        )

    def _select(self, entity: str) -> Any:
        """``SELECT id, owner_id, custom, <the columns the rules read>`` of live records
        (the extra phone/e-mail lists as text: most are empty and need no JSON decoding)."""
        model: Any = self.crm.entity(entity).model
        columns = [
            cast(getattr(model, name), Text) if name.startswith("extra_") else getattr(model, name)
            for name in self._columns(entity)
        ]
        return select(model.id, model.owner_id, self._custom(entity), *columns).where(
            model.deleted_at.is_(None)
        )

    def _loader(self, entity: str) -> Any:
        """The statement reading records of ``entity`` by id (built once per entity, so
        every check reuses one compiled statement)."""
        loader = self._loaders.get(entity)
        if loader is None:
            model: Any = self.crm.entity(entity).model
            loader = self._loaders[entity] = self._select(entity).where(
                model.id.in_(bindparam("ids", expanding=True))
            )
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

    def file_created(
        self, op: crmkit.Operation, entity: str, records: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> None:
        """File the keys of records just created, reusing the profile :meth:`find_many` made
        of the same values when it checked them (an import normalises each row once)."""
        kept = self._probes.pop(op, {})
        profiles = []
        for record_id, values in records:
            found = kept.get(id(values))
            if found is not None and found[0] is values:
                profiles.append(attrs.evolve(found[1], record_id=record_id))
            else:
                profiles.append(self.key_profile(entity, record_id, values))
        self._insert_keys(op, profiles)

    def _insert_keys(self, op: crmkit.Operation, profiles: Sequence[matching.Profile]) -> None:
        rows = [
            {"entity": p.entity, "record_id": p.record_id, "kind": kind, "key": key}
            for p in profiles
            for kind, key in sorted(matching.blocking_keys(p, self.filed.get(p.entity, ())))
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
        others = [
            other
            for target in targets
            for other in self.load(op, target, [rid for ent, rid in found if ent == target])
        ]
        return _matches(rules, probe, others)

    def find_many(
        self, op: crmkit.Operation, entity: str, rows: Sequence[tuple[int, Mapping[str, Any]]]
    ) -> dict[int, list[crmkit.DuplicateMatch]]:
        """:meth:`find` for the new rows of an import batch (``(key, values)``), from one
        key query and one profile read per entity looked in, whatever the batch's size:
        each key's newest ``max_candidates`` records, as :meth:`find` reads them."""
        rules = self.rules_for(entity)
        if not rules:
            return {}
        slots = self.lookup[entity][0]
        # first only the keyed fields (most rows share no key with anything: their name is
        # never normalised); kept for filing the keys of the rows the import then writes
        probes = [(key, self.key_profile(entity, 0, values)) for key, values in rows]
        kept = self._probes.setdefault(op, {})
        for (_, values), (_, probe) in zip(rows, probes, strict=True):
            kept[id(values)] = (values, probe)
        keys_of = {key: matching.blocking_keys(probe, slots) for key, probe in probes}
        values_of = dict(rows)
        wanted = sorted({k for keys in keys_of.values() for k in keys})
        if not wanted:
            return {}
        targets = sorted({e for rule in rules for e in rule.against})
        by_key: dict[tuple[str, str, str], list[int]] = {}
        postgres = op.session.connection().dialect.name == "postgresql"
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            if postgres:  # each key's own index range, newest first (a lateral join)
                statement: Any = self._lookup_lateral
                parameters: dict[str, Any] = {
                    "kinds": [k for k, _ in chunk],
                    "keys": [k for _, k in chunk],
                    "entities": targets,
                    "cap": self.max_candidates,
                }
            else:
                statement = self._lookup_many
                parameters = {
                    "kinds": sorted({k for k, _ in chunk}),
                    "keys": sorted({k for _, k in chunk}),
                    "entities": targets,
                }
            for kind, key, target, record_id in op.session.execute(statement, parameters):
                by_key.setdefault((kind, key, target), []).append(record_id)
        profiles: dict[tuple[str, int], matching.Profile] = {}
        for target in targets:
            ids = {rid for (_, _, t), found in by_key.items() if t == target for rid in found}
            for profile in self.load(op, target, ids):
                profiles[(target, profile.record_id)] = profile
        result: dict[int, list[crmkit.DuplicateMatch]] = {}
        for key, _ in probes:
            near = {
                (target, rid)
                for kind, value in keys_of[key]
                for target in targets
                for rid in by_key.get((kind, value, target), ())
            }
            others = [profiles[item] for item in sorted(near) if item in profiles]
            if not others:
                continue
            found = _matches(rules, self.profile(entity, 0, values_of[key]), others)
            if found:
                result[key] = found
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
        chunk: int = 50_000,
    ) -> dict[str, int]:
        """Compare every live record of ``entity`` with the records its rules check against,
        with blocking; save the matching pairs as open candidates (dismissed pairs stay
        dismissed). Returns counts: records, pairs compared, candidates.

        Python's cyclic garbage collector is paused while it runs
        (:func:`crmkit.collector_paused`): a scan makes millions of short-lived tuples and
        lists and no reference cycles, and at 1 M contacts the collector's walks over the
        profiles held took 0.5-1 s of a 6-7 s scan."""
        rules = self.rules_for(entity)
        if not rules:
            raise crmkit.CRMError(
                f"no dedupe rule checks {entity!r} records; rules exist for:"
                f" {', '.join(sorted({r.entity for r in self.rules})) or 'nothing'}"
            )
        with crmkit.collector_paused():
            return self._scan(op, entity, rules, progress, max_block, window, chunk)

    def _scan(
        self,
        op: crmkit.Operation,
        entity: str,
        rules: Sequence[Rule],
        progress: Callable[[int], None] | None,
        max_block: int,
        window: int,
        chunk: int,
    ) -> dict[str, int]:
        involved = sorted({entity, *(e for r in rules for e in r.against)})
        slots, exact = self.lookup[entity]
        profiles = matching.Table()
        starts = []
        if exact:
            # only records sharing an evidence key can match: the key index names the shared
            # keys and their records (one grouping query), only those records are normalised,
            # and the keys are the blocks (no name blocks, no neighbourhood)
            of_entity, of_id, of_block = self._shared_keys(op, involved, slots)
            records = 0
            for number, name in enumerate(involved):
                starts.append(len(profiles))
                wanted = np.unique(of_id[of_entity == number])
                records += self._read(op, name, profiles, progress, wanted)
            starts.append(len(profiles))
            # each key's record as an index into the profiles (-1: not a live record);
            # every entity's profiles are in id order
            ids = np.asarray(profiles.record_ids, dtype=np.int64)
            members = np.full(len(of_id), -1, dtype=np.int64)
            for number in range(len(involved)):
                segment = ids[starts[number] : starts[number + 1]]
                if not len(segment):
                    continue
                chosen = of_entity == number
                at = np.minimum(np.searchsorted(segment, of_id[chosen]), len(segment) - 1)
                members[chosen] = np.where(segment[at] == of_id[chosen], at + starts[number], -1)
            live = members >= 0
            left, right = matching.block_pairs(
                profiles, members[live], of_block[live], max_block=max_block, window=window
            )
            del of_entity, of_id, of_block, members, live
        else:
            for name in involved:
                starts.append(len(profiles))
                self._read(op, name, profiles, progress)
            starts.append(len(profiles))
            records = len(profiles)
            ids = np.asarray(profiles.record_ids, dtype=np.int64)
            left, right = matching.candidate_arrays(
                profiles, slots=slots, max_block=max_block, window=window
            )
        compared = len(left)
        # both orientations of each pair: the checked record (``a``) is of ``entity``, and
        # within one entity only the lower id checks the higher (one candidate per pair)
        kind = np.repeat(np.arange(len(involved), dtype=np.int64), np.diff(starts))
        mine = involved.index(entity)
        lefts, rights = [], []
        for a, b in ((left, right), (right, left)):
            keep = (kind[a] == mine) & ((kind[a] != kind[b]) | (ids[a] < ids[b]))
            lefts.append(a[keep])
            rights.append(b[keep])
        del left, right
        # in the order candidates are saved: (entity_b, id_b) within id_a (``involved`` is
        # sorted by name), so each chunk's matches can be written while the next is scored
        a, b = np.concatenate(lefts), np.concatenate(rights)
        order = np.lexsort((ids[b], kind[b], ids[a]))
        a, b = a[order], b[order]
        del lefts, rights, order
        decided = self._clear(op, entity)
        matcher = matching.Matcher(rules, profiles)
        names = [rule.name for rule in rules]
        actions = [str(rule.action) for rule in rules]
        connection = op.session.connection()
        found = 0
        # On PostgreSQL a writer thread has the connection to itself while the main thread
        # scores the next chunk (no database work there): the server stores rows as psycopg
        # sends them. SQLite's writes need the GIL between rows, which the scoring holds:
        # there, and on other engines, each chunk is written in turn.
        background = connection.dialect.name == "postgresql"
        failed: list[BaseException] = []

        def write(rows: list[tuple[int, str, int, float, str, str, str]]) -> None:
            if failed:
                return  # a write failed: the scan stops, and its transaction rolls back
            try:
                _insert_candidates(connection, entity, rows)
            except BaseException as error:
                failed.append(error)
                raise

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dedupe-save") as writer:
            pending = []
            for start in range(0, len(a), chunk):
                if failed:
                    break
                matches = matcher.match(
                    a[start : start + chunk], b[start : start + chunk], as_json=True
                )
                rows = [
                    (id_a, involved[kind_b], id_b, score, names[rule], actions[rule], why)
                    for id_a, kind_b, id_b, rule, score, why in zip(
                        ids[matches.left].tolist(),
                        kind[matches.right].tolist(),
                        ids[matches.right].tolist(),
                        matches.rule.tolist(),
                        matches.scores,
                        matches.reasons,
                        strict=True,
                    )
                    if not decided or (entity, id_a, involved[kind_b], id_b) not in decided
                ]
                found += len(rows)
                if background:
                    pending.append(writer.submit(write, rows))
                else:
                    write(rows)
            for task in pending:
                task.result()  # a failed write raises here, and the transaction rolls back
        op.emit(
            "dedupe.scanned",
            {"entity": entity, "records": records, "compared": compared, "found": found},
        )
        return {"records": records, "compared": compared, "candidates": found}

    def _clear(self, op: crmkit.Operation, entity: str) -> set[tuple[str, int, str, int]]:
        """Delete the open candidates of ``entity``; return the pairs already decided
        (dismissed or merged: a new scan leaves them as they are)."""
        connection = op.session.connection()
        decided: set[tuple[str, int, str, int]] = {
            (row[0], row[1], row[2], row[3])
            for row in connection.execute(
                select(
                    DedupeCandidate.entity_a,
                    DedupeCandidate.id_a,
                    DedupeCandidate.entity_b,
                    DedupeCandidate.id_b,
                ).where(DedupeCandidate.entity_a == entity, DedupeCandidate.status != "open")
            )
        }
        connection.execute(
            delete(DedupeCandidate).where(
                DedupeCandidate.entity_a == entity, DedupeCandidate.status == "open"
            )
        )
        return decided

    def _shared_keys(
        self, op: crmkit.Operation, involved: Sequence[str], slots: Iterable[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Every key (of a kind of ``slots``) that more than one record of ``involved`` has,
        as three parallel arrays: the record's entity (an index into ``involved``), its id,
        and the key's number. One grouping query over the key index's covering index."""
        kinds = sorted({slot.rpartition(":")[2] for slot in slots})
        single = len(involved) == 1
        member: Any = cast(DedupeKey.record_id, String)
        if not single:
            member = DedupeKey.entity + ":" + member
        query = (
            select(func.aggregate_strings(member, ","))
            .where(DedupeKey.entity.in_(involved), DedupeKey.kind.in_(kinds))
            .group_by(DedupeKey.kind, DedupeKey.key)
            .having(func.count() > 1)
        )
        texts = [text for rows in _batches(op.session.connection(), query) for (text,) in rows]
        sizes = [text.count(",") + 1 for text in texts]
        items = ",".join(texts).split(",") if texts else []
        blocks = np.repeat(np.arange(len(texts), dtype=np.int64), sizes)
        if single:
            entities = np.zeros(len(items), dtype=np.int64)
            ids = np.fromiter(map(int, items), np.int64, len(items))
        else:
            number = {name: n for n, name in enumerate(involved)}
            parts = [item.rpartition(":") for item in items]
            entities = np.fromiter((number[p[0]] for p in parts), np.int64, len(parts))
            ids = np.fromiter((int(p[2]) for p in parts), np.int64, len(parts))
        return entities, ids, blocks

    def _read(
        self,
        op: crmkit.Operation,
        entity: str,
        profiles: matching.Table,
        progress: Callable[[int], None] | None,
        wanted: npt.NDArray[np.int64] | None = None,
        batch: int = 5000,
    ) -> int:
        """Add the profiles of the live records of ``entity`` whose ids are in ``wanted``
        (sorted; default: all) to ``profiles``, in id order; returns how many live records
        ``entity`` has."""
        model: Any = self.crm.entity(entity).model
        connection = op.session.connection()
        query = self._select(entity).order_by(model.id)
        params: dict[str, Any] = {}
        chosen = None if wanted is None else _ids_in(connection.dialect.name, model.id)
        kept: set[int] | None = None
        if wanted is not None:
            if chosen is not None:
                query = query.where(chosen[0])
                params["ids"] = chosen[1](wanted.tolist())
            else:
                kept = set(wanted.tolist())
        builder = self.builder(entity)
        read = 0
        for rows in _batches(connection, query, params, batch):
            read += len(rows)
            builder.add(profiles, rows if kept is None else [r for r in rows if r[0] in kept])
            if progress:
                progress(len(rows))
        if wanted is None or kept is not None:
            return read
        counted = self._live(op, entity)
        if progress and counted > read:
            progress(counted - read)
        return counted

    def _live(self, op: crmkit.Operation, entity: str) -> int:
        model: Any = self.crm.entity(entity).model
        query = select(func.count()).select_from(model).where(model.deleted_at.is_(None))
        return int(op.session.scalar(query) or 0)


def _matches(
    rules: Sequence[Rule], probe: matching.Profile, others: Iterable[matching.Profile]
) -> list[crmkit.DuplicateMatch]:
    """The records of ``others`` that ``probe`` matches under ``rules``, best first."""
    result: list[crmkit.DuplicateMatch] = []
    for other in others:
        hit = matching.first_match(rules, probe, other)
        if hit is None:
            continue
        rule, scored = hit
        result.append(
            crmkit.DuplicateMatch(
                other.entity,
                other.record_id,
                scored.score,
                rule.action,
                scored.reasons,
                rule=rule.name,
                owner_id=other.owner_id,
                label=f"{other.label} ({other.entity} {other.record_id})",
                reason_fields=matching.reason_fields(rule, probe, other),
            )
        )
    result.sort(key=lambda m: (-m.score, m.entity, m.record_id))
    return result


def _batches(
    connection: Any, query: Any, params: Mapping[str, Any] | None = None, size: int = 50_000
) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of ``query`` in batches of up to ``size``, fetched from the driver's cursor
    (the result's ``cursor``), with each selected column's own result processor applied
    where its type has one (a SQLite date, a JSON column): the values SQLAlchemy's rows
    would hold. A scan reads hundreds of thousands of rows, and SQLAlchemy's row handling
    cost 0.4-0.5 s per 464 000 on top of the driver's 0.7-1.0 s."""
    result = connection.execute(query, params or {})
    cursor = result.cursor
    try:
        dialect = connection.dialect
        processors = []
        for n, column in enumerate(query.selected_columns):
            kind = cursor.description[n][1]
            found = column.type.dialect_impl(dialect).result_processor(dialect, kind)
            if found is not None:
                processors.append((n, found))
        while rows := cursor.fetchmany(size):
            if processors:
                rows = [list(row) for row in rows]
                for n, process in processors:
                    for row in rows:
                        row[n] = process(row[n])
            yield rows
    finally:
        result.close()


def _ids_in(dialect: str, column: Any) -> tuple[Any, Callable[[list[int]], Any]] | None:
    """A condition ``column IN <the ids bound as one parameter "ids">`` and the function
    making that parameter from a list, on the engines that take a whole list as one value
    (a PostgreSQL array, SQLite's ``json_each`` over a JSON array); ``None`` elsewhere (the
    caller filters in Python). Hundreds of thousands of ids as separate parameters would
    pass SQLite's limit and cost PostgreSQL a long parse."""
    if dialect == "postgresql":
        return column == any_(bindparam("ids", type_=ARRAY(Integer))), list
    if dialect == "sqlite":
        values: Any = select(literal_column("value")).select_from(func.json_each(bindparam("ids")))
        return column.in_(values), json.dumps
    return None


def _insert_candidates(
    connection: Any, entity: str, rows: Sequence[tuple[int, str, int, float, str, str, str]]
) -> None:
    """Insert open candidates of ``entity``, each row ``(id_a, entity_b, id_b, score, rule,
    action, reasons)`` with the reasons as the text of a JSON array, with PostgreSQL's
    ``COPY`` (psycopg) or else the driver's own ``executemany``: a scan saves hundreds of
    thousands, and SQLAlchemy's per-row parameter processing took longer than the database.
    The time goes through the column's own SQLAlchemy bind processor, so it is stored
    exactly as the ORM stores it; the JSON text is stored as it is (the ORM reads it back
    as the list)."""
    if not rows:
        return
    dialect = connection.dialect

    process = CANDIDATES.c["found_at"].type.bind_processor(dialect)
    found_at = crmkit.utcnow() if process is None else process(crmkit.utcnow())
    names = [
        *("entity_a", "id_a", "entity_b", "id_b", "score", "rule", "action", "reasons"),
        *("status", "found_at"),
    ]
    if _copies(dialect):
        # PostgreSQL's COPY: the fastest way in, within the operation's own transaction
        command = f"COPY {CANDIDATES.name} ({', '.join(names)}) FROM STDIN"
        with connection.connection.cursor() as cursor, cursor.copy(command) as copy:
            for a, entity_b, b, score, rule, action, reasons in rows:
                row = (entity, a, entity_b, b, score, rule, action, reasons, "open")
                copy.write_row((*row, found_at))
        return
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    marks = [mark] * len(names)
    if dialect.name == "postgresql":
        marks[names.index("reasons")] = f"CAST({mark} AS JSON)"
    sql = f"INSERT INTO {CANDIDATES.name} ({', '.join(names)}) VALUES ({', '.join(marks)})"
    for start in range(0, len(rows), 5000):
        connection.exec_driver_sql(
            sql,
            [
                (entity, a, entity_b, b, score, rule, action, reasons, "open", found_at)
                for a, entity_b, b, score, rule, action, reasons in rows[start : start + 5000]
            ],
        )


def _copies(dialect: Any) -> bool:
    """Whether candidates go in by ``COPY`` (PostgreSQL through psycopg 3)."""
    return bool(dialect.name == "postgresql" and dialect.driver == "psycopg")
