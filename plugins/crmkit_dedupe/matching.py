"""Profiles, blocking keys and scoring: the matching engine, free of any database.

A :class:`Profile` holds one record's values in normalised form for every field the rules
compare. :func:`blocking_keys` gives the keys under which a record is filed (the online
check looks them up in the ``dedupe_keys`` table; the batch scan groups by them), and
:func:`score` compares two profiles under one rule, returning the score and the reasons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from attrs import define, frozen
from rapidfuzz.distance import JaroWinkler

from crmkit_dedupe import normalise as nz
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


def normalised(compare: str, raw: Any, region: str, extra: Any = None) -> Any:
    """The normalised form of ``raw`` for ``compare`` (``None`` when there is nothing)."""
    if compare in ("phone", "email"):
        values: list[str] = []
        for item in (raw, *(extra or ())):
            if item:
                values.append(
                    nz.canonical_phone(str(item), region)
                    if compare == "phone"
                    else nz.canonical_email(str(item))
                )
        found = nz.unique(values)
        return found or None
    if raw is None or raw == "":
        return None
    if compare == "date":
        if isinstance(raw, dt.date):
            return raw.isoformat()
        text = "".join(ch for ch in str(raw) if ch.isdigit())
        return text or None
    text = str(raw)
    if compare == "name":
        name = nz.person_name(text)
        return name if name.tokens else None
    if compare == "company":
        return nz.company_key(text) or None
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
EXACT_KINDS = frozenset({"phone", "email", "exact", "date", "domain"})


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
        if compare in ("phone", "email"):
            keys.update((compare, item) for item in value)
        elif compare == "name":
            keys.add(("name", value.key[:190]))
        else:
            keys.add((compare, str(value)[:190]))
    return keys


def similarity(compare: str, a: Any, b: Any) -> float:
    """How alike two normalised values are, in [0, 1]."""
    if compare in ("phone", "email"):
        return 1.0 if set(a) & set(b) else 0.0
    if compare == "name":
        return nz.name_similarity(a, b)
    if compare == "date":
        if a == b:
            return 1.0
        if len(a) == len(b) == 8 and a[:4] == b[:4] and a[4:6] == b[6:8] and a[6:8] == b[4:6]:
            return 0.5
        return 0.7 * JaroWinkler.similarity(a, b) if len(a) == len(b) else 0.0
    if compare in ("exact", "domain"):
        return 1.0 if a == b else 0.0
    if compare == "company":
        if a == b:
            return 1.0
        if len(a) >= 2 and len(b) >= 2 and (a in b or b in a):
            return 0.9
        return float(JaroWinkler.similarity(a, b))
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


def candidate_pairs(
    profiles: Sequence[Profile],
    *,
    slots: Collection[str] | None = None,
    max_block: int = 200,
    window: int = 8,
    neighbourhood: bool = True,
) -> Iterator[tuple[int, int]]:
    """Index pairs ``(i, j)`` (``i < j``) worth scoring, from multiple blocking keys.

    Records sharing a key (phone, e-mail, name key, company key, domain, date) pair up; a
    block larger than ``max_block`` (a very common name, a switchboard number) is not paired
    all-with-all but by a sorted neighbourhood (``window``) inside it. A global sorted
    neighbourhood over the names' letters adds pairs with typos in every key."""
    blocks: dict[tuple[str, str], list[int]] = {}
    for index, profile in enumerate(profiles):
        for key in blocking_keys(profile, slots):
            blocks.setdefault(key, []).append(index)
    seen: set[tuple[int, int]] = set()

    def emit(i: int, j: int) -> Iterator[tuple[int, int]]:
        pair = (i, j) if i < j else (j, i)
        if i != j and pair not in seen:
            seen.add(pair)
            yield pair

    for members in blocks.values():
        if len(members) < 2:
            continue
        if len(members) <= max_block:
            for x, i in enumerate(members):
                for j in members[x + 1 :]:
                    yield from emit(i, j)
        else:
            ordered = sorted(members, key=lambda k: _sort_key(profiles[k]))
            for x, i in enumerate(ordered):
                for j in ordered[x + 1 : x + 1 + window]:
                    yield from emit(i, j)
    if not neighbourhood:
        return
    ordered = sorted(range(len(profiles)), key=lambda k: _sort_key(profiles[k]))
    for x, i in enumerate(ordered):
        for j in ordered[x + 1 : x + 1 + window]:
            yield from emit(i, j)
    # and by the name's letters reversed (a typo early in the name)
    ordered = sorted(range(len(profiles)), key=lambda k: _sort_key(profiles[k])[::-1])
    for x, i in enumerate(ordered):
        for j in ordered[x + 1 : x + 1 + window]:
            yield from emit(i, j)


def _sort_key(profile: Profile) -> str:
    for slot, value in profile.values.items():
        if slot.endswith(":name"):
            return str(value.joined)
    for slot, value in profile.values.items():
        if slot.endswith(":company"):
            return str(value)
    return ""
