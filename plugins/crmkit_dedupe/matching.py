"""Profiles, blocking keys and scoring: the matching engine, free of any database.

A :class:`Profile` holds one record's values in normalised form for every field the rules
compare. :func:`blocking_keys` gives the keys under which a record is filed (the online
check looks them up in the ``dedupe_keys`` table; the batch scan groups by them), and
:func:`score` compares two profiles under one rule, returning the score and the reasons.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt
from attrs import define, frozen
from rapidfuzz.distance import JaroWinkler

from crmkit_dedupe import normalise as nz
from crmkit_dedupe import places
from crmkit_dedupe.rules import FieldRule, Rule

#: Free-mail domains say nothing about a company: never a blocking key nor evidence.
FREE_MAIL = frozenset(
    [
        "gmail.com",
        "qq.com",
        "163.com",
        "126.com",
        "yeah.net",
        "sina.com",
        "sina.cn",
        "sohu.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "foxmail.com",
        "aliyun.com",
        "139.com",
        "protonmail.com",
        "msn.com",
    ]
)


def personal_email(address: str) -> str:
    """The canonical address (``nz.canonical_email``), or ``""`` for a role address
    (``sales@``, ``info@``: a team's, which says nothing about who wrote it)."""
    value = nz.canonical_email(address)
    return "" if value and nz.is_role_address(value) else value


def normalised(compare: str, raw: Any, region: str, extra: Any = None) -> Any:
    """The normalised form of ``raw`` for ``compare`` (``None`` when there is nothing)."""
    if compare in ("phone", "email"):
        canonical = personal_email if compare == "email" else None
        values: list[str] = []
        for item in (raw, *extra) if extra else (raw,):
            if item:
                text = str(item)
                value = canonical(text) if canonical else nz.phone_with_extension(text, region)
                if value and value not in values:
                    values.append(value)
        return tuple(values) or None
    if raw is None or raw == "":
        return None
    if compare == "date":
        if isinstance(raw, dt.date):  # the digits, as of a date given as text
            return f"{raw.year:04d}{raw.month:02d}{raw.day:02d}"
        text = "".join(ch for ch in str(raw) if ch.isdigit())
        return text or None
    text = str(raw)
    if compare == "name":
        name = nz.person_name(text)
        return name if name.tokens else None
    if compare == "company":
        return places.company_key(text) or None
    if compare == "city":
        return places.city_key(text) or None
    if compare == "domain":
        domain = nz.domain_of(text)
        return domain if domain and domain not in FREE_MAIL else None
    return nz.fold(text) or None


@frozen
class Profile:
    """One record's normalised values, by field name."""

    entity: str
    record_id: int
    values: Mapping[str, Any]
    owner_id: int | None = None
    label: str = ""


def build_profile(
    entity: str,
    record_id: int,
    data: Mapping[str, Any],
    fields: Iterable[tuple[str, str]],
    region: str,
    *,
    owner_id: int | None = None,
    label: str = "",
) -> Profile:
    """Normalise ``data`` (a record's values) for each ``(field, comparison)``."""
    values: dict[str, Any] = {}
    for name, compare in fields:
        extra = None
        if compare in ("phone", "email"):
            extra = data.get(f"extra_{compare}s")
        value = normalised(compare, data.get(name), region, extra)
        if value is not None:
            values[f"{name}:{compare}"] = value
    return Profile(entity, record_id, values, owner_id, label)


class Table(Sequence[Profile]):
    """Profiles stored by column: per record its entity, id, owner and label, and per slot
    (``field:comparison``) a list of normalised values (``None`` where a record has none).

    A batch scan holds hundreds of thousands of records: the vectorised matching reads the
    columns, and a :class:`Profile` is made only for a record that is asked for by index
    (a pair near a threshold, a record of an oversized block)."""

    def __init__(self) -> None:
        self.entities: list[str] = []
        self.record_ids: list[int] = []
        self.owner_ids: list[int | None] = []
        self.labels: list[str] = []
        self.columns: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self.record_ids)

    @overload
    def __getitem__(self, index: int) -> Profile: ...

    @overload
    def __getitem__(self, index: slice) -> list[Profile]: ...

    def __getitem__(self, index: int | slice) -> Profile | list[Profile]:
        if isinstance(index, slice):
            return [self[n] for n in range(*index.indices(len(self)))]
        values = {}
        for slot, column in self.columns.items():
            value = column[index]
            if value is not None:
                values[slot] = value
        return Profile(
            self.entities[index],
            self.record_ids[index],
            values,
            self.owner_ids[index],
            self.labels[index],
        )

    def column(self, slot: str) -> list[Any]:
        """Every record's value in ``slot`` (``None`` where it has none)."""
        found = self.columns.get(slot)
        return found if found is not None else [None] * len(self)

    def extend(
        self,
        entity: str,
        record_ids: Sequence[int],
        owner_ids: Sequence[int | None],
        labels: Sequence[str],
        columns: Mapping[str, Sequence[Any]],
    ) -> None:
        """Add records of ``entity`` (the sequences are parallel)."""
        before, added = len(self), len(record_ids)
        for slot in columns:
            if slot not in self.columns:
                self.columns[slot] = [None] * before
        for slot, column in self.columns.items():
            column.extend(columns[slot] if slot in columns else [None] * added)
        self.entities.extend([entity] * added)
        self.record_ids.extend(record_ids)
        self.owner_ids.extend(owner_ids)
        self.labels.extend(labels)


class ProfileBuilder:
    """Profiles of records of one entity read as rows ``(id, owner_id, custom, *columns)``,
    normalised a column at a time. Every comparison but phone and e-mail (whose values are
    nearly all distinct) keeps a memo of the raw values it has normalised, so a name, a city
    or a date shared by thousands of records is parsed once per builder."""

    def __init__(
        self, entity: str, columns: Sequence[str], fields: Iterable[tuple[str, str]], region: str
    ) -> None:
        self.entity = entity
        self.region = region
        at = {name: n + 3 for n, name in enumerate(columns)}  # after id, owner_id, custom
        self._plan: list[
            tuple[str, str, int, int | None, dict[Any, Any] | None, Callable[[str], str]]
        ] = []
        self._fields = list(fields)
        for name, compare in self._fields:
            if name not in at:
                continue  # a custom field: read from the record's JSON (see ``add``)
            extra = at.get(f"extra_{compare}s") if compare in ("phone", "email") else None
            memo: dict[Any, Any] | None = None if compare in ("phone", "email") else {}
            canonical = personal_email if compare == "email" else self._phone
            self._plan.append((f"{name}:{compare}", compare, at[name], extra, memo, canonical))
        self._custom = [
            (n, c, at.get(f"extra_{c}s") if c in ("phone", "email") else None)
            for n, c in self._fields
            if n not in at
        ]
        self._label = next((at[n] for n in ("full_name", "name") if n in at), None)

    def _phone(self, text: str) -> str:
        return nz.phone_with_extension(text, self.region)

    def profiles(self, rows: Sequence[Sequence[Any]]) -> list[Profile]:
        """The profiles of ``rows``."""
        table = Table()
        self.add(table, rows)
        return list(table)

    def add(self, table: Table, rows: Sequence[Sequence[Any]]) -> None:
        """Add the profiles of ``rows`` to ``table``."""
        region = self.region
        columns: dict[str, list[Any]] = {}
        for slot, compare, index, extra, memo, canonical in self._plan:
            raws = [row[index] for row in rows]
            if memo is None:  # a phone or an e-mail: one value each, in the common case
                texts = [
                    canonical(raw if type(raw) is str else str(raw)) if raw else "" for raw in raws
                ]
                column: list[Any] = [(text,) if text else None for text in texts]
                if extra is not None:  # the records with extra phones or e-mails
                    for n, row in enumerate(rows):
                        more = row[extra]
                        if not (more is None or more == "[]" or more == []):
                            column[n] = normalised(compare, raws[n], region, _extras(row, extra))
            else:  # each distinct raw value normalised once
                try:
                    for raw in set(raws).difference(memo):
                        memo[raw] = normalised(compare, raw, region)
                    column = [memo[raw] for raw in raws]
                except TypeError:  # an unhashable value (a list in a JSON column)
                    column = [normalised(compare, raw, region) for raw in raws]
            columns[slot] = column
        for name, compare, extra in self._custom:
            columns[f"{name}:{compare}"] = [
                normalised(compare, (row[2] or {}).get(name), region, _extras(row, extra))
                for row in rows
            ]
        labels = (
            [""] * len(rows)
            if self._label is None
            else [str(row[self._label] or "") for row in rows]
        )
        table.extend(
            self.entity, [row[0] for row in rows], [row[1] for row in rows], labels, columns
        )


def _extras(row: Sequence[Any], index: int | None) -> Any:
    """The ``extra_phones``/``extra_emails`` list of a row: a list, or its JSON text (a scan
    reads the column as text and decodes only the lists that are not empty)."""
    if index is None:
        return None
    value = row[index]
    if isinstance(value, str):
        return json.loads(value) if value not in ("", "[]", "null") else None
    return value


def rule_fields(rules: Iterable[Rule], entity: str) -> list[tuple[str, str]]:
    """Every ``(field, comparison)`` the rules need from records of ``entity`` (as the
    checked entity or as one checked against)."""
    wanted: dict[tuple[str, str], None] = {}
    for rule in rules:
        for item in rule.fields:
            if rule.entity == entity:
                wanted[(item.name, item.compare)] = None
            if entity in rule.against:
                wanted[(item.other_name, item.compare)] = None
    return list(wanted)


#: Comparisons whose agreement (similarity >= ``agree_at``) implies an equal blocking key.
#: A company agrees through an equal key or an equal brand (its two keys), or through a
#: longer name that holds the other, which mostly starts with the same brand too: the
#: rare pair that agrees on none of them is left to the other evidence.
EXACT_KINDS = frozenset({"phone", "email", "exact", "date", "domain", "company"})


def exact_evidence_only(rules: Iterable[Rule]) -> bool:
    """Whether every rule needs evidence and all its evidence is compared exactly: then two
    records can only match if they share an evidence key, and name blocks are not needed."""
    return all(
        rule.min_evidence >= 1
        and all(item.compare in EXACT_KINDS for item in rule.fields if item.evidence)
        for rule in rules
    )


def keyed_slots(rules: Iterable[Rule], *, evidence_only: bool = False) -> frozenset[str]:
    """The ``field:comparison`` slots worth a blocking key: evidence fields, names and
    company names (a city or a state is no key: its blocks would be huge and prove
    nothing); with ``evidence_only``, the evidence fields alone."""
    slots: set[str] = set()
    for rule in rules:
        for item in rule.fields:
            keyed = item.evidence or (not evidence_only and item.compare in ("name", "company"))
            if keyed:
                slots.add(f"{item.name}:{item.compare}")
                slots.add(f"{item.other_name}:{item.compare}")
    return frozenset(slots)


def blocking_keys(profile: Profile, slots: Collection[str] | None = None) -> set[tuple[str, str]]:
    """``(kind, key)`` pairs a record is filed under: each phone, each canonical e-mail, the
    order-free name key, the company key, the domain, each date or exact value (kinds are
    comparisons, so a lead's name meets a contact's). ``slots`` limits the fields keyed."""
    keys: set[tuple[str, str]] = set()
    for slot, value in profile.values.items():
        if slots is not None and slot not in slots:
            continue
        compare = slot.rpartition(":")[2]
        if compare == "phone":  # the line, whatever the desk: a switchboard is one key
            keys.update((compare, item.partition(";ext=")[0]) for item in value)
        elif compare == "email":
            keys.update((compare, item) for item in value)
        elif compare == "name":
            keys.add(("name", value.key[:190]))
        elif compare == "company":  # the key, and the brand that meets it across scripts
            keys.add((compare, str(value)[:190]))
            brand = places.brand_key(value)
            if brand:  # "~": no company key starts so (punctuation is dropped from keys)
                keys.add((compare, "~" + brand[:189]))
        else:
            keys.add((compare, str(value)[:190]))
    return keys


#: What :func:`similarity` gives for two values that neither agree nor disagree (a mobile
#: and a landline; a work and a personal e-mail): the field is left out of the score, as
#: if one record had no value.
NOT_COMPARED = float("nan")


def identifier_similarity(compare: str, a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Phones or e-mails as a person weighs them: a shared one agrees (1); otherwise they
    disagree (0) only when both records have one of the same kind, which a person has just
    one of at a time: a mobile and a mobile, a landline and a landline, two addresses at
    one domain (two colleagues' work addresses, two accounts at one provider), two desks
    behind one switchboard (its number with two extensions). A mobile against a landline
    or a switchboard, a direct line against a switchboard, or a work address against a
    personal one, is :data:`NOT_COMPARED`: people have both, and give each to a different
    system."""
    if not set(a).isdisjoint(b):
        return 1.0
    if compare == "phone":
        if _same_line(a, b):
            return 1.0
        kinds_a = {nz.phone_kind(number) for number in a}
        kinds_b = {nz.phone_kind(number) for number in b}
        if nz.ANY_KIND in kinds_a or nz.ANY_KIND in kinds_b or kinds_a & kinds_b:
            return 0.0
        return NOT_COMPARED
    domains_a = {address.rpartition("@")[2] for address in a}
    if any(address.rpartition("@")[2] in domains_a for address in b):
        return 0.0
    return NOT_COMPARED


def _same_line(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether a number of ``a`` and one of ``b`` are one line: the same number, where at
    most one of the two names an extension (a switchboard with and without the desk)."""
    for x in a:
        base_x, _, ext_x = x.partition(";ext=")
        for y in b:
            base_y, _, ext_y = y.partition(";ext=")
            if base_x == base_y and (not ext_x or not ext_y or ext_x == ext_y):
                return True
    return False


def similarity(compare: str, a: Any, b: Any) -> float:
    """How alike two normalised values are, in [0, 1], or :data:`NOT_COMPARED`."""
    if compare in ("phone", "email"):
        return identifier_similarity(compare, a, b)
    if compare == "name":
        return nz.name_similarity(a, b)
    if compare == "date":
        if a == b:
            return 1.0
        if len(a) == len(b) == 8 and a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]:
            return 0.5
        return 0.7 * JaroWinkler.similarity(a, b) if len(a) == len(b) else 0.0
    if compare in ("exact", "domain", "city"):
        return 1.0 if a == b else 0.0
    if compare == "company":
        return company_similarity(a, b)
    return float(JaroWinkler.similarity(a, b))


def company_similarity(a: str, b: str) -> float:
    """Two company keys: equal 1; one within the other, or the same brand written in two
    scripts (世海建材, "shihai building materials"), 0.9; else Jaro-Winkler (0 across
    scripts)."""
    if a == b:
        return 1.0
    if len(a) >= 2 and len(b) >= 2 and (a in b or b in a):
        return 0.9
    if nz.has_cjk(a) != nz.has_cjk(b):
        brand = places.brand_key(a)
        return 0.9 if brand and brand == places.brand_key(b) else 0.0
    return float(JaroWinkler.similarity(a, b))


@define
class Scored:
    """The outcome of comparing two profiles under one rule."""

    score: float
    evidence: int
    compared: int
    reasons: list[str]


def _show(value: Any) -> str:
    if isinstance(value, nz.PersonName):
        return value.cjk or value.key
    if isinstance(value, tuple):
        return ", ".join(value)
    return str(value)


def score(rule: Rule, a: Profile, b: Profile) -> Scored:
    """Compare ``a`` (a record of ``rule.entity``) with ``b`` (one of ``rule.against``)."""
    total = weight_sum = 0.0
    evidence = compared = 0
    reasons: list[str] = []
    for item in rule.fields:
        left = a.values.get(f"{item.name}:{item.compare}")
        right = b.values.get(f"{item.other_name}:{item.compare}")
        if left is None or right is None:
            continue
        value = similarity(item.compare, left, right)
        if value != value:  # NOT_COMPARED
            continue
        compared += 1
        total += item.weight * value
        weight_sum += item.weight
        agrees = value >= rule.agree_at
        if agrees and item.evidence:
            evidence += 1
        reasons.append(_reason(item, left, right, value))
    final = total / weight_sum if weight_sum else 0.0
    return Scored(round(final, 4), evidence, compared, reasons)


def _reason(item: FieldRule, left: Any, right: Any, value: float) -> str:
    if value >= 0.999:
        shown = _show(left) if _show(left) == _show(right) else f"{_show(left)} = {_show(right)}"
        return f"same {item.name} {shown}"
    if value <= 0.001:
        return f"different {item.name} ({_show(left)} / {_show(right)})"
    return f"{item.name} {_show(left)} ~ {_show(right)} ({value:.2f})"


def _fields_of(item: FieldRule) -> tuple[str, ...]:
    names = {item.name, item.other_name}
    if item.compare in ("phone", "email"):  # the comparison reads the extra list too
        names.add(f"extra_{item.compare}s")
    return tuple(sorted(names))


def reason_fields(rule: Rule, a: Profile, b: Profile) -> list[tuple[str, ...]]:
    """The fields each reason of ``score(rule, a, b)`` draws on, in the same order (both
    records' field names: what a field rule must not hide for the reason to be shown)."""
    found = []
    for item in rule.fields:
        left = a.values.get(f"{item.name}:{item.compare}")
        right = b.values.get(f"{item.other_name}:{item.compare}")
        if left is None or right is None:
            continue
        value = similarity(item.compare, left, right)
        if value == value:  # not NOT_COMPARED: score() gave it a reason
            found.append(_fields_of(item))
    return found


def fields_of_reason(rule: Rule, reason: str) -> tuple[str, ...]:
    """The fields a stored reason of ``rule`` (as :func:`_reason` wrote it) draws on; empty
    when the text is not one of this rule's reasons."""
    for item in rule.fields:
        if reason.startswith((f"same {item.name} ", f"different {item.name} (", f"{item.name} ")):
            return _fields_of(item)
    return ()


def matches(rule: Rule, scored: Scored) -> bool:
    """Whether a scored pair meets the rule's threshold and evidence."""
    return scored.score >= rule.threshold and scored.evidence >= rule.min_evidence


def first_match(rules: Sequence[Rule], a: Profile, b: Profile) -> tuple[Rule, Scored] | None:
    """The first rule (in order) under which ``a`` and ``b`` match, with its score."""
    done: dict[tuple[tuple[FieldRule, ...], float], Scored] = {}
    for rule in rules:
        if b.entity not in rule.against or a.entity != rule.entity:
            continue
        key = (rule.fields, rule.agree_at)
        scored = done.get(key)
        if scored is None:
            scored = done[key] = score(rule, a, b)
        if matches(rule, scored):
            return rule, scored
    return None


# -- batch candidate generation -----------------------------------------------------------


_TRIU: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}


def _all_pairs(size: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    found = _TRIU.get(size)
    if found is None:
        a, b = np.triu_indices(size, 1)
        found = _TRIU[size] = (a.astype(np.int64), b.astype(np.int64))
    return found


def _windowed(
    ordered: npt.NDArray[np.int64], window: int
) -> tuple[list[npt.NDArray[np.int64]], list[npt.NDArray[np.int64]]]:
    lefts, rights = [], []
    for step in range(1, min(window, len(ordered) - 1) + 1):
        lefts.append(ordered[:-step])
        rights.append(ordered[step:])
    return lefts, rights


def candidate_arrays(
    profiles: Sequence[Profile],
    *,
    slots: Collection[str] | None = None,
    max_block: int = 200,
    window: int = 8,
    neighbourhood: bool = True,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index pairs worth scoring, as two arrays ``(i, j)`` with ``i < j``, sorted, unique.

    Records sharing a key (phone, e-mail, name key, company key, domain, date) pair up; a
    block larger than ``max_block`` (a very common name, a switchboard number) is not paired
    all-with-all but by a sorted neighbourhood (``window``) inside it. A global sorted
    neighbourhood over the names' letters (forwards and backwards) adds pairs with typos in
    every key. The blocks are integer arrays (no Python object per pair)."""
    codes: dict[tuple[str, str], int] = {}
    records: list[int] = []
    keys: list[int] = []
    for index, profile in enumerate(profiles):
        for found_key in blocking_keys(profile, slots):
            records.append(index)
            keys.append(codes.setdefault(found_key, len(codes)))
    del codes
    return block_pairs(
        profiles,
        np.asarray(records, dtype=np.int64),
        np.asarray(keys, dtype=np.int64),
        max_block=max_block,
        window=window,
        neighbourhood=neighbourhood,
    )


def block_pairs(
    profiles: Sequence[Profile],
    members: npt.NDArray[np.int64],
    blocks: npt.NDArray[np.int64],
    *,
    max_block: int = 200,
    window: int = 8,
    neighbourhood: bool = False,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The pairs of :func:`candidate_arrays` from blocks given as two parallel arrays:
    ``members[n]`` (an index into ``profiles``) belongs to block ``blocks[n]``."""
    count = len(profiles)
    lefts: list[npt.NDArray[np.int64]] = []
    rights: list[npt.NDArray[np.int64]] = []
    sort_keys: list[str] | None = None
    if len(members):
        order = np.argsort(blocks, kind="stable")
        member = members[order]
        key = blocks[order]
        del order
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        sizes = np.diff(np.r_[starts, len(key)])
        pairs = starts[sizes == 2]
        lefts.append(member[pairs])
        rights.append(member[pairs + 1])
        for start, size in zip(starts[sizes > 2].tolist(), sizes[sizes > 2].tolist(), strict=True):
            inside = member[start : start + size]
            if size <= max_block:
                a, b = _all_pairs(size)
                lefts.append(inside[a])
                rights.append(inside[b])
            else:
                if sort_keys is None:
                    sort_keys = [_sort_key(p) for p in profiles]
                ranked = sort_keys
                ordered = np.asarray(
                    sorted(inside.tolist(), key=ranked.__getitem__), dtype=np.int64
                )
                found = _windowed(ordered, window)
                lefts += found[0]
                rights += found[1]
    if neighbourhood and count > 1:
        if sort_keys is None:
            sort_keys = [_sort_key(p) for p in profiles]
        ranked = sort_keys
        for by in (ranked.__getitem__, lambda k: ranked[k][::-1]):
            ordered = np.asarray(sorted(range(count), key=by), dtype=np.int64)
            found = _windowed(ordered, window)
            lefts += found[0]
            rights += found[1]
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    i = np.concatenate(lefts)
    j = np.concatenate(rights)
    low, high = np.minimum(i, j), np.maximum(i, j)
    keep = low != high
    packed = np.unique(low[keep] * count + high[keep])
    return packed // count, packed % count


def _sort_key(profile: Profile) -> str:
    for slot, value in profile.values.items():
        if slot.endswith(":name"):
            return str(value.joined)
    for slot, value in profile.values.items():
        if slot.endswith(":company"):
            return str(value)
    return ""


# -- batch scoring ------------------------------------------------------------------------

#: A vectorised score may differ from the scalar one in the last bits (and the scalar score
#: is rounded): pairs within this margin of a threshold are confirmed by :func:`first_match`.
_MARGIN = 1e-3


class _Columns:
    """Per slot: every profile's value as an integer code (``-1``: none) and the distinct
    values, shared by the two slots a field compares."""

    def __init__(self, profiles: Sequence[Profile]) -> None:
        self.profiles = profiles
        self._derived: dict[tuple[int, str], list[Any]] = {}
        self._parts: dict[int, npt.NDArray[np.int64]] = {}
        self._coded: dict[
            tuple[str, str], tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Any]]
        ] = {}

    def coded(
        self, left: str, right: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[Any]]:
        found = self._coded.get((left, right))
        if found is None:
            # one code per distinct value, shared by both slots; ``None`` is code 0 here and
            # -1 in the result
            table: dict[Any, int] = {None: 0}
            size = len(self.profiles)
            a = self._codes(table, left, size)
            b = a if right == left else self._codes(table, right, size)
            distinct = list(table)[1:]
            found = self._coded[(left, right)] = (a, b, distinct)
        return found

    def _codes(self, table: dict[Any, int], slot: str, size: int) -> npt.NDArray[np.int64]:
        if isinstance(self.profiles, Table):
            values = self.profiles.column(slot)
        else:
            values = [p.values.get(slot) for p in self.profiles]
        setdefault = table.setdefault
        return np.fromiter((setdefault(v, len(table)) for v in values), np.int64, size) - 1

    def parts(self, distinct: list[Any]) -> npt.NDArray[np.int64]:
        """How many parts each distinct name has, computed once per column."""
        cached = self._parts.get(id(distinct))
        if cached is None:
            tokens = self.derived(distinct, "tokens")
            cached = self._parts[id(distinct)] = np.fromiter(
                (len(t) for t in tokens), np.int64, len(tokens)
            )
        return cached

    def derived(self, distinct: list[Any], what: str) -> list[Any]:
        """``getattr(value, what)`` of every distinct value (names: ``key``, ``joined``,
        ``cjk``, ``tokens``), computed once per column."""
        cached = self._derived.get((id(distinct), what))
        if cached is None:
            cached = self._derived[(id(distinct), what)] = [getattr(v, what) for v in distinct]
        return cached


def _jaro_winkler(left: list[str], right: list[str]) -> npt.NDArray[np.float64]:
    from rapidfuzz import process

    if not left:
        return np.zeros(0)
    return np.asarray(
        process.cpdist(left, right, scorer=JaroWinkler.similarity, dtype=np.float64),
        dtype=np.float64,
    )


def _unequal_similarity(
    compare: str, columns: _Columns, distinct: list[Any], ca: list[int], cb: list[int]
) -> npt.NDArray[np.float64]:
    """:func:`similarity` of value pairs known to be present and unequal (as codes into
    ``distinct``), vectorised where the comparison allows it."""
    size = len(ca)
    if compare in ("exact", "domain", "city"):
        return np.zeros(size)
    if compare == "name":
        out = np.zeros(size)
        cjk = columns.derived(distinct, "cjk")
        latin = [n for n in range(size) if not cjk[ca[n]] and not cjk[cb[n]]]
        if latin:
            keys = columns.derived(distinct, "key")
            joined = columns.derived(distinct, "joined")
            la = [ca[n] for n in latin]
            lb = [cb[n] for n in latin]
            written = columns.derived(distinct, "written")
            swapped = columns.derived(distinct, "swapped")
            out[latin] = np.maximum.reduce(
                [
                    _jaro_winkler([keys[c] for c in la], [keys[c] for c in lb]),
                    _jaro_winkler([joined[c] for c in la], [joined[c] for c in lb]),
                    _jaro_winkler([written[c] for c in la], [written[c] for c in lb]),
                    _jaro_winkler([written[c] for c in la], [swapped[c] for c in lb]),
                    _jaro_winkler([swapped[c] for c in la], [written[c] for c in lb]),
                ]
            )
            tokens = columns.derived(distinct, "tokens")
            parts = columns.parts(distinct)
            for k in np.flatnonzero(parts[la] != parts[lb]).tolist():
                part = nz.part_of_name(tokens[la[k]], tokens[lb[k]])
                out[latin[k]] = max(out[latin[k]], part)
        if len(latin) < size:
            done: dict[tuple[int, int], float] = {}
            for n in range(size):
                if cjk[ca[n]] or cjk[cb[n]]:
                    pair = (ca[n], cb[n])
                    value = done.get(pair)
                    if value is None:
                        value = done[pair] = nz.name_similarity(
                            distinct[pair[0]], distinct[pair[1]]
                        )
                    out[n] = value
        return out
    a = [distinct[c] for c in ca]
    b = [distinct[c] for c in cb]
    if compare in ("phone", "email"):
        done_pairs: dict[tuple[int, int], float] = {}
        out = np.zeros(size)
        for n, pair in enumerate(zip(ca, cb, strict=True)):
            value = done_pairs.get(pair)
            if value is None:
                value = done_pairs[pair] = identifier_similarity(
                    compare, distinct[pair[0]], distinct[pair[1]]
                )
            out[n] = value
        return out
    if compare == "text":
        return _jaro_winkler(a, b)
    if compare == "company":
        out = _jaro_winkler(a, b)
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y and (
                (len(x) >= 2 and len(y) >= 2 and (x in y or y in x))
                or nz.has_cjk(x) != nz.has_cjk(y)
            ):
                out[n] = company_similarity(x, y)
        return out
    if compare == "date":
        out = np.zeros(size)
        same = [n for n in range(size) if len(a[n]) == len(b[n])]
        if same:
            out[same] = 0.7 * _jaro_winkler([a[n] for n in same], [b[n] for n in same])
        swapped = [
            n
            for n in same
            if len(a[n]) == 8
            and a[n][:4] == b[n][:4]
            and a[n][4:6] == b[n][6:8]
            and a[n][6:8] == b[n][4:6]
        ]
        out[swapped] = 0.5
        return out
    return np.fromiter(
        (similarity(compare, x, y) for x, y in zip(a, b, strict=True)), np.float64, size
    )


def _field_similarity(
    columns: _Columns,
    item: FieldRule,
    left: npt.NDArray[np.int64],
    right: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """One field's similarity over the pairs and whether both sides have a value."""
    codes_a, codes_b, distinct = columns.coded(
        f"{item.name}:{item.compare}", f"{item.other_name}:{item.compare}"
    )
    ca, cb = codes_a[left], codes_b[right]
    present = (ca >= 0) & (cb >= 0)
    value = np.zeros(len(left))
    value[present & (ca == cb)] = 1.0  # an equal value is similarity 1 under every kind
    todo = np.flatnonzero(present & (ca != cb))
    if len(todo):
        value[todo] = _unequal_similarity(
            item.compare, columns, distinct, ca[todo].tolist(), cb[todo].tolist()
        )
        unweighed = np.isnan(value)  # NOT_COMPARED: left out, as if one side had none
        if unweighed.any():
            present &= ~unweighed
            value[unweighed] = 0.0
    return value, present


def _show_all(columns: _Columns, distinct: list[Any]) -> list[str]:
    """:func:`_show` of every distinct value of a column, once per column."""
    key = (id(distinct), "__show__")
    cached = columns._derived.get(key)
    if cached is None:
        cached = columns._derived[key] = [_show(v) for v in distinct]
    return cached


#: What JSON escapes in a string when it keeps non-ASCII text as it is.
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')


def _json_texts(columns: _Columns, distinct: list[Any]) -> list[str]:
    """:func:`_show_all` as JSON string contents (escaped, without the quotes); a text with
    nothing to escape (nearly all: phones, e-mails, names) is its own content."""
    key = (id(distinct), "__json__")
    cached = columns._derived.get(key)
    if cached is None:
        escaped = _JSON_ESCAPED.search
        cached = columns._derived[key] = [
            json.dumps(text, ensure_ascii=False)[1:-1] if escaped(text) else text
            for text in _show_all(columns, distinct)
        ]
    return cached


def _reasons_of(
    columns: _Columns,
    rule: Rule,
    fields: Mapping[tuple[str, str], tuple[Any, Any]],
    a: npt.NDArray[np.int64],
    b: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    *,
    as_json: bool = False,
) -> list[Any]:
    """The reasons :func:`score` gives for the pairs ``rows`` (indices into ``a``/``b``)
    under ``rule``, built per field from each distinct value's text, shown once. With
    ``as_json`` each pair's reasons come as the text of a JSON array, exactly what
    ``json.dumps(reasons, ensure_ascii=False)`` gives, made from each value's text escaped
    once (what a scan stores, without encoding every pair's list)."""
    columns_of_reasons: list[list[str | None]] = []
    for item in rule.fields:
        slot = (f"{item.name}:{item.compare}", f"{item.other_name}:{item.compare}")
        value, present = fields[slot]
        codes_a, codes_b, distinct = columns.coded(*slot)
        if as_json:
            shown = _json_texts(columns, distinct)
            name = json.dumps(item.name, ensure_ascii=False)[1:-1]
            quote = '"'
        else:
            shown = _show_all(columns, distinct)
            name = item.name
            quote = ""
        same: dict[int, str] = {}
        texts: list[str | None] = []
        add = texts.append
        for has, x, y, sim in zip(
            present[rows].tolist(),
            codes_a[a[rows]].tolist(),
            codes_b[b[rows]].tolist(),
            value[rows].tolist(),
            strict=True,
        ):
            if not has:
                add(None)
            elif sim >= 0.999:
                if x == y:
                    text = same.get(x)
                    if text is None:
                        text = same[x] = f"{quote}same {name} {shown[x]}{quote}"
                    add(text)
                elif shown[x] == shown[y]:
                    add(f"{quote}same {name} {shown[x]}{quote}")
                else:
                    add(f"{quote}same {name} {shown[x]} = {shown[y]}{quote}")
            elif sim <= 0.001:
                add(f"{quote}different {name} ({shown[x]} / {shown[y]}){quote}")
            else:
                add(f"{quote}{name} {shown[x]} ~ {shown[y]} ({sim:.2f}){quote}")
        columns_of_reasons.append(texts)
    if as_json:
        return [
            f"[{', '.join([text for text in texts if text is not None])}]"
            for texts in zip(*columns_of_reasons, strict=True)
        ]
    return [
        [text for text in texts if text is not None]
        for texts in zip(*columns_of_reasons, strict=True)
    ]


@define
class Matches:
    """Matched pairs as parallel columns: ``profiles[left[n]]`` matches ``profiles[right[n]]``
    under ``rules[rule[n]]`` with ``scores[n]``, ``evidence[n]`` agreeing evidence fields of
    ``compared[n]`` compared, for ``reasons[n]`` (what :class:`Scored` holds, without an
    object per pair: a scan matches hundreds of thousands). Pairs are in the order they
    were given."""

    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    rule: npt.NDArray[np.int64]
    scores: list[float]
    evidence: list[int]
    compared: list[int]
    #: Per pair its reasons, or with ``match(..., as_json=True)`` their JSON array as text.
    reasons: list[Any]


def match_pairs(
    rules: Sequence[Rule],
    profiles: Sequence[Profile],
    left: npt.NDArray[np.int64],
    right: npt.NDArray[np.int64],
    *,
    chunk: int = 200_000,
) -> Iterator[tuple[int, int, Rule, Scored]]:
    """The pairs ``(profiles[left[n]], profiles[right[n]])`` that match a rule, with the
    first rule matched and its score (as :func:`first_match` gives them), in the order
    given: :class:`Matcher` one pair at a time."""
    matcher = Matcher(rules, profiles)
    for start in range(0, len(left), chunk):
        found = matcher.match(left[start : start + chunk], right[start : start + chunk])
        for n, (i, j, number) in enumerate(
            zip(found.left.tolist(), found.right.tolist(), found.rule.tolist(), strict=True)
        ):
            scored = Scored(found.scores[n], found.evidence[n], found.compared[n], found.reasons[n])
            yield i, j, rules[number], scored


class Matcher:
    """Which pairs of ``profiles`` match which of ``rules``, vectorised.

    The field similarities are computed per field over all the pairs at once (integer codes
    for equal values, rapidfuzz's ``cpdist`` for Jaro-Winkler), and so is the decision:
    which rule a pair matches first, its score and its reasons (each distinct value's text
    is made once). Only the pairs whose score or evidence lies within a hair of a threshold,
    where the vectorised arithmetic could round the other way, are scored one by one by
    :func:`first_match`, so the answers are those of :func:`first_match`. The values are
    coded once per matcher: call :meth:`match` once per chunk of pairs."""

    def __init__(self, rules: Sequence[Rule], profiles: Sequence[Profile]) -> None:
        self.rules = rules
        self.profiles = profiles
        self.columns = _Columns(profiles)
        self.entity_code: dict[str, int] = {}
        names = profiles.entities if isinstance(profiles, Table) else [p.entity for p in profiles]
        self.entities = np.fromiter(
            (self.entity_code.setdefault(name, len(self.entity_code)) for name in names),
            np.int64,
            len(profiles),
        )

    def match(
        self, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], *, as_json: bool = False
    ) -> Matches:
        """The pairs ``(a[n], b[n])`` that match a rule, in the order given; with
        ``as_json`` each pair's reasons as the text of a JSON array."""
        rules, columns, entity_code = self.rules, self.columns, self.entity_code
        ea, eb = self.entities[a], self.entities[b]
        size = len(a)
        decided = np.full(size, -1, dtype=np.int64)  # index of the first rule matched
        unsure = np.zeros(size, dtype=bool)  # left to first_match
        scored: dict[tuple[tuple[FieldRule, ...], float], tuple[Any, ...]] = {}
        fields: dict[tuple[str, str], tuple[Any, Any]] = {}
        for number, rule in enumerate(rules):
            if rule.entity not in entity_code:
                continue
            applies = ea == entity_code[rule.entity]
            applies &= np.isin(eb, [entity_code[e] for e in rule.against if e in entity_code])
            applies &= (decided < 0) & ~unsure
            if not applies.any():
                continue
            key = (rule.fields, rule.agree_at)
            if key not in scored:
                total = np.zeros(size)
                weights = np.zeros(size)
                sure = np.zeros(size, dtype=np.int64)  # evidence that surely agrees
                maybe = np.zeros(size, dtype=np.int64)  # evidence that may agree
                for item in rule.fields:
                    slot = (f"{item.name}:{item.compare}", f"{item.other_name}:{item.compare}")
                    if slot not in fields:
                        fields[slot] = _field_similarity(columns, item, a, b)
                    value, present = fields[slot]
                    total += item.weight * value * present
                    weights += item.weight * present
                    if item.evidence:
                        sure += present & (value >= rule.agree_at + _MARGIN)
                        maybe += present & (value >= rule.agree_at - _MARGIN)
                final = np.divide(total, weights, out=np.zeros(size), where=weights > 0)
                scored[key] = (final, sure, maybe)
            final, sure, maybe = scored[key]
            # sure == maybe: no evidence field near agree_at, so the count is exact too
            matched = (
                (final >= rule.threshold + _MARGIN) & (sure >= rule.min_evidence) & (sure == maybe)
            )
            missed = (final < rule.threshold - _MARGIN) | (maybe < rule.min_evidence)
            decided[applies & matched] = number
            unsure |= applies & ~matched & ~missed
        # every matched pair's position, score, evidence, compared fields and reasons
        at: list[npt.NDArray[np.int64]] = []
        scores: list[float] = []
        evidence: list[int] = []
        compared_all: list[int] = []
        reasons: list[Any] = []
        for number, rule in enumerate(rules):
            rows = np.flatnonzero((decided == number) & ~unsure)
            if not len(rows):
                continue
            final, sure, _ = scored[(rule.fields, rule.agree_at)]
            compared = np.zeros(len(rows), dtype=np.int64)
            for item in rule.fields:
                compared += fields[
                    (f"{item.name}:{item.compare}", f"{item.other_name}:{item.compare}")
                ][1][rows]
            at.append(rows)
            scores += [round(value, 4) for value in final[rows].tolist()]
            evidence += sure[rows].tolist()
            compared_all += compared.tolist()
            reasons += _reasons_of(columns, rule, fields, a, b, rows, as_json=as_json)
        hits = []
        for n in np.flatnonzero(unsure).tolist():
            hit = first_match(rules, self.profiles[int(a[n])], self.profiles[int(b[n])])
            if hit is not None:
                hits.append(n)
                decided[n] = rules.index(hit[0])
                scores.append(hit[1].score)
                evidence.append(hit[1].evidence)
                compared_all.append(hit[1].compared)
                why = hit[1].reasons
                reasons.append(json.dumps(why, ensure_ascii=False) if as_json else why)
        at.append(np.asarray(hits, dtype=np.int64))
        position = np.concatenate(at)
        order = np.argsort(position, kind="stable")
        chosen = position[order]
        ranked = order.tolist()
        return Matches(
            a[chosen],
            b[chosen],
            decided[chosen],
            [scores[n] for n in ranked],
            [evidence[n] for n in ranked],
            [compared_all[n] for n in ranked],
            [reasons[n] for n in ranked],
        )
