"""crm.merges: survivorship, re-pointing every reference, audit, events, permissions, undo."""

from __future__ import annotations

from typing import Any

import pytest
from outbox_reader import outbox_events, outbox_names

import crmkit


def _contact(crm: crmkit.CRM, **values: Any) -> Any:
    return crm.contacts.create(values)


@pytest.fixture
def pair(crm: crmkit.CRM) -> tuple[Any, Any]:
    survivor = _contact(crm, full_name="張偉", phone="138 1234 5678", email="zw@example.cn")
    merged = _contact(
        crm,
        full_name="Zhang Wei",
        email="zhang.wei@example.com",
        title="采购经理",
        city="上海",
        extra_phones=["021 5888 1234"],
    )
    return survivor, merged


def test_a_merge_fills_the_survivor_repoints_references_and_soft_deletes_the_other(
    crm: crmkit.CRM, pair: tuple[Any, Any]
) -> None:
    survivor, merged = pair
    call = crm.activities.create({"kind": "call", "subject": "报价", "contact_id": merged.id})
    deal = crm.deals.create({"name": "年度合同", "contact_id": merged.id})

    result = crm.merges.merge("contact", survivor.id, merged.id)

    kept = crm.contacts.get(survivor.id)
    assert kept.full_name == "張偉"  # the survivor's own value stays
    assert kept.title == "采购经理"  # an empty field is filled from the merged record
    assert kept.city == "上海"
    assert kept.extra_emails == ["zhang.wei@example.com"]  # nothing is lost
    assert kept.extra_phones == ["+862158881234"]
    assert crm.activities.get(call.id).contact_id == survivor.id
    assert crm.deals.get(deal.id).contact_id == survivor.id
    with pytest.raises(crmkit.NotFoundError):
        crm.contacts.get(merged.id)
    assert result.moved == {"activities.contact_id": 1, "deals.contact_id": 1}


def test_a_merge_is_audited_as_sensitive_and_emits_contact_merged(
    crm: crmkit.CRM, pair: tuple[Any, Any]
) -> None:
    survivor, merged = pair
    admin = crm.users.create("root", admin=True)

    result = crm.merges.merge("contact", survivor.id, merged.id, actor=admin)

    (entry,) = crm.audit.query(operation="merge", sensitive=True)
    assert (entry.entity, entry.record_id, entry.actor_id) == ("contact", survivor.id, admin.id)
    (event,) = outbox_events(crm, "contact.merged")
    assert event.payload["merged_id"] == merged.id
    assert event.payload["merge_id"] == result.merge_id
    assert "security.sensitive_operation" in outbox_names(crm)
    assert any(note.title.endswith(": merge") for note in crm.audit.inbox("root"))


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("survivor", "+8613812345678"),
        ("merged", "+8613900001111"),
        ("most_recent", "+8613900001111"),
        ("most_complete", "+8613812345678"),
    ],
)
def test_survivorship_strategies(crm: crmkit.CRM, strategy: str, expected: str) -> None:
    first = _contact(crm, full_name="李娜", phone="13812345678")
    second = _contact(crm, full_name="李娜", phone="13900001111")
    crm.contacts.update(second.id, {"title": "经理"})  # second is the most recent

    crm.merges.merge("contact", first.id, second.id, strategy=strategy)

    assert crm.contacts.get(first.id).phone == expected


def test_owner_strategy_takes_the_values_of_the_record_the_owner_holds(crm: crmkit.CRM) -> None:
    owner = crm.users.create("mei", admin=True)
    first = _contact(crm, full_name="李娜", phone="13812345678")
    second = crm.contacts.create({"full_name": "李娜", "phone": "13900001111"}, actor=owner)

    crm.merges.merge("contact", first.id, second.id, strategy="owner", owner_id=owner.id)

    assert crm.contacts.get(first.id).phone == "+8613900001111"


def test_a_field_chosen_per_field_overrides_the_strategy(crm: crmkit.CRM) -> None:
    first = _contact(crm, full_name="李娜", phone="13812345678", title="A")
    second = _contact(crm, full_name="Li Na", phone="13900001111", title="B")

    crm.merges.merge("contact", first.id, second.id, fields={"phone": "merged"})

    kept = crm.contacts.get(first.id)
    assert (kept.phone, kept.title, kept.full_name) == ("+8613900001111", "A", "李娜")


def test_undo_restores_both_records_and_every_reference(
    crm: crmkit.CRM, pair: tuple[Any, Any]
) -> None:
    survivor, merged = pair
    call = crm.activities.create({"kind": "call", "subject": "报价", "contact_id": merged.id})
    own = crm.activities.create({"kind": "note", "subject": "备注", "contact_id": survivor.id})
    result = crm.merges.merge("contact", survivor.id, merged.id)

    crm.merges.undo(result.merge_id)

    back = crm.contacts.get(merged.id)
    assert back.full_name == "Zhang Wei"
    kept = crm.contacts.get(survivor.id)
    assert (kept.title, kept.city, kept.extra_emails) == (None, None, [])
    assert crm.activities.get(call.id).contact_id == merged.id
    assert crm.activities.get(own.id).contact_id == survivor.id
    assert "contact.merge_undone" in outbox_names(crm)
    with pytest.raises(crmkit.ConflictError, match="already undone"):
        crm.merges.undo(result.merge_id)


def test_undo_after_a_change_is_refused_and_changes_nothing(
    crm: crmkit.CRM, pair: tuple[Any, Any]
) -> None:
    survivor, merged = pair
    result = crm.merges.merge("contact", survivor.id, merged.id)
    crm.contacts.update(survivor.id, {"title": "总监"})
    before = crm.contacts.get(survivor.id)

    with pytest.raises(crmkit.ConflictError, match="changed since the merge"):
        crm.merges.undo(result.merge_id)

    after = crm.contacts.get(survivor.id)
    assert (after.version, after.title) == (before.version, "总监")
    with pytest.raises(crmkit.NotFoundError):
        crm.contacts.get(merged.id)


def test_merging_a_record_with_itself_is_refused(crm: crmkit.CRM, pair: tuple[Any, Any]) -> None:
    survivor, _ = pair
    with pytest.raises(crmkit.ValidationError, match="with itself"):
        crm.merges.merge("contact", survivor.id, survivor.id)
    assert crm.contacts.get(survivor.id).version == survivor.version


def test_merging_with_a_deleted_record_is_refused_and_changes_nothing(
    crm: crmkit.CRM, pair: tuple[Any, Any]
) -> None:
    survivor, merged = pair
    crm.contacts.delete(merged.id)

    with pytest.raises(crmkit.ValidationError, match="is deleted"):
        crm.merges.merge("contact", survivor.id, merged.id)

    assert crm.contacts.get(survivor.id).version == survivor.version
    assert crm.audit.query(operation="merge") == []


def test_unknown_fields_and_strategies_are_refused_before_anything_changes(
    crm: crmkit.CRM, pair: tuple[Any, Any]
) -> None:
    survivor, merged = pair
    with pytest.raises(crmkit.ValidationError, match="no field 'shoe_size'"):
        crm.merges.merge("contact", survivor.id, merged.id, fields={"shoe_size": "merged"})
    with pytest.raises(crmkit.ValidationError, match="unknown strategy"):
        crm.merges.merge("contact", survivor.id, merged.id, strategy="loudest")
    assert crm.contacts.get(merged.id).version == merged.version


def test_a_record_the_actor_may_not_see_cannot_be_merged(crm: crmkit.CRM) -> None:
    crm.users.create_team("East")
    crm.users.create_team("West")
    boss = crm.users.create("boss", team="East", roles=("manager",))
    other = crm.users.create("other", team="West", roles=("manager",))
    mine = crm.contacts.create({"full_name": "王伟", "phone": "13812345678"}, actor=boss)
    theirs = crm.contacts.create({"full_name": "王伟", "phone": "13812345678"}, actor=other)

    with pytest.raises(crmkit.NotFoundError):
        crm.merges.merge("contact", mine.id, theirs.id, actor=boss)

    assert crm.contacts.get(theirs.id).version == theirs.version
    assert crm.audit.query(operation="merge") == []


def test_merging_needs_the_merge_permission(crm: crmkit.CRM) -> None:
    rep = crm.users.create("rep", roles=("sales_rep",))
    first = crm.contacts.create({"full_name": "王伟"}, actor=rep)
    second = crm.contacts.create({"full_name": "王伟"}, actor=rep)

    with pytest.raises(crmkit.PermissionDenied, match="contact:merge"):
        crm.merges.merge("contact", first.id, second.id, actor=rep)

    assert crm.contacts.get(second.id).version == second.version


class _Tracker:
    """A plugin keeping a contact id in JSON (not a foreign key), moved by the merge hook."""

    def __init__(self) -> None:
        self.favourites: dict[str, int] = {}

    @crmkit.hookimpl
    def crmkit_merge_references(
        self, op: crmkit.Operation, entity: str, survivor_id: int, merged_id: int
    ) -> dict[str, Any]:
        moved = [key for key, value in self.favourites.items() if value == merged_id]
        for key in moved:
            self.favourites[key] = survivor_id
        return {"tracker": moved}

    @crmkit.hookimpl
    def crmkit_undo_merge_references(
        self,
        op: crmkit.Operation,
        entity: str,
        survivor_id: int,
        merged_id: int,
        moved: dict[str, Any],
    ) -> None:
        for key in moved.get("tracker", []):
            self.favourites[key] = merged_id


def test_plugins_move_their_own_references_and_move_them_back(make_crm: Any) -> None:
    tracker = _Tracker()
    crm = make_crm(plugins={"tracker": tracker})
    first = crm.contacts.create({"full_name": "陈静"})
    second = crm.contacts.create({"full_name": "Chen Jing"})
    tracker.favourites["vip"] = second.id

    result = crm.merges.merge("contact", first.id, second.id)
    assert tracker.favourites["vip"] == first.id

    crm.merges.undo(result.merge_id)
    assert tracker.favourites["vip"] == second.id


def test_a_table_keyed_by_the_record_is_left_to_its_plugin(make_crm: Any) -> None:
    """The insight plugin keeps one row per customer, keyed by the contact (no ``id``): the
    core re-points the other references and leaves that row to the plugin."""
    crm = make_crm(enable=["insights"])
    survivor = _contact(crm, full_name="張偉", phone="138 1234 5678")
    merged = _contact(crm, full_name="Zhang Wei", email="zhang.wei@example.com")
    call = crm.activities.create({"kind": "call", "subject": "报价", "contact_id": merged.id})

    result = crm.merges.merge("contact", survivor.id, merged.id)

    assert crm.activities.get(call.id).contact_id == survivor.id
    assert result.moved == {"activities.contact_id": 1}
