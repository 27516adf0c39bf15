"""Roles: the built-in ones, grants with scopes, field rules, who holds which role, and the
refusals that leave everything as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from outbox_reader import outbox_events, outbox_names
from sqlalchemy.orm import Session

import crmkit
from crmkit.permissions.access import Access, load_access
from crmkit.permissions.catalogue import BUILTIN_ROLES
from crmkit.permissions.models import FieldAccess, Scope
from crmkit.services.roles import RoleInfo, RoleService


@pytest.fixture
def roles(crm: crmkit.CRM) -> RoleService:
    return crm.roles


def access_of(crm: crmkit.CRM, username: str) -> Access:
    user = crm.users.get(username)
    with Session(crm.engine) as session:
        return load_access(session, user)


def grants(role: RoleInfo) -> dict[str, Scope]:
    return {grant.permission: grant.scope for grant in role.grants}


# -- built-in roles ----------------------------------------------------------------------------


def test_the_built_in_roles_are_created_with_their_grants(roles: RoleService) -> None:
    roles.ensure_builtin_roles()

    for name, (description, granted) in BUILTIN_ROLES.items():
        role = roles.get(name)
        assert role.is_builtin
        assert role.description == description
        assert {p: s for p, s in grants(role).items() if p in granted} == dict(granted)


def test_creating_the_built_in_roles_again_changes_nothing(roles: RoleService) -> None:
    roles.ensure_builtin_roles()
    before = roles.list()

    changed = roles.ensure_builtin_roles()

    assert changed == {"created": [], "admin_granted": []}
    assert roles.list() == before


def test_the_admin_role_holds_every_permission_with_scope_all(roles: RoleService) -> None:
    roles.ensure_builtin_roles()

    admin = roles.get("admin")

    assert grants(admin) == dict.fromkeys(roles.permissions(), Scope.ALL)


class LoyaltyPermissions:
    """A plugin that declares two permissions of its own."""

    @crmkit.hookimpl
    def crmkit_permissions(self) -> list[str]:
        return ["loyalty:redeem", "loyalty:adjust"]


def test_the_admin_role_gets_the_permissions_plugins_declare(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    roles = make_crm(plugins={"loyalty": LoyaltyPermissions()}).roles

    roles.ensure_builtin_roles()

    admin = grants(roles.get("admin"))
    assert admin["loyalty:redeem"] == admin["loyalty:adjust"] == Scope.ALL


def test_the_built_in_roles_appear_without_being_asked_for(roles: RoleService) -> None:
    assert [role.name for role in roles.list()] == ["admin", "manager", "read_only", "sales_rep"]


def test_a_built_in_role_cannot_be_deleted(roles: RoleService) -> None:
    with pytest.raises(crmkit.CRMError, match="'manager' is built in and cannot be deleted"):
        roles.delete("manager")

    assert roles.get("manager").is_builtin


# -- roles of one's own ------------------------------------------------------------------------


def test_a_new_role_has_no_grants(roles: RoleService) -> None:
    roles.create("support", "Answers the phone")

    role = roles.get("support")
    assert (role.description, role.grants, role.is_builtin) == ("Answers the phone", (), False)


def test_a_role_name_that_exists_is_refused(roles: RoleService) -> None:
    roles.create("support")

    with pytest.raises(crmkit.ValidationError, match="role 'support' exists"):
        roles.create("support")


def test_deleting_a_role_removes_it(roles: RoleService) -> None:
    roles.create("support")
    roles.grant("support", "contact:read", "all")

    roles.delete("support")

    with pytest.raises(crmkit.NotFoundError):
        roles.get("support")


def test_a_role_active_users_hold_cannot_be_deleted(crm: crmkit.CRM, roles: RoleService) -> None:
    roles.create("support")
    crm.users.create("alice", roles=["support"])

    with pytest.raises(crmkit.CRMError, match="still held by alice: unassign it first"):
        roles.delete("support")

    assert roles.get("support").holders == ("alice",)


def test_an_unknown_role_suggests_the_name_meant(roles: RoleService) -> None:
    with pytest.raises(crmkit.NotFoundError, match="role 'salesrep' not found; did you mean"):
        roles.grant("salesrep", "contact:read")


# -- grants ------------------------------------------------------------------------------------


def test_granting_a_permission_adds_it_with_its_scope(roles: RoleService) -> None:
    roles.create("support")

    roles.grant("support", "contact:read", "subtree")

    assert grants(roles.get("support")) == {"contact:read": Scope.SUBTREE}


def test_granting_a_permission_again_replaces_its_scope(roles: RoleService) -> None:
    roles.create("support")
    roles.grant("support", "contact:read", "own")

    roles.grant("support", "contact:read", Scope.ALL)

    assert grants(roles.get("support")) == {"contact:read": Scope.ALL}


def test_a_record_permission_is_granted_for_own_records_by_default(roles: RoleService) -> None:
    roles.create("support")

    roles.grant("support", "task:update")
    roles.grant("support", "audit:read")

    assert grants(roles.get("support")) == {"task:update": Scope.OWN, "audit:read": Scope.ALL}


def test_an_unknown_permission_is_refused_with_the_close_ones_and_nothing_changes(
    roles: RoleService,
) -> None:
    roles.create("support")

    with pytest.raises(crmkit.ValidationError, match="did you mean contact:read"):
        roles.grant("support", "contact:raed", "own")

    assert roles.get("support").grants == ()


def test_an_unknown_scope_is_refused_with_the_four_scopes(roles: RoleService) -> None:
    roles.create("support")

    with pytest.raises(crmkit.ValidationError, match="use one of own, team, subtree, all"):
        roles.grant("support", "contact:read", "company")

    assert roles.get("support").grants == ()


def test_the_admin_role_cannot_be_narrowed(roles: RoleService) -> None:
    with pytest.raises(crmkit.CRMError, match="admin role: it always holds every permission"):
        roles.revoke("admin", "contact:delete")

    assert grants(roles.get("admin"))["contact:delete"] is Scope.ALL


def test_revoking_a_permission_removes_it(roles: RoleService) -> None:
    roles.create("support")
    roles.grant("support", "contact:read", "all")
    roles.grant("support", "task:read", "all")

    roles.revoke("support", "contact:read")

    assert grants(roles.get("support")) == {"task:read": Scope.ALL}


def test_revoking_a_permission_the_role_does_not_grant_is_an_error(roles: RoleService) -> None:
    roles.create("support")

    with pytest.raises(crmkit.CRMError, match="role 'support' does not grant contact:read"):
        roles.revoke("support", "contact:read")


def test_a_granted_permission_reaches_the_holders_access(
    crm: crmkit.CRM, roles: RoleService
) -> None:
    crm.users.create("alice")

    roles.grant("sales_rep", "contact:export", "team")

    assert access_of(crm, "alice").scope("contact:export") is Scope.TEAM


# -- field rules -------------------------------------------------------------------------------


def test_a_field_rule_is_stored_with_the_role(roles: RoleService) -> None:
    roles.set_field_rule("sales_rep", "account", "value_tier", "read_only")

    (rule,) = roles.get("sales_rep").field_rules
    assert (rule.entity, rule.field, rule.access) == (
        "account",
        "value_tier",
        FieldAccess.READ_ONLY,
    )


def test_setting_a_field_rule_again_replaces_its_access(roles: RoleService) -> None:
    roles.set_field_rule("sales_rep", "contact", "phone", "read_only")

    roles.set_field_rule("sales_rep", "contact", "phone", "hidden")

    (rule,) = roles.get("sales_rep").field_rules
    assert rule.access is FieldAccess.HIDDEN


def test_a_field_rule_may_name_a_custom_field(make_crm: Callable[..., crmkit.CRM]) -> None:
    crm = make_crm(custom_fields=[{"entity": "contact", "name": "wechat", "type": "text"}])
    roles = crm.roles

    roles.set_field_rule("sales_rep", "contact", "wechat", "hidden")

    assert [rule.field for rule in roles.get("sales_rep").field_rules] == ["wechat"]


def test_a_field_rule_on_an_unknown_field_is_refused_with_the_close_ones(
    roles: RoleService,
) -> None:
    with pytest.raises(crmkit.ValidationError, match="contact has no field 'phnoe'; did you mean"):
        roles.set_field_rule("sales_rep", "contact", "phnoe", "hidden")

    assert roles.get("sales_rep").field_rules == ()


def test_a_field_rule_on_an_unknown_entity_is_refused(roles: RoleService) -> None:
    with pytest.raises(crmkit.CRMError, match="unknown entity 'customer'"):
        roles.set_field_rule("sales_rep", "customer", "phone", "hidden")


def test_a_field_rule_with_an_unknown_access_is_refused(roles: RoleService) -> None:
    with pytest.raises(crmkit.ValidationError, match="use hidden or read_only"):
        roles.set_field_rule("sales_rep", "contact", "phone", "secret")


def test_clearing_a_field_rule_removes_it(roles: RoleService) -> None:
    roles.set_field_rule("sales_rep", "contact", "phone", "hidden")

    roles.clear_field_rule("sales_rep", "contact", "phone")

    assert roles.get("sales_rep").field_rules == ()


def test_clearing_a_field_rule_that_does_not_exist_is_an_error(roles: RoleService) -> None:
    with pytest.raises(crmkit.CRMError, match=r"has no rule on contact\.phone"):
        roles.clear_field_rule("sales_rep", "contact", "phone")


def test_a_field_stays_restricted_only_if_every_role_restricts_it(
    crm: crmkit.CRM, roles: RoleService
) -> None:
    roles.create("phone_desk")
    crm.users.create("alice", roles=["sales_rep", "phone_desk"])
    roles.set_field_rule("sales_rep", "contact", "phone", "hidden")
    roles.set_field_rule("sales_rep", "contact", "email", "hidden")
    roles.set_field_rule("phone_desk", "contact", "email", "read_only")

    access = access_of(crm, "alice")

    assert access.field_access("contact", "phone") is None  # phone_desk does not restrict it
    assert access.field_access("contact", "email") is FieldAccess.READ_ONLY  # the lenient one


# -- holding roles -----------------------------------------------------------------------------


def test_assigning_a_role_gives_the_user_its_permissions(
    crm: crmkit.CRM, roles: RoleService
) -> None:
    crm.users.create("alice")

    assert roles.assign("alice", "manager") is True

    assert access_of(crm, "alice").scope("contact:read") is Scope.SUBTREE
    assert crm.users.profile("alice").roles == ("manager", "sales_rep")


def test_assigning_a_role_the_user_holds_changes_nothing(
    crm: crmkit.CRM, roles: RoleService
) -> None:
    crm.users.create("alice")

    assert roles.assign("alice", "sales_rep") is False
    assert outbox_names(crm).count("role.assigned") == 0


def test_assigning_to_an_unknown_user_is_refused(roles: RoleService) -> None:
    with pytest.raises(crmkit.NotFoundError, match="user 'nobody' not found"):
        roles.assign("nobody", "manager")


def test_unassigning_a_role_takes_its_permissions_away(crm: crmkit.CRM, roles: RoleService) -> None:
    crm.users.create("alice", roles=["sales_rep", "manager"])

    assert roles.unassign("alice", "manager") is True

    assert access_of(crm, "alice").scope("contact:read") is Scope.OWN


def test_unassigning_a_role_the_user_does_not_hold_changes_nothing(
    crm: crmkit.CRM, roles: RoleService
) -> None:
    crm.users.create("alice")

    assert roles.unassign("alice", "manager") is False


def test_the_last_administrator_keeps_the_admin_role(crm: crmkit.CRM, roles: RoleService) -> None:
    crm.users.create("boss", roles=["admin"])

    with pytest.raises(crmkit.CRMError, match="boss is the last active administrator"):
        roles.unassign("boss", "admin")

    assert crm.users.profile("boss").roles == ("admin",)


def test_the_admin_role_can_leave_one_admin_when_another_remains(
    crm: crmkit.CRM, roles: RoleService
) -> None:
    crm.users.create("boss", roles=["admin"])
    crm.users.create("root", admin=True)

    assert roles.unassign("boss", "admin") is True


# -- who may change roles, and what changes leave behind ---------------------------------------


def test_changing_roles_needs_role_manage(crm: crmkit.CRM, roles: RoleService) -> None:
    rep = crm.users.create("alice")

    with pytest.raises(crmkit.PermissionDenied, match="alice lacks the permission role:manage"):
        roles.grant("sales_rep", "contact:delete", "all", actor=rep)

    assert "contact:delete" not in grants(roles.get("sales_rep"))


def test_a_holder_of_role_manage_may_change_roles(crm: crmkit.CRM, roles: RoleService) -> None:
    roles.create("security_officer")
    roles.grant("security_officer", "role:manage")
    officer = crm.users.create("zhou", roles=["security_officer"])

    roles.grant("sales_rep", "contact:export", "own", actor=officer)

    assert grants(roles.get("sales_rep"))["contact:export"] is Scope.OWN


@pytest.mark.parametrize(
    ("change", "event"),
    [
        (lambda roles: roles.create("support"), "role.created"),
        (lambda roles: roles.grant("sales_rep", "contact:export", "own"), "role.granted"),
        (lambda roles: roles.revoke("sales_rep", "lead:convert"), "role.revoked"),
        (
            lambda roles: roles.set_field_rule("sales_rep", "contact", "phone", "hidden"),
            "role.field_rule_set",
        ),
        (lambda roles: roles.assign("alice", "manager"), "role.assigned"),
        (lambda roles: roles.unassign("alice", "sales_rep"), "role.unassigned"),
    ],
)
def test_each_role_change_emits_its_event_naming_the_role(
    crm: crmkit.CRM,
    roles: RoleService,
    change: Callable[[RoleService], object],
    event: str,
) -> None:
    crm.users.create("alice")

    change(roles)

    (emitted,) = outbox_events(crm, event)
    assert emitted.record_type == "role"
    assert emitted.payload["role"] in {"support", "sales_rep", "manager"}


def test_a_role_change_that_is_refused_emits_nothing(crm: crmkit.CRM, roles: RoleService) -> None:
    roles.ensure_builtin_roles()
    before = outbox_names(crm)

    with pytest.raises(crmkit.ValidationError):
        roles.grant("sales_rep", "contact:nonsense")

    assert outbox_names(crm) == before
