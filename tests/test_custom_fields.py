"""Custom fields declared in the settings: every type, coercion from CSV-style strings,
validation, required fields, filters, sorting with cursor pagination, and declaration errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from outbox_reader import outbox_names

import crmkit

FIELDS: list[dict[str, Any]] = [
    {"entity": "contact", "name": "nickname", "type": "text"},
    {"entity": "contact", "name": "visits", "type": "number"},
    {"entity": "contact", "name": "credit", "type": "decimal"},
    {"entity": "contact", "name": "first_order", "type": "date"},
    {"entity": "contact", "name": "last_seen", "type": "datetime"},
    {"entity": "contact", "name": "vip", "type": "boolean"},
    {"entity": "contact", "name": "level", "type": "choice", "choices": ["a", "b", "c"]},
    {
        "entity": "contact",
        "name": "interests",
        "type": "multi_choice",
        "choices": ["茶", "酒", "书"],
    },
]


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM whose contacts carry one custom field of every type."""
    return make_crm(custom_fields=FIELDS)


def create(crm: crmkit.CRM, **values: object) -> Any:
    return crm.contacts.create({"full_name": "张伟", **values})


def field_errors(error: pytest.ExceptionInfo[crmkit.ValidationError]) -> dict[str, str]:
    return {item.field: item.message for item in error.value.errors}


# -- coercion from CSV-style strings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "text", "stored"),
    [
        ("nickname", "  伟哥 ", "伟哥"),
        ("visits", " 42 ", 42),
        ("visits", "-3", -3),
        ("credit", "1234.50", "1234.5"),
        ("credit", "100", "100"),
        ("first_order", "2024-02-29", "2024-02-29"),
        ("last_seen", "2024-03-01T09:30:00+08:00", "2024-03-01T01:30:00+00:00"),
        ("last_seen", "2024-03-01T01:30:00Z", "2024-03-01T01:30:00+00:00"),
        ("vip", "yes", True),
        ("vip", "是", True),
        ("vip", "FALSE", False),
        ("vip", "0", False),
        ("level", " b ", "b"),
        ("interests", "茶;书", ["茶", "书"]),
        ("interests", "茶，酒", ["茶", "酒"]),
        ("interests", "书|书|茶", ["书", "茶"]),
    ],
)
def test_a_custom_value_given_as_text_is_stored_typed(
    crm: crmkit.CRM, field: str, text: str, stored: object
) -> None:
    contact = create(crm, **{field: text})

    assert crm.contacts.get(contact.id).custom[field] == stored


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("visits", 7, 7),
        ("visits", 7.0, 7),
        ("credit", 12.25, "12.25"),
        ("first_order", dt.date(2024, 1, 2), "2024-01-02"),
        ("last_seen", dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.UTC), "2024-01-02T03:04:00+00:00"),
        ("vip", True, True),
        ("interests", ["酒"], ["酒"]),
    ],
)
def test_a_custom_value_given_as_a_python_object_is_stored_typed(
    crm: crmkit.CRM, field: str, value: object, stored: object
) -> None:
    contact = create(crm, **{field: value})

    assert contact.custom[field] == stored


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("nickname", 5),
        ("visits", "4.5"),
        ("visits", "many"),
        ("visits", True),
        ("credit", "12,5x"),
        ("credit", "Infinity"),
        ("first_order", "2024-02-30"),
        ("first_order", dt.datetime(2024, 1, 2, tzinfo=dt.UTC)),
        ("last_seen", "2024-03-01T09:30:00"),
        ("last_seen", dt.datetime(2024, 3, 1, 9, 30)),
        ("vip", "maybe"),
        ("level", "d"),
        ("level", "A"),
        ("interests", "茶;咖啡"),
        ("interests", 3),
    ],
)
def test_an_invalid_custom_value_is_refused_by_field_name(
    crm: crmkit.CRM, field: str, value: object
) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        create(crm, **{field: value})

    assert list(field_errors(error)) == [field]


def test_a_refused_custom_value_writes_nothing(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError):
        create(crm, visits="many")

    assert crm.contacts.count() == 0
    assert outbox_names(crm) == []


def test_an_empty_multi_choice_is_no_value(crm: crmkit.CRM) -> None:
    contact = create(crm, interests=[])

    assert "interests" not in contact.custom


def test_an_empty_custom_value_is_not_stored(crm: crmkit.CRM) -> None:
    contact = create(crm, nickname="", visits=None)

    assert contact.custom == {}


def test_updating_a_custom_value_bumps_the_version(crm: crmkit.CRM) -> None:
    contact = create(crm, visits=1)

    updated = crm.contacts.update(contact.id, {"visits": "2"})

    assert (updated.custom["visits"], updated.version) == (2, 2)


def test_setting_a_custom_value_to_the_same_value_is_no_change(crm: crmkit.CRM) -> None:
    contact = create(crm, credit="10.50")

    unchanged = crm.contacts.update(contact.id, {"credit": "10.5"})

    assert unchanged.version == 1


def test_clearing_a_custom_value_removes_it(crm: crmkit.CRM) -> None:
    contact = create(crm, level="a", visits=3)

    updated = crm.contacts.update(contact.id, {"level": ""})

    assert updated.custom == {"visits": 3}


def test_a_custom_field_of_another_entity_is_unknown(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.accounts.create({"name": "Acme", "visits": 3})

    assert field_errors(error) == {"visits": "unknown field of account"}


# -- required custom fields ------------------------------------------------------------------


@pytest.fixture
def strict_crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """Contacts must say where they came from."""
    field = {"entity": "contact", "name": "origin", "type": "text", "required": True}
    return make_crm(custom_fields=[field])


def test_a_missing_required_custom_field_is_refused(strict_crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        create(strict_crm)

    assert field_errors(error) == {"origin": "is required"}


def test_a_blank_required_custom_field_is_refused(strict_crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        create(strict_crm, origin="")

    assert field_errors(error) == {"origin": "is required"}


def test_a_required_custom_field_cannot_be_cleared(strict_crm: crmkit.CRM) -> None:
    contact = create(strict_crm, origin="展会")

    with pytest.raises(crmkit.ValidationError) as error:
        strict_crm.contacts.update(contact.id, {"origin": ""})

    assert field_errors(error) == {"origin": "is required"}


def test_an_update_that_leaves_a_required_custom_field_alone_is_accepted(
    strict_crm: crmkit.CRM,
) -> None:
    contact = create(strict_crm, origin="展会")

    updated = strict_crm.contacts.update(contact.id, {"city": "上海"})

    assert updated.custom == {"origin": "展会"}


# -- filters ---------------------------------------------------------------------------------


@pytest.fixture
def people(crm: crmkit.CRM) -> dict[str, int]:
    """Four contacts with varied custom values (and gaps); name → id."""
    rows = {
        "甲": {"visits": 1, "credit": "9.5", "first_order": "2024-01-10", "vip": True,
               "level": "a", "interests": "茶;酒", "nickname": "Ah Jia",
               "last_seen": "2024-05-01T08:00:00+08:00"},
        "乙": {"visits": 5, "credit": "10", "first_order": "2024-03-01", "vip": False,
               "level": "b", "interests": "书", "last_seen": "2024-05-01T08:00:00Z"},
        "丙": {"visits": 12, "credit": "100.25", "level": "c", "interests": "酒;书"},
        "丁": {},
    }  # fmt: skip
    return {name: create(crm, full_name=name, **values).id for name, values in rows.items()}


def names(crm: crmkit.CRM, filters: dict[str, object], sort: str = "id") -> list[str]:
    return [contact.full_name for contact in crm.contacts.list(filters, sort=sort).items]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"level": "b"}, ["乙"]),
        ({"level__ne": "b"}, ["甲", "丙"]),
        ({"nickname": "Ah Jia"}, ["甲"]),
        ({"vip": "yes"}, ["甲"]),
        ({"vip": False}, ["乙"]),
        ({"visits": "5"}, ["乙"]),
        ({"visits__gt": 1}, ["乙", "丙"]),
        ({"visits__gte": "5", "visits__lt": 12}, ["乙"]),
        ({"visits__lte": 5}, ["甲", "乙"]),
        ({"credit__gt": "9.9"}, ["乙", "丙"]),
        ({"credit__lt": 10}, ["甲"]),
        ({"credit": "10.00"}, ["乙"]),
        ({"first_order__gte": "2024-02-01"}, ["乙"]),
        ({"first_order__lt": dt.date(2024, 3, 1)}, ["甲"]),
        ({"last_seen__lt": "2024-05-01T09:00:00+08:00"}, ["甲"]),
        ({"last_seen__gte": "2024-05-01T08:00:00+08:00"}, ["甲", "乙"]),
        ({"last_seen__gt": "2024-05-01T00:00:00Z"}, ["乙"]),
        ({"level__in": ["a", "c"]}, ["甲", "丙"]),
        ({"level__in": "a,c"}, ["甲", "丙"]),
        ({"visits__in": ["1", "12"]}, ["甲", "丙"]),
        ({"interests__contains": "酒"}, ["甲", "丙"]),
        ({"interests__contains": "书", "level__ne": "c"}, ["乙"]),
        ({"nickname__empty": True}, ["乙", "丙", "丁"]),
        ({"first_order__empty": "false"}, ["甲", "乙"]),
        ({"interests__empty": True}, ["丁"]),
        ({"vip__empty": True}, ["丙", "丁"]),
    ],
)
def test_filtering_on_a_custom_field(
    crm: crmkit.CRM, people: dict[str, int], filters: dict[str, object], expected: list[str]
) -> None:
    assert names(crm, filters) == expected
    assert crm.contacts.count(filters) == len(expected)


@pytest.mark.parametrize(
    "filters",
    [{"visits__gt": "lots"}, {"level__in": ["a", "z"]}, {"interests__contains": "咖啡"}],
)
def test_a_filter_value_the_field_cannot_hold_is_refused(
    crm: crmkit.CRM, filters: dict[str, object]
) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list(filters)

    (field,) = field_errors(error)
    assert field == next(iter(filters)).split("__")[0]


def test_a_range_filter_without_a_value_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list({"visits__lt": ""})

    assert "visits__lt" in field_errors(error)


def test_contains_on_a_number_field_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list({"visits__contains": "1"})

    assert "visits__contains" in field_errors(error)


# -- sorting and cursor pagination -----------------------------------------------------------


def walk(crm: crmkit.CRM, sort: str, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = crm.contacts.list(sort=sort, limit=limit, cursor=cursor)
        seen.extend(contact.full_name for contact in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return seen


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("visits", ["丁", "甲", "乙", "丙"]),
        ("-visits", ["丙", "乙", "甲", "丁"]),
        ("credit", ["丁", "甲", "乙", "丙"]),
        ("-credit", ["丙", "乙", "甲", "丁"]),
        ("first_order", ["丙", "丁", "甲", "乙"]),
        ("-first_order", ["乙", "甲", "丁", "丙"]),
        ("-level", ["丙", "乙", "甲", "丁"]),
        ("last_seen", ["丙", "丁", "甲", "乙"]),
    ],
)
def test_sorting_by_a_custom_field_pages_through_every_record_in_order(
    crm: crmkit.CRM, people: dict[str, int], sort: str, expected: list[str]
) -> None:
    assert walk(crm, sort, limit=1) == expected


def test_decimals_sort_by_value_not_as_text(crm: crmkit.CRM) -> None:
    for credit in ["9", "10", "100", "-2.5", "2.50"]:
        create(crm, full_name=credit, credit=credit)

    assert walk(crm, "credit", limit=2) == ["-2.5", "2.50", "9", "10", "100"]


def test_numbers_sort_by_value_not_as_text(crm: crmkit.CRM) -> None:
    for visits in [9, 10, 100, -2]:
        create(crm, full_name=str(visits), visits=visits)

    assert walk(crm, "-visits", limit=3) == ["100", "10", "9", "-2"]


# -- declaration errors ----------------------------------------------------------------------


def test_a_custom_field_named_like_a_built_in_field_is_a_config_error(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    clash = {"entity": "contact", "name": "email", "type": "text"}

    with pytest.raises(crmkit.ConfigError, match=r"clashes with the built-in field contact\.email"):
        make_crm(custom_fields=[clash])


def test_a_custom_field_named_like_a_system_field_is_a_config_error(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    clash = {"entity": "deal", "name": "version", "type": "number"}

    with pytest.raises(crmkit.ConfigError, match="version"):
        make_crm(custom_fields=[clash])


def test_a_custom_field_on_an_unknown_entity_is_a_config_error(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    stray = {"entity": "widget", "name": "size", "type": "number"}

    with pytest.raises(crmkit.ConfigError, match="unknown entity 'widget'"):
        make_crm(custom_fields=[stray])


def test_a_custom_field_declared_twice_is_a_config_error(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    field = {"entity": "contact", "name": "level", "type": "text"}

    with pytest.raises(crmkit.ConfigError, match="declared twice"):
        make_crm(custom_fields=[field, field])


@pytest.mark.parametrize(
    ("declaration", "mentions"),
    [
        ({"entity": "contact", "name": "size", "type": "huge"}, "huge"),
        ({"entity": "contact", "name": "Size", "type": "text"}, "Size"),
        ({"entity": "contact", "name": "level", "type": "choice"}, "needs choices"),
        ({"entity": "contact", "name": "level", "type": "text", "colour": "red"}, "colour"),
    ],
)
def test_a_malformed_custom_field_is_a_config_error_naming_the_problem(
    make_crm: Callable[..., crmkit.CRM], declaration: dict[str, object], mentions: str
) -> None:
    with pytest.raises(crmkit.ConfigError, match=mentions):
        make_crm(custom_fields=[declaration])


def test_custom_fields_on_different_entities_may_share_a_name(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(
        custom_fields=[
            {"entity": "contact", "name": "level", "type": "number"},
            {"entity": "account", "name": "level", "type": "text"},
        ]
    )

    account = crm.accounts.create({"name": "Acme", "level": "gold"})
    contact = crm.contacts.create({"full_name": "张伟", "level": "3"})

    assert (account.custom, contact.custom) == ({"level": "gold"}, {"level": 3})
