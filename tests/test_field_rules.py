"""Field rules: a field a role hides is absent from every record the actor reads, cannot be
filtered, sorted or searched on and cannot be written; a read-only field is shown but cannot
be written; a user's roles add up; administrators are unrestricted; custom fields obey the
same rules.

The roles (made with the role service):

- ``support``: reads, creates, updates and exports every contact; ``contact.email`` and the
  custom field ``contact.wechat_id`` hidden, ``contact.phone`` read-only.
- ``auditor``: reads every contact; ``contact.email`` read-only, ``contact.wechat_id``
  hidden.

The users: ``agent`` (support), ``mixed`` (support + sales_rep, which has no field rules),
``lenient`` (support + auditor) and ``boss`` (an administrator who also holds support).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import crmkit
from crmkit.entities.organisation import User
from crmkit.errors import PermissionDenied, ValidationError
from crmkit.services.roles import RoleService

CUSTOM_FIELDS = [{"entity": "contact", "name": "wechat_id", "type": "text"}]
EMAIL = "secret.person@example.com"
PHONE = "+8613812345678"


@dataclass
class Setup:
    crm: crmkit.CRM
    users: dict[str, User]
    contact_id: int

    def system_view(self) -> Any:
        """The contact as the system sees it (every field)."""
        return self.crm.contacts.get(self.contact_id)


@pytest.fixture
def setup(make_crm: Callable[..., crmkit.CRM]) -> Setup:
    crm = make_crm(custom_fields=CUSTOM_FIELDS)
    roles = RoleService(crm)
    roles.create("support")
    for action in ("read", "create", "update", "export"):
        roles.grant("support", f"contact:{action}", "all")
    roles.set_field_rule("support", "contact", "email", "hidden")
    roles.set_field_rule("support", "contact", "wechat_id", "hidden")
    roles.set_field_rule("support", "contact", "phone", "read_only")
    roles.create("auditor")
    roles.grant("auditor", "contact:read", "all")
    roles.set_field_rule("auditor", "contact", "email", "read_only")
    roles.set_field_rule("auditor", "contact", "wechat_id", "hidden")
    held = {
        "agent": ("support",),
        "mixed": ("support", "sales_rep"),
        "lenient": ("support", "auditor"),
        "boss": ("admin", "support"),
    }
    users = {
        name: crm.users.create(name, roles=roles_held, admin=name == "boss")
        for name, roles_held in held.items()
    }
    contact = crm.contacts.create(
        {"full_name": "张伟", "email": EMAIL, "phone": PHONE, "wechat_id": "wx-zhangwei"}
    )
    return Setup(crm, users, contact.id)


def field_names(error: pytest.ExceptionInfo[ValidationError]) -> list[str | None]:
    return [item.field for item in error.value.errors]


# -- a hidden field is not shown ---------------------------------------------------------------


def test_a_hidden_field_is_absent_from_a_record_got(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["agent"])

    assert "email" not in record
    assert not hasattr(record, "email")
    assert "email" not in record.to_dict()


def test_a_hidden_field_is_absent_from_a_listed_record(setup: Setup) -> None:
    (record,) = setup.crm.contacts.list(actor=setup.users["agent"]).items

    assert "email" not in record


def test_a_hidden_field_is_absent_from_an_iterated_record(setup: Setup) -> None:
    (record,) = setup.crm.contacts.iterate(actor=setup.users["agent"])

    assert "email" not in record


def test_a_hidden_field_is_absent_from_an_exported_record(setup: Setup) -> None:
    (record,) = setup.crm.contacts.export(actor=setup.users["agent"])

    assert "email" not in record


def test_a_hidden_field_is_absent_from_the_record_an_update_returns(setup: Setup) -> None:
    record = setup.crm.contacts.update(
        setup.contact_id, {"notes": "called"}, actor=setup.users["agent"]
    )

    assert record.notes == "called"
    assert "email" not in record


def test_a_hidden_field_is_absent_from_the_record_a_create_returns(setup: Setup) -> None:
    record = setup.crm.contacts.create({"full_name": "李娜"}, actor=setup.users["agent"])

    assert record.full_name == "李娜"
    assert "email" not in record


def test_the_other_fields_stay_visible(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["agent"])

    assert (record.full_name, record.phone) == ("张伟", PHONE)


# -- a hidden field cannot be filtered, sorted or searched on ----------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        {"email": EMAIL},
        {"email__ne": EMAIL},
        {"email__contains": "secret"},
        {"email__empty": False},
        {"email__in": [EMAIL]},
    ],
    ids=["eq", "ne", "contains", "empty", "in"],
)
@pytest.mark.parametrize("read", ["list", "count", "iterate"])
def test_filtering_on_a_hidden_field_is_refused(
    setup: Setup, read: str, filters: dict[str, object]
) -> None:
    service = setup.crm.contacts
    agent = setup.users["agent"]
    reads: dict[str, Callable[[], object]] = {
        "list": lambda: service.list(filters, actor=agent),
        "count": lambda: service.count(filters, actor=agent),
        "iterate": lambda: list(service.iterate(filters, actor=agent)),
    }

    with pytest.raises(ValidationError) as refused:
        reads[read]()

    assert field_names(refused) == ["email"]


@pytest.mark.parametrize("sort", ["email", "-email"])
def test_sorting_on_a_hidden_field_is_refused(setup: Setup, sort: str) -> None:
    with pytest.raises(ValidationError) as refused:
        setup.crm.contacts.list(sort=sort, actor=setup.users["agent"])

    assert field_names(refused) == ["email"]


def test_a_hidden_field_refused_in_a_filter_is_reported_like_an_unknown_one(setup: Setup) -> None:
    agent = setup.users["agent"]
    with pytest.raises(ValidationError) as hidden:
        setup.crm.contacts.count({"email": EMAIL}, actor=agent)
    with pytest.raises(ValidationError) as unknown:
        setup.crm.contacts.count({"no_such_field": EMAIL}, actor=agent)

    assert [e.message for e in hidden.value.errors] == [e.message for e in unknown.value.errors]


@pytest.mark.parametrize("search", [EMAIL, "secret.person"])
def test_a_search_does_not_match_on_a_hidden_field(setup: Setup, search: str) -> None:
    agent = setup.users["agent"]
    assert setup.crm.contacts.count(search=search) == 1  # the system finds it by e-mail

    found = (
        setup.crm.contacts.list(search=search, actor=agent).items,
        setup.crm.contacts.count(search=search, actor=agent),
    )

    assert found == ([], 0)


def test_a_search_by_phone_number_does_not_match_a_hidden_phone(setup: Setup) -> None:
    roles = RoleService(setup.crm)
    roles.create("privacy")
    roles.grant("privacy", "contact:read", "all")
    roles.set_field_rule("privacy", "contact", "phone", "hidden")
    clerk = setup.crm.users.create("clerk", roles=("privacy",))
    assert setup.crm.contacts.count(search="138 1234 5678") == 1

    assert setup.crm.contacts.count(search="138 1234 5678", actor=clerk) == 0


def test_a_search_still_matches_on_the_visible_fields(setup: Setup) -> None:
    assert setup.crm.contacts.count(search="张伟", actor=setup.users["agent"]) == 1


# -- a hidden field cannot be written ----------------------------------------------------------


def test_updating_a_hidden_field_is_refused_naming_it(setup: Setup) -> None:
    with pytest.raises(PermissionDenied, match=r"contact\.email"):
        setup.crm.contacts.update(
            setup.contact_id,
            {"notes": "moved", "email": "new@example.com"},
            actor=setup.users["agent"],
        )


def test_a_refused_update_of_a_hidden_field_changes_nothing(setup: Setup) -> None:
    before = setup.system_view()

    with pytest.raises(PermissionDenied):
        setup.crm.contacts.update(
            setup.contact_id,
            {"notes": "moved", "email": "new@example.com"},
            actor=setup.users["agent"],
        )

    assert setup.system_view() == before


def test_creating_a_record_with_a_hidden_field_is_refused_naming_it(setup: Setup) -> None:
    with pytest.raises(PermissionDenied, match=r"contact\.email"):
        setup.crm.contacts.create(
            {"full_name": "李娜", "email": "li@example.com"}, actor=setup.users["agent"]
        )

    assert setup.crm.contacts.count() == 1


def test_a_bulk_create_rejects_the_rows_that_set_a_hidden_field(setup: Setup) -> None:
    rows = [(1, {"full_name": "李娜"}), (2, {"full_name": "王芳", "email": "wf@example.com"})]

    result = setup.crm.contacts.create_many(rows, actor=setup.users["agent"])

    assert [(error.line, "contact.email" in error.message) for error in result.errors] == [
        (2, True)
    ]
    assert result.created == 1


# -- a read-only field -------------------------------------------------------------------------


def test_a_read_only_field_is_shown(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["agent"])

    assert record.phone == PHONE


def test_a_read_only_field_can_be_filtered_on(setup: Setup) -> None:
    found = setup.crm.contacts.count({"phone": "138 1234 5678"}, actor=setup.users["agent"])

    assert found == 1


def test_updating_a_read_only_field_is_refused_naming_it(setup: Setup) -> None:
    before = setup.system_view()

    with pytest.raises(PermissionDenied, match=r"contact\.phone \(read_only"):
        setup.crm.contacts.update(
            setup.contact_id, {"phone": "13900000000"}, actor=setup.users["agent"]
        )

    assert setup.system_view() == before


def test_creating_a_record_with_a_read_only_field_is_refused_naming_it(setup: Setup) -> None:
    with pytest.raises(PermissionDenied, match=r"contact\.phone"):
        setup.crm.contacts.create(
            {"full_name": "李娜", "phone": "13900000000"}, actor=setup.users["agent"]
        )

    assert setup.crm.contacts.count() == 1


# -- roles add up ------------------------------------------------------------------------------


def test_a_field_hidden_by_one_role_but_not_restricted_by_another_is_shown(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["mixed"])

    assert record.email == EMAIL


def test_a_field_hidden_by_one_role_but_not_restricted_by_another_can_be_written(
    setup: Setup,
) -> None:
    setup.crm.contacts.update(
        setup.contact_id, {"email": "new@example.com"}, actor=setup.users["mixed"]
    )

    assert setup.system_view().email == "new@example.com"


def test_a_field_hidden_by_one_role_and_read_only_by_another_is_shown(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["lenient"])

    assert record.email == EMAIL


def test_a_field_hidden_by_one_role_and_read_only_by_another_cannot_be_written(
    setup: Setup,
) -> None:
    with pytest.raises(PermissionDenied, match=r"contact\.email \(read_only"):
        setup.crm.contacts.update(
            setup.contact_id, {"email": "new@example.com"}, actor=setup.users["lenient"]
        )

    assert setup.system_view().email == EMAIL


def test_a_field_every_role_hides_stays_hidden(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["lenient"])

    assert "wechat_id" not in record.custom


# -- administrators ----------------------------------------------------------------------------


def test_an_administrator_sees_the_fields_their_other_role_hides(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["boss"])

    assert (record.email, record.custom["wechat_id"]) == (EMAIL, "wx-zhangwei")


def test_an_administrator_filters_and_sorts_on_any_field(setup: Setup) -> None:
    boss = setup.users["boss"]

    page = setup.crm.contacts.list(
        {"email": EMAIL, "wechat_id": "wx-zhangwei"}, sort="-email", actor=boss
    )

    assert [record.id for record in page.items] == [setup.contact_id]


def test_an_administrator_writes_any_field(setup: Setup) -> None:
    setup.crm.contacts.update(
        setup.contact_id,
        {"email": "new@example.com", "phone": "13900000000", "wechat_id": "wx-new"},
        actor=setup.users["boss"],
    )

    record = setup.system_view()
    assert (record.email, record.phone, record.custom["wechat_id"]) == (
        "new@example.com",
        "+8613900000000",
        "wx-new",
    )


# -- custom fields -----------------------------------------------------------------------------


def test_a_hidden_custom_field_is_absent_from_a_record(setup: Setup) -> None:
    record = setup.crm.contacts.get(setup.contact_id, actor=setup.users["agent"])

    assert "wechat_id" not in record.custom
    assert "wechat_id" not in record


def test_a_hidden_custom_field_is_absent_from_a_listed_record(setup: Setup) -> None:
    (record,) = setup.crm.contacts.list(actor=setup.users["agent"]).items

    assert "wechat_id" not in record.custom


@pytest.mark.parametrize("filters", [{"wechat_id": "wx-zhangwei"}, {"wechat_id__empty": False}])
def test_filtering_on_a_hidden_custom_field_is_refused(
    setup: Setup, filters: dict[str, object]
) -> None:
    with pytest.raises(ValidationError) as refused:
        setup.crm.contacts.count(filters, actor=setup.users["agent"])

    assert field_names(refused) == ["wechat_id"]


def test_sorting_on_a_hidden_custom_field_is_refused(setup: Setup) -> None:
    with pytest.raises(ValidationError) as refused:
        setup.crm.contacts.list(sort="wechat_id", actor=setup.users["agent"])

    assert field_names(refused) == ["wechat_id"]


def test_writing_a_hidden_custom_field_is_refused_naming_it(setup: Setup) -> None:
    with pytest.raises(PermissionDenied, match=r"contact\.wechat_id"):
        setup.crm.contacts.update(
            setup.contact_id, {"wechat_id": "wx-new"}, actor=setup.users["agent"]
        )

    assert setup.system_view().custom["wechat_id"] == "wx-zhangwei"


# -- rules belong to one entity ----------------------------------------------------------------


def test_a_rule_on_a_field_of_one_entity_leaves_the_same_field_of_another_alone(
    setup: Setup,
) -> None:
    RoleService(setup.crm).grant("support", "account:read", "all")
    account = setup.crm.accounts.create({"name": "上海贸易", "email": "info@example.com"})

    record = setup.crm.accounts.get(account.id, actor=setup.users["agent"])

    assert record.email == "info@example.com"
