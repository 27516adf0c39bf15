"""Assignment rules: each strategy, caps, availability, the write path, bad input, the
explanation, and the CLI."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

import crmkit
from crmkit.assignment.models import AssignmentRule, OwnershipChange
from crmkit.assignment.strategies import weighted_schedule


@pytest.fixture
def reps(crm: crmkit.CRM) -> dict[str, crmkit.User]:
    crm.users.create_team("East")
    made = {name: crm.users.create(name, roles=["sales_rep"]) for name in ("alice", "bob")}
    made["carol"] = crm.users.create("carol", team="East", roles=["sales_rep"])
    made["dave"] = crm.users.create("dave", team="East", roles=["sales_rep"])
    return made


def owners(crm: crmkit.CRM, count: int, **values: Any) -> list[int | None]:
    return [crm.leads.create({"full_name": f"客户{i}", **values}).owner_id for i in range(count)]


def test_round_robin_takes_turns_in_member_order(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "all", "round_robin", ["alice", "bob"])
    got = owners(crm, 5)
    a, b = reps["alice"].id, reps["bob"].id
    assert got == [a, b, a, b, a]


def test_a_rule_whose_conditions_fail_leaves_the_creator_as_owner(
    crm: crmkit.CRM, reps: dict
) -> None:
    crm.assignment.add_rule("lead", "web", "fixed", ["alice"], when={"source_channel": "web"})
    bob = reps["bob"]
    phone_lead = crm.leads.create({"full_name": "王五", "source_channel": "phone"}, actor=bob)
    web_lead = crm.leads.create({"full_name": "赵六", "source_channel": "web"}, actor=bob)
    assert phone_lead.owner_id == bob.id
    assert web_lead.owner_id == reps["alice"].id  # a sales rep's lead goes where the rule says


def test_an_explicit_owner_is_kept(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "all", "fixed", ["alice"])
    lead = crm.leads.create({"full_name": "张三", "owner_id": reps["bob"].id})
    assert lead.owner_id == reps["bob"].id


def test_rules_are_tried_in_order_and_the_first_match_wins(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "catch all", "fixed", ["bob"])
    crm.assignment.add_rule(
        "lead", "vip", "fixed", ["alice"], when={"title__contains": "CEO"}, position=1
    )
    assert owners(crm, 1, title="CEO 总经理") == [reps["alice"].id]
    assert owners(crm, 1, title="采购") == [reps["bob"].id]


@pytest.mark.parametrize(
    ("when", "values", "matches"),
    [
        ({"source_channel": "Web"}, {"source_channel": "web"}, False),  # exact, as filters
        ({"source_channel": "web"}, {"source_channel": "web"}, True),
        ({"source_channel__in": ["web", "expo"]}, {"source_channel": "expo"}, True),
        ({"source_channel__in": ["web", "expo"]}, {"source_channel": "phone"}, False),
        ({"company_name__contains": "科技"}, {"company_name": "上海某某科技有限公司"}, True),
        ({"email__empty": True}, {}, True),
        ({"email__empty": True}, {"email": "a@b.cn"}, False),
        ({"budget__gte": 1000, "budget__lte": 5000}, {"budget": 3000}, True),
        ({"budget__gte": 1000, "budget__lte": 5000}, {"budget": 9000}, False),
    ],
)
def test_conditions_on_built_in_and_custom_fields(
    make_crm: Callable[..., crmkit.CRM], when: dict, values: dict, matches: bool
) -> None:
    crm = make_crm(custom_fields=[{"entity": "lead", "name": "budget", "type": "number"}])
    alice = crm.users.create("alice")
    crm.users.create("bob")
    crm.assignment.add_rule("lead", "r", "fixed", ["alice"], when=when)
    lead = crm.leads.create({"full_name": "李四", **values}, actor=crm.users.get("bob"))
    assert (lead.owner_id == alice.id) is matches


def test_weighted_gives_turns_in_proportion(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "w", "weighted", ["alice", "bob"], weights={"alice": 3})
    counts = Counter(owners(crm, 8))
    assert counts == {reps["alice"].id: 6, reps["bob"].id: 2}


@given(st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=6))
def test_a_weighted_cycle_serves_each_member_exactly_its_weight(weights: list[int]) -> None:
    schedule = weighted_schedule(weights)
    assert len(schedule) == sum(weights)
    assert Counter(schedule) == dict(enumerate(weights))


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=60))
def test_round_robin_counts_differ_by_at_most_one(members: int, assignments: int) -> None:
    from crmkit.assignment.rules import AssignmentRequest, Candidate, Member, Rule
    from crmkit.assignment.strategies import round_robin

    candidates = tuple(
        Candidate(i, f"u{i}", None, Member(f"u{i}", user_id=i)) for i in range(members)
    )
    rule = Rule("k", "lead", "r", "round_robin", members=[c.member for c in candidates])
    chosen = Counter()
    for turn in range(assignments):
        choice = round_robin(AssignmentRequest("lead", rule, {}, candidates, turn))
        assert choice is not None
        chosen[choice.candidate.user_id] += 1
    counts = [chosen[i] for i in range(members)]
    assert max(counts) - min(counts) <= 1


def test_least_loaded_picks_the_member_with_fewest_open_records(
    crm: crmkit.CRM, reps: dict
) -> None:
    for i in range(3):
        crm.leads.create({"full_name": f"旧{i}", "owner_id": reps["alice"].id})
    crm.leads.create({"full_name": "旧", "owner_id": reps["bob"].id})
    crm.assignment.add_rule("lead", "ll", "least_loaded", ["alice", "bob"])
    assert owners(crm, 2) == [reps["bob"].id, reps["bob"].id]
    assert owners(crm, 2) == [reps["alice"].id, reps["bob"].id]


def test_a_member_at_capacity_is_skipped(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "rr", "round_robin", ["alice", "bob"], capacity={"alice": 1})
    got = owners(crm, 4)
    assert got.count(reps["alice"].id) == 1
    assert got.count(reps["bob"].id) == 3


def test_inactive_and_away_members_are_skipped(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "rr", "round_robin", ["alice", "bob", "team:East"])
    crm.users.deactivate("carol")
    crm.assignment.set_away("alice")
    assert set(owners(crm, 4)) == {reps["bob"].id, reps["dave"].id}
    crm.assignment.set_back("alice")
    assert reps["alice"].id in owners(crm, 3)


def test_away_until_a_past_time_is_available(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "f", "fixed", ["alice"])
    crm.assignment.set_away("alice", until=crmkit.utcnow() - dt.timedelta(hours=1))
    assert owners(crm, 1) == [reps["alice"].id]


def test_a_team_member_means_its_users_and_sets_their_team(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "east", "round_robin", ["team:East"])
    leads = [crm.leads.create({"full_name": f"东{i}"}) for i in range(2)]
    assert [lead.owner_id for lead in leads] == [reps["carol"].id, reps["dave"].id]
    assert {lead.team_id for lead in leads} == {reps["carol"].team_id}


def test_territory_maps_a_field_value_to_a_member(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule(
        "lead",
        "areas",
        "territory",
        territory_field="region",
        territory={"华东": "alice", "华南": "team:East"},
        default_member="bob",
    )
    assert owners(crm, 1, region="华东") == [reps["alice"].id]
    assert sorted(owners(crm, 2, region="华南")) == sorted([reps["carol"].id, reps["dave"].id])
    assert owners(crm, 1, region="西北") == [reps["bob"].id]


def test_territory_without_default_names_the_unmapped_value(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule(
        "lead", "areas", "territory", territory_field="region", territory={"华东": "alice"}
    )
    explanation = crm.assignment.test("lead", {"full_name": "x", "region": "西北"})
    assert explanation.decision is None
    assert "region = '西北'" in explanation.steps[0]


def test_a_territory_map_with_gaps_on_a_choice_field_is_refused(
    crm: crmkit.CRM, reps: dict
) -> None:
    with pytest.raises(crmkit.CRMError, match=r"gaps.*'working'"):
        crm.assignment.add_rule(
            "lead", "s", "territory", territory_field="status", territory={"new": "alice"}
        )
    assert crm.assignment.rules("lead") == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "nope", "members": ["alice"]}, "unknown assignment strategy 'nope'"),
        ({"strategy": "fixed", "members": ["zoe"]}, "user 'zoe' does not exist"),
        ({"strategy": "fixed", "members": ["team:Nowhere"]}, "team 'Nowhere' does not exist"),
        (
            {"strategy": "fixed", "members": ["alice"], "when": {"colour": "red"}},
            "colour: is not a field of lead",
        ),
        (
            {"strategy": "fixed", "members": ["alice"], "when": {"full_name__like": "x"}},
            "unknown operator 'like'",
        ),
        (
            {"strategy": "weighted", "members": ["alice"], "weights": {"bob": 2}},
            "weight given for 'bob'",
        ),
        ({"strategy": "fixed", "members": []}, "at least one member"),
    ],
)
def test_bad_rules_are_refused_and_nothing_is_written(
    crm: crmkit.CRM, reps: dict, kwargs: dict, message: str
) -> None:
    with pytest.raises(crmkit.CRMError, match=message):
        crm.assignment.add_rule("lead", "bad", **kwargs)
    with crm.transaction() as op:
        assert op.session.scalar(select(func.count()).select_from(AssignmentRule)) == 0


def test_a_second_rule_with_the_same_name_is_refused(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "r", "fixed", ["alice"])
    with pytest.raises(crmkit.CRMError, match="already has an assignment rule named 'r'"):
        crm.assignment.add_rule("lead", "r", "fixed", ["bob"])


def test_rules_test_explains_and_changes_nothing(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "web", "fixed", ["bob"], when={"source_channel": "web"})
    crm.assignment.add_rule("lead", "rest", "round_robin", ["alice", "bob"])
    crm.assignment.set_away("bob")
    first = crm.assignment.test("lead", {"full_name": "x", "source_channel": "phone"})
    again = crm.assignment.test("lead", {"full_name": "x", "source_channel": "phone"})
    assert first == again
    assert first.decision is not None
    assert first.decision.username == "alice"
    assert "source_channel = web does not hold" in first.steps[0]
    assert "bob (away)" in first.steps[1]


def test_new_records_are_assigned_in_their_transaction_with_event_and_history(
    crm: crmkit.CRM, reps: dict
) -> None:
    crm.assignment.add_rule("lead", "f", "fixed", ["alice"])
    seen: list[crmkit.Event] = []
    crm.subscribe("lead.assigned", seen.append)
    lead = crm.leads.create({"full_name": "钱七"})
    assert [e.record_id for e in seen] == [lead.id]
    assert seen[0].payload["reason"] == "rule"
    history = crm.assignment.history("lead", lead.id)
    assert [(h.owner, h.reason) for h in history] == [("alice", "rule")]


def test_a_create_that_fails_assigns_nothing(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "rr", "round_robin", ["alice", "bob"])
    with pytest.raises(crmkit.ValidationError):
        crm.leads.create({"full_name": "", "region": "x"})
    assert owners(crm, 1) == [reps["alice"].id]  # the failed create took no turn
    with crm.transaction() as op:
        assert op.session.scalar(select(func.count()).select_from(OwnershipChange)) == 1


def test_imports_are_assigned_row_by_row(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "rr", "round_robin", ["alice", "bob"])
    result = crm.leads.create_many(enumerate([{"full_name": f"导入{i}"} for i in range(6)], 2))
    got = Counter(crm.leads.get(i).owner_id for i in result.ids)
    assert got == {reps["alice"].id: 3, reps["bob"].id: 3}


def test_assign_run_assigns_unowned_records(crm: crmkit.CRM, reps: dict) -> None:
    ids = [crm.leads.create({"full_name": f"池{i}"}).id for i in range(4)]  # system: no owner
    crm.assignment.add_rule("lead", "rr", "round_robin", ["alice", "bob"])
    seen: list[int] = []
    result = crm.assignment.run("lead", batch_size=3, progress=seen.append)
    assert (result.assigned, result.unmatched, seen) == (4, 0, [3, 1])
    assert Counter(crm.leads.get(i).owner_id for i in ids) == {
        reps["alice"].id: 2,
        reps["bob"].id: 2,
    }


def test_a_plugin_strategy_is_used_and_explained(make_crm: Callable[..., crmkit.CRM]) -> None:
    def last_one(request: crmkit.AssignmentRequest) -> crmkit.AssignmentChoice | None:
        if not request.candidates:
            return None
        return crmkit.AssignmentChoice(request.candidates[-1], "the newest rep")

    class Plugin:
        @crmkit.hookimpl
        def crmkit_assignment_strategies(self) -> list[crmkit.AssignmentStrategy]:
            return [crmkit.AssignmentStrategy("last", last_one)]

    crm = make_crm(plugins={"laststrategy": Plugin()})
    crm.users.create("alice")
    bob = crm.users.create("bob")
    crm.assignment.add_rule("lead", "p", "last", ["alice", "bob"])
    assert crm.leads.create({"full_name": "x"}).owner_id == bob.id
    assert "the newest rep" in crm.assignment.test("lead", {"full_name": "y"}).steps[0]


def test_rules_from_the_config_file_come_first(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(
        assignment={
            "rules": [
                {
                    "entity": "lead",
                    "name": "cfg",
                    "strategy": "fixed",
                    "members": ["bob"],
                    "when": {"source_channel": "web"},
                },
            ]
        }
    )
    crm.users.create("alice")
    bob = crm.users.create("bob")
    crm.assignment.add_rule("lead", "db", "fixed", ["alice"])
    assert [r.name for r in crm.assignment.rules("lead")] == ["cfg", "db"]
    assert crm.leads.create({"full_name": "x", "source_channel": "web"}).owner_id == bob.id
    with pytest.raises(crmkit.CRMError, match="config file: remove it there"):
        crm.assignment.remove_rule("lead", "cfg")


def test_a_config_rule_naming_a_missing_user_is_a_config_error(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(
        assignment={
            "rules": [
                {"entity": "lead", "name": "cfg", "strategy": "fixed", "members": ["ghost"]},
            ]
        }
    )
    with pytest.raises(crmkit.ConfigError, match=r"rule 'cfg'.*user 'ghost' does not exist"):
        crm.leads.create({"full_name": "x"})


def test_managing_rules_needs_assignment_manage(crm: crmkit.CRM, reps: dict) -> None:
    with pytest.raises(crmkit.PermissionDenied, match="assignment:manage"):
        crm.assignment.add_rule("lead", "r", "fixed", ["alice"], actor=reps["bob"])


def test_remove_rule(crm: crmkit.CRM, reps: dict) -> None:
    crm.assignment.add_rule("lead", "r", "fixed", ["alice"])
    crm.assignment.remove_rule("lead", "r")
    assert crm.assignment.rules("lead") == []
    with pytest.raises(crmkit.CRMError, match="no assignment rule named 'r'"):
        crm.assignment.remove_rule("lead", "r")


def test_deactivation_hands_records_to_the_rules(crm: crmkit.CRM, reps: dict) -> None:
    crm.users.create("boss")
    crm.users.set_manager("alice", "boss")
    leads = [
        crm.leads.create(
            {"full_name": f"交{i}", "owner_id": reps["alice"].id, "source_channel": channel}
        )
        for i, channel in enumerate(["web", "phone"])
    ]
    crm.assignment.add_rule(
        "lead", "web", "round_robin", ["alice", "bob"], when={"source_channel": "web"}
    )
    crm.users.deactivate("alice")
    assert crm.leads.get(leads[0].id).owner_id == reps["bob"].id  # by the rule, alice skipped
    assert crm.leads.get(leads[1].id).owner_id is None  # no rule: the shared pool
    reasons = [h.reason for h in crm.assignment.history("lead", leads[0].id)]
    assert reasons[-1] == "handover"


def test_deactivation_can_send_unmatched_records_to_the_pool(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(assignment={"handover_without_rule": "pool"})
    crm.users.create("boss")
    alice = crm.users.create("alice", manager="boss")
    lead = crm.leads.create({"full_name": "x", "owner_id": alice.id})
    crm.users.deactivate("alice")
    assert crm.leads.get(lead.id).owner_id is None
