"""The loyalty plugin: cards, purchases, redemptions, refunds, tiers, expiry, coupons, lost
cards and merges, on both engines."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from crmkit_loyalty import coupons, jobs, service, views
from crmkit_loyalty.cards import is_valid
from loyalty_support import days_ago, loyalty_crm, member

import crmkit


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM with the loyalty plugin and the tea-club program."""
    return loyalty_crm(make_crm)


def test_an_issued_card_number_has_a_valid_check_digit(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    assert len(number) == 16
    assert is_valid(number)
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    with pytest.raises(crmkit.ValidationError, match="mistyped"):
        service.redeem(crm, wrong, 1)


def test_a_contact_gets_one_active_card_per_program(crm: crmkit.CRM) -> None:
    contact_id, number = member(crm)
    with pytest.raises(crmkit.ConflictError, match=number):
        service.issue_card(crm, contact_id)


def test_a_purchase_earns_the_rate_times_the_category_factor(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    result = service.record_purchase(
        crm,
        number,
        "300.00",
        receipt_id="R1",
        items=[
            {"sku": "T1", "category": "tea", "amount": 100},
            {"sku": "C1", "category": "cups", "amount": 200},
        ],
    )
    assert result["points"] == 400  # 100 x 2 + 200
    assert views.card(crm, number)["balance"] == 400


def test_the_birthday_month_doubles_the_points(crm: crmkit.CRM) -> None:
    today = crmkit.utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    _, number = member(crm, birthday=dt.date(1990, today.month, 1))
    assert service.record_purchase(crm, number, 100)["points"] == 200


def test_redeeming_spends_the_soonest_expiring_points_first(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="old", occurred_at=days_ago(300))
    service.record_purchase(crm, number, 100, receipt_id="new", occurred_at=days_ago(1))
    service.redeem(crm, number, 150)
    # the old lot is gone, the new one has 50 left: expiring the old lot's time expires nothing
    result = jobs.expire_points(crm, now=crmkit.utcnow() + dt.timedelta(days=100))
    assert result["expired"] == 0
    assert views.card(crm, number)["balance"] == 50


def test_redeeming_more_than_the_balance_is_refused_and_changes_nothing(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 100)
    with pytest.raises(crmkit.ValidationError, match="has 100 points; cannot redeem 101"):
        service.redeem(crm, number, 101)
    assert views.card(crm, number)["balance"] == 100
    assert [row["kind"] for row in views.statement(crm, number)] == ["earn"]


@pytest.mark.parametrize("amount", ["-5", "abc", "0", "1.234", ""])
def test_a_bad_amount_is_a_clear_error(crm: crmkit.CRM, amount: str) -> None:
    _, number = member(crm)
    with pytest.raises(crmkit.ValidationError, match="amount"):
        service.record_purchase(crm, number, amount)
    assert views.statement(crm, number) == []


def test_a_currency_the_program_does_not_take_is_refused(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    with pytest.raises(crmkit.ValidationError, match="does not take 'USD'"):
        service.record_purchase(crm, number, 10, currency="USD")
    assert views.statement(crm, number) == []


def test_an_unknown_card_is_not_found(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.NotFoundError, match="card 8800000000000005 not found"):
        service.record_purchase(crm, "8800 0000 0000 0005", 10)


def test_the_same_receipt_twice_is_a_conflict(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 10, receipt_id="R1")
    with pytest.raises(crmkit.ConflictError, match="receipt 'R1' was already recorded"):
        service.record_purchase(crm, number, 10, receipt_id="R1")
    assert views.card(crm, number)["balance"] == 10


def test_the_same_idempotency_key_twice_changes_nothing(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    first = service.record_purchase(crm, number, 10, key="k1")
    again = service.record_purchase(crm, number, 10, key="k1")
    assert again == {**first, "repeated": True}
    service.redeem(crm, number, 5, key="k2")
    assert service.redeem(crm, number, 5, key="k2")["balance"] == 5
    assert views.card(crm, number)["balance"] == 5
    with pytest.raises(crmkit.ConflictError, match="already used for a purchase"):
        service.redeem(crm, number, 1, key="k1")


def test_an_earn_and_a_redemption_send_their_writes_in_one_statement_on_postgresql(
    crm: crmkit.CRM,
) -> None:
    _, number = member(crm)
    seen: list[str] = []

    def capture(conn: object, cursor: object, statement: str, *_: object) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb != "BEGIN":  # SQLite's BEGIN IMMEDIATE
            seen.append(verb)

    sa.event.listen(crm.engine, "before_cursor_execute", capture)
    try:
        earned = service.record_purchase(crm, number, 10, receipt_id="R1", key="k1")
        earn_statements = list(seen)
        seen.clear()
        service.redeem(crm, number, 4, key="k2")
        redeem_statements = list(seen)
    finally:
        sa.event.remove(crm.engine, "before_cursor_execute", capture)
    if crm.engine.dialect.name == "postgresql":
        # the card lock, then the writes (purchase, lot, entry, card, key, outbox events)
        assert earn_statements == ["SELECT", "WITH"]
        assert redeem_statements == ["SELECT", "WITH"]
    else:
        assert earn_statements == [
            "SELECT",
            "INSERT",
            "INSERT",
            "INSERT",
            "UPDATE",
            "INSERT",
            "INSERT",
        ]
        assert redeem_statements == ["SELECT", "UPDATE", "INSERT", "UPDATE", "INSERT", "INSERT"]
    # what the one statement wrote is all there: the purchase under the id the answer gives,
    # its points spent, the card's balance, the answers to both keys
    rows = views.statement(crm, number)
    assert [(row["kind"], row["points"]) for row in rows] == [("earn", 10), ("redeem", -4)]
    assert views.card(crm, number)["balance"] == 6
    assert service.record_purchase(crm, number, 10, receipt_id="R1", key="k1") == {
        **earned,
        "repeated": True,
    }
    assert service.redeem(crm, number, 4, key="k2")["repeated"] is True
    with crm.transaction() as op:
        purchase_id = (
            op.session.connection()
            .exec_driver_sql("SELECT id FROM loyalty_purchases WHERE receipt_id = 'R1'")
            .scalar()
        )
        events = [
            row[0]
            for row in op.session.connection().exec_driver_sql(
                "SELECT name FROM event_outbox WHERE substr(name, 1, 7) = 'points.' ORDER BY id"
            )
        ]
    assert purchase_id == earned["purchase_id"]
    assert events == ["points.earned", "points.redeemed"]  # once each, the repeats wrote none


@pytest.mark.parametrize("events", [0, 1, 3])
def test_the_one_statement_is_compiled_once_whatever_the_number_of_events(events: int) -> None:
    from crmkit_loyalty.writes import _together

    # SQLAlchemy caches a statement's compiled form only when it has a cache key; without
    # one it compiles the statement on every call (measured: 2 ms of CPU an earn)
    statement = _together(("purchase", "lot", "entry", "card", "remember"), events)
    assert statement._generate_cache_key() is not None  # type: ignore[attr-defined]


def test_a_refund_takes_back_spent_points_down_to_zero_and_says_so(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="R1")
    service.redeem(crm, number, 80)
    result = service.refund(crm, "R1")
    assert result["reversed"] == 20
    assert result["unrecovered"] == 80
    assert "could not be taken back" in result["message"]
    assert views.card(crm, number)["balance"] == 0


def test_a_refund_may_take_the_balance_below_zero_when_the_program_allows(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = loyalty_crm(make_crm, allow_negative=True)
    _, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="R1")
    service.redeem(crm, number, 80)
    result = service.refund(crm, "R1")
    assert result["balance"] == -80
    assert "allows a negative balance" in result["message"]
    # the next purchase pays the debt first
    service.record_purchase(crm, number, 100, receipt_id="R2")
    assert views.card(crm, number)["balance"] == 20
    service.redeem(crm, number, 20)


def test_a_refund_of_an_unknown_receipt_is_not_found(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.NotFoundError, match="receipt 'nope'"):
        service.refund(crm, "nope")


def test_pending_points_become_spendable_after_the_return_window(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = loyalty_crm(make_crm, pending_days=7)
    _, number = member(crm)
    earned = service.record_purchase(crm, number, 100, receipt_id="R1")
    assert earned["pending"] is True
    assert views.card(crm, number)["balance"] == 0
    with pytest.raises(crmkit.ValidationError):
        service.redeem(crm, number, 1)
    # a refund inside the window takes them back from pending
    service.record_purchase(crm, number, 50, receipt_id="R2")
    assert service.refund(crm, "R2")["from_pending"] == 50
    result = jobs.expire_points(crm, now=crmkit.utcnow() + dt.timedelta(days=8))
    assert result["released"] == 100
    card = views.card(crm, number)
    assert (card["balance"], card["pending"]) == (100, 0)


def test_expiry_runs_once_however_often_it_runs(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="R1", occurred_at=days_ago(400))
    later = crmkit.utcnow()
    assert jobs.expire_points(crm, now=later)["expired"] == 100
    assert jobs.expire_points(crm, now=later)["expired"] == 0
    kinds = [row["kind"] for row in views.statement(crm, number)]
    assert kinds == ["earn", "expire"]
    assert views.card(crm, number)["balance"] == 0


def test_a_tier_is_reached_at_once_and_lost_only_after_the_grace(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    result = service.record_purchase(crm, number, 1200, receipt_id="R1", occurred_at=days_ago(300))
    assert (result["tier"], result["tier_changed"]) == ("silver", True)
    # 70 days later the purchase has left the 12-month window: grace first, then downgrade
    review_at = crmkit.utcnow() + dt.timedelta(days=70)
    assert jobs.review_tiers(crm, now=review_at)["in_grace"] == 1
    assert views.card(crm, number)["tier"] == "silver"
    assert jobs.review_tiers(crm, now=review_at + dt.timedelta(days=10))["downgraded"] == 0
    assert jobs.review_tiers(crm, now=review_at + dt.timedelta(days=31))["downgraded"] == 1
    assert views.card(crm, number)["tier"] is None


def test_a_coupon_costs_points_is_used_once_and_limited_per_customer(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 1500)
    coupon = coupons.issue_coupon(crm, number, "50 off")
    assert coupon["balance"] == 1000
    used = coupons.redeem_coupon(crm, coupon["code"], receipt_id="R9")
    assert used["redeemed_receipt"] == "R9"
    with pytest.raises(crmkit.ConflictError, match="already used"):
        coupons.redeem_coupon(crm, coupon["code"])
    coupons.issue_coupon(crm, number, "50 off")
    with pytest.raises(crmkit.ConflictError, match="limited to 2 per customer"):
        coupons.issue_coupon(crm, number, "50 off")


def test_an_expired_coupon_is_refused(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    coupon = coupons.issue_coupon(crm, number, "welcome 10%")
    from crmkit_loyalty.models import LoyaltyCoupon
    from sqlalchemy import update

    with crm.transaction() as op:
        op.session.execute(
            update(LoyaltyCoupon).values(expires_at=crmkit.utcnow() - dt.timedelta(seconds=1))
        )
    with pytest.raises(crmkit.ValidationError, match="expired"):
        coupons.redeem_coupon(crm, coupon["code"])


def test_a_lost_card_moves_its_balance_and_history_to_a_new_one(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 300, receipt_id="R1")
    result = service.block_card(crm, number, reason="lost")
    new = result["replaced_by"]
    assert views.card(crm, new)["balance"] == 300
    with pytest.raises(crmkit.ConflictError, match=f"blocked; use its replacement {new}"):
        service.record_purchase(crm, number, 10)
    service.refund(crm, "R1")  # the purchase moved with the card
    assert views.card(crm, new)["balance"] == 0
    kinds = [(row["card"], row["kind"]) for row in views.statement(crm, new)]
    assert kinds == [(number, "earn"), (number, "move_out"), (new, "move_in"), (new, "refund")]


def test_merging_two_contacts_merges_their_cards(crm: crmkit.CRM) -> None:
    first, first_card = member(crm, "张伟")
    second, second_card = member(crm, "張偉")
    service.record_purchase(crm, first_card, 100)
    service.record_purchase(crm, second_card, 50)
    result = crm.merges.merge("contact", first, second)
    assert views.card(crm, first_card)["balance"] == 150
    assert views.card(crm, second_card)["status"] == "merged"
    crm.merges.undo(result.merge_id)
    assert views.card(crm, first_card)["balance"] == 100
    assert views.card(crm, second_card)["balance"] == 50
    assert views.card(crm, second_card)["contact_id"] == second


def test_the_statement_is_csv_with_a_running_balance(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="R1")
    service.redeem(crm, number, 30)
    text = views.statement_csv(views.statement(crm, number))
    lines = text.splitlines()
    assert lines[0] == "at,card,kind,points,pending,balance,receipt_id,note"
    assert lines[1].split(",")[2:7] == ["earn", "100", "0", "100", "R1"]
    assert lines[2].split(",")[2:6] == ["redeem", "-30", "0", "70"]


def test_a_sales_rep_sees_only_cards_of_their_own_contacts(crm: crmkit.CRM) -> None:
    rep = crm.users.create("li.na", roles=["sales_rep"])
    other_id, other_card = member(crm)
    with pytest.raises(crmkit.NotFoundError):
        views.card(crm, other_card, actor=rep)
    with pytest.raises(crmkit.NotFoundError):
        views.member(crm, other_id, actor=rep)
    mine = crm.contacts.create({"full_name": "王芳"}, actor=rep)
    number = service.issue_card(crm, mine.id)["card"]
    assert views.card(crm, number, actor=rep)["balance"] == 0
    with pytest.raises(crmkit.PermissionDenied, match="loyalty:earn"):
        service.record_purchase(crm, number, 10, actor=rep)


def test_the_member_view_shows_cards_expiring_points_and_purchases(crm: crmkit.CRM) -> None:
    contact_id, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="R1", occurred_at=days_ago(350))
    data = views.member(crm, contact_id)
    assert data["cards"][0]["card"] == number
    assert data["expiring"][0]["points"] == 100
    assert data["purchases"][0]["receipt_id"] == "R1"


def test_points_expiring_soon_are_announced_once(crm: crmkit.CRM) -> None:
    _, number = member(crm)
    service.record_purchase(crm, number, 800, receipt_id="R1", occurred_at=days_ago(350))
    seen: list[crmkit.Event] = []
    crm.subscribe("points.expiring", seen.append)
    jobs.expire_points(crm)
    jobs.expire_points(crm)
    assert len(seen) == 1
    assert seen[0].payload["points"] == 800
    assert seen[0].payload["card"] == number


class NewTeaBonus:
    """A plugin earn rule: 200 bonus points for a purchase with a new tea (SKU ``NEW``)."""

    @crmkit.hookimpl
    def crmkit_loyalty_earn_rules(self, op, program, purchase):  # type: ignore[no-untyped-def]
        import crmkit_loyalty

        if any(item.get("sku") == "NEW" for item in purchase.items):
            return [crmkit_loyalty.EarnRule("new tea", bonus=200)]
        return None


def test_a_plugin_earn_rule_adds_points(make_crm: Callable[..., crmkit.CRM]) -> None:
    import crmkit_loyalty

    bonus_crm = make_crm(plugins={"loyalty": crmkit_loyalty, "bonus": NewTeaBonus()})
    service.add_program(bonus_crm, {"name": "p", "rates": {"CNY": 1}})
    _, number = member(bonus_crm)
    result = service.record_purchase(bonus_crm, number, 10, items=[{"sku": "NEW", "amount": 10}])
    assert result["points"] == 210
    assert views.statement(bonus_crm, number)[0]["note"] == "new tea"


def test_an_import_of_purchase_history_earns_like_single_purchases(crm: crmkit.CRM) -> None:
    from crmkit_loyalty.importing import import_purchases

    _, number = member(crm)
    rows = [
        {"card": number, "receipt_id": "H1", "amount": "800", "occurred_at": "2026-03-01T10:00"},
        {
            "card": number,
            "receipt_id": "H2",
            "amount": "300",
            "category": "tea",
            "occurred_at": days_ago(30).isoformat(),
        },
    ]
    result = import_purchases(crm, rows)
    assert (result.imported, result.points) == (2, 1400)
    card = views.card(crm, number)
    assert (card["balance"], card["tier"]) == (1400, "silver")
    again = import_purchases(crm, rows)  # an interrupted import is simply run again
    assert (again.imported, again.skipped) == (0, ["H1", "H2"])
    assert views.card(crm, number)["balance"] == 1400
    service.refund(crm, "H2")
    assert views.card(crm, number)["balance"] == 800


@pytest.mark.parametrize("sku", [None, "NEW"], ids=["set-based", "with-rule-notes"])
def test_an_imports_ledger_is_the_one_single_purchases_write(
    make_crm: Callable[..., crmkit.CRM], sku: str | None
) -> None:
    import crmkit_loyalty
    from crmkit_loyalty.importing import import_purchases

    crm = make_crm(plugins={"loyalty": crmkit_loyalty, "bonus": NewTeaBonus()})
    service.add_program(crm, {"name": "p", "rates": {"CNY": 1}, "pending_days": 14})
    _, single = member(crm)
    _, imported = member(crm, "王芳")
    history = [("120", days_ago(40)), ("80", days_ago(3)), ("50", days_ago(20))]
    for index, (amount, when) in enumerate(history):
        items = [{"sku": sku, "amount": amount}] if sku else None
        service.record_purchase(
            crm, single, amount, receipt_id=f"S{index}", occurred_at=when, items=items
        )
    import_purchases(
        crm,
        [
            {
                "card": imported,
                "receipt_id": f"I{index}",
                "amount": amount,
                "occurred_at": when.isoformat(),
                "items": f'[{{"sku": "{sku}", "amount": "{amount}"}}]' if sku else "",
            }
            for index, (amount, when) in enumerate(history)
        ],
    )

    def entries(number: str) -> list[tuple[object, ...]]:
        return [
            (row["kind"], row["points"], row["pending"], row["balance"], row["note"])
            for row in views.statement(crm, number)
        ]

    assert entries(imported) == entries(single)
    assert entries(imported)[1][2] == (280 if sku else 80)  # the recent one is pending
    card, expected = views.card(crm, imported), views.card(crm, single)
    assert (card["balance"], card["pending"]) == (expected["balance"], expected["pending"])


def test_a_bad_row_stops_the_import_whole_with_its_line(crm: crmkit.CRM) -> None:
    from crmkit_loyalty.importing import import_purchases

    _, number = member(crm)
    rows = [
        {"card": number, "receipt_id": "H1", "amount": "10", "occurred_at": "2026-03-01T10:00"},
        {"card": number, "receipt_id": "H2", "amount": "-3", "occurred_at": "2026-03-01T10:00"},
        {
            "card": "8800000000000005",
            "receipt_id": "H3",
            "amount": "1",
            "occurred_at": "2026-03-01",
        },
    ]
    with pytest.raises(crmkit.BulkRejected) as rejected:
        import_purchases(crm, rows)
    assert [str(error) for error in rejected.value.errors] == [
        "line 3, column amount: must be above zero, not -3",
        "line 4, column card: card 8800000000000005 not found",
    ]
    assert views.statement(crm, number) == []
    assert import_purchases(crm, rows, skip_bad=True).imported == 1


def test_the_worker_expires_points_on_its_schedule_once_per_occurrence(crm: crmkit.CRM) -> None:
    from crmkit.services.scheduler import Scheduler

    _, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="R1", occurred_at=days_ago(400))
    now = crmkit.utcnow()
    first, second = Scheduler(crm, "w1"), Scheduler(crm, "w2")
    outcomes = {o.job: o for o in first.run_once(now) + second.run_once(now)}
    assert "loyalty.expire" in outcomes
    assert "loyalty.review_tiers" in outcomes
    assert views.card(crm, number)["balance"] == 0
    assert [row["kind"] for row in views.statement(crm, number)] == ["earn", "expire"]


def test_the_demo_data_has_cards_purchases_a_tier_and_a_coupon(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    import crmkit_loyalty

    from crmkit.services.demo import load_demo_data

    demo = make_crm(plugins={"loyalty": crmkit_loyalty})
    load_demo_data(demo, contacts=20)
    cards = [views.member(demo, contact_id)["cards"] for contact_id in range(1, 9)]
    assert all(len(found) == 1 for found in cards)
    assert any(found[0]["tier"] for found in cards)
    assert coupons.coupons_of(demo, cards[0][0]["card"])
    assert views.member(demo, 1)["purchases"]


def test_the_desk_shows_a_contacts_card_and_purchases_to_who_may_see_it(crm: crmkit.CRM) -> None:
    import crmkit_loyalty

    contact_id, number = member(crm)
    service.record_purchase(crm, number, 100, receipt_id="R1", store="杭州西湖店")
    admin = crm.users.create("boss", admin=True)
    rep = crm.users.create("li.na", roles=["sales_rep"])
    record = {"id": contact_id}
    panels = crmkit_loyalty.crmkit_desk_record_panels
    loyalty, purchases = panels(crm, "contact", record, admin, "en")
    assert loyalty.rows[0] == (f"tea-club {number}", "active, 100 points")
    assert purchases.cells[0][1:] == ("R1", "杭州西湖店", "100.00 CNY", "100")
    assert panels(crm, "contact", record, rep, "en") == []
    assert panels(crm, "deal", record, admin, "en") == []
    # in Chinese for a user whose desk speaks it (the plugin's catalogue), the data as it is
    loyalty, purchases = panels(crm, "contact", record, admin, "zh_CN")
    assert (loyalty.title, purchases.title) == ("会员卡", "消费记录")
    assert loyalty.rows[0] == (f"tea-club {number}", "有效，100 积分")
    assert purchases.columns == ("时间", "小票号", "门店", "金额", "积分")
    assert purchases.cells[0][1:] == ("R1", "杭州西湖店", "100.00 CNY", "100")


def test_a_card_withholds_the_contacts_name_from_a_role_it_is_hidden_from(
    crm: crmkit.CRM,
) -> None:
    from crmkit.services.roles import RoleService

    contact_id, number = member(crm)
    roles = RoleService(crm)
    roles.create("counter")
    roles.grant("counter", "contact:read", "all")
    roles.set_field_rule("counter", "contact", "full_name", "hidden")
    clerk = crm.users.create("clerk", roles=["counter"])
    admin = crm.users.create("boss", admin=True)
    assert views.card(crm, number, actor=clerk)["contact"] is None
    assert views.member(crm, contact_id, actor=clerk)["cards"][0]["contact"] is None
    assert views.card(crm, number, actor=admin)["contact"] == "张伟"
