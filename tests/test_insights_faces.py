"""The insight plugin's CLI, REST API and charts: the same answers as the service, errors in
one line or as problem+json, and Chinese labels drawn in a CJK font (not as boxes)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_support import Api, assert_problem, open_api
from crmkit_insights.registry import ChartData
from crmkit_insights.render import cjk_family, render
from insights_support import customer, deal_through, insight_crm

import crmkit
from crmkit.testing import CommandLine, command_line_for

BASE = "/plugins/insights"


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    return insight_crm(make_crm)


@pytest.fixture
def cli(crm: crmkit.CRM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CommandLine:
    return command_line_for(crm, monkeypatch, tmp_path)


def test_the_funnel_command_prints_the_stages_and_json(cli: CommandLine, crm: crmkit.CRM) -> None:
    deal_through(crm, [("Inquiry", 5), ("Qualified", 1)], amount=100)
    text = cli.ok("insight", "funnel", "--period", "2026")
    assert "Qualified" in text
    data = json.loads(cli.ok("insight", "funnel", "--json"))
    stages = {s["stage"]: s for s in data["groups"][0]["stages"]}
    assert stages["Inquiry"]["reached"] == 1
    assert stages["Inquiry"]["conversion"] == 1.0


def test_the_funnel_command_draws_png_and_svg(
    cli: CommandLine, crm: crmkit.CRM, tmp_path: Path
) -> None:
    deal_through(crm, [("Inquiry", 5)], amount=100)
    png, svg = tmp_path / "funnel.png", tmp_path / "funnel.svg"
    cli.ok("insight", "funnel", "--png", str(png), "--svg", str(svg))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:500]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("insight", "funnel", "--pipeline", "不存在"), "no pipeline"),
        (("insight", "funnel", "--period", "2026-99"), "period"),
        (("insight", "funnel", "--png", "/etc/passwd"), "must end in .png"),
        (("insight", "rfm", "--as-of", "someday"), "as_of"),
        (("insight", "measure", "nope"), "no measure"),
        (("insight", "chart", "nope"), "no chart"),
        (("insight", "chart", "funnel", "--option", "x"), "KEY=VALUE"),
    ],
)
def test_bad_input_fails_in_one_line(
    cli: CommandLine, crm: crmkit.CRM, args: tuple[str, ...], message: str
) -> None:
    assert message in cli.fails(*args)


def test_rfm_tiers_churn_lifecycle_and_trend_commands(cli: CommandLine, crm: crmkit.CRM) -> None:
    contact = customer(crm, "王芳", [(100, 5), (200, 40)])
    rows = json.loads(cli.ok("insight", "rfm", "--customers", "--json"))
    assert [r["contact_id"] for r in rows] == [contact]
    assert f"{rows[0]['segment']} " in cli.ok("insight", "rfm")
    tiers = json.loads(cli.ok("insight", "tiers", "--entity", "contact", "--write", "--json"))
    assert tiers["written"] == 1
    assert crm.contacts.get(contact).value_tier == "A"
    assert "0 customers at risk" in cli.ok("insight", "churn")
    assert "prospect → repeat_buyer" in cli.ok("insight", "lifecycle")
    assert "tea" in cli.ok("insight", "trend", "--by", "category", "--period", "last-12m")
    assert "rfm_segment" in cli.ok("insight", "measures")
    assert rows[0]["segment"] in cli.ok("insight", "measure", "rfm_segment")


@pytest.fixture
def api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[Api]:
    yield from open_api(insight_crm(make_crm))


def test_the_api_answers_json_as_the_actor_may_see_it(api: Api) -> None:
    api.crm.roles.grant("sales_rep", "insight:read", "all")
    li = api.user("li.na", roles=["sales_rep"])
    deal_through(api.crm, [("Inquiry", 5)], owner_id=li.id)
    deal_through(api.crm, [("Inquiry", 5)])
    everyone = api.call("GET", f"{BASE}/funnel?period=2026")
    assert everyone.status_code == 200, everyone.text
    assert everyone.json()["deals"] == 2
    own = api.call("GET", f"{BASE}/funnel?period=2026", "li.na")
    assert own.json()["deals"] == 1
    chart = api.call("GET", f"{BASE}/charts/funnel?period=2026", "li.na").json()
    assert chart["labels"][0] == "Inquiry"
    assert chart["series"][0]["values"][0] == 1.0
    svg = api.call("GET", f"{BASE}/charts/rfm?format=svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    for path in (
        "/rfm",
        "/rfm/customers",
        "/tiers",
        "/churn",
        "/lifecycle",
        "/trend",
        "/measures",
        "/measures/churn_risk",
        "/charts",
        "/idle",
    ):
        assert api.call("GET", BASE + path).status_code == 200, path


def test_the_api_refuses_bad_input_and_missing_rights(api: Api) -> None:
    assert_problem(api.call("GET", f"{BASE}/funnel?pipeline=nope"), 422)
    assert_problem(api.call("GET", f"{BASE}/funnel?period=2026-Q9"), 422)
    assert_problem(api.call("GET", f"{BASE}/rfm/customers?segment=vip"), 422)
    assert_problem(api.call("GET", f"{BASE}/trend?by=planet"), 422)
    assert_problem(api.call("GET", f"{BASE}/charts/nope"), 422)
    api.user("li.na", roles=["sales_rep"])
    assert_problem(api.call("GET", f"{BASE}/funnel", "li.na"), 403)
    assert_problem(api.call("POST", f"{BASE}/tiers/write", "li.na"), 403)


def _png(label: str, font: str) -> bytes:
    data = ChartData("", "bar", (label,), (("n", (1,)),))
    return render(data, "png", font=font)


def _pixels(image: bytes) -> bytes:
    from matplotlib.image import imread

    return bytes(memoryview((imread(io.BytesIO(image)) * 255).astype("uint8")))


def test_chinese_labels_are_drawn_with_cjk_glyphs_not_boxes() -> None:
    family = cjk_family()
    assert family is not None, "no CJK font: install fonts-noto-cjk (.ci/run does)"
    # Two different characters look different in a CJK font ...
    assert _pixels(_png("冠军", family)) != _pixels(_png("流失", family))
    # ... and the same (two missing-glyph boxes) in a font without CJK: what this test catches
    assert _pixels(_png("冠军", "DejaVu Sans")) == _pixels(_png("流失", "DejaVu Sans"))
