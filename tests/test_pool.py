"""The shared pool: release policies, claims within limits, history and notices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

import crmkit
from crmkit.assignment.models import PoolClaim

LATER = dt.timedelta(days=31)


@pytest.fixture
def reps(make_crm: Callable[..., crmkit.CRM]) -> tuple[crmkit.CRM, crmkit.User, crmkit.User]:
    crm = make_crm(pool={"limits": {"default": {"claims_per_day": 3, "max_owned": 4}}})
    alice = crm.users.create("alice", roles=["sales_rep"])
    bob = crm.users.create("bob", roles=["sales_rep"])
    return crm, alice, bob


def accounts(crm: crmkit.CRM, owner: crmkit.User, count: int, **values: object) -> list[int]:
    return [
        crm.accounts.create({"name": f"公司{i}", "owner_id": owner.id, **values}).id
        for i in range(count)
    ]


def test_records_without_follow_up_are_released_with_event_notice_and_history(reps) -> None:
    crm, alice, _ = reps
    stale, followed = accounts(crm, alice, 2)
    crm.activities.create(
        {
            "kind": "call",
            "subject": "回访",
            "account_id": followed,
            "occurred_at": crmkit.utcnow() + dt.timedelta(days=20),
        }
    )
    crm.pool.add_policy("account", "30 days", 30)
    seen: list[crmkit.Event] = []
    crm.subscribe("account.released", seen.append)
    [result] = crm.pool.release(now=crmkit.utcnow() + LATER)
    assert (result.records, result.owners) == (1, 1)
    assert crm.accounts.get(stale).owner_id is None
    assert crm.accounts.get(followed).owner_id == alice.id
    assert [e.record_id for e in seen] == [stale]
    notices = crm.audit.inbox("alice")
    assert notices[0].kind == "account.released"
    assert f"account {stale}" in notices[0].body
    assert [
        (h.previous_owner, h.owner, h.reason) for h in crm.assignment.history("account", stale)
    ] == [("alice", None, "release")]


def test_a_policy_applies_to_its_segment_only(reps) -> None:
    crm, alice, _ = reps
    low = accounts(crm, alice, 1, value_tier="c")[0]
    key = accounts(crm, alice, 1, value_tier="a")[0]
    crm.pool.add_policy("account", "b/c", 30, when={"value_tier__in": ["b", "c"]})
    crm.pool.release(now=crmkit.utcnow() + LATER)
    assert crm.accounts.get(low).owner_id is None
    assert crm.accounts.get(key).owner_id == alice.id


def test_nothing_is_released_before_the_days_are_up(reps) -> None:
    crm, alice, _ = reps
    accounts(crm, alice, 2)
    crm.pool.add_policy("account", "30 days", 30)
    assert crm.pool.due(now=crmkit.utcnow() + dt.timedelta(days=29)) == {"account:30 days": 0}
    assert crm.pool.release(now=crmkit.utcnow() + dt.timedelta(days=29))[0].records == 0


def test_a_recent_change_of_owner_counts_as_a_fresh_start(reps) -> None:
    crm, alice, _ = reps
    [record] = accounts(crm, alice, 1)
    crm.pool.add_policy("account", "30 days", 30)
    crm.pool.release(now=crmkit.utcnow() + LATER)
    crm.pool.claim("account", [record], actor=alice)
    # just claimed: not released again although the account itself is old
    assert crm.pool.release(now=crmkit.utcnow() + dt.timedelta(days=5))[0].records == 0


def test_claim_makes_the_actor_owner_and_is_kept_in_history(reps) -> None:
    crm, alice, bob = reps
    ids = accounts(crm, alice, 2)
    crm.pool.add_policy("account", "30 days", 30)
    crm.pool.release(now=crmkit.utcnow() + LATER)
    assert [r.id for r in crm.pool.pool_records("account", actor=bob)] == ids
    claimed = crm.pool.claim("account", ids, actor=bob)
    assert [r.owner_id for r in claimed] == [bob.id, bob.id]
    assert [h.reason for h in crm.assignment.history("account", ids[0])] == ["release", "claim"]
    assert crm.pool.pool_records("account", actor=bob) == []


def test_a_record_that_is_owned_cannot_be_claimed(reps) -> None:
    crm, _, _ = reps
    crm.users.create_team("east")
    carol = crm.users.create("carol", roles=["manager"], team="east")
    dave = crm.users.create("dave", roles=["sales_rep"], team="east")
    [record] = accounts(crm, dave, 1, team_id=dave.team_id)
    # carol's scope reaches her team's records: she may see whose it is
    with pytest.raises(crmkit.CRMError, match=f"account {record} is not in the pool: dave owns"):
        crm.pool.claim("account", [record], actor=carol)
    assert crm.accounts.get(record).owner_id == dave.id


def test_claiming_a_record_outside_ones_scope_is_not_found_and_names_nobody(reps) -> None:
    crm, alice, bob = reps
    [record] = accounts(crm, alice, 1)
    # bob may not read alice's account: it is "not found", as one that does not exist
    with pytest.raises(crmkit.NotFoundError) as caught:
        crm.pool.claim("account", [record], actor=bob)
    assert str(caught.value) == f"account {record} not found"
    with pytest.raises(crmkit.NotFoundError) as missing:
        crm.pool.claim("account", [record + 1000], actor=bob)
    assert str(missing.value) == f"account {record + 1000} not found"
    assert crm.accounts.get(record).owner_id == alice.id


def test_a_claimer_from_whom_the_owner_is_hidden_is_not_told_the_owner(reps) -> None:
    crm, alice, _ = reps
    crm.roles.create("ownerless")
    crm.roles.grant("ownerless", "account:read", "all")
    crm.roles.grant("ownerless", "pool:claim", "all")
    crm.roles.set_field_rule("ownerless", "account", "owner_id", "hidden")
    erin = crm.users.create("erin", roles=["ownerless"])
    [record] = accounts(crm, alice, 1)
    with pytest.raises(crmkit.CRMError) as caught:
        crm.pool.claim("account", [record], actor=erin)
    assert str(caught.value) == f"account {record} is not in the pool: it has an owner"


def test_claims_over_the_daily_limit_are_refused_and_nothing_changes(reps) -> None:
    crm, alice, bob = reps
    ids = accounts(crm, alice, 5)
    crm.pool.add_policy("account", "30 days", 30)
    crm.pool.release(now=crmkit.utcnow() + LATER)
    crm.pool.claim("account", ids[:2], actor=bob)
    with pytest.raises(crmkit.CRMError, match="may claim 3 accounts a day and has claimed 2"):
        crm.pool.claim("account", ids[2:4], actor=bob)
    assert [crm.accounts.get(i).owner_id for i in ids[2:4]] == [None, None]
    with crm.transaction() as op:
        assert op.session.scalar(select(func.count()).select_from(PoolClaim)) == 2


def test_claims_over_the_ownership_limit_are_refused(reps) -> None:
    crm, alice, bob = reps
    accounts(crm, bob, 3)
    pool = accounts(crm, alice, 2)
    crm.pool.add_policy("account", "30 days", 30, when={"name__contains": "公司"})
    crm.pool.release(now=crmkit.utcnow() + LATER)
    # bob's own three were released too: give him three fresh ones
    accounts(crm, bob, 3)
    with pytest.raises(crmkit.CRMError, match="may own 4 open accounts and owns 3"):
        crm.pool.claim("account", pool, actor=bob)


def test_claiming_needs_pool_claim(reps) -> None:
    crm, _alice, _ = reps
    reader = crm.users.create("reader", roles=["read_only"])
    with pytest.raises(crmkit.PermissionDenied, match="pool:claim"):
        crm.pool.claim("account", [1], actor=reader)


@pytest.mark.parametrize(
    ("entity", "days", "when", "message"),
    [
        ("account", 0, {}, "days must be a whole number of at least 1"),
        ("account", 30, {"colour": "red"}, "unknown field"),
        ("task", 30, {}, "pool policies apply to"),
    ],
)
def test_bad_policies_are_refused(reps, entity: str, days: int, when: dict, message: str) -> None:
    crm, _, _ = reps
    with pytest.raises(crmkit.CRMError, match=message):
        crm.pool.add_policy(entity, "p", days, when=when)
    assert crm.pool.policies() == []


def test_a_policy_from_the_config_file(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(pool={"policies": [{"entity": "lead", "name": "7d", "days": 7}]})
    alice = crm.users.create("alice")
    lead = crm.leads.create({"full_name": "x", "owner_id": alice.id})
    assert crm.pool.release(now=crmkit.utcnow() + dt.timedelta(days=8))[0].records == 1
    assert crm.leads.get(lead.id).owner_id is None
