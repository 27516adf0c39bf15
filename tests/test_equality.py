"""Equality means one thing everywhere (issue 18, trap 5): a list filter, a rule condition, a
territory map and a unique field agree on whether two values are the same, and the one case
fold they use is the same in Python, on SQLite and on PostgreSQL (hypothesis)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import literal, select

import crmkit
from crmkit.assignment.rules import Condition
from crmkit.entities.equality import LOWER, UPPER, fold_case, same_text, sql_fold_case

#: Text no database refuses (no NUL, no lone surrogates), mixed case, accents, CJK, Greek.
TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="\x00",
    ),
    max_size=12,
)
#: A small alphabet, so that equal and nearly equal pairs come up often.
CODES = st.text(st.sampled_from("aAbBzZéÉß1-汉ＡΣσ"), min_size=1, max_size=4)
DATABASE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@given(TEXT)
def test_the_fold_changes_only_the_capitals_a_to_z(text: str) -> None:
    folded = fold_case(text)
    assert len(folded) == len(text)
    for before, after in zip(text, folded, strict=True):
        assert after == (LOWER[UPPER.index(before)] if before in UPPER else before)
    assert fold_case(folded) == folded


@given(TEXT, TEXT)
def test_same_text_is_exact_unless_case_is_ignored(left: str, right: str) -> None:
    assert same_text(left, right, ignore_case=False) is (left == right)
    assert same_text(left, right, ignore_case=True) is (fold_case(left) == fold_case(right))
    assert same_text(left, left.translate(str.maketrans(LOWER, UPPER)), ignore_case=True)


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """Contacts with a code that ignores case (unique) and a tag that does not."""
    return make_crm(
        custom_fields=[
            {"entity": "contact", "name": "code", "type": "text", "unique": True,
             "ignore_case": True},
            {"entity": "contact", "name": "tag", "type": "text"},
        ]
    )  # fmt: skip


@DATABASE
@given(TEXT)
def test_the_database_folds_exactly_as_python_does(crm: crmkit.CRM, text: str) -> None:
    with crm.engine.connect() as connection:
        folded = connection.scalar(select(sql_fold_case(literal(text))))
    assert folded == fold_case(text)


@DATABASE
@given(stored=CODES, asked=CODES, field=st.sampled_from(["code", "tag"]))
def test_filters_rules_and_uniqueness_agree_on_equal(
    crm: crmkit.CRM, stored: str, asked: str, field: str
) -> None:
    ignore_case = field == "code"
    expected = same_text(stored, asked, ignore_case=ignore_case)
    crm.contacts.create({"full_name": "王芳", field: stored})
    try:
        assert (crm.contacts.count({field: asked}) == 1) is expected
        assert (crm.contacts.count({f"{field}__ne": asked}) == 1) is not expected
        assert (crm.contacts.count({f"{field}__in": [asked, "无"]}) == 1) is expected
        condition = Condition(field, "eq", asked, ignore_case)
        assert condition.holds({field: stored}) is expected
        if ignore_case:
            refused = False
            try:
                crm.contacts.create({"full_name": "汪芳", "code": asked})
            except crmkit.ValidationError:
                refused = True
            assert refused is expected
    finally:
        for contact in crm.contacts.list(limit=10).items:
            crm.contacts.delete(contact.id)


@DATABASE
@given(stored=CODES, needle=CODES)
def test_contains_ignores_the_case_of_a_to_z_in_filters_and_rules_alike(
    crm: crmkit.CRM, stored: str, needle: str
) -> None:
    expected = fold_case(needle) in fold_case(stored)
    record = crm.contacts.create({"full_name": "王芳", "tag": stored})
    try:
        assert (crm.contacts.count({"tag__contains": needle}) == 1) is expected
        assert Condition("tag", "contains", needle).holds({"tag": stored}) is expected
    finally:
        crm.contacts.delete(record.id)


def test_a_rule_condition_compares_like_a_filter(make_crm: Callable[..., crmkit.CRM]) -> None:
    """``source_channel=Web`` neither finds nor assigns a lead from ``web``: a built-in text
    field compares exactly; a custom field declared ignore_case matches either spelling."""
    crm = make_crm(
        custom_fields=[{"entity": "lead", "name": "campaign", "type": "text", "ignore_case": True}]
    )
    alice, bob = crm.users.create("alice"), crm.users.create("bob")
    crm.assignment.add_rule("lead", "web", "fixed", ["alice"], when={"source_channel": "Web"})
    crm.assignment.add_rule("lead", "fair", "fixed", ["alice"], when={"campaign": "EXPO-26"})
    crm.assignment.add_rule("lead", "rest", "fixed", ["bob"])
    web = crm.leads.create({"full_name": "李四", "source_channel": "web"})
    expo = crm.leads.create({"full_name": "张三", "campaign": "expo-26"})
    assert crm.leads.count({"source_channel": "Web"}) == 0
    assert web.owner_id == bob.id
    assert crm.leads.count({"campaign": "EXPO-26"}) == 1
    assert expo.owner_id == alice.id


def test_a_territory_map_compares_like_a_filter(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(
        custom_fields=[{"entity": "lead", "name": "zone", "type": "text", "ignore_case": True}]
    )
    alice, bob = crm.users.create("alice"), crm.users.create("bob")
    crm.assignment.add_rule(
        "lead", "zones", "territory", territory_field="zone",
        territory={"NORTH": "alice", "south": "bob"},
    )  # fmt: skip
    assert crm.leads.create({"full_name": "李四", "zone": "north"}).owner_id == alice.id
    assert crm.leads.create({"full_name": "张三", "zone": "South"}).owner_id == bob.id


def test_ignore_case_is_for_text_fields() -> None:
    with pytest.raises(ValueError, match="ignore_case applies to text fields only"):
        crmkit.CustomField(entity="contact", name="n", type="number", ignore_case=True)
