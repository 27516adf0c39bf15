"""The insight plugin's service: the funnel, RFM, value tiers, churn, lifecycle, trends,
measures and charts, on real data in both engines, as each actor may see it."""

from __future__ import annotations

from collections.abc import Callable

import crmkit_insights
import pytest
from crmkit_insights import customers, service
from crmkit_insights.periods import parse_period
from insights_support import NOW, customer, deal_through, insight_crm

import crmkit

YEAR = "2026"


def test_the_funnel_counts_reached_stages_conversion_and_median_days(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    deal_through(crm, [("Inquiry", 40)], amount=100)
    deal_through(crm, [("Inquiry", 40), ("Qualified", 30)], amount=200)
    deal_through(crm, [("Inquiry", 40), ("Qualified", 36), ("Proposal", 20)], amount=300)
    deal_through(
        crm, [("Inquiry", 50), ("Qualified", 40), ("Proposal", 30), ("Won", 10)], amount=400
    )
    deal_through(crm, [("Inquiry", 30), ("Lost", 26)], amount=50)
    funnel = service.funnel(crm, period=YEAR)
    stages = {s.stage: s for s in funnel.groups["all"]}
    assert funnel.deals == 5
    assert stages["Inquiry"].reached == 5
    assert stages["Qualified"].reached == 3
    assert stages["Proposal"].reached == 2
    assert stages["Won"].reached == 1
    assert stages["Lost"].reached == 1
    assert stages["Inquiry"].conversion == 0.6
    assert stages["Qualified"].conversion == pytest.approx(2 / 3, abs=1e-3)
    assert stages["Proposal"].current == 1
    assert stages["Proposal"].current_amount == 300.0
    assert stages["Won"].current_amount == 400.0
    assert stages["Qualified"].reached_amount == 900.0
    # New: stays of 10, 4, 10, 4 days (the deal still in New has not left): median 7
    assert stages["Inquiry"].median_days == pytest.approx(7.0, abs=0.01)
    # Qualified: 16 and 10 days
    assert stages["Qualified"].median_days == pytest.approx(13.0, abs=0.01)
    assert stages["Won"].median_days is None


def test_the_funnel_counts_idle_open_deals(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = insight_crm(make_crm)
    deal_through(crm, [("Inquiry", 1)])
    deal_through(crm, [("Inquiry", 1)])
    funnel = service.funnel(crm, period=YEAR, idle_days=0)
    assert funnel.groups["all"][0].idle == 2
    assert service.funnel(crm, period=YEAR, idle_days=30).groups["all"][0].idle == 0
    assert len(service.idle_deals(crm, idle_days=0)) == 2


def test_the_funnel_splits_by_owner(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = insight_crm(make_crm)
    li = crm.users.create("li.na", roles=["sales_rep"])
    wang = crm.users.create("wang.fang", roles=["sales_rep"])
    deal_through(crm, [("Inquiry", 5)], owner_id=li.id)
    deal_through(crm, [("Inquiry", 5), ("Qualified", 2)], owner_id=wang.id)
    funnel = service.funnel(crm, period=YEAR, by="owner")
    assert set(funnel.groups) == {"li.na", "wang.fang"}
    assert funnel.groups["wang.fang"][1].reached == 1
    assert funnel.groups["li.na"][1].reached == 0


def test_a_sales_rep_sees_the_funnel_of_their_own_deals_only(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    crm.roles.grant("sales_rep", "insight:read", "all")
    li = crm.users.create("li.na", roles=["sales_rep"])
    deal_through(crm, [("Inquiry", 5)], owner_id=li.id)
    deal_through(crm, [("Inquiry", 5)])
    assert service.funnel(crm, period=YEAR).deals == 2
    assert service.funnel(crm, period=YEAR, actor=li).deals == 1


def test_insight_needs_its_permission(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = insight_crm(make_crm)
    li = crm.users.create("li.na", roles=["sales_rep"])
    with pytest.raises(crmkit.PermissionDenied):
        service.funnel(crm, actor=li)
    with pytest.raises(crmkit.PermissionDenied):
        service.rfm_summary(crm, actor=li)
    crm.roles.grant("sales_rep", "insight:read", "all")
    with pytest.raises(crmkit.PermissionDenied):
        service.tiers(crm, write=True, actor=li)


def test_hidden_amounts_are_withheld_from_the_funnel_and_refuse_rfm(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    crm.roles.grant("sales_rep", "insight:read", "all")
    crm.roles.set_field_rule("sales_rep", "deal", "amount", "hidden")
    li = crm.users.create("li.na", roles=["sales_rep"])
    deal_through(crm, [("Inquiry", 5)], owner_id=li.id, amount=999)
    stage = service.funnel(crm, period=YEAR, actor=li).groups["all"][0]
    assert stage.current == 1
    assert stage.current_amount is None
    with pytest.raises(crmkit.PermissionDenied, match="amounts"):
        service.rfm_summary(crm, actor=li)


@pytest.mark.parametrize(
    ("pipeline", "period", "field"),
    [
        ("Nope", None, "pipeline"),
        (None, "2026-13", "period"),
        (None, "yesterday", "period"),
        (None, "2026-06-30..2026-01-01", "period"),
        (None, "last-0d", "period"),
    ],
)
def test_bad_funnel_input_names_the_field(
    make_crm: Callable[..., crmkit.CRM], pipeline: str | None, period: str | None, field: str
) -> None:
    crm = insight_crm(make_crm)
    with pytest.raises(crmkit.ValidationError) as raised:
        service.funnel(crm, pipeline=pipeline, period=period)
    assert field in str(raised.value)


def test_an_empty_crm_gives_an_empty_funnel_and_no_customers(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    funnel = service.funnel(crm, period=YEAR)
    assert funnel.deals == 0
    assert [s.reached for s in funnel.groups["all"]] == [0] * len(funnel.groups["all"])
    assert service.rfm_summary(crm, as_of=NOW)["customers"] == 0
    assert service.rfm_customers(crm, as_of=NOW) == []
    assert service.churn(crm, as_of=NOW)["at_risk"] == 0
    assert service.trend(crm, period=YEAR)["rows"] == []


def _five_customers(crm: crmkit.CRM) -> dict[str, int]:
    return {
        "best": customer(crm, "甲", [(500, 2), (500, 10), (500, 20), (500, 30)]),
        "good": customer(crm, "乙", [(300, 5), (300, 40), (300, 80)]),
        "mid": customer(crm, "丙", [(200, 60), (200, 100)]),
        "old": customer(crm, "丁", [(100, 200)]),
        "gone": customer(crm, "戊", [(50, 400)]),
    }


def test_rfm_scores_and_segments_customers_from_purchases_and_won_deals(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    ids = _five_customers(crm)
    won = deal_through(crm, [("Inquiry", 3), ("Won", 1)], amount=1000, contact_id=ids["gone"])
    rows = {r["contact_id"]: r for r in service.rfm_customers(crm, as_of=NOW)}
    assert won
    # the won deal closed now (after NOW as of which we measure): not counted
    assert rows[ids["gone"]]["frequency"] == 1
    assert rows[ids["best"]]["frequency"] == 4
    assert rows[ids["best"]]["monetary"] == 2000.0
    assert rows[ids["best"]]["recency_days"] == pytest.approx(2, abs=0.01)
    assert (rows[ids["best"]]["r"], rows[ids["best"]]["f"]) == (5, 5)
    assert rows[ids["best"]]["segment"] == "champions"
    # equal values share a score: "old" and "gone" bought once each
    assert (rows[ids["gone"]]["r"], rows[ids["gone"]]["f"]) == (1, 1)
    assert rows[ids["old"]]["f"] == 1
    assert rows[ids["gone"]]["segment"] == "lost"
    summary = service.rfm_summary(crm, as_of=NOW)
    assert summary["customers"] == 5
    assert sum(s["customers"] for s in summary["segments"]) == 5
    later = {r["contact_id"]: r for r in service.rfm_customers(crm)}
    assert later[ids["gone"]]["frequency"] == 2  # measured now, the won deal counts
    assert later[ids["gone"]]["monetary"] == 1050.0


def test_rfm_scores_are_the_quintiles_of_the_rank_ties_sharing_the_lowest(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    # eleven customers, many ties in each measure: (amount, days before NOW) per purchase
    histories = [
        [(10, 5)],
        [(10, 5)],
        [(10, 5), (10, 9)],
        [(20, 9)],
        [(20, 9), (30, 40)],
        [(20, 40), (20, 41), (20, 42)],
        [(5, 60)],
        [(5, 60)],
        [(50, 3), (50, 4), (50, 5), (50, 6)],
        [(7, 100), (3, 100)],
        [(10, 200)],
    ]
    ids = [customer(crm, f"客{n}", history) for n, history in enumerate(histories)]
    rows = {r["contact_id"]: r for r in service.rfm_customers(crm, as_of=NOW)}
    n = len(ids)

    def quintiles(values: list[float]) -> list[int]:
        # 1 + 5 * (RANK() - 1) // n, RANK() = 1 + how many are smaller
        return [1 + 5 * sum(other < value for other in values) // n for value in values]

    recency = [-rows[i]["recency_days"] for i in ids]  # more recent ranks higher
    frequency = [rows[i]["frequency"] for i in ids]
    monetary = [rows[i]["monetary"] for i in ids]
    assert [rows[i]["r"] for i in ids] == quintiles(recency)
    assert [rows[i]["f"] for i in ids] == quintiles(frequency)
    assert [rows[i]["m"] for i in ids] == quintiles(monetary)
    assert [rows[i]["segment"] for i in ids] == [
        customers.segment_of(rows[i]["r"], rows[i]["f"]) for i in ids
    ]


def test_rfm_works_from_won_deals_alone_without_loyalty(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm, with_loyalty=False)
    contact = crm.contacts.create({"full_name": "李四"})
    deal_through(crm, [("Inquiry", 3), ("Won", 1)], amount=800, contact_id=contact.id)
    rows = service.rfm_customers(crm)
    assert [(r["contact_id"], r["frequency"], r["monetary"]) for r in rows] == [
        (contact.id, 1, 800.0)
    ]
    with pytest.raises(crmkit.ValidationError, match="loyalty"):
        service.trend(crm, by="category", period=YEAR)


def test_value_tiers_follow_the_pareto_cut_and_are_written_on_demand(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm, tier_window_days=0)
    accounts = {}
    for name, amount in [("大", 500), ("中", 300), ("小", 100), ("微", 50), ("零", 50)]:
        account = crm.accounts.create({"name": name})
        accounts[name] = account.id
        deal_through(
            crm,
            [("Inquiry", 3), ("Won", 1)],
            amount=amount,
            account_id=account.id,
            contact_id=crm.contacts.create({"full_name": name}).id,
        )
    idle = crm.accounts.create({"name": "空", "value_tier": "A"})
    result = service.tiers(crm, entity="account")
    assert [(t["tier"], t["records"]) for t in result["tiers"]] == [("A", 2), ("B", 2), ("C", 1)]
    assert result["written"] == 0
    assert crm.accounts.get(accounts["大"]).value_tier is None
    written = service.tiers(crm, entity="account", write=True)
    assert written["written"] == 6
    tiers = {name: crm.accounts.get(i).value_tier for name, i in accounts.items()}
    assert tiers == {"大": "A", "中": "A", "小": "B", "微": "B", "零": "C"}
    assert crm.accounts.get(idle.id).value_tier == "C"
    assert service.tiers(crm, entity="account")["changes"] == 0


def test_churn_risk_compares_the_gap_with_the_customers_own_rhythm(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    weekly = customer(crm, "周", [(10, 40), (10, 47), (10, 54), (10, 61)])  # every 7 days
    steady = customer(crm, "稳", [(10, 2), (10, 9), (10, 16)])
    result = service.churn(crm, as_of=NOW)
    assert [c["contact_id"] for c in result["customers"]] == [weekly]
    assert result["customers"][0]["usual_days"] == pytest.approx(7, abs=0.1)
    assert result["customers"][0]["ratio"] == pytest.approx(40 / 7, abs=0.05)
    assert steady not in [c["contact_id"] for c in result["customers"]]


def test_lifecycle_stages_move_by_the_rules(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = insight_crm(make_crm, advocate_min_orders=3, advocate_within_days=30)
    first = customer(crm, "一", [(10, 5)])
    repeat = customer(crm, "二", [(10, 5), (10, 50)])
    advocate = customer(crm, "三", [(10, 5), (10, 15), (10, 25)])
    churned = customer(crm, "四", [(10, 400), (10, 500)])
    prospect = crm.contacts.create({"full_name": "五"}).id
    preview = service.lifecycle(crm, as_of=NOW)
    assert preview["changes"] == 4
    assert preview["written"] == 0
    service.lifecycle(crm, as_of=NOW, write=True)
    stages = {
        i: crm.contacts.get(i).lifecycle_stage for i in (first, repeat, advocate, churned, prospect)
    }
    assert stages == {
        first: "first_purchase",
        repeat: "repeat_buyer",
        advocate: "advocate",
        churned: "churned",
        prospect: "prospect",
    }
    assert service.lifecycle(crm, as_of=NOW)["changes"] == 0


def test_trends_by_month_category_and_region(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = insight_crm(make_crm)
    customer(crm, "沪", [(100, 10), (50, 40)], region="上海")
    customer(crm, "粤", [(70, 10)], city="广州")
    by_month = service.trend(crm, by="month", period="2026")["rows"]
    assert by_month == [
        {"key": "2026-05", "orders": 1, "revenue": 50.0},
        {"key": "2026-06", "orders": 2, "revenue": 170.0},
    ]
    by_region = service.trend(crm, by="region", period="2026")["rows"]
    assert by_region == [
        {"key": "上海", "orders": 2, "revenue": 150.0},
        {"key": "广州", "orders": 1, "revenue": 70.0},
    ]
    by_category = service.trend(crm, by="category", period="2026")["rows"]
    assert by_category == [{"key": "tea", "orders": 3, "revenue": 220.0}]


def test_measures_are_evaluated_by_record_and_scoped(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = insight_crm(make_crm)
    ids = _five_customers(crm)
    names = {m["name"] for m in service.measure_list(crm)}
    assert names >= {
        "rfm_segment",
        "r_score",
        "f_score",
        "m_score",
        "pareto_tier",
        "churn_risk",
        "lifecycle_by_rules",
    }
    values = service.measure_values(crm, "rfm_segment", as_of=NOW)["values"]
    assert {v["id"]: v["value"] for v in values}[ids["best"]] == "champions"
    with pytest.raises(crmkit.ValidationError, match="no measure"):
        service.measure_values(crm, "nope")
    crm.roles.grant("sales_rep", "insight:read", "all")
    li = crm.users.create("li.na", roles=["sales_rep"])
    assert service.measure_values(crm, "rfm_segment", actor=li)["values"] == []


class NameLength:
    """A plugin adding a measure and a chart through the insight plugin's hooks."""

    @crmkit.hookimpl
    def crmkit_insight_measures(self, crm: crmkit.CRM) -> list[crmkit_insights.Measure]:
        from sqlalchemy import func, select

        def query(op: crmkit.Operation, as_of: object) -> object:
            contacts = crmkit.Contact.__table__
            return select(contacts.c.id, func.length(contacts.c.full_name)).where(
                contacts.c.id.in_(crmkit.readable_ids_query(op, "contact"))
            )

        return [crmkit_insights.Measure("name_length", "contact", "integer", "Letters", query)]

    @crmkit.hookimpl
    def crmkit_insight_charts(self, crm: crmkit.CRM) -> list[crmkit_insights.Chart]:
        def build(crm: crmkit.CRM, actor: object, options: object) -> crmkit_insights.ChartData:
            return crmkit_insights.ChartData("客户数", "bar", ("contacts",), (("count", (3,)),))

        return [crmkit_insights.Chart("contacts", "How many", build)]


def test_other_plugins_add_measures_and_charts(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(plugins={"insights": crmkit_insights, "names": NameLength()})
    contact = crm.contacts.create({"full_name": "欧阳娜娜"})
    values = service.measure_values(crm, "name_length")["values"]
    assert values == [{"id": contact.id, "value": 4}]
    assert "contacts" in {c["name"] for c in service.chart_list(crm)}
    assert service.chart_data(crm, "contacts").as_dict()["series"] == [
        {"name": "count", "values": [3.0]}
    ]


def test_a_bad_setting_stops_the_crm_with_its_name(make_crm: Callable[..., crmkit.CRM]) -> None:
    with pytest.raises(crmkit.CRMError, match="tier_cuts"):
        make_crm(
            plugins={"insights": crmkit_insights},
            plugin_settings={"insights": {"tier_cuts": [0.9, 0.5]}},
        )


def test_enabling_files_the_current_stage_of_existing_deals(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    plain = make_crm()
    plain.pipelines.create("Sales")
    deal = plain.deals.create({"name": "old", "amount": 10})
    plain.deals.move_to_stage(deal.id, "Qualified")
    crm = make_crm(plugins={"insights": crmkit_insights})  # its history table is empty
    with crm.transaction() as op:
        crmkit_insights.crmkit_setup(crm, op)  # what enabling the plugin runs
    stages = service.funnel(crm, period=YEAR).groups["all"]
    assert [(s.stage, s.reached) for s in stages][:3] == [
        ("Inquiry", 1),
        ("Qualified", 1),
        ("Proposal", 0),
    ]


def test_period_forms() -> None:
    assert parse_period("2026-Q2").start.month == 4
    assert parse_period("2026-Q4").end.year == 2027
    assert parse_period("2026-02").end.month == 3
    span = parse_period("2026-03-01..2026-03-31")
    assert (span.end - span.start).days == 31


def test_segments_filter_on_the_refreshed_customer_measures(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    ids = _five_customers(crm)
    assert crm.contacts.count(filters={"rfm_segment": "champions"}) == 0  # not refreshed yet
    assert service.refresh(crm)["customers"] == 5
    champions = crm.contacts.list(filters={"rfm_segment": "champions"}).items
    assert [c.id for c in champions] == [ids["best"]]
    assert crm.contacts.count(filters={"r_score__gte": 4}) == 2
    assert crm.contacts.count(filters={"pareto_tier": "A"}) >= 1
    assert crm.contacts.count(filters={"lifecycle_by_rules": "repeat_buyer"}) >= 1
    segment = crm.segments.create("冠军客户", "contact", {"rfm_segment": "champions"})
    assert crm.segments.count(segment.name) == 1


def test_only_insight_writers_refresh_and_only_readers_filter(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = insight_crm(make_crm)
    _five_customers(crm)
    li = crm.users.create("li.na", roles=["sales_rep"])
    with pytest.raises(crmkit.PermissionDenied):
        service.refresh(crm, actor=li)
    service.refresh(crm)
    with pytest.raises(crmkit.PermissionDenied, match="insight:read"):
        crm.contacts.count(filters={"rfm_segment": "champions"}, actor=li)
