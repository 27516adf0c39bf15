"""Matching rules: which fields are compared, how, with what weight, and what a match does.

A rule belongs to one entity (``contact``, ``lead``, ``account`` or any other) and compares
its records with records of the entities in ``against`` (a lead is also checked against
existing contacts). Each field has a comparison:

``name``
    a person's name, script- and order-free (張偉 = 张伟 = Zhang Wei = Wei Zhang);
``company``
    a company name without legal suffixes and city prefixes;
``phone``
    phone numbers in E.164 (the field and, where the entity has one, ``extra_phones``);
``email``
    canonical e-mail addresses (the field and ``extra_emails``);
``exact``
    equal after folding (NFKC, case, Traditional → Simplified);
``city``
    a place in any script: 北京, 北京市, "Beijing" and "beijing shi" are one city
    (GeoNames' Chinese spellings and their pinyin; see ``crmkit_dedupe.places``);
``text``
    Jaro-Winkler similarity of the folded text;
``domain``
    the host of a web site or e-mail;
``date``
    equal dates (day and month swapped counts half).

The score of a pair is the weighted mean of the field similarities over the fields *both*
records have. A pair matches a rule when the score reaches ``threshold`` and at least
``min_evidence`` fields that are marked ``evidence`` agree (similarity >= ``agree_at``): a
person's name or a city is not evidence, so a common name (王伟, 李娜) alone never matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import field, frozen

import crmkit

PLUGIN_NAME = "dedupe"

COMPARISONS = (
    "name",
    "company",
    "phone",
    "email",
    "exact",
    "city",
    "text",
    "domain",
    "date",
)
#: Comparisons that count as corroborating evidence unless a rule says otherwise (a
#: company shared by two contacts is weak: the default person rules mark it as no evidence).
EVIDENCE_BY_DEFAULT = frozenset({"phone", "email", "company", "domain", "date", "exact"})
#: Comparisons that produce blocking keys for the index (the online check's lookup).
INDEXED = frozenset({"name", "company", "phone", "email", "domain"})


@frozen
class FieldRule:
    """One compared field: its name, comparison, weight, and whether it is evidence."""

    name: str
    compare: str
    weight: float = 1.0
    evidence: bool = True
    #: For cross-entity rules: the field of the other entity (default: the same name).
    other: str | None = None

    @property
    def other_name(self) -> str:
        """The field compared on the other record."""
        return self.other or self.name


@frozen
class Rule:
    """A matching rule (see the module docstring)."""

    name: str
    entity: str
    fields: tuple[FieldRule, ...]
    against: tuple[str, ...]
    threshold: float = 0.85
    min_evidence: int = 1
    agree_at: float = 0.88
    action: crmkit.DuplicateAction = field(
        default=crmkit.DuplicateAction.WARN, converter=crmkit.DuplicateAction
    )


def _field(name: str, compare: str, weight: float, evidence: bool | None = None) -> FieldRule:
    return FieldRule(
        name, compare, weight, compare in EVIDENCE_BY_DEFAULT if evidence is None else evidence
    )


_PERSON = (
    _field("full_name", "name", 2.0),
    _field("email", "email", 3.0),
    _field("phone", "phone", 3.0),
)

#: The rules used when ``[plugins.dedupe] rules`` is not set.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "contact-same-person",
        "contact",
        (*_PERSON, _field("birthday", "date", 1.0), _field("city", "city", 0.5, False)),
        ("contact",),
        threshold=0.9,
        action="block",
    ),
    # The same name at the same company, with no phone, e-mail or birthday that disagrees:
    # a person's card and their web-form record share no identifier (a switchboard and a
    # mobile, a work and a personal address) but the name and the employer (the company key
    # drops legal suffixes and city prefixes: 青岛新卓医疗器械股份有限公司 is 新卓医疗器械).
    # Namesakes sharing a family address work elsewhere, so the company is what tells them
    # apart; the higher threshold keeps a name that only resembles out, and still takes a
    # name and a company both in the other script (pinyin, an English name: .947). Chosen
    # on seed A of bench/dedupe_realistic.py (.93-.95 give F1 .990-.991 there).
    Rule(
        "contact-same-person-at-company",
        "contact",
        (
            *_PERSON,
            _field("birthday", "date", 1.0),
            _field("company_name", "company", 1.0),
            _field("city", "city", 0.5, False),
        ),
        ("contact",),
        threshold=0.94,
        action="block",
    ),
    Rule(
        "contact-possible",
        "contact",
        (*_PERSON, _field("birthday", "date", 1.0), _field("city", "city", 0.5, False)),
        ("contact",),
        threshold=0.6,
        action="warn",
    ),
    Rule(
        "lead-same-person",
        "lead",
        (*_PERSON, _field("company_name", "company", 1.0, False)),
        ("lead",),
        threshold=0.9,
        action="warn",
    ),
    Rule(
        "lead-is-contact",
        "lead",
        _PERSON,
        ("contact",),
        threshold=0.75,
        action="warn",
    ),
    Rule(
        "account-same-company",
        "account",
        (
            _field("name", "company", 3.0, evidence=False),
            _field("phone", "phone", 2.0),
            _field("email", "domain", 1.0),
            _field("website", "domain", 2.0),
            _field("city", "city", 0.5, False),
        ),
        ("account",),
        threshold=0.85,
        action="block",
    ),
    Rule(
        "account-same-name",
        "account",
        (_field("name", "company", 3.0, evidence=False), _field("city", "city", 0.5, False)),
        ("account",),
        threshold=0.95,
        min_evidence=0,
        action="warn",
    ),
)


def parse_rules(raw: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Rules from the ``rules`` setting (a list of tables); ``ConfigError`` naming the rule
    and the problem for anything malformed."""
    rules = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise crmkit.ConfigError(f"plugins.dedupe.rules[{index}] must be a table")
        label = str(item.get("name") or f"rules[{index}]")
        known = {"name", "entity", "against", "fields", "threshold", "min_evidence", "agree_at"}
        unknown = sorted(set(item) - known - {"action"})
        if unknown:
            raise crmkit.ConfigError(
                f"dedupe rule {label!r}: unknown key(s) {', '.join(unknown)};"
                f" known: {', '.join(sorted(known | {'action'}))}"
            )
        entity = item.get("entity")
        if not isinstance(entity, str) or not entity:
            raise crmkit.ConfigError(f"dedupe rule {label!r}: 'entity' is required")
        fields_raw = item.get("fields")
        if not isinstance(fields_raw, Mapping) or not fields_raw:
            raise crmkit.ConfigError(
                f"dedupe rule {label!r}: 'fields' must be a table such as"
                ' {full_name = "name", phone = {compare = "phone", weight = 3}}'
            )
        fields = []
        for name, spec in fields_raw.items():
            if isinstance(spec, str):
                spec = {"compare": spec}
            if not isinstance(spec, Mapping):
                raise crmkit.ConfigError(f"dedupe rule {label!r}: field {name!r} is malformed")
            compare = spec.get("compare", "exact")
            if compare not in COMPARISONS:
                raise crmkit.ConfigError(
                    f"dedupe rule {label!r}: field {name!r} has unknown comparison {compare!r};"
                    f" known: {', '.join(COMPARISONS)}"
                )
            weight = spec.get("weight", 1.0)
            if not isinstance(weight, int | float) or weight <= 0:
                raise crmkit.ConfigError(
                    f"dedupe rule {label!r}: field {name!r} weight must be a positive number"
                )
            evidence = spec.get("evidence", compare in EVIDENCE_BY_DEFAULT)
            fields.append(
                FieldRule(name, compare, float(weight), bool(evidence), spec.get("other"))
            )
        action = item.get("action", "warn")
        if action not in tuple(crmkit.DuplicateAction):
            raise crmkit.ConfigError(
                f"dedupe rule {label!r}: action must be block, warn or allow, not {action!r}"
            )
        threshold = float(item.get("threshold", 0.85))
        if not 0 < threshold <= 1:
            raise crmkit.ConfigError(f"dedupe rule {label!r}: threshold must be in (0, 1]")
        against = item.get("against", [entity])
        rules.append(
            Rule(
                label,
                entity,
                tuple(fields),
                tuple([against] if isinstance(against, str) else against),
                threshold=threshold,
                min_evidence=int(item.get("min_evidence", 1)),
                agree_at=float(item.get("agree_at", 0.88)),
                action=action,
            )
        )
    return tuple(rules)


def check_rules(rules: Iterable[Rule], fields_of: Mapping[str, Iterable[str]]) -> None:
    """Refuse rules naming an unknown entity or field (``fields_of`` maps each entity to its
    field names, built-in and custom)."""
    for rule in rules:
        for entity in (rule.entity, *rule.against):
            if entity not in fields_of:
                raise crmkit.ConfigError(
                    f"dedupe rule {rule.name!r} names unknown entity {entity!r};"
                    f" known: {', '.join(sorted(fields_of))}"
                )
        for item in rule.fields:
            checks = [(rule.entity, item.name)] + [(e, item.other_name) for e in rule.against]
            for entity, name in checks:
                if name not in set(fields_of[entity]):
                    raise crmkit.ConfigError(
                        f"dedupe rule {rule.name!r} names unknown field {entity}.{name}"
                    )


def configured_rules(crm: crmkit.CRM) -> tuple[Rule, ...]:
    """The rules ``crm`` matches with: ``[plugins.dedupe] rules`` parsed, else the built-in
    rules of the entities it has; checked against its entities' fields, built-in and
    custom (a rule naming an unknown entity or field is a ``ConfigError``)."""
    raw = crm.plugin_settings(PLUGIN_NAME).get("rules") or []
    # The defaults name the core entities' fields; keep only what exists (an integrator
    # may have replaced an entity).
    rules = parse_rules(raw) if raw else tuple(r for r in DEFAULT_RULES if r.entity in crm.entities)
    fields_of = {
        name: [*entity.columns, *crm.custom_fields.get(name, {})]
        for name, entity in crm.entities.items()
    }
    check_rules(rules, fields_of)
    return rules
