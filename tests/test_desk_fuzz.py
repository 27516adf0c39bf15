"""Hostile input on every desk route: whatever a browser (or anything pretending to be one)
sends, the desk answers a page with a clear status below 500, and a refused form changes
nothing. Runs on both engines (the values reach the services and the database)."""

from __future__ import annotations

import string
from typing import Any

from desk_support import DeskWorld
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: Values a form field may carry: text of any script, markup, control characters (NUL too),
#: numbers out of range, dates that are not dates, very long text.
VALUES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.printable + "张伟欧阳\u0000\u202e<>\"'&", max_size=60),
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            "9" * 40,
            "-1",
            "0",
            "2026-02-30",
            "1e309",
            "NaN",
            "x" * 5000,
            "\u0000",
            "' OR 1=1 --",
            "../../etc/passwd",
        ]
    ),
)
FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "full_name",
            "company_name",
            "title",
            "phone",
            "email",
            "source_channel",
            "inquiry",
            "account_id",
            "city",
            "birthday",
            "lifecycle_stage",
            "version",
            "kind",
            "notes",
            "stage_id",
            "back",
            "entity",
            "record_id",
            "locale",
            "next",
            "amount",
            "unknown",
        ]
    ),
    VALUES,
    max_size=8,
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def world(desk: DeskWorld) -> dict[str, Any]:
    li_na = desk.crm.users.get("li.na")
    contact = desk.crm.contacts.create({"full_name": "刘洋"}, actor=li_na)
    deal = desk.crm.deals.create({"name": "框架协议"}, actor=li_na)
    return {"contact": contact.id, "deal": deal.id}


def assert_page(response: Any) -> None:
    assert response.status_code < 500, response.text[:500]
    assert response.headers["content-type"].startswith("text/html"), response.headers
    assert "Traceback" not in response.text
    assert "sqlalchemy" not in response.text.lower()


def test_forms_with_hostile_values_get_a_page_never_a_500(desk: DeskWorld) -> None:
    ids = world(desk)
    browser = desk.signed_in("li.na")
    browser.get("/desk")
    paths = [
        "/desk/leads/new",
        "/desk/contacts/new",
        f"/desk/contacts/{ids['contact']}/edit",
        f"/desk/contacts/{ids['contact']}/log",
        f"/desk/deals/{ids['deal']}/move",
        "/desk/pool/claim",
        "/desk/language",
    ]

    @FUZZ
    @given(path=st.sampled_from(paths), form=FIELDS)
    def post(path: str, form: dict[str, str]) -> None:
        response = browser.post(path, form, follow=False)
        if response.status_code != 303:  # see other: a valid change was made
            assert_page(response)

    post()


def test_query_parameters_with_hostile_values_get_a_page_never_a_500(desk: DeskWorld) -> None:
    world(desk)
    browser = desk.signed_in("li.na")
    names = st.sampled_from(
        [
            "q",
            "sort",
            "cursor",
            "field",
            "value",
            "mine",
            "entity",
            "after",
            "pipeline",
            "notice",
            "next",
        ]
    )

    @FUZZ
    @given(
        path=st.sampled_from(
            [
                "/desk/contacts",
                "/desk/leads",
                "/desk/deals",
                "/desk/pool",
                "/desk/board",
                "/desk",
                "/desk/tasks",
                "/desk/sign-in",
            ]
        ),
        query=st.dictionaries(names, VALUES, max_size=5),
    )
    def get(path: str, query: dict[str, str]) -> None:
        assert_page(browser.get(path, params=query))

    get()


def test_sign_in_with_hostile_values_never_signs_in_or_fails(desk: DeskWorld) -> None:
    @FUZZ
    @given(username=VALUES, password=VALUES)
    def attempt(username: str, password: str) -> None:
        response = desk.browser().sign_in(username, password)
        assert_page(response)
        assert response.status_code in (400, 401)

    attempt()


def test_hostile_path_segments_get_a_page(desk: DeskWorld) -> None:
    browser = desk.signed_in("li.na")
    for path in (
        "/desk/contacts/0",
        "/desk/contacts/-1",
        "/desk/contacts/99999999999999999999999",
        "/desk/%3Cscript%3E",
        "/desk/contacts/1/actions/x/y",
        "/desk/plugins/none/page",
        "/desk/contacts/1/edit/extra",
    ):
        response = browser.get(path)
        assert_page(response)
        assert response.status_code in (400, 404, 405)
