"""Duplicate detection on the realistic contact set (``realistic_contacts``): seed A, on
which the rules were analysed, and seed B, never tuned on, in the same run as a naive exact
e-mail-or-phone match and splink.

crmkit's side is what a new user gets: the plugin's built-in contact rules, the profiles,
blocking and scoring of ``Engine.scan`` (the same functions, the same choice between
evidence-key blocks and name neighbourhoods), in memory. *Declared* pairs are those whose
first matching rule blocks (``contact-same-person``, ``contact-same-person-at-company``: the
plugin says "duplicate"); *all candidates* are every pair the scan saves for review. The
naive match pairs records sharing an e-mail (``crmkit.normalise_email``) or a phone number
(``crmkit.normalise_phone``, extension dropped, the extra phones too). splink 5 (DuckDB,
one thread) gets the name key, e-mail, phone, city and company key the plugin's normalisers
make (so it is compared on matching, not on normalising), blocks on each, u by random
sampling, m by EM blocked on e-mail and on phone.

``python bench/dedupe_realistic.py [--people N] [--misses]`` prints the figures (and with
``--misses`` the true pairs not declared on seed A, by cause).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import realistic_contacts  # noqa: E402

import crmkit  # noqa: E402

Pair = tuple[str, str]


def _pair(x: str, y: str) -> Pair:
    return (x, y) if x < y else (y, x)


def scores(found: set[Pair], truth: set[Pair]) -> dict[str, float]:
    """Precision, recall and F1."""
    hits = len(found & truth)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs": len(found)}


def contact_rules() -> list[Any]:
    """The plugin's built-in rules that check contacts."""
    from crmkit_dedupe.rules import DEFAULT_RULES

    return [rule for rule in DEFAULT_RULES if rule.entity == "contact"]


def same_name_and_city_rule() -> Any:
    """An opt-in review rule (not built in): the same name in the same city, with nothing
    else shared, is saved as a warning for a person to look at. The city is its evidence, so
    a record without one never matches on its name alone."""
    from crmkit_dedupe.rules import FieldRule, Rule

    return Rule(
        "contact-same-name-and-city",
        "contact",
        (FieldRule("full_name", "name", 2.0, False), FieldRule("city", "city", 1.0, True)),
        ("contact",),
        threshold=0.97,
        action="warn",
    )


def crmkit_pairs(
    records: Sequence[dict[str, Any]], rules: Sequence[Any] | None = None
) -> tuple[set[Pair], set[Pair], dict[Pair, tuple[str, float, list[str]]]]:
    """The pairs the scan declares duplicates, every pair it saves, and each saved pair's
    rule, score and reasons."""
    from crmkit_dedupe import matching

    rules = list(rules or contact_rules())
    fields = matching.rule_fields(rules, "contact")
    profiles = [
        matching.build_profile("contact", n, record, fields, "CN")
        for n, record in enumerate(records)
    ]
    exact = matching.exact_evidence_only(rules)
    slots = matching.keyed_slots(rules, evidence_only=exact)
    left, right = matching.candidate_arrays(profiles, slots=slots, neighbourhood=not exact)
    declared: set[Pair] = set()
    saved: set[Pair] = set()
    why: dict[Pair, tuple[str, float, list[str]]] = {}
    for i, j, rule, scored in matching.match_pairs(rules, profiles, left, right):
        pair = _pair(records[i]["id"], records[j]["id"])
        saved.add(pair)
        why[pair] = (rule.name, scored.score, scored.reasons)
        if rule.action == crmkit.DuplicateAction.BLOCK:
            declared.add(pair)
    return declared, saved, why


def _phones(record: dict[str, Any]) -> list[str]:
    out = []
    for raw in (record["phone"], *record["extra_phones"]):
        if raw:
            with contextlib.suppress(ValueError):
                out.append(crmkit.normalise_phone(raw, "CN").split(";", 1)[0])
    return out


def _email(record: dict[str, Any]) -> str | None:
    raw = record["email"]
    if not raw:
        return None
    try:
        return crmkit.normalise_email(raw)
    except ValueError:
        return None


def naive_pairs(records: Sequence[dict[str, Any]]) -> set[Pair]:
    """Records sharing an e-mail address or a phone number, exactly (after the core's
    normalising)."""
    groups: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    for record in records:
        email = _email(record)
        if email:
            groups[("email", email)].append(record["id"])
        for phone in set(_phones(record)):
            groups[("phone", phone)].append(record["id"])
    pairs = set()
    for ids in groups.values():
        for n, a in enumerate(ids):
            for b in ids[n + 1 :]:
                pairs.add(_pair(a, b))
    return pairs


def splink_pairs(records: Sequence[dict[str, Any]], threshold: float = 0.5) -> set[Pair]:
    """splink 5 on the plugin's normalised columns (see the module docstring)."""
    import duckdb
    import pandas as pd
    import splink.comparison_library as cl
    from crmkit_dedupe import normalise as nz
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    rows = []
    for record in records:
        phones = _phones(record)
        name = nz.person_name(record["full_name"])
        rows.append(
            {
                "rec_id": record["id"],
                "name": name.key or None,
                "email": _email(record),
                "phone": phones[0] if phones else None,
                "phone2": phones[1] if len(phones) > 1 else None,
                "city": nz.fold(record["city"]) if record["city"] else None,
                "company": nz.company_key(record["company_name"] or "") or None,
            }
        )
    frame = pd.DataFrame(rows)
    con = duckdb.connect(config={"threads": 1})
    db_api = DuckDBAPI(connection=con)
    table = db_api.register(frame)
    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone"),
            "l.phone = r.phone2",
            "l.phone2 = r.phone",
            block_on("name"),
        ],
        comparisons=[
            cl.JaroWinklerAtThresholds("name", [0.95, 0.88]),
            cl.ExactMatch("email"),
            cl.ExactMatch("phone"),
            cl.ExactMatch("city"),
            cl.ExactMatch("company"),
        ],
    )
    linker = Linker(table, settings, log_level="WARNING")
    linker.training.estimate_probability_two_random_records_match(
        [block_on("email", "name"), block_on("phone", "name")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=2)
    for rule in ("email", "phone"):
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(rule))
    predicted = linker.inference.predict(threshold_match_probability=threshold)
    found = predicted.as_pandas_dataframe()[["rec_id_l", "rec_id_r"]]
    con.close()
    return {
        _pair(str(a), str(b)) for a, b in zip(found["rec_id_l"], found["rec_id_r"], strict=True)
    }


def run(people: int, log: Callable[[str], None], *, splink: bool = True) -> list[dict[str, Any]]:
    """Every method on seed A and seed B; one row per seed and method."""
    rows: list[dict[str, Any]] = []
    for label, seed in (
        ("A (tuned)", realistic_contacts.SEED_TUNED),
        ("B (aside)", realistic_contacts.SEED_ASIDE),
    ):
        records, truth = realistic_contacts.generate(people, seed)
        name = f"seed {label}, {len(records)} records, {len(truth)} true pairs"
        began = time.perf_counter()
        declared, saved, _ = crmkit_pairs(records)
        took = time.perf_counter() - began
        rows.append(
            {"set": name, "method": "crmkit declared", "seconds": took, **scores(declared, truth)}
        )
        rows.append(
            {
                "set": name,
                "method": "crmkit all candidates",
                "seconds": took,
                **scores(saved, truth),
            }
        )
        began = time.perf_counter()
        _, saved, _ = crmkit_pairs(records, [*contact_rules(), same_name_and_city_rule()])
        rows.append(
            {
                "set": name,
                "method": "crmkit all candidates + same-name-and-city review rule",
                "seconds": time.perf_counter() - began,
                **scores(saved, truth),
            }
        )
        began = time.perf_counter()
        found = naive_pairs(records)
        rows.append(
            {
                "set": name,
                "method": "naive exact e-mail or phone",
                "seconds": time.perf_counter() - began,
                **scores(found, truth),
            }
        )
        if splink:
            began = time.perf_counter()
            found = splink_pairs(records)
            rows.append(
                {
                    "set": name,
                    "method": "splink EM p>=0.5",
                    "seconds": time.perf_counter() - began,
                    **scores(found, truth),
                }
            )
        log(f"dedupe realistic: seed {label} done")
    return rows


def misses(people: int, limit: int = 8) -> None:
    """The true pairs seed A's scan does not declare, and the declared false pairs, grouped
    by the fields that differ, with examples."""
    records, truth = realistic_contacts.generate(people, realistic_contacts.SEED_TUNED)
    by_id = {r["id"]: r for r in records}
    declared, _, why = crmkit_pairs(records)
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for pair in sorted(truth - declared):
        a, b = by_id[pair[0]], by_id[pair[1]]
        if pair in why:
            rule, score, reasons = why[pair]
            kinds = " ".join(
                sorted(
                    {
                        r.split(" ")[0] + ":" + r.split(" ")[1]
                        for r in reasons
                        if not r.startswith("same")
                    }
                )
            )
            key = f"saved {rule}: {kinds}"
        else:
            key = "not saved"
            reasons, score = [], 0.0
        groups[key].append(f"  {score:.3f} {reasons}\n    {_show(a)}\n    {_show(b)}")
    for pair in sorted(declared - truth):
        a, b = by_id[pair[0]], by_id[pair[1]]
        rule, score, reasons = why[pair]
        groups["FALSE declared"].append(f"  {score:.3f} {reasons}\n    {_show(a)}\n    {_show(b)}")
    for key, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f"{len(items):5d}  {key}")
        for item in items[:limit]:
            print(item)


def _show(record: dict[str, Any]) -> str:
    return (
        f"{record['source']:4} {record['full_name']!r} {record['email']!r} {record['phone']!r}"
        f" {record['extra_phones']} {record['city']!r} {record['birthday']}"
        f" {record['company_name']!r}"
    )


def as_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The results table."""
    lines = [
        "| set | method | precision | recall | F1 | pairs | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['set']} | {row['method']} | {row['precision']:.4f} | {row['recall']:.4f}"
            f" | {row['f1']:.4f} | {row['pairs']} | {row['seconds']:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=6000)
    parser.add_argument("--misses", action="store_true", help="seed A's misses by cause")
    parser.add_argument("--no-splink", action="store_true")
    args = parser.parse_args(argv)
    if args.misses:
        misses(args.people)
        return
    rows = run(args.people, lambda text: print(text, file=sys.stderr), splink=not args.no_splink)
    print("\n".join(as_markdown(rows)))


if __name__ == "__main__":
    main()
