"""The public form against a hostile caller (issue 16, findings 11, 14, 15): the rate limit
keys on the connection unless a trusted proxy says otherwise; the snippet never follows the
Host header; bodies are decoded by their declared charset or refused; field sizes are capped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from api_support import Api, assert_problem, open_api

import crmkit
from crmkit.api.forms import client_address
from crmkit.entities.customers import Lead


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    crm = make_crm(
        api={
            "form_rate_limit": 3,
            "form_rate_window_seconds": 60,
            "form_max_field_chars": 2000,
            "public_url": "https://crm.example.cn",
        }
    )
    yield from open_api(crm)


@pytest.fixture
def form_key(api: Api) -> str:
    api.user("li", roles=["sales_rep"])
    return api.crm.forms.add("询价", ["full_name", "email", "inquiry"], owner="li").key


def lead_names(api: Api) -> list[str]:
    with api.crm.engine.connect() as connection:
        return list(connection.scalars(sa.select(Lead.full_name).order_by(Lead.id)))


def test_x_forwarded_for_does_not_get_around_the_rate_limit(api: Api, form_key: str) -> None:
    statuses = [
        api.client.post(
            f"/forms/{form_key}",
            data={"full_name": f"n{n}"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status_code
        for n in range(5)
    ]
    assert statuses == [201, 201, 201, 429, 429]


def test_a_trusted_proxy_names_the_client_from_the_right() -> None:
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    # the client wrote the first entry itself; the proxy appended the address it saw
    assert client_address("10.0.0.5", "1.1.1.1, 203.0.113.7", trusted) == "203.0.113.7"
    assert client_address("10.0.0.5", "203.0.113.7, 10.0.0.9", trusted) == "203.0.113.7"
    # an untrusted peer's header is ignored, and so is any header without trusted proxies
    assert client_address("198.51.100.1", "203.0.113.7", trusted) == "198.51.100.1"
    assert client_address("10.0.0.5", "203.0.113.7", []) == "10.0.0.5"


def test_trusted_proxies_are_checked_when_read(make_crm: Callable[..., crmkit.CRM]) -> None:
    with pytest.raises(crmkit.ConfigError, match="not an IP address"):
        crmkit.Settings.from_mapping({"crmkit": {"api": {"trusted_proxies": ["proxy.lan"]}}})
    one = crmkit.Settings.from_mapping({"crmkit": {"api": {"trusted_proxies": "10.0.0.1"}}})
    assert one.api.trusted_proxies == ("10.0.0.1",)


def test_the_snippet_posts_to_the_public_url_whatever_the_host_header(
    api: Api, form_key: str
) -> None:
    response = api.client.get(f"/forms/{form_key}/snippet", headers={"Host": "evil.example"})
    assert response.status_code == 200
    assert "https://crm.example.cn/forms/" in response.text
    assert "evil.example" not in response.text


def test_a_gb18030_form_is_decoded_by_its_charset(api: Api, form_key: str) -> None:
    body = urlencode({"full_name": "张伟", "inquiry": "想了解批发价格"}, encoding="gb18030")
    response = api.client.post(
        f"/forms/{form_key}",
        content=body.encode("ascii"),
        headers={"content-type": "application/x-www-form-urlencoded; charset=gb18030"},
    )
    assert response.status_code == 201, response.text
    assert lead_names(api) == ["张伟"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"full_name=%C3%28", "application/x-www-form-urlencoded", 400),  # bad UTF-8
        (b"full_name=\xff\xfe", "application/x-www-form-urlencoded", 400),
        (b"full_name=x", "application/x-www-form-urlencoded; charset=klingon", 415),
        (b'{"full_name": "x"}', "application/json; charset=gb18030", 415),
        (b'{"full_name": "\xff"}', "application/json", 400),
        (b"full_name=a%00b", "application/x-www-form-urlencoded", 422),
        (b'{"full_name": {"a": 1}}', "application/json", 400),
    ],
)
def test_a_body_that_cannot_be_read_faithfully_is_refused(
    api: Api, form_key: str, body: bytes, content_type: str, status: int
) -> None:
    response = api.client.post(
        f"/forms/{form_key}", content=body, headers={"content-type": content_type}
    )
    assert_problem(response, status)
    assert lead_names(api) == []


def test_a_field_longer_than_the_limit_is_refused(api: Api, form_key: str) -> None:
    response = api.client.post(
        f"/forms/{form_key}", data={"full_name": "x", "inquiry": "长" * 100_000}
    )
    assert_problem(response, 422, field="inquiry")
    ok = api.client.post(f"/forms/{form_key}", data={"full_name": "x", "inquiry": "长" * 2000})
    assert ok.status_code == 201, ok.text


def test_serve_refuses_a_malformed_trusted_proxy(cli_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli_run("serve", "--trusted-proxy", "not-an-ip")
    assert result.exit_code != 0
    assert "not an IP address" in result.output


def test_a_refused_serve_leaves_the_environment_as_it_was(cli_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os

    before = {name: os.environ.get(name) for name in ("CRMKIT_DATABASE_URL", "CRMKIT_CONFIG")}
    cli_run("serve", "--trusted-proxy", "not-an-ip")
    after = {name: os.environ.get(name) for name in ("CRMKIT_DATABASE_URL", "CRMKIT_CONFIG")}
    assert after == before
