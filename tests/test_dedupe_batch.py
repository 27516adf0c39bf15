"""The dedupe plugin's batch machinery and the online check's lookup: integer-array blocking,
vectorised scoring (the same answers as scoring pair by pair), the scan reading only the
records that share a key, the covering lookup index, and the per-key candidate cap."""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import json
import warnings
from collections.abc import Callable
from typing import Any

import crmkit_dedupe
import numpy as np
import pytest
import sqlalchemy as sa
from crmkit_dedupe import engine as engine_module
from crmkit_dedupe import matching, service
from crmkit_dedupe.rules import DEFAULT_RULES, FieldRule, Rule
from hypothesis import given
from hypothesis import strategies as st

import crmkit


def _profile(entity: str, record_id: int, data: dict[str, Any], rules: list[Rule]) -> Any:
    fields = matching.rule_fields(rules, entity)
    return matching.build_profile(entity, record_id, data, fields, "CN")


PEOPLE = [
    {"full_name": "張偉", "phone": "138 1234 5678", "email": "zw@corp.cn", "city": "上海"},
    {"full_name": "Zhang Wei", "phone": "+86 138-1234-5678", "city": "上海"},
    {"full_name": "Wei Zhang", "email": "ZW+crm@corp.cn", "birthday": "1990-03-04"},
    {"full_name": "张玮", "phone": "13812345678", "birthday": "1990-04-03"},
    {"full_name": "王伟", "city": "上海", "email": "ww@qq.com"},
    {"full_name": "王伟", "city": "上海", "email": "w.w@qq.com"},
    {"full_name": "Jon Smith", "email": "jon@example.com", "birthday": "1980-01-02"},
    {"full_name": "John Smith", "email": "jon@example.com", "birthday": "1980-01-02"},
    {"full_name": "John Smyth", "phone": "+44 20 7946 0958", "extra_phones": ["13812345678"]},
    {"full_name": "李娜", "email": "lina@example.cn", "extra_emails": ["zw@corp.cn"]},
    {"full_name": "Jacqueline White", "email": "jw@example.com", "city": "Perth"},
    {"full_name": "White", "email": "jw@example.com", "city": "Perth"},
    {"full_name": "Mary Ann White", "phone": "+61 8 9123 4567", "city": "Perth"},
]


def test_candidate_arrays_pair_shared_keys_and_window_big_blocks() -> None:
    rules = [Rule("r", "a", (FieldRule("phone", "phone", 1.0),), ("a",), min_evidence=1)]
    shared = [{"phone": "13800000001"}] * 3 + [{"phone": "13800000002"}]
    big = [{"phone": "13900000009"}] * 6
    profiles = [_profile("a", n, data, rules) for n, data in enumerate(shared + big)]

    left, right = matching.candidate_arrays(profiles, max_block=4, window=2, neighbourhood=False)

    pairs = set(zip(left.tolist(), right.tolist(), strict=True))
    assert {(0, 1), (0, 2), (1, 2)} <= pairs  # a small block: all with all
    assert not any(3 in pair for pair in pairs)  # a key of its own: no pair
    inside = {pair for pair in pairs if pair[0] >= 4}
    assert len(inside) == 5 + 4  # a block over max_block: neighbours within the window only
    assert all(0 < b - a <= 2 for a, b in inside)
    assert np.all(left < right)
    assert len(left) == len(pairs)  # each pair once


@pytest.mark.parametrize(
    "rules",
    [
        [r for r in DEFAULT_RULES if r.entity == "contact"],
        [
            Rule(
                "fuzzy",
                "contact",
                (
                    FieldRule("full_name", "name", 2.0, False),
                    FieldRule("birthday", "date", 2.0),
                    FieldRule("email", "email", 1.0),
                    FieldRule("phone", "phone", 1.0),
                    FieldRule("city", "text", 1.0),
                ),
                ("contact",),
                threshold=0.5,
                min_evidence=1,
                agree_at=0.8,
            )
        ],
    ],
    ids=["default-contact-rules", "fuzzy-rule"],
)
def test_vectorised_scoring_gives_what_pair_by_pair_scoring_gives(rules: list[Rule]) -> None:
    profiles = [_profile("contact", n, data, rules) for n, data in enumerate(PEOPLE)]
    everything = list(itertools.combinations(range(len(profiles)), 2))
    left = np.array([a for a, _ in everything] + [b for _, b in everything], dtype=np.int64)
    right = np.array([b for _, b in everything] + [a for a, _ in everything], dtype=np.int64)

    found = {
        (i, j): (rule.name, scored.score, scored.reasons)
        for i, j, rule, scored in matching.match_pairs(rules, profiles, left, right, chunk=7)
    }

    expected = {}
    for i, j in zip(left.tolist(), right.tolist(), strict=True):
        hit = matching.first_match(rules, profiles[i], profiles[j])
        if hit is not None:
            expected[(i, j)] = (hit[0].name, hit[1].score, hit[1].reasons)
    assert found == expected
    assert expected  # the people above do hold duplicates


def test_company_and_domain_fields_score_alike_vectorised() -> None:
    rules = [r for r in DEFAULT_RULES if r.entity == "account"]
    accounts = [
        {"name": "上海华为技术有限公司", "website": "https://www.huawei.com", "city": "上海"},
        {"name": "華為技術有限公司", "website": "huawei.com/cn", "city": "上海"},
        {"name": "Huawei Technologies Co., Ltd.", "email": "info@huawei.com"},
        {"name": "华为", "phone": "+86 755 2878 0808"},
        {"name": "华为技术服务", "phone": "075528780808"},
    ]
    profiles = [_profile("account", n, data, rules) for n, data in enumerate(accounts)]
    pairs = list(itertools.permutations(range(len(profiles)), 2))
    left = np.array([a for a, _ in pairs], dtype=np.int64)
    right = np.array([b for _, b in pairs], dtype=np.int64)

    found = {
        (i, j): (r.name, s.score)
        for i, j, r, s in matching.match_pairs(rules, profiles, left, right)
    }

    expected = {}
    for i, j in pairs:
        hit = matching.first_match(rules, profiles[i], profiles[j])
        if hit is not None:
            expected[(i, j)] = (hit[0].name, hit[1].score)
    assert found == expected
    assert expected


@pytest.fixture
def scan_only(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    return make_crm(
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"online_check": False}}
    )


def test_the_scan_counts_every_live_record_and_pairs_those_sharing_a_key(
    scan_only: crmkit.CRM,
) -> None:
    a = scan_only.contacts.create({"full_name": "張偉", "phone": "13812345678"})
    b = scan_only.contacts.create({"full_name": "Zhang Wei", "phone": "+86 138 1234 5678"})
    scan_only.contacts.create({"full_name": "李娜", "phone": "13900000000"})
    scan_only.contacts.create({"full_name": "王伟", "city": "上海"})
    gone = scan_only.contacts.create({"full_name": "Wei Zhang", "phone": "13812345678"})
    scan_only.contacts.delete(gone.id)

    counts = service.scan(scan_only, "contact")

    assert counts == {"records": 4, "compared": 1, "candidates": 1}
    (row,) = service.candidates(scan_only)
    assert (row["id_a"], row["id_b"]) == (a.id, b.id)


def test_the_lookup_index_covers_the_record_id(scan_only: crmkit.CRM) -> None:
    with scan_only.transaction(write=False) as op:
        inspector = sa.inspect(op.session.connection())
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("dedupe_keys")}
    assert indexes["ix_dedupe_keys_lookup"] == ["kind", "key", "entity", "record_id"]


def test_the_online_check_compares_at_most_max_candidates_per_key(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(
        plugins={"dedupe": crmkit_dedupe},
        plugin_settings={"dedupe": {"online_check": False, "max_candidates": 3}},
    )
    ids = [
        crm.contacts.create({"full_name": f"Person {n}", "phone": "+86 10 8888 0000"}).id
        for n in range(6)
    ]
    checking = make_crm(
        plugins={"dedupe": crmkit_dedupe}, plugin_settings={"dedupe": {"max_candidates": 3}}
    )
    with checking.transaction(write=False) as op:
        matches = crmkit_dedupe.engine_of(checking).find(
            op, "contact", {"full_name": "Person 9", "phone": "01088880000"}, None
        )
    assert sorted(m.record_id for m in matches) == ids[-3:]  # the newest three


def test_the_api_routes_use_no_deprecated_inferred_parameters(scan_only: crmkit.CRM) -> None:
    from crmkit.api import create_app

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_app(scan_only)
    handlers = {"scan", "candidates", "dismiss", "merge", "undo", "check"}
    deprecated = [
        str(w.message)
        for w in caught
        if issubclass(w.category, DeprecationWarning)
        and any(f"handler='{name}'" in str(w.message) for name in handlers)
    ]
    assert deprecated == []


def test_a_lead_scan_pairs_leads_with_contacts_sharing_a_key(scan_only: crmkit.CRM) -> None:
    contact = scan_only.contacts.create({"full_name": "陈静", "email": "chen.jing@example.cn"})
    lead = scan_only.leads.create({"full_name": "陳靜", "email": "Chen.Jing@example.cn"})
    scan_only.leads.create({"full_name": "王伟", "email": "ww@example.cn"})

    counts = service.scan(scan_only, "lead")

    assert counts["records"] == 3  # two leads and the contact they are checked against
    (row,) = service.candidates(scan_only, entity="lead")
    assert (row["entity_a"], row["id_a"], row["entity_b"], row["id_b"]) == (
        "lead",
        lead.id,
        "contact",
        contact.id,
    )
    assert row["rule"] == "lead-is-contact"


_COLUMNS = ["birthday", "city", "email", "extra_emails", "extra_phones", "full_name", "phone"]
_NAMES = st.sampled_from(["張偉", "张伟", "Zhang Wei", "WEI zhang", "李娜", "Ｌｉ Ｎａ", "", "  "])
_PHONES = st.sampled_from(
    ["13812345678", "+86 138 1234 5678", "+8613812345678", "+862158881234", "12", "", "+1 202"]
)
_EMAILS = st.sampled_from(["ZW+crm@Corp.cn", "z.w@gmail.com", "zw@corp.cn", "not mail", ""])


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), _NAMES, st.text(max_size=6)),
            st.one_of(st.none(), _PHONES, st.text(max_size=6)),
            st.one_of(st.none(), _EMAILS),
            st.one_of(st.none(), st.lists(_PHONES, max_size=2)),
            st.one_of(st.none(), st.lists(_EMAILS, max_size=2)),
            st.one_of(st.none(), st.sampled_from(["上海", "上海 ", "北京", ""])),
            st.one_of(st.none(), st.sampled_from(["1990-03-04", "04/03/1990", ""])),
            st.booleans(),
        ),
        max_size=8,
    )
)
def test_the_column_builder_gives_what_build_profile_gives(rows: list[tuple[Any, ...]]) -> None:
    rules = [r for r in DEFAULT_RULES if r.entity == "contact"]
    fields = matching.rule_fields(rules, "contact")
    builder = matching.ProfileBuilder("contact", _COLUMNS, fields, "CN")
    read, expected = [], []
    for n, (name, phone, email, phones, emails, city, birthday, as_text) in enumerate(rows):
        data = {"full_name": name, "phone": phone, "email": email, "city": city}
        data |= {"birthday": birthday, "extra_phones": phones, "extra_emails": emails}
        stored = dict(data)
        if as_text:  # a scan reads the lists as JSON text
            stored["extra_phones"] = json.dumps(phones)
            stored["extra_emails"] = json.dumps(emails)
        read.append((n, 7, None, *(stored[c] for c in _COLUMNS)))
        label = str(name or "")
        expected.append(
            matching.build_profile("contact", n, data, fields, "CN", owner_id=7, label=label)
        )

    assert builder.profiles(read) == expected


def test_the_portable_read_and_insert_give_what_the_fast_ones_give(
    scan_only: crmkit.CRM, monkeypatch: pytest.MonkeyPatch
) -> None:
    for person in PEOPLE:
        scan_only.contacts.create(person)
    gone = scan_only.contacts.create({"full_name": "張偉", "phone": "13812345678"})
    scan_only.contacts.delete(gone.id)

    def saved() -> list[tuple[Any, ...]]:
        columns = ("entity_a", "id_a", "entity_b", "id_b", "score", "rule", "action", "reasons")
        rows = service.candidates(scan_only)
        assert all(row["status"] == "open" and row["found_at"] for row in rows)
        return sorted(tuple(str(row[c]) for c in columns) for row in rows)

    fast_counts = service.scan(scan_only, "contact")
    fast = saved()
    # what an engine without a one-parameter id list or COPY gets: a read filtered in
    # Python and the driver's executemany
    monkeypatch.setattr(engine_module, "_ids_in", lambda dialect, column: None)
    monkeypatch.setattr(engine_module, "_copies", lambda dialect: False)
    portable_counts = service.scan(scan_only, "contact")

    assert saved() == fast
    assert portable_counts == fast_counts
    assert len(fast) >= 4  # PEOPLE hold several pairs; the deleted record is in none
    assert not any(str(gone.id) in (row[1], row[3]) for row in fast)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["張偉", "Zhang Wei", "张玮", "Li Na", None]),
            st.sampled_from(["13812345678", "13900000000", None]),
            st.sampled_from(["zw@corp.cn", "ln@corp.cn", None]),
        ),
        min_size=2,
        max_size=7,
    ),
    st.sampled_from([0.5, 2 / 3, 0.75, 0.8, 1.0]),
    st.sampled_from([0.5, 0.88, 1.0]),
)
def test_scores_on_a_threshold_are_decided_as_pair_by_pair_scoring_decides_them(
    people: list[tuple[Any, ...]], threshold: float, agree_at: float
) -> None:
    # thresholds a weighted mean of 0/1 similarities hits exactly: the pairs near them take
    # the pair-by-pair path, and the answers still come in the order the pairs were given
    rule = Rule(
        "tie",
        "contact",
        (
            FieldRule("full_name", "name", 1.0, False),
            FieldRule("phone", "phone", 1.0),
            FieldRule("email", "email", 1.0),
        ),
        ("contact",),
        threshold=threshold,
        agree_at=agree_at,
    )
    rows = [{"full_name": n, "phone": p, "email": e} for n, p, e in people]
    profiles = [_profile("contact", n, data, [rule]) for n, data in enumerate(rows)]
    pairs = list(itertools.permutations(range(len(profiles)), 2))
    left = np.array([a for a, _ in pairs], dtype=np.int64)
    right = np.array([b for _, b in pairs], dtype=np.int64)

    found = [
        (i, j, r.name, s.score, s.evidence, s.compared, s.reasons)
        for i, j, r, s in matching.match_pairs([rule], profiles, left, right, chunk=5)
    ]

    expected = []
    for i, j in pairs:
        hit = matching.first_match([rule], profiles[i], profiles[j])
        if hit is not None:
            s = hit[1]
            expected.append((i, j, hit[0].name, s.score, s.evidence, s.compared, s.reasons))
    assert found == expected


def test_a_write_that_fails_mid_scan_leaves_the_earlier_candidates(
    scan_only: crmkit.CRM, monkeypatch: pytest.MonkeyPatch
) -> None:
    for person in PEOPLE:
        scan_only.contacts.create(person)
    service.scan(scan_only, "contact")
    before = service.candidates(scan_only)
    assert len(before) >= 4
    real = engine_module._insert_candidates
    calls: list[int] = []

    def failing(connection: Any, entity: str, rows: Any) -> None:
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("disk full")
        real(connection, entity, rows)

    monkeypatch.setattr(engine_module, "_insert_candidates", failing)
    with pytest.raises(RuntimeError, match="disk full"), scan_only.transaction() as op:
        # a chunk per pair: the first chunks are written (by the writer thread on
        # PostgreSQL) before the third fails
        crmkit_dedupe.engine_of(scan_only).scan(op, "contact", chunk=1)

    assert len(calls) == 3  # nothing was written after the failure
    assert service.candidates(scan_only) == before  # the whole scan rolled back


def test_reasons_as_json_text_are_the_reasons_encoded() -> None:
    rules = [
        Rule(
            "fuzzy",
            "contact",
            (
                FieldRule("full_name", "name", 2.0, False),
                FieldRule("email", "email", 1.0),
                FieldRule("city", "text", 1.0),
                FieldRule("company", "company", 1.0, False),
            ),
            ("contact",),
            threshold=0.3,
            min_evidence=1,
        )
    ]
    people = [
        *PEOPLE,
        {"full_name": 'Jo "JJ" O\'Brien', "email": "jj@x.ie", "city": 'Back\\slash "City"'},
        {"full_name": "Jo O'Brien", "email": "JJ@x.ie", "city": "Back\\slash City"},
        {"full_name": "王伟", "email": "ww@qq.com", "company": "上海「华为」技术有限公司\t"},
    ]
    profiles = [_profile("contact", n, data, rules) for n, data in enumerate(people)]
    pairs = list(itertools.permutations(range(len(profiles)), 2))
    left = np.array([a for a, _ in pairs], dtype=np.int64)
    right = np.array([b for _, b in pairs], dtype=np.int64)
    matcher = matching.Matcher(rules, profiles)

    listed = matcher.match(left, right)
    encoded = matcher.match(left, right, as_json=True)

    assert encoded.reasons == [json.dumps(r, ensure_ascii=False) for r in listed.reasons]
    assert [json.loads(text) for text in encoded.reasons] == listed.reasons
    shown = " ".join(itertools.chain.from_iterable(listed.reasons))
    # the hard cases ran: a value with quotes and a backslash, and Chinese text
    assert 'back\\slash "city"' in shown
    assert "上海" in shown


def test_the_scan_reads_rows_as_sqlalchemy_gives_them(scan_only: crmkit.CRM) -> None:
    scan_only.contacts.create({"full_name": "張偉", "birthday": "1990-03-04", "city": "上海"})
    scan_only.contacts.create({"full_name": "Li Na"})
    model: Any = scan_only.entity("contact").model
    query = sa.select(model.id, model.birthday, model.custom, model.full_name, model.city)
    with scan_only.transaction() as op:
        connection = op.session.connection()
        expected = [tuple(row) for row in connection.execute(query)]
        read = [tuple(row) for rows in engine_module._batches(connection, query) for row in rows]
        batched = list(engine_module._batches(connection, query, size=1))
    assert read == expected
    assert len(batched) == 2
    assert {type(row[1]) for row in read} == {dt.date, type(None)}  # a date, not its text
    assert all(isinstance(row[2], dict) for row in read)  # the JSON decoded


def test_the_scan_pauses_the_garbage_collector_and_restores_it(scan_only: crmkit.CRM) -> None:
    for person in PEOPLE:
        scan_only.contacts.create(person)
    during: list[bool] = []
    with scan_only.transaction() as op:
        crmkit_dedupe.engine_of(scan_only).scan(
            op, "contact", progress=lambda n: during.append(gc.isenabled())
        )
    assert during
    assert not any(during)
    assert gc.isenabled()
    gc.disable()
    try:  # a collector already off stays off
        service.scan(scan_only, "contact")
        assert not gc.isenabled()
    finally:
        gc.enable()


@given(st.text())
def test_a_text_is_left_unescaped_exactly_when_json_leaves_it(text: str) -> None:
    encoded = json.dumps(text, ensure_ascii=False)[1:-1]
    assert (matching._JSON_ESCAPED.search(text) is None) == (encoded == text)
