"""Segments: saved, named filters over one entity, with relations, measures and other
segments, evaluated in SQL for whoever looks (scoped, hidden fields refused)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

import crmkit


def field_errors(error: pytest.ExceptionInfo[crmkit.ValidationError]) -> dict[str, str]:
    return {item.field: item.message for item in error.value.errors}


class Activities:
    """A plugin measure: how many live activities a contact has."""

    @crmkit.hookimpl
    def crmkit_segment_measures(self, crm: crmkit.CRM) -> list[crmkit.SegmentMeasure]:
        def activity_count(context: crmkit.MeasureContext) -> Any:
            activity = crmkit.Activity
            return (
                select(func.count())
                .where(activity.contact_id == context.model.id, activity.deleted_at.is_(None))
                .scalar_subquery()
            )

        def email_domain(context: crmkit.MeasureContext) -> Any:
            return func.lower(context.model.email)

        return [
            crmkit.SegmentMeasure(
                "contact", "activity_count", activity_count, type=crmkit.FieldType.NUMBER
            ),
            crmkit.SegmentMeasure(
                "contact",
                "email_seen",
                email_domain,
                type=crmkit.FieldType.TEXT,
                hidden_with=("contact.email",),
            ),
            crmkit.SegmentMeasure(
                "contact",
                "guarded",
                activity_count,
                type=crmkit.FieldType.NUMBER,
                permission="segment:manage",
            ),
        ]


@pytest.fixture
def world(make_crm: Callable[..., crmkit.CRM]) -> SimpleNamespace:
    """Two reps; accounts in 上海 and 北京; contacts with deals won this year, last year and
    open; alice owns half of them."""
    crm = make_crm(
        plugins={"activities": Activities()},
        custom_fields=[{"entity": "contact", "name": "vip", "type": "boolean"}],
    )
    crm.pipelines.create("Sales")
    alice = crm.users.create("alice", roles=["sales_rep"])
    bob = crm.users.create("bob", roles=["sales_rep"])
    boss = crm.users.create("boss", roles=["manager"])
    shanghai = crm.accounts.create({"name": "星辰贸易", "city": "上海", "owner_id": alice.id})
    beijing = crm.accounts.create({"name": "北方机械", "city": "北京", "owner_id": bob.id})
    people = {}
    for name, account, owner, vip in [
        ("张伟", shanghai, alice, True),
        ("王芳", shanghai, bob, False),
        ("李娜", beijing, alice, True),
        ("刘洋", None, bob, False),
    ]:
        people[name] = crm.contacts.create(
            {
                "full_name": name,
                "account_id": account.id if account else None,
                "owner_id": owner.id,
                "vip": vip,
                "email": f"{len(people)}@example.com",
            }
        ).id
    now = crmkit.utcnow()
    won = crm.deals.create(
        {"name": "今年赢单", "contact_id": people["张伟"], "amount": "1000", "owner_id": alice.id}
    )
    crm.deals.move_to_stage(won.id, "Won")
    old = crm.deals.create(
        {"name": "去年赢单", "contact_id": people["王芳"], "amount": "500", "owner_id": bob.id}
    )
    crm.deals.move_to_stage(old.id, "Won")
    crm.deals.update(old.id, {"closed_at": now.replace(year=now.year - 1)})
    crm.deals.create({"name": "进行中", "contact_id": people["李娜"], "owner_id": alice.id})
    crm.activities.create({"kind": "call", "subject": "回访", "contact_id": people["张伟"]})
    crm.activities.create({"kind": "call", "subject": "再访", "contact_id": people["张伟"]})
    return SimpleNamespace(crm=crm, alice=alice, bob=bob, boss=boss, people=people)


def names(page: crmkit.Page) -> list[str]:
    return [record.full_name for record in page.items]


# -- relations, measures, custom fields -------------------------------------------------------


def test_a_relation_filters_on_the_related_records_fields(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("上海联系人", "contact", {"account.city": "上海"})

    assert names(crm.segments.members("上海联系人")) == ["张伟", "王芳"]
    assert crm.segments.count("上海联系人") == 2


def test_the_issue_example_contacts_in_shanghai_with_a_deal_won_this_year(
    world: SimpleNamespace,
) -> None:
    crm = world.crm
    crm.segments.create(
        "上海今年赢单",
        "contact",
        {
            "account.city": "上海",
            "deals.stage_kind": "won",
            "deals.closed_at__gte": "year_start",
        },
    )

    assert names(crm.segments.members("上海今年赢单")) == ["张伟"]


def test_conditions_under_one_relation_hold_for_the_same_related_record(
    world: SimpleNamespace,
) -> None:
    crm = world.crm
    # 王芳's won deal closed last year: "won" and "this year" are not both true of one deal
    count = crm.contacts.count({"deals.stage_kind": "won", "deals.closed_at__gte": "year_start"})

    assert count == 1


def test_a_relation_can_be_written_as_a_nested_mapping(world: SimpleNamespace) -> None:
    count = world.crm.contacts.count({"deals": {"stage_kind": "won"}})

    assert count == 2


def test_an_empty_relation(world: SimpleNamespace) -> None:
    crm = world.crm

    assert crm.contacts.count({"deals__empty": True}) == 1  # 刘洋
    assert crm.contacts.count({"account__empty": True}) == 1  # 刘洋
    assert crm.contacts.count({"account__empty": False}) == 3


def test_a_custom_field_and_a_plugin_measure(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("vip 常联系", "contact", {"vip": True, "activity_count__gte": 2})

    assert names(crm.segments.members("vip 常联系")) == ["张伟"]


def test_a_segment_may_name_another_segment(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("上海", "contact", {"account.city": "上海"})
    crm.segments.create("上海 vip", "contact", {"segment": "上海", "vip": True})
    crm.segments.create("非上海", "contact", {"segment__ne": "上海"})

    assert names(crm.segments.members("上海 vip")) == ["张伟"]
    # 刘洋 has no account: NULL city is outside 上海, so inside its complement
    assert names(crm.segments.members("非上海")) == ["李娜", "刘洋"]
    assert crm.contacts.count({"segment__in": ["上海", "非上海"]}) == 4


def test_relative_dates_are_evaluated_when_the_segment_is(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("最近创建", "contact", {"created_at__gte": "today-1d"})

    assert crm.segments.count("最近创建") == 4
    crm.segments.update("最近创建", filters={"created_at__lt": "today-1d"})
    assert crm.segments.count("最近创建") == 0


def test_member_ids_is_a_select_to_join_on(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("上海联系人", "contact", {"account.city": "上海"})
    with crm.transaction() as op:
        ids = crm.segments.member_ids(op, "上海联系人").subquery()
        found = set(
            op.session.scalars(
                select(crmkit.Contact.full_name).where(crmkit.Contact.id.in_(select(ids.c.id)))
            )
        )

    assert found == {"张伟", "王芳"}


# -- scoping ---------------------------------------------------------------------------------


def test_a_rep_counts_and_lists_only_the_members_they_may_see(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("上海联系人", "contact", {"account.city": "上海"})

    assert crm.segments.count("上海联系人", actor=world.alice) == 1
    assert names(crm.segments.members("上海联系人", actor=world.alice)) == ["张伟"]
    assert names(crm.segments.members("上海联系人", actor=world.bob)) == []  # 北京 account only


def test_a_related_record_outside_the_scope_does_not_count(world: SimpleNamespace) -> None:
    crm = world.crm
    # bob's 王芳 is at alice's 上海 account: bob may not see that account, so its city is
    # not his to filter on
    assert crm.contacts.count({"account.city": "上海"}, actor=world.bob) == 0
    assert crm.contacts.count({"account__empty": True}, actor=world.bob) == 2


def test_a_hidden_field_cannot_be_filtered_on_in_a_segment(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.roles.create("no_email")
    crm.roles.grant("no_email", "contact:read", "all")
    crm.roles.grant("no_email", "segment:read", "all")
    crm.roles.set_field_rule("no_email", "contact", "email", "hidden")
    viewer = crm.users.create("viewer", roles=["no_email"])
    crm.segments.create("某邮箱", "contact", {"email": "0@example.com"})

    with pytest.raises(crmkit.ValidationError) as error:
        crm.segments.count("某邮箱", actor=viewer)
    assert field_errors(error) == {"email": "unknown field of contact"}
    with pytest.raises(crmkit.ValidationError):  # nor through a measure computed from it
        crm.contacts.count({"email_seen": "0@example.com"}, actor=viewer)
    assert crm.segments.count("某邮箱") == 1


def test_a_measure_needs_its_permission(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.PermissionDenied, match="segment:manage"):
        world.crm.contacts.count({"guarded__gte": 1}, actor=world.alice)

    assert world.crm.contacts.count({"guarded__gte": 1}, actor=world.boss) == 0  # sees none
    assert world.crm.contacts.count({"guarded__gte": 1}) == 1


def test_managing_segments_needs_segment_manage(world: SimpleNamespace) -> None:
    crm = world.crm
    with pytest.raises(crmkit.PermissionDenied, match="segment:manage"):
        crm.segments.create("x", "contact", {}, actor=world.alice)
    made = crm.segments.create("x", "contact", {}, actor=world.boss)

    assert made.created_by == "boss"
    assert [s.name for s in crm.segments.list(actor=world.alice)] == ["x"]


# -- bad input -------------------------------------------------------------------------------


def test_an_unknown_field_lists_what_is_known(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        world.crm.segments.create("bad", "contact", {"shoe_size__gt": 40})

    message = field_errors(error)["shoe_size"]
    assert message.startswith("unknown field of contact; fields: ")
    assert "full_name" in message
    assert "relations: account, activities, deals" in message
    assert "activity_count" in message
    assert world.crm.segments.list() == []


def test_an_unknown_relation_lists_the_relations(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        world.crm.segments.create("bad", "contact", {"company.city": "上海"})

    assert field_errors(error) == {
        "company": "unknown relation of contact; relations: account, activities, deals, leads,"
        " tasks"
    }


def test_an_unknown_field_of_a_related_entity_is_named(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        world.crm.segments.create("bad", "contact", {"account.town": "上海"})

    assert "town" in field_errors(error)


def test_a_segment_on_an_unknown_entity_is_refused(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        world.crm.segments.create("bad", "customer", {})

    assert field_errors(error)["entity"].startswith("unknown entity 'customer'; known: account")


def test_segments_referring_to_each_other_in_a_cycle_are_refused(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("a", "contact", {"vip": True})
    crm.segments.create("b", "contact", {"segment": "a"})

    with pytest.raises(crmkit.ValidationError, match="cycle: a → b → a"):
        crm.segments.update("a", filters={"segment": "b"})
    with pytest.raises(crmkit.ValidationError, match="cycle"):
        crm.segments.update("a", filters={"segment": "a"})
    assert crm.segments.get("a").filters == {"vip": True}


def test_a_segment_of_another_entity_or_none_at_all_is_refused(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("大客户", "account", {"city": "上海"})

    with pytest.raises(crmkit.ValidationError, match="segment of account, not of contact"):
        crm.segments.create("bad", "contact", {"segment": "大客户"})
    with pytest.raises(crmkit.ValidationError, match="no segment named 'nope'"):
        crm.segments.create("bad", "contact", {"segment": "nope"})
    crm.segments.create("大客户的联系人", "contact", {"account.segment": "大客户"})
    assert crm.segments.count("大客户的联系人") == 2


def test_a_segment_in_use_cannot_be_deleted_or_renamed(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("a", "contact", {"vip": True})
    crm.segments.create("b", "contact", {"segment": "a"})

    with pytest.raises(crmkit.ConflictError, match="used by segment 'b'"):
        crm.segments.delete("a")
    with pytest.raises(crmkit.ConflictError, match="used by segment 'b'"):
        crm.segments.update("a", new_name="c")
    crm.segments.delete("b")
    crm.segments.delete("a")
    assert crm.segments.list() == []


def test_a_duplicate_name_and_a_stale_version_are_conflicts(world: SimpleNamespace) -> None:
    crm = world.crm
    made = crm.segments.create("a", "contact", {"vip": True})
    with pytest.raises(crmkit.ConflictError, match="exists"):
        crm.segments.create("a", "account", {})
    crm.segments.update("a", description="vip", expected_version=made.version)

    with pytest.raises(crmkit.ConflictError, match="version"):
        crm.segments.update("a", description="again", expected_version=made.version)


def test_an_unknown_segment_is_not_found(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.NotFoundError):
        world.crm.segments.count("nope")


def test_changes_are_audited_and_emitted(world: SimpleNamespace) -> None:
    crm = world.crm
    seen: list[crmkit.Event] = []
    crm.subscribe("segment.*", seen.append)
    crm.segments.create("a", "contact", {"vip": True})
    crm.segments.update("a", filters={"vip": False})
    crm.segments.delete("a")

    assert [e.name for e in seen] == ["segment.created", "segment.updated", "segment.deleted"]
    operations = [entry.operation for entry in crm.audit.query(entity="segment")]
    assert sorted(operations) == ["segment.created", "segment.deleted", "segment.updated"]


def test_a_filter_mentioning_now_uses_one_instant() -> None:
    from crmkit.services.segment_filters import relative_time

    now = dt.datetime(2026, 3, 31, 15, 0, tzinfo=dt.UTC)
    assert relative_time("year_start", now) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert relative_time("month_start-1m", now) == dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    assert relative_time("today-1m", now) == dt.datetime(2026, 2, 28, tzinfo=dt.UTC)
    assert relative_time("quarter_start", now) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert relative_time("now+2w", now) == now + dt.timedelta(days=14)
    assert relative_time("2026-01-01", now) is None


# -- pool policies and assignment rules -------------------------------------------------------


def test_a_pool_policy_releases_only_its_segments_members(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("上海客户", "account", {"city": "上海"})
    crm.pool.add_policy("account", "上海 30 天", 30, when={"segment": "上海客户"})

    [released] = crm.pool.release(now=crmkit.utcnow() + dt.timedelta(days=31))

    assert released.records == 1
    assert crm.accounts.count({"owner_id__empty": True}) == 1
    assert crm.accounts.count({"owner_id__empty": True, "city": "上海"}) == 1
    with pytest.raises(crmkit.ConflictError, match="pool policy '上海 30 天' of account"):
        crm.segments.delete("上海客户")


def test_a_pool_policy_naming_an_unknown_segment_is_refused(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.ValidationError, match="no segment named 'nope'"):
        world.crm.pool.add_policy("account", "p", 30, when={"segment": "nope"})


def test_an_assignment_rule_can_name_a_segment(world: SimpleNamespace) -> None:
    crm = world.crm
    crm.segments.create("上海公司的人", "contact", {"account.city": "上海"})
    crm.assignment.add_rule(
        "contact", "上海归 alice", "fixed", ["alice"], when={"segment": "上海公司的人"}
    )
    crm.assignment.add_rule("contact", "其余归 bob", "fixed", ["bob"])
    shanghai = crm.accounts.list({"city": "上海"}).items[0].id

    inside = crm.contacts.create({"full_name": "新人甲", "account_id": shanghai})
    outside = crm.contacts.create({"full_name": "新人乙"})

    assert (inside.owner_id, outside.owner_id) == (world.alice.id, world.bob.id)
    with pytest.raises(crmkit.ConflictError, match="assignment rule '上海归 alice'"):
        crm.segments.delete("上海公司的人")


def test_an_assignment_rule_judges_relations_and_custom_fields_in_the_database(
    world: SimpleNamespace,
) -> None:
    crm = world.crm
    crm.assignment.add_rule(
        "contact", "上海 vip", "fixed", ["alice"], when={"account.city": "上海", "vip": True}
    )
    shanghai = crm.accounts.list({"city": "上海"}).items[0].id
    beijing = crm.accounts.list({"city": "北京"}).items[0].id

    made = [
        crm.contacts.create({"full_name": n, "account_id": a, "vip": v})
        for n, a, v in [("甲", shanghai, True), ("乙", shanghai, False), ("丙", beijing, True)]
    ]

    assert [c.owner_id for c in made] == [world.alice.id, None, None]


def test_an_assignment_rule_naming_an_unknown_relation_is_refused(world: SimpleNamespace) -> None:
    with pytest.raises(crmkit.ValidationError, match="unknown relation of contact"):
        world.crm.assignment.add_rule("contact", "r", "fixed", ["alice"], when={"firm.city": "x"})


@given(
    anchor=st.sampled_from(
        ["today", "now", "week_start", "month_start", "quarter_start", "year_start"]
    ),
    sign=st.sampled_from(["+", "-"]),
    amount=st.integers(min_value=0, max_value=400),
    unit=st.sampled_from(["d", "w", "m", "y"]),
    now=st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2500, 1, 1),
        timezones=st.just(dt.UTC),
    ),
)
def test_every_relative_date_is_a_time_zone_aware_moment_on_the_right_side_of_its_anchor(
    anchor: str, sign: str, amount: int, unit: str, now: dt.datetime
) -> None:
    from crmkit.services.segment_filters import relative_time

    base = relative_time(anchor, now)
    moved = relative_time(f"{anchor}{sign}{amount}{unit}", now)

    assert base is not None
    assert moved is not None
    assert moved.tzinfo is not None
    assert base <= now
    assert (moved <= base) if sign == "-" else (moved >= base)


@given(text=st.text(max_size=30))
def test_any_other_text_is_not_a_relative_date(text: str) -> None:
    from crmkit.services.segment_filters import relative_time

    result = relative_time(text, dt.datetime(2026, 6, 15, tzinfo=dt.UTC))

    assert result is None or text.strip().split("+")[0].split("-")[0].strip() in {
        "today",
        "now",
        "week_start",
        "month_start",
        "quarter_start",
        "year_start",
    }
