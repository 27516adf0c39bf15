"""Users and teams: creating them, the team tree and the manager chain (no cycles), and the
deactivation of a departing user: inactive at once, tokens dead, open records handed over,
all in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from outbox_reader import outbox_events, outbox_names

import crmkit


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM whose deactivations hand unmatched records to the manager
    (``handover_without_rule = "manager"``), the hand-over these tests are about; the default
    (the shared pool) has its own test below."""
    instance = make_crm(assignment={"handover_without_rule": "manager"})
    instance.pipelines.create("Sales")
    return instance


@pytest.fixture
def org(crm: crmkit.CRM) -> dict[str, crmkit.User]:
    """HQ → East → Shanghai; boss (manager, in East) manages alice (rep, in Shanghai);
    root is the administrator."""
    crm.users.create_team("HQ")
    crm.users.create_team("East", parent="HQ")
    crm.users.create_team("Shanghai", parent="East")
    return {
        "root": crm.users.create("root", admin=True),
        "boss": crm.users.create("boss", team="East", roles=["manager"]),
        "alice": crm.users.create("alice", team="Shanghai", manager="boss"),
    }


def owner_and_team(crm: crmkit.CRM, entity: str, record_id: int) -> tuple[Any, Any]:
    record = crm.records(entity).get(record_id)
    return record.owner_id, record.team_id


def open_records(crm: crmkit.CRM, actor: crmkit.User) -> dict[str, int]:
    """One open record of each kind that changes hands, owned by ``actor``."""
    account = crm.accounts.create({"name": "华星贸易"}, actor=actor)
    return {
        "account": account.id,
        "contact": crm.contacts.create({"full_name": "张伟"}, actor=actor).id,
        "lead": crm.leads.create({"full_name": "陳志明"}, actor=actor).id,
        "deal": crm.deals.create({"name": "ERP", "account_id": account.id}, actor=actor).id,
        "task": crm.tasks.create({"title": "发送报价单"}, actor=actor).id,
    }


# -- creating users ----------------------------------------------------------------------------


def test_a_new_user_is_a_sales_rep_by_default(crm: crmkit.CRM) -> None:
    crm.users.create("alice")

    assert crm.users.profile("alice").roles == ("sales_rep",)


def test_a_new_administrator_holds_the_admin_role(crm: crmkit.CRM) -> None:
    crm.users.create("root", admin=True)

    profile = crm.users.profile("root")
    assert (profile.is_admin, profile.roles) == (True, ("admin",))


def test_a_user_is_created_with_the_roles_and_manager_given(org: dict[str, crmkit.User]) -> None:
    assert org["alice"].manager_id == org["boss"].id


def test_a_user_with_an_unknown_role_is_refused_and_not_created(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.NotFoundError, match="role 'sales' not found"):
        crm.users.create("alice", roles=["sales"])

    assert crm.users.list() == []


def test_a_user_with_an_unknown_team_is_refused_with_the_close_names(crm: crmkit.CRM) -> None:
    crm.users.create_team("华东销售部")

    with pytest.raises(crmkit.NotFoundError, match="team '华东销售' not found; did you mean"):
        crm.users.create("alice", team="华东销售")


def test_creating_users_needs_user_manage(crm: crmkit.CRM) -> None:
    rep = crm.users.create("alice")

    with pytest.raises(crmkit.PermissionDenied, match="lacks the permission user:manage"):
        crm.users.create("bob", actor=rep)


def test_making_an_administrator_needs_role_manage_as_well(crm: crmkit.CRM) -> None:
    crm.roles.create("hr")
    crm.roles.grant("hr", "user:manage")
    clerk = crm.users.create("clerk", roles=["hr"])

    crm.users.create("bob", actor=clerk)
    with pytest.raises(crmkit.PermissionDenied, match="role:manage"):
        crm.users.create("eve", admin=True, actor=clerk)


# -- the team tree -----------------------------------------------------------------------------


def test_teams_are_listed_as_a_tree_with_their_parents(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.create_team("South", parent="HQ")

    teams = [(team.name, team.parent, team.depth) for team in crm.users.teams()]

    assert teams == [
        ("HQ", None, 0),
        ("East", "HQ", 1),
        ("Shanghai", "East", 2),
        ("South", "HQ", 1),
    ]


def test_a_team_lists_its_active_members(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    members = {team.name: team.members for team in crm.users.teams()}

    assert members == {"HQ": 0, "East": 1, "Shanghai": 1}


def test_a_team_moves_under_another_team_with_its_sub_teams(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.create_team("South", parent="HQ")

    crm.users.move_team("East", "South")

    paths = {team.name: team.path for team in crm.users.teams()}
    assert paths["Shanghai"] == ("HQ", "South", "East", "Shanghai")


def test_a_team_moves_to_the_top(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    crm.users.move_team("Shanghai", None)

    assert {t.name: t.parent for t in crm.users.teams()}["Shanghai"] is None


def test_a_team_cannot_move_under_itself(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    with pytest.raises(crmkit.CRMError, match="cycle: East → East"):
        crm.users.move_team("East", "East")


def test_a_team_cannot_move_under_its_own_sub_team_and_the_error_names_the_cycle(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    with pytest.raises(crmkit.CRMError, match="cycle: HQ → East → Shanghai → HQ"):
        crm.users.move_team("HQ", "Shanghai")

    assert [team.path for team in crm.users.teams()][-1] == ("HQ", "East", "Shanghai")


def test_moving_teams_needs_team_manage(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    with pytest.raises(crmkit.PermissionDenied, match="team:manage"):
        crm.users.move_team("Shanghai", "HQ", actor=org["boss"])


def test_a_user_changes_team(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    crm.users.set_team("alice", "HQ")

    assert crm.users.profile("alice").team == "HQ"
    assert outbox_events(crm, "user.team_changed")[0].payload["old_team"] == "Shanghai"


# -- the manager chain -------------------------------------------------------------------------


def test_a_user_gets_a_new_manager(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    crm.users.set_manager("alice", "root")

    assert crm.users.profile("alice").manager == "root"


def test_a_user_cannot_manage_themselves(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    with pytest.raises(crmkit.CRMError, match="cannot be their own manager"):
        crm.users.set_manager("alice", "alice")


def test_a_manager_chain_cannot_loop_and_the_error_names_the_loop(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.set_manager("boss", "root")

    with pytest.raises(crmkit.CRMError, match="cycle: root → alice → boss → root"):
        crm.users.set_manager("root", "alice")

    assert crm.users.profile("root").manager is None


# -- deactivation ------------------------------------------------------------------------------


def test_deactivation_marks_the_user_inactive_with_the_time(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.deactivate("alice")

    alice = crm.users.get("alice")
    assert alice.is_active is False
    assert alice.deactivated_at is not None


def test_deactivation_hands_open_records_to_the_manager_and_their_team(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    records = open_records(crm, org["alice"])

    result = crm.users.deactivate("alice")

    boss = org["boss"]
    assert result.successor == "boss"
    for entity, record_id in records.items():
        assert owner_and_team(crm, entity, record_id) == (boss.id, boss.team_id), entity


def test_deactivation_leaves_closed_records_and_activities_with_the_user(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    alice = org["alice"]
    converted = crm.leads.create({"full_name": "李娜", "company_name": "华星"}, actor=alice)
    result = crm.leads.convert(converted.id, actor=alice)
    assert result.deal_id is not None
    crm.deals.move_to_stage(result.deal_id, "Won", actor=alice)
    done = crm.tasks.create({"title": "已完成", "status": "done"}, actor=alice)
    call = crm.activities.create({"kind": "call", "subject": "回访"}, actor=alice)

    crm.users.deactivate("alice")

    for entity, record_id in [
        ("lead", converted.id),
        ("deal", result.deal_id),
        ("task", done.id),
        ("activity", call.id),
    ]:
        assert crm.records(entity).get(record_id).owner_id == alice.id, entity


def test_deactivation_without_a_manager_releases_records_to_the_pool(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.set_manager("alice", None)
    records = open_records(crm, org["alice"])

    result = crm.users.deactivate("alice")

    assert result.successor is None
    team = org["alice"].team_id
    for entity, record_id in records.items():
        assert owner_and_team(crm, entity, record_id) == (None, team), entity


def test_by_default_deactivation_releases_customers_to_the_pool_and_tasks_to_the_manager(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm()
    crm.pipelines.create("Sales")
    crm.users.create_team("销售部")
    boss = crm.users.create("boss", team="销售部")
    alice = crm.users.create("alice", team="销售部", manager="boss")
    records = open_records(crm, alice)

    result = crm.users.deactivate("alice")

    assert result.successor == "boss"
    for entity in ("account", "contact", "lead", "deal"):
        assert owner_and_team(crm, entity, records[entity]) == (None, alice.team_id), entity
    assert owner_and_team(crm, "task", records["task"]) == (boss.id, boss.team_id)


def test_deactivation_passes_over_an_inactive_manager_to_the_next_one_up(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.set_manager("boss", "root")
    contact = crm.contacts.create({"full_name": "张伟"}, actor=org["alice"])
    crm.users.deactivate("boss")

    crm.users.deactivate("alice")

    assert crm.contacts.get(contact.id).owner_id == org["root"].id


def test_deactivation_revokes_every_token_at_once(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    tokens = crm.tokens
    _, first = tokens.issue("alice", "ERP sync")
    _, second = tokens.issue("alice", "Phone app")

    result = crm.users.deactivate("alice")

    assert result.tokens_revoked == 2
    assert {token.status for token in tokens.list("alice")} == {"revoked"}
    for plain in (first, second):
        with pytest.raises(crmkit.PermissionDenied):
            tokens.authenticate(plain)


def test_deactivation_emits_user_deactivated_with_the_counts(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    open_records(crm, org["alice"])

    crm.users.deactivate("alice")

    (event,) = outbox_events(crm, "user.deactivated")
    assert event.payload == {
        "username": "alice",
        "successor": "boss",
        "handed_over": {"contact": 1, "account": 1, "lead": 1, "deal": 1, "task": 1},
        "tokens_revoked": 0,
    }


def test_each_handover_is_an_ordinary_update_of_the_record(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    contact = crm.contacts.create({"full_name": "张伟"}, actor=org["alice"])

    crm.users.deactivate("alice")

    (update,) = [e for e in outbox_events(crm, "contact.updated") if e.record_id == contact.id]
    assert update.payload["changes"]["owner_id"] == org["boss"].id
    assert update.payload["previous"]["owner_id"] == org["alice"].id


class RefuseHandovers:
    """A plugin that refuses every change of a contact's owner."""

    @crmkit.hookimpl
    def crmkit_before_update(
        self, op: Any, entity: str, record_id: int, changes: Any, previous: Any
    ) -> None:
        if entity == "contact" and "owner_id" in changes:
            raise crmkit.PluginVeto("contacts keep their owner")


def test_deactivation_is_all_or_nothing(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(plugins={"refuse": RefuseHandovers()})
    crm.users.create("boss")
    alice = crm.users.create("alice", manager="boss")
    task = crm.tasks.create({"title": "跟进"}, actor=alice)
    crm.contacts.create({"full_name": "张伟"}, actor=alice)
    _, plain = crm.tokens.issue("alice", "ERP sync")
    before = outbox_names(crm)

    with pytest.raises(crmkit.PluginError, match="contacts keep their owner"):
        crm.users.deactivate("alice")

    assert crm.users.get("alice").is_active
    assert crm.tokens.authenticate(plain).username == "alice"
    assert crm.tasks.get(task.id).owner_id == alice.id
    assert outbox_names(crm) == before


def test_the_last_administrator_cannot_be_deactivated(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    with pytest.raises(crmkit.CRMError, match="root is the last active administrator"):
        crm.users.deactivate("root")

    assert crm.users.get("root").is_active


def test_a_holder_of_the_admin_role_counts_as_an_administrator(crm: crmkit.CRM) -> None:
    crm.users.create("boss", roles=["admin"])

    with pytest.raises(crmkit.CRMError, match="last active administrator"):
        crm.users.deactivate("boss")


def test_an_administrator_can_leave_while_another_remains(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.create("root2", admin=True)

    crm.users.deactivate("root")

    assert not crm.users.get("root").is_active


def test_deactivating_an_unknown_user_suggests_the_name_meant(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    with pytest.raises(crmkit.NotFoundError, match="user 'alcie' not found; did you mean 'alice'"):
        crm.users.deactivate("alcie")


def test_deactivating_a_user_twice_is_refused(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    crm.users.deactivate("alice")
    before = outbox_names(crm)

    with pytest.raises(crmkit.CRMError, match="'alice' is already deactivated since"):
        crm.users.deactivate("alice")

    assert outbox_names(crm) == before


def test_deactivating_needs_user_manage(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    with pytest.raises(crmkit.PermissionDenied, match="user:manage"):
        crm.users.deactivate("alice", actor=org["boss"])

    assert crm.users.get("alice").is_active


def test_a_deactivated_user_cannot_become_a_manager(
    crm: crmkit.CRM, org: dict[str, crmkit.User]
) -> None:
    crm.users.deactivate("boss")

    with pytest.raises(crmkit.CRMError, match="manager 'boss' is deactivated"):
        crm.users.set_manager("alice", "boss")


def test_listings_mark_deactivated_users(crm: crmkit.CRM, org: dict[str, crmkit.User]) -> None:
    crm.users.deactivate("alice")

    status = {profile.username: profile.is_active for profile in crm.users.profiles()}
    active = [user.username for user in crm.users.list(include_inactive=False)]

    assert status == {"alice": False, "boss": True, "root": True}
    assert active == ["boss", "root"]
