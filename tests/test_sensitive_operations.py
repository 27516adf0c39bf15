"""Sensitive operations are audited, raise security.sensitive_operation and reach admins."""

from __future__ import annotations

import io

import pytest
from outbox_reader import outbox_names

import crmkit
from crmkit.services.transfer import export_csv


def export_notices(crm: crmkit.CRM, username: str) -> list[object]:
    """The export alerts in a user's inbox."""
    return [note for note in crm.audit.inbox(username) if note.title.endswith(": export")]


@pytest.fixture
def admin(crm: crmkit.CRM) -> crmkit.User:
    return crm.users.create("root", admin=True)


@pytest.fixture
def rep(crm: crmkit.CRM) -> crmkit.User:
    crm.users.create_team("East")
    return crm.users.create("alice", team="East", roles=("sales_rep",))


@pytest.fixture
def manager(crm: crmkit.CRM) -> crmkit.User:
    crm.users.create_team("HQ")
    return crm.users.create("boss", team="HQ", roles=("manager",))


def test_an_export_is_audited_as_sensitive_and_notifies_every_admin(
    crm: crmkit.CRM, admin: crmkit.User, manager: crmkit.User
) -> None:
    crm.contacts.create({"full_name": "王芳"}, actor=manager)

    export_csv(crm, "contact", io.StringIO(), actor=manager)

    (entry,) = crm.audit.query(operation="export", sensitive=True)
    assert (entry.entity, entry.actor_id) == ("contact", manager.id)
    assert "security.sensitive_operation" in outbox_names(crm)
    (note,) = export_notices(crm, "root")
    assert note.kind == "security.sensitive_operation"
    assert "boss" in note.title


def test_an_export_without_the_export_permission_is_refused_and_alerts_nobody(
    crm: crmkit.CRM, admin: crmkit.User, rep: crmkit.User
) -> None:
    crm.contacts.create({"full_name": "王芳"}, actor=rep)

    with pytest.raises(crmkit.PermissionDenied, match="contact:export"):
        export_csv(crm, "contact", io.StringIO(), actor=rep)

    assert crm.audit.query(operation="export") == []
    assert export_notices(crm, "root") == []


def test_an_export_takes_only_records_in_the_export_scope(
    crm: crmkit.CRM, manager: crmkit.User, rep: crmkit.User
) -> None:
    crm.contacts.create({"full_name": "东区客户"}, actor=rep)  # East is not under HQ
    crm.contacts.create({"full_name": "总部客户"}, actor=manager)
    out = io.StringIO()

    exported = export_csv(crm, "contact", out, actor=manager)

    assert exported == 1
    assert "总部客户" in out.getvalue()
    assert "东区客户" not in out.getvalue()


def test_every_write_is_in_the_audit_log_with_field_level_changes(
    crm: crmkit.CRM, admin: crmkit.User
) -> None:
    contact = crm.contacts.create({"full_name": "王芳", "city": "北京"}, actor=admin)
    crm.contacts.update(contact.id, {"city": "上海"}, actor=admin)
    crm.contacts.delete(contact.id, actor=admin)

    entries = crm.audit.query(entity="contact", record_id=contact.id)
    by_operation = {entry.operation: entry for entry in entries}
    assert set(by_operation) == {"create", "update", "delete"}
    assert by_operation["create"].changes["city"] == [None, "北京"]
    assert by_operation["update"].changes == {"city": ["北京", "上海"]}
    assert all(entry.actor_id == admin.id for entry in entries)


def test_a_bulk_import_audits_each_created_record(crm: crmkit.CRM) -> None:
    result = crm.contacts.create_many([(n, {"full_name": f"客户{n}"}) for n in range(2, 12)])

    entries = crm.audit.query(entity="contact", operation="create", limit=100)
    assert sorted(entry.record_id for entry in entries) == sorted(result.ids)


def test_a_refused_write_leaves_no_audit_entry(crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.ValidationError):
        crm.contacts.create({"full_name": ""})

    assert crm.audit.query(entity="contact") == []


def test_holders_of_the_admin_role_are_notified_too(crm: crmkit.CRM, manager: crmkit.User) -> None:
    crm.users.create("ops", roles=("admin",))
    crm.contacts.create({"full_name": "王芳"}, actor=manager)

    export_csv(crm, "contact", io.StringIO(), actor=manager)

    assert len(export_notices(crm, "ops")) == 1


def test_a_user_manager_without_record_rights_can_deactivate_a_rep_with_customers(
    crm: crmkit.CRM, rep: crmkit.User, manager: crmkit.User
) -> None:
    crm.roles.create("hr")
    crm.roles.grant("hr", "user:manage", "all")
    hr = crm.users.create("hr1", roles=("hr",))
    crm.users.set_manager("alice", "boss")
    contact = crm.contacts.create({"full_name": "王芳"}, actor=rep)

    crm.users.deactivate("alice", actor=hr)

    assert crm.contacts.get(contact.id).owner_id is None  # back to the shared pool
    (entry,) = crm.audit.query(entity="contact", record_id=contact.id, operation="update")
    assert entry.actor_id == hr.id
