"""The record service: create, read, update and delete of every core entity, the system
columns it maintains (owner, team, actors, timestamps, version), and input validation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from outbox_reader import outbox_events, outbox_names

import crmkit

# A valid new record and a real change of it, per core entity.
SAMPLES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "contact": ({"full_name": "张伟", "phone": "138 1234 5678"}, {"city": "上海"}),
    "account": ({"name": "上海贸易有限公司"}, {"industry": "Trade"}),
    "lead": ({"full_name": "Li Na", "company_name": "Acme"}, {"status": "working"}),
    "deal": ({"name": "Big order", "amount": "1000"}, {"amount": "1200.50"}),
    "activity": ({"kind": "call", "subject": "First call"}, {"body": "asked for a quote"}),
    "task": ({"title": "Send quote"}, {"status": "done"}),
}
ENTITIES = sorted(SAMPLES)


@pytest.fixture
def rep(crm: crmkit.CRM) -> crmkit.User:
    """A sales rep in the "East" team."""
    crm.users.create_team("East")
    return crm.users.create("alice", team="East")


@pytest.fixture
def other_rep(crm: crmkit.CRM) -> crmkit.User:
    """A second rep, in another team."""
    crm.users.create_team("West")
    return crm.users.create("bob", team="West")


def create(crm: crmkit.CRM, entity: str, actor: crmkit.User | None = None) -> Any:
    return crm.records(entity).create(SAMPLES[entity][0], actor=actor)


# -- create and read -------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES)
def test_a_created_record_can_be_read_back_by_id(crm: crmkit.CRM, entity: str) -> None:
    created = create(crm, entity)

    loaded = crm.records(entity).get(created.id)

    service = crm.records(entity)
    assert service.snapshot(loaded) == service.snapshot(created)


@pytest.mark.parametrize("entity", ENTITIES)
def test_create_makes_the_actor_owner_and_their_team_the_team(
    crm: crmkit.CRM, rep: crmkit.User, entity: str
) -> None:
    record = create(crm, entity, actor=rep)

    assert (record.owner_id, record.team_id) == (rep.id, rep.team_id)


@pytest.mark.parametrize("entity", ENTITIES)
def test_create_records_the_actor_as_creator_and_last_updater(
    crm: crmkit.CRM, rep: crmkit.User, entity: str
) -> None:
    record = create(crm, entity, actor=rep)

    assert (record.created_by_id, record.updated_by_id) == (rep.id, rep.id)


@pytest.fixture
def admin(crm: crmkit.CRM) -> crmkit.User:
    """An administrator: unrestricted, so these tests are about records, not permissions."""
    return crm.users.create("root", admin=True)


def test_an_explicit_owner_wins_over_the_actor(
    crm: crmkit.CRM, admin: crmkit.User, other_rep: crmkit.User
) -> None:
    contact = crm.contacts.create({"full_name": "王芳", "owner_id": other_rep.id}, actor=admin)

    assert contact.owner_id == other_rep.id


def test_a_record_created_by_the_system_has_no_owner_or_creator(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "王芳"})

    assert (contact.owner_id, contact.team_id, contact.created_by_id) == (None, None, None)


@pytest.mark.parametrize("entity", ENTITIES)
def test_timestamps_are_timezone_aware_utc(crm: crmkit.CRM, entity: str) -> None:
    record = crm.records(entity).get(create(crm, entity).id)

    assert record.created_at.utcoffset() == dt.timedelta(0)
    assert record.updated_at.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize("entity", ENTITIES)
def test_a_new_record_is_at_version_1(crm: crmkit.CRM, entity: str) -> None:
    assert create(crm, entity).version == 1


@pytest.mark.parametrize("entity", ENTITIES)
def test_creating_a_record_emits_its_created_event(crm: crmkit.CRM, entity: str) -> None:
    record = create(crm, entity)

    (event,) = outbox_events(crm, f"{entity}.created")
    assert (event.record_type, event.record_id) == (entity, record.id)


def test_the_created_event_carries_the_normalised_values_and_the_actor(
    crm: crmkit.CRM, rep: crmkit.User
) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "phone": "138 1234 5678"}, actor=rep)

    (event,) = outbox_events(crm, "contact.created")
    assert event.actor_id == rep.id
    assert event.payload["phone"] == "+8613812345678"
    assert event.payload["id"] == contact.id


def test_getting_a_missing_record_is_not_found(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.NotFoundError, match="contact 999 not found"):
        crm.contacts.get(999)


# -- update ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES)
def test_each_real_change_bumps_the_version_by_one(crm: crmkit.CRM, entity: str) -> None:
    record = create(crm, entity)

    updated = crm.records(entity).update(record.id, SAMPLES[entity][1])

    assert updated.version == 2


@pytest.mark.parametrize("entity", ENTITIES)
def test_an_update_is_stored(crm: crmkit.CRM, entity: str) -> None:
    record = create(crm, entity)
    service = crm.records(entity)

    updated = service.update(record.id, SAMPLES[entity][1])

    assert service.snapshot(service.get(record.id)) == service.snapshot(updated)
    assert service.snapshot(updated) != service.snapshot(record)


def test_an_update_records_who_changed_it_and_when(
    crm: crmkit.CRM, rep: crmkit.User, admin: crmkit.User
) -> None:
    contact = crm.contacts.create({"full_name": "王芳"}, actor=rep)

    updated = crm.contacts.update(contact.id, {"city": "北京"}, actor=admin)

    assert (updated.created_by_id, updated.updated_by_id) == (rep.id, admin.id)
    assert updated.created_at == contact.created_at
    assert updated.updated_at > contact.updated_at


def test_an_update_does_not_change_the_owner(
    crm: crmkit.CRM, rep: crmkit.User, admin: crmkit.User
) -> None:
    contact = crm.contacts.create({"full_name": "王芳"}, actor=rep)

    updated = crm.contacts.update(contact.id, {"city": "北京"}, actor=admin)

    assert (updated.owner_id, updated.team_id) == (rep.id, rep.team_id)


def test_an_update_emits_the_changes_and_the_previous_values(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "王芳", "city": "北京"})

    crm.contacts.update(contact.id, {"city": "上海", "title": "经理"})

    (event,) = outbox_events(crm, "contact.updated")
    assert event.payload == {
        "changes": {"city": "上海", "title": "经理"},
        "previous": {"city": "北京", "title": None},
    }


def test_an_update_that_changes_nothing_keeps_the_version(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "phone": "+8613812345678"})

    # the same number as typed by a person: equal once normalised
    unchanged = crm.contacts.update(contact.id, {"phone": "138 1234 5678", "full_name": "张伟"})

    assert unchanged.version == 1
    assert unchanged.updated_at == contact.updated_at


def test_an_update_that_changes_nothing_emits_no_event(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "phone": "+8613812345678"})

    crm.contacts.update(contact.id, {"phone": "138-1234-5678"})

    assert outbox_names(crm) == ["pipeline.created", "contact.created"]


def test_only_the_changed_fields_are_in_the_update_event(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "city": "上海"})

    crm.contacts.update(contact.id, {"full_name": "张伟", "city": "上海", "title": "CEO"})

    (event,) = outbox_events(crm, "contact.updated")
    assert event.payload["changes"] == {"title": "CEO"}


def test_clearing_a_field_with_an_empty_string_stores_no_value(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "city": "上海"})

    updated = crm.contacts.update(contact.id, {"city": ""})

    assert updated.city is None


def test_updating_a_missing_record_is_not_found(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.NotFoundError):
        crm.contacts.update(999, {"city": "上海"})


# -- delete ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ENTITIES)
def test_a_deleted_record_is_no_longer_found(crm: crmkit.CRM, entity: str) -> None:
    record = create(crm, entity)

    crm.records(entity).delete(record.id)

    with pytest.raises(crmkit.NotFoundError):
        crm.records(entity).get(record.id)


def test_deleting_emits_a_deleted_event_with_the_last_values(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "王芳", "city": "北京"})

    crm.contacts.delete(contact.id)

    (event,) = outbox_events(crm, "contact.deleted")
    assert event.record_id == contact.id
    assert event.payload["previous"]["city"] == "北京"


def test_deleting_twice_is_not_found(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "王芳"})
    crm.contacts.delete(contact.id)

    with pytest.raises(crmkit.NotFoundError):
        crm.contacts.delete(contact.id)


def test_a_deleted_record_cannot_be_updated(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "王芳"})
    crm.contacts.delete(contact.id)

    with pytest.raises(crmkit.NotFoundError):
        crm.contacts.update(contact.id, {"city": "北京"})


# -- normalisation on write ------------------------------------------------------------------


def test_phone_numbers_are_stored_in_e164(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "phone": "(021) 6234-5678 转 801"})

    assert contact.phone == "+862162345678;ext=801"


def test_phone_numbers_are_read_with_the_configured_region(make_crm: Any) -> None:
    crm = make_crm(default_region="TW")

    contact = crm.contacts.create({"full_name": "陳美玲", "phone": "0912-345-678"})

    assert contact.phone == "+886912345678"


def test_email_addresses_are_lower_cased(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "email": " Zhang.Wei@Example.COM "})

    assert contact.email == "zhang.wei@example.com"


def test_full_width_letters_in_names_become_ascii(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "ＡＬＩＣＥ　Ｗａｎｇ"})

    assert contact.full_name == "ALICE Wang"


def test_extra_phones_from_a_csv_cell_are_split_and_normalised(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create(
        {"full_name": "张伟", "extra_phones": "138 1234 5678; 021-6234 5678"}
    )

    assert contact.extra_phones == ["+8613812345678", "+862162345678"]


def test_an_aware_datetime_is_stored_in_utc(crm: crmkit.CRM) -> None:
    activity = crm.activities.create(
        {"kind": "visit", "subject": "到访", "occurred_at": "2024-03-01T09:30:00+08:00"}
    )

    assert activity.occurred_at == dt.datetime(2024, 3, 1, 1, 30, tzinfo=dt.UTC)
    assert crm.activities.get(activity.id).occurred_at.utcoffset() == dt.timedelta(0)


def test_a_decimal_amount_keeps_its_cents(crm: crmkit.CRM) -> None:
    deal = crm.deals.create({"name": "Order", "amount": "1,234.56"})

    assert str(crm.deals.get(deal.id).amount) == "1234.56"


# -- validation ------------------------------------------------------------------------------


def field_errors(error: pytest.ExceptionInfo[crmkit.ValidationError]) -> dict[str, str]:
    return {item.field: item.message for item in error.value.errors}


def test_an_unknown_field_is_refused_by_name(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "张伟", "nickname": "伟哥"})

    assert field_errors(error) == {"nickname": "unknown field of contact"}


@pytest.mark.parametrize("field", ["id", "version", "created_at", "deleted_at", "custom"])
def test_a_system_field_cannot_be_set_on_create(crm: crmkit.CRM, field: str) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "张伟", field: 5})

    assert "cannot be set" in field_errors(error)[field]


@pytest.mark.parametrize("field", ["id", "version", "updated_by_id"])
def test_a_system_field_cannot_be_set_on_update(crm: crmkit.CRM, field: str) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})

    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.update(contact.id, {field: 7})

    assert field in field_errors(error)
    assert crm.contacts.get(contact.id).version == 1


@pytest.mark.parametrize(
    ("entity", "required"),
    [
        ("contact", {"full_name"}),
        ("account", {"name"}),
        ("lead", {"full_name"}),
        ("deal", {"name"}),
        ("activity", {"kind", "subject"}),
        ("task", {"title"}),
    ],
)
def test_every_missing_required_field_is_named(
    crm: crmkit.CRM, entity: str, required: set[str]
) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.records(entity).create({})

    assert field_errors(error) == dict.fromkeys(required, "is required")


@pytest.mark.parametrize("blank", ["", "   ", "\u3000"])
def test_a_blank_required_field_is_missing(crm: crmkit.CRM, blank: str) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": blank})

    assert field_errors(error) == {"full_name": "is required"}


def test_a_required_field_cannot_be_cleared(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})

    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.update(contact.id, {"full_name": ""})

    assert field_errors(error) == {"full_name": "is required"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("full_name", "张" * 201), ("country", "CHN"), ("postal_code", "1" * 21)],
)
def test_a_too_long_string_is_refused(crm: crmkit.CRM, field: str, value: str) -> None:
    data = {"full_name": "张伟", field: value}

    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create(data)

    assert "longer than" in field_errors(error)[field]


def test_a_string_exactly_at_the_limit_is_accepted(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张" * 200})

    assert len(crm.contacts.get(contact.id).full_name) == 200


@pytest.mark.parametrize(
    ("entity", "data", "field"),
    [
        ("contact", {"full_name": "张伟", "lifecycle_stage": "vip"}, "lifecycle_stage"),
        ("account", {"name": "Acme", "lifecycle_stage": "Prospect"}, "lifecycle_stage"),
        ("lead", {"full_name": "张伟", "status": "hot"}, "status"),
        ("activity", {"kind": "fax", "subject": "x"}, "kind"),
        ("task", {"title": "x", "status": "maybe"}, "status"),
    ],
)
def test_a_value_outside_a_fixed_set_is_refused(
    crm: crmkit.CRM, entity: str, data: dict[str, str], field: str
) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.records(entity).create(data)

    assert "is not one of" in field_errors(error)[field]


@pytest.mark.parametrize("value", ["1990-02-30", "yesterday", "30/01/1990"])
def test_an_invalid_date_is_refused(crm: crmkit.CRM, value: str) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "张伟", "birthday": value})

    assert "birthday" in field_errors(error)


@pytest.mark.parametrize(
    "value",
    [dt.datetime(2024, 3, 1, 9, 30), "2024-03-01T09:30:00", "2024-03-01 09:30", "soon"],
)
def test_a_datetime_without_a_time_zone_is_refused(crm: crmkit.CRM, value: object) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.activities.create({"kind": "call", "subject": "x", "occurred_at": value})

    assert "occurred_at" in field_errors(error)


@pytest.mark.parametrize(
    ("entity", "data", "field"),
    [
        ("deal", {"name": "x", "amount": "abc"}, "amount"),
        ("deal", {"name": "x", "amount": "NaN"}, "amount"),
        ("deal", {"name": "x", "amount": True}, "amount"),
        ("task", {"title": "x", "priority": "high"}, "priority"),
        ("task", {"title": "x", "priority": "1.5"}, "priority"),
        (
            "activity",
            {"kind": "call", "subject": "x", "duration_minutes": "ten"},
            "duration_minutes",
        ),
    ],
)
def test_an_invalid_number_is_refused(
    crm: crmkit.CRM, entity: str, data: dict[str, object], field: str
) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.records(entity).create(data)

    assert field in field_errors(error)


@pytest.mark.parametrize(
    ("field", "value"), [("email", "not-an-email"), ("phone", "call me"), ("phone", "12")]
)
def test_an_invalid_email_or_phone_is_refused(crm: crmkit.CRM, field: str, value: str) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "张伟", field: value})

    assert field in field_errors(error)


def test_every_bad_field_is_reported_at_once(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "张伟", "email": "nope", "birthday": "never"})

    assert set(field_errors(error)) == {"email", "birthday"}


@pytest.mark.parametrize("entity", ["contact", "deal", "activity", "task"])
def test_a_link_to_a_missing_account_is_refused(crm: crmkit.CRM, entity: str) -> None:
    data = {**SAMPLES[entity][0], "account_id": 999}

    with pytest.raises(crmkit.ValidationError) as error:
        crm.records(entity).create(data)

    assert field_errors(error) == {"account_id": "account 999 does not exist"}


def test_a_link_to_a_deleted_account_is_refused(crm: crmkit.CRM) -> None:
    account = crm.accounts.create({"name": "Acme"})
    crm.accounts.delete(account.id)

    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "张伟", "account_id": account.id})

    assert "account_id" in field_errors(error)


def test_an_update_linking_a_deleted_account_is_refused(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟"})
    account = crm.accounts.create({"name": "Acme"})
    crm.accounts.delete(account.id)

    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.update(contact.id, {"account_id": account.id})

    assert "account_id" in field_errors(error)
    assert crm.contacts.get(contact.id).account_id is None


def test_an_owner_who_is_not_a_user_is_refused(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError) as error:
        crm.contacts.create({"full_name": "张伟", "owner_id": 999})

    assert field_errors(error) == {"owner_id": "user 999 does not exist"}


def test_a_link_to_a_live_account_is_stored(crm: crmkit.CRM) -> None:
    account = crm.accounts.create({"name": "Acme"})

    contact = crm.contacts.create({"full_name": "张伟", "account_id": str(account.id)})

    assert contact.account_id == account.id


@pytest.mark.parametrize(
    "data",
    [
        {"full_name": "张伟", "nickname": "x"},
        {"full_name": "张伟", "version": 3},
        {"full_name": ""},
        {"full_name": "张伟", "lifecycle_stage": "vip"},
        {"full_name": "张伟", "birthday": "1990-02-30"},
        {"full_name": "张伟", "account_id": 999},
        {"full_name": "张伟", "country": "CHN"},
    ],
    ids=["unknown", "system", "required", "enum", "date", "link", "length"],
)
def test_a_refused_create_writes_nothing(crm: crmkit.CRM, data: dict[str, object]) -> None:
    with pytest.raises(crmkit.ValidationError):
        crm.contacts.create(data)

    assert crm.contacts.count() == 0
    assert outbox_names(crm) == ["pipeline.created"]


def test_a_refused_update_changes_nothing(crm: crmkit.CRM) -> None:
    contact = crm.contacts.create({"full_name": "张伟", "city": "上海"})

    with pytest.raises(crmkit.ValidationError):
        crm.contacts.update(contact.id, {"city": "北京", "birthday": "1990-02-30"})

    stored = crm.contacts.get(contact.id)
    assert (stored.city, stored.version) == ("上海", 1)
    assert outbox_names(crm) == ["pipeline.created", "contact.created"]
