"""Lead capture: public form posts become leads; honeypot, rate limit, snippet."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from api_support import Api, assert_problem, open_api
from hypothesis import given
from hypothesis import strategies as st

import crmkit
from crmkit.api.forms import RateLimiter
from crmkit.entities.customers import Lead
from crmkit.events.outbox import OutboxEvent


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    """An API allowing three form posts a minute per address."""
    crm = make_crm(api={"form_rate_limit": 3, "form_rate_window_seconds": 60})
    yield from open_api(crm)


@pytest.fixture
def form_key(api: Api) -> str:
    api.user("li", roles=["sales_rep"])
    form = api.crm.forms.add(
        "官网询价", ["full_name", "company_name", "phone", "email", "inquiry"], owner="li"
    )
    return form.key


def leads(api: Api) -> list[Lead]:
    with api.crm.engine.connect() as connection:
        return list(connection.execute(sa.select(Lead).order_by(Lead.id)))


def event_names(api: Api) -> list[str]:
    with api.crm.engine.connect() as connection:
        return list(connection.scalars(sa.select(OutboxEvent.name).order_by(OutboxEvent.id)))


def test_a_form_encoded_post_without_a_token_creates_a_lead_owned_by_the_forms_owner(
    api: Api, form_key: str
) -> None:
    response = api.client.post(
        f"/forms/{form_key}",
        data={
            "full_name": "陳志明",
            "company_name": "宏達資訊股份有限公司",
            "phone": "+886 912 345 678",
            "inquiry": "想了解批发价格",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "received"
    (lead,) = leads(api)
    assert (lead.full_name, lead.phone, lead.source_channel) == (
        "陳志明",
        "+886912345678",
        "web_form",
    )
    assert lead.owner_id == api.crm.users.get("li").id
    assert "lead.captured" in event_names(api)


def test_a_json_post_works_too(api: Api, form_key: str) -> None:
    response = api.client.post(f"/forms/{form_key}", json={"full_name": "Wang Fang"})
    assert response.status_code == 201, response.text
    assert [lead.full_name for lead in leads(api)] == ["Wang Fang"]


def test_a_filled_honeypot_is_answered_like_success_and_creates_nothing(
    api: Api, form_key: str
) -> None:
    good = api.client.post(f"/forms/{form_key}", data={"full_name": "真人"})
    trapped = api.client.post(
        f"/forms/{form_key}", data={"full_name": "Bot", "website_url": "http://spam.example"}
    )
    assert trapped.status_code == good.status_code == 201
    assert trapped.json() == good.json()
    assert [lead.full_name for lead in leads(api)] == ["真人"]


def test_a_flood_from_one_address_gets_429_problem_json(api: Api, form_key: str) -> None:
    codes = [
        api.client.post(f"/forms/{form_key}", data={"full_name": f"客户{n}"}).status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 201]
    flooded = api.client.post(f"/forms/{form_key}", data={"full_name": "第四"})
    assert_problem(flooded, 429)
    assert int(flooded.headers["retry-after"]) > 0
    assert len(leads(api)) == 3


def test_bad_submissions_are_422_naming_the_field_and_write_nothing(
    api: Api, form_key: str
) -> None:
    assert_problem(api.client.post(f"/forms/{form_key}", data={"city": "上海"}), 422, field="city")
    assert_problem(api.client.post(f"/forms/{form_key}", data={"email": "x"}), 422)
    assert leads(api) == []
    assert "lead.captured" not in event_names(api)


def test_an_unknown_form_is_404_and_an_unknown_content_type_415(api: Api, form_key: str) -> None:
    assert_problem(api.client.post("/forms/nope", data={"full_name": "A"}), 404)
    response = api.client.post(
        f"/forms/{form_key}", content=b"full_name", headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 415)


def test_the_snippet_is_an_html_form_posting_to_the_key(api: Api, form_key: str) -> None:
    response = api.client.get(f"/forms/{form_key}/snippet")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f'/forms/{form_key}"' in html
    for field in ("full_name", "company_name", "phone", "email", "inquiry", "website_url"):
        assert f'name="{field}"' in html


def test_forms_need_form_manage(api: Api) -> None:
    api.user("rep", roles=["sales_rep"])
    rep = api.crm.users.get("rep")
    with pytest.raises(crmkit.PermissionDenied, match="form:manage"):
        api.crm.forms.add("x", ["full_name"], actor=rep)


def test_a_removed_forms_key_is_404(api: Api, form_key: str) -> None:
    api.crm.forms.remove(form_key)
    assert_problem(api.client.post(f"/forms/{form_key}", data={"full_name": "A"}), 404)


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=40))
def test_the_rate_limiter_never_lets_more_than_the_limit_through_a_window(
    offsets: list[float],
) -> None:
    limiter = RateLimiter(limit=3, window=10)
    times = sorted(offsets)
    allowed = [t for t in times if limiter.retry_after("ip", now=t) == 0]
    for start in allowed:
        assert len([t for t in allowed if start <= t < start + 10]) <= 3
