"""Reading lists: filters with every operator, free-text search, sorting, cursor pagination
and counts."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crmkit

SCORE = {"entity": "contact", "name": "score", "type": "number"}
CREDIT = {"entity": "contact", "name": "credit", "type": "decimal"}


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM whose contacts have a custom number (score) and decimal (credit)."""
    return make_crm(custom_fields=[SCORE, CREDIT])


@pytest.fixture
def people(crm: crmkit.CRM) -> None:
    """Five contacts with a spread of values, some missing."""
    rows: list[dict[str, object]] = [
        {"full_name": "张伟", "city": "上海", "birthday": "1985-03-01",
         "phone": "+8613812345678", "email": "zhang@example.com"},
        {"full_name": "王芳", "city": "北京", "birthday": "1990-07-15",
         "phone": "021-6234 5678"},
        {"full_name": "Alice Chen", "city": "Taipei", "birthday": "1990-07-15",
         "email": "alice@example.com.tw"},
        {"full_name": "Bob Li", "city": "上海"},
        {"full_name": "陈静", "lifecycle_stage": "advocate"},
    ]  # fmt: skip
    for row in rows:
        crm.contacts.create(row)


def names(crm: crmkit.CRM, filters: dict[str, object] | None = None, **options: Any) -> list[str]:
    return [contact.full_name for contact in crm.contacts.list(filters, **options).items]


def field_errors(error: pytest.ExceptionInfo[crmkit.ValidationError]) -> dict[str, str]:
    return {item.field: item.message for item in error.value.errors}


# -- filters ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"city": "上海"}, ["张伟", "Bob Li"]),
        ({"city__eq": " 上海 "}, ["张伟", "Bob Li"]),
        ({"city__ne": "上海"}, ["王芳", "Alice Chen"]),
        ({"birthday__lt": "1990-07-15"}, ["张伟"]),
        ({"birthday__lte": "1990-07-15"}, ["张伟", "王芳", "Alice Chen"]),
        ({"birthday__gt": "1985-03-01"}, ["王芳", "Alice Chen"]),
        ({"birthday__gte": dt.date(1985, 3, 1)}, ["张伟", "王芳", "Alice Chen"]),
        ({"city__in": ["北京", "Taipei"]}, ["王芳", "Alice Chen"]),
        ({"city__in": "北京,Taipei"}, ["王芳", "Alice Chen"]),
        ({"city__in": []}, []),
        ({"full_name__contains": "伟"}, ["张伟"]),
        ({"email__contains": "example.com"}, ["张伟", "Alice Chen"]),
        ({"email__empty": True}, ["王芳", "Bob Li", "陈静"]),
        ({"email__empty": "no"}, ["张伟", "Alice Chen"]),
        ({"birthday__empty": "true"}, ["Bob Li", "陈静"]),
        ({"lifecycle_stage": "advocate"}, ["陈静"]),
        ({"lifecycle_stage__ne": "prospect"}, ["陈静"]),
        ({"city": "上海", "birthday__empty": True}, ["Bob Li"]),
    ],
)
def test_filtering_on_a_built_in_field(
    crm: crmkit.CRM, filters: dict[str, object], expected: list[str]
) -> None:
    assert names(crm, filters) == expected
    assert crm.contacts.count(filters) == len(expected)


@pytest.mark.usefixtures("people")
def test_contains_ignores_the_case_of_latin_letters(crm: crmkit.CRM) -> None:
    assert names(crm, {"full_name__contains": "ALICE"}) == ["Alice Chen"]


def test_contains_treats_like_wildcards_literally(crm: crmkit.CRM) -> None:
    for title in ["100% 纯棉", "100 纯棉", "a_b", "axb", "a/b"]:
        crm.contacts.create({"full_name": "张伟", "title": title})

    found = {
        needle: [contact.title for contact in crm.contacts.list({"title__contains": needle}).items]
        for needle in ["%", "_", "/"]
    }

    assert found == {"%": ["100% 纯棉"], "_": ["a_b"], "/": ["a/b"]}


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize("typed", ["138 1234 5678", "+86 138-1234-5678", "0086 13812345678"])
def test_a_phone_filter_is_normalised_like_the_stored_number(crm: crmkit.CRM, typed: str) -> None:
    assert names(crm, {"phone": typed}) == ["张伟"]


@pytest.mark.usefixtures("people")
def test_a_phone_in_filter_normalises_every_number(crm: crmkit.CRM) -> None:
    assert names(crm, {"phone__in": ["138 1234 5678", "(021) 62345678"]}) == ["张伟", "王芳"]


@pytest.mark.usefixtures("people")
def test_an_email_filter_ignores_case(crm: crmkit.CRM) -> None:
    assert names(crm, {"email": "Zhang@EXAMPLE.com"}) == ["张伟"]


def test_a_decimal_filter_compares_numbers(crm: crmkit.CRM) -> None:
    crm.pipelines.create("Sales")
    for amount in ["9.99", "10", "100.5"]:
        crm.deals.create({"name": amount, "amount": amount})

    found = [deal.name for deal in crm.deals.list({"amount__gte": "10.00"}).items]

    assert found == ["10", "100.5"]


@pytest.mark.usefixtures("people")
def test_filters_on_system_fields_parse_their_values(crm: crmkit.CRM) -> None:
    first, second = (contact.id for contact in crm.contacts.list(limit=2).items)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()

    assert crm.contacts.count({"id__in": f"{first},{second}"}) == 2
    assert crm.contacts.count({"id": str(first)}) == 1
    assert crm.contacts.count({"created_at__lt": later, "version": "1"}) == 5


def test_an_unknown_operator_is_refused_by_name(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list({"city__like": "上%"})

    assert "unknown operator 'like'" in field_errors(error)["city__like"]


def test_an_unknown_filter_field_is_refused_by_name(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.count({"shoe_size__gt": 40})

    assert field_errors(error) == {"shoe_size": "unknown field of contact"}


def test_an_unknown_sort_field_is_refused_by_name(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list(sort="-shoe_size")

    assert "shoe_size" in field_errors(error)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"birthday__gt": "last year"}, "birthday"),
        ({"lifecycle_stage": "vip"}, "lifecycle_stage"),
        ({"phone": "call me"}, "phone"),
        ({"created_at__gte": "2024-01-01T00:00:00"}, "created_at"),
        ({"id": "one"}, "id"),
    ],
)
def test_a_filter_value_the_field_cannot_hold_is_refused_by_name(
    crm: crmkit.CRM, filters: dict[str, object], field: str
) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list(filters)

    assert list(field_errors(error)) == [field]


def test_a_range_filter_without_a_value_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list({"score__gte": None})

    assert "score__gte" in field_errors(error)


@pytest.mark.parametrize("key", ["birthday__contains", "score__contains"])
def test_contains_on_a_field_that_is_not_text_is_refused(crm: crmkit.CRM, key: str) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list({key: "19"})

    assert key in field_errors(error)


@pytest.mark.parametrize("field", ["extra_phones", "social"])
def test_a_list_or_mapping_field_cannot_be_filtered_on(crm: crmkit.CRM, field: str) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list({field: "x"})

    assert field in field_errors(error)


# -- search ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("张", ["张伟"]),
        ("陈", ["陈静"]),
        ("上海", ["张伟", "Bob Li"]),
        ("alice", ["Alice Chen"]),
        ("ALICE CHEN", ["Alice Chen"]),
        ("  bob ", ["Bob Li"]),
        ("example.com", ["张伟", "Alice Chen"]),
        ("8613812345678", ["张伟"]),
        ("nobody", []),
    ],
)
def test_search_finds_text_in_names_emails_phones_and_cities(
    crm: crmkit.CRM, text: str, expected: list[str]
) -> None:
    assert names(crm, search=text) == expected
    assert crm.contacts.count(search=text) == len(expected)


@pytest.mark.usefixtures("people")
def test_a_blank_search_matches_everything(crm: crmkit.CRM) -> None:
    assert crm.contacts.count(search="   ") == 5


def test_search_treats_like_wildcards_literally(crm: crmkit.CRM) -> None:
    for name in ["100% Cotton", "100 Cotton", "a_b", "axb"]:
        crm.accounts.create({"name": name})

    found = {
        text: [account.name for account in crm.accounts.list(search=text).items]
        for text in ["%", "_", "100%"]
    }

    assert found == {"%": ["100% Cotton"], "_": ["a_b"], "100%": ["100% Cotton"]}


def test_search_ignores_the_case_of_latin_letters_in_companies(crm: crmkit.CRM) -> None:
    crm.accounts.create({"name": "ACME Trading 上海"})

    assert [account.name for account in crm.accounts.list(search="acme trading").items] == [
        "ACME Trading 上海"
    ]


def test_search_combines_with_filters(crm: crmkit.CRM) -> None:
    crm.contacts.create({"full_name": "张伟", "city": "上海"})
    crm.contacts.create({"full_name": "张伟", "city": "北京"})

    assert [c.city for c in crm.contacts.list({"city": "北京"}, search="张伟").items] == ["北京"]


# -- sorting and paging ----------------------------------------------------------------------


def walk(crm: crmkit.CRM, filters: dict[str, object] | None, sort: str, limit: int) -> list[Any]:
    """Every record, page by page, following the cursors."""
    records: list[Any] = []
    cursor = None
    for _ in range(1000):
        page = crm.contacts.list(filters, sort=sort, limit=limit, cursor=cursor)
        records.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return records
    raise AssertionError("the cursors never ended")


@pytest.mark.usefixtures("people")
def test_sorting_descending_puts_missing_values_last(crm: crmkit.CRM) -> None:
    assert names(crm, sort="-birthday") == ["Alice Chen", "王芳", "张伟", "陈静", "Bob Li"]


@pytest.mark.usefixtures("people")
def test_sorting_ascending_puts_missing_values_first(crm: crmkit.CRM) -> None:
    assert names(crm, sort="birthday") == ["Bob Li", "陈静", "张伟", "王芳", "Alice Chen"]


@pytest.mark.usefixtures("people")
def test_the_last_page_has_no_next_cursor(crm: crmkit.CRM) -> None:
    first = crm.contacts.list(limit=3)
    last = crm.contacts.list(limit=3, cursor=first.next_cursor)

    assert (len(first.items), len(last.items), last.next_cursor) == (3, 2, None)


@pytest.mark.usefixtures("people")
def test_a_page_exactly_as_long_as_the_rest_has_no_next_cursor(crm: crmkit.CRM) -> None:
    assert crm.contacts.list(limit=5).next_cursor is None


@pytest.mark.usefixtures("people")
@pytest.mark.parametrize("sort", ["created_at", "-updated_at", "id", "-lifecycle_stage"])
def test_paging_by_any_sortable_built_in_field_reaches_every_record(
    crm: crmkit.CRM, sort: str
) -> None:
    assert len({contact.id for contact in walk(crm, None, sort, limit=2)}) == 5


@pytest.mark.parametrize("limit", [0, 1001])
def test_a_page_size_out_of_range_is_refused(crm: crmkit.CRM, limit: int) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list(limit=limit)

    assert "limit" in field_errors(error)


def cursor_of(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("id", "garbage"),
        ("id", "!!!!"),
        ("id", "€"),
        ("id", cursor_of({"a": 1})),
        ("id", cursor_of([1, 2, 3])),
        ("id", cursor_of([1, "x"])),
        ("id", cursor_of(["1", 2])),
        ("birthday", cursor_of(["not a date", 2])),
        ("created_at", cursor_of(["2024-01-01T00:00:00", 2])),
        ("full_name", cursor_of([5, 2])),
        ("score", cursor_of(["high", 2])),
        ("credit", cursor_of(["lots", 2])),
        ("-credit", cursor_of(["NaN", 2])),
    ],
)
def test_a_cursor_this_list_did_not_return_is_refused(
    crm: crmkit.CRM, sort: str, cursor: str
) -> None:
    crm.contacts.create({"full_name": "张伟", "score": 1, "credit": "1.5"})

    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.list(sort=sort, cursor=cursor)

    assert "cursor" in field_errors(error)


@pytest.mark.usefixtures("people")
def test_a_cursor_of_another_sort_order_is_refused(crm: crmkit.CRM) -> None:
    cursor = crm.contacts.list(sort="birthday", limit=3).next_cursor

    with pytest.raises(crmkit.ValidationError):
        crm.contacts.list(sort="id", cursor=cursor)


# Values drawn for the sort field; few distinct ones, so duplicates and NULLs are common.
SORT_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "birthday": st.sampled_from([dt.date(1990, 1, 1), dt.date(1990, 1, 2), dt.date(2001, 12, 31)]),
    "city": st.sampled_from(["a", "ab", "b", "z"]),
    "score": st.integers(min_value=-3, max_value=3),
    "credit": st.sampled_from([decimal.Decimal(v) for v in ["-1.5", "0", "2", "10", "10.25"]]),
}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), field=st.sampled_from(sorted(SORT_VALUES)), descending=st.booleans())
def test_paging_returns_every_record_once_in_sort_order(
    crm: crmkit.CRM, data: st.DataObject, field: str, descending: bool
) -> None:
    values = data.draw(st.lists(st.none() | SORT_VALUES[field], max_size=12), label="values")
    limit = data.draw(st.integers(min_value=1, max_value=5), label="limit")
    tag = uuid.uuid4().hex  # this example's records only
    rows = [{"full_name": "x", "source_channel": tag, field: value} for value in values]
    ids = crm.contacts.create_many(enumerate(rows, start=1)).ids
    filters = {"source_channel": tag}

    walked = walk(crm, filters, f"-{field}" if descending else field, limit)

    present = sorted(
        (value, id_) for value, id_ in zip(values, ids, strict=True) if value is not None
    )
    missing = sorted(id_ for value, id_ in zip(values, ids, strict=True) if value is None)
    if descending:
        expected = [id_ for _, id_ in reversed(present)] + list(reversed(missing))
    else:
        expected = missing + [id_ for _, id_ in present]
    assert [record.id for record in walked] == expected
    assert crm.contacts.count(filters) == len(walked)


def test_iterate_streams_every_matching_record_in_id_order(crm: crmkit.CRM) -> None:
    for index in range(7):
        crm.contacts.create({"full_name": f"c{index}", "city": "上海" if index % 2 else "北京"})

    streamed = [c.full_name for c in crm.contacts.iterate({"city": "上海"}, batch_size=2)]

    assert streamed == ["c1", "c3", "c5"]


def test_ids_query_selects_what_the_filter_names_as_the_actor_sees_it(crm: crmkit.CRM) -> None:
    crm.pipelines.create("Sales")
    crm.users.create_team("East")
    rep = crm.users.create("li.na", team="East", roles=("sales_rep",))
    hers = crm.contacts.create({"full_name": "她的", "city": "上海"}, actor=rep)
    crm.contacts.create({"full_name": "别人的", "city": "上海"})
    crm.contacts.create({"full_name": "北京的", "city": "北京"}, actor=rep)

    with crm.transaction(rep, write=False) as op:
        query = op.records("contact").ids_query({"city": "上海"})
        mine = list(op.session.scalars(query))
    with crm.transaction(write=False) as op:
        every = list(op.session.scalars(op.records("contact").ids_query({"city": "上海"})))

    assert mine == [hers.id]
    assert len(every) == 2


def test_ids_query_names_an_unknown_field(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError, match="shoe_size"):
        crm.contacts.ids_query({"shoe_size": 42})
