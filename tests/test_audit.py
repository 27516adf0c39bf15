"""The audit log (append-only, filtered by user, record, time and operation) and the alerts
sensitive operations raise in admins' inboxes."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from outbox_reader import outbox_events

import crmkit
from crmkit.db.base import utcnow
from crmkit.services.audit_log import AuditLog
from crmkit.services.roles import RoleService


@pytest.fixture
def audit(crm: crmkit.CRM) -> AuditLog:
    return crm.audit


@pytest.fixture
def roles(crm: crmkit.CRM) -> RoleService:
    return crm.roles


@pytest.fixture
def admins(crm: crmkit.CRM) -> list[crmkit.User]:
    return [crm.users.create("root", admin=True), crm.users.create("ops", admin=True)]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The time audit entries are written at: set ``clock[0]``."""
    now = [utcnow()]
    monkeypatch.setattr("crmkit.permissions.audit.utcnow", lambda: now[0])
    return now


def raw(crm: crmkit.CRM, statement: str) -> None:
    with crm.engine.begin() as connection:
        connection.exec_driver_sql(statement)


# -- sensitive operations ----------------------------------------------------------------------


def test_a_permission_change_is_audited_as_sensitive_with_before_and_after(
    audit: AuditLog, roles: RoleService
) -> None:
    roles.grant("sales_rep", "contact:export", "own")
    roles.grant("sales_rep", "contact:export", "team")

    (entry, first) = audit.query(operation="role.grant")

    assert entry.sensitive
    assert first.sensitive
    assert (entry.actor, entry.entity) == ("system", "role")
    assert entry.changes == {
        "role": "sales_rep",
        "permission": "contact:export",
        "scope": ["own", "team"],
    }
    assert entry.detail == "role 'sales_rep' granted contact:export with scope team (was own)"


def test_a_sensitive_operation_reaches_every_active_admins_inbox(
    crm: crmkit.CRM, audit: AuditLog, roles: RoleService, admins: list[crmkit.User]
) -> None:
    crm.users.create("gone", admin=True)
    crm.users.deactivate("gone")
    crm.users.create("alice")
    seen_before = {m.id for m in audit.inbox(None)}

    roles.grant("sales_rep", "contact:delete", "own")

    new = [m for m in audit.inbox(None) if m.id not in seen_before]
    assert sorted(m.username for m in new) == ["ops", "root"]
    assert {m.title for m in new} == {"system: role.grant"}


def test_a_sensitive_operation_raises_the_security_event(
    crm: crmkit.CRM, roles: RoleService
) -> None:
    crm.users.create("alice")

    roles.assign("alice", "manager")

    (event,) = [
        e
        for e in outbox_events(crm, "security.sensitive_operation")
        if e.payload["operation"] == "role.assign"
    ]
    assert event.payload["username"] == "alice"
    assert event.payload["role"] == "manager"


def test_a_refused_operation_leaves_no_entry_and_alerts_nobody(
    audit: AuditLog, roles: RoleService, admins: list[crmkit.User]
) -> None:
    entries, notices = len(audit.query()), len(audit.inbox(None))

    with pytest.raises(crmkit.ValidationError):
        roles.grant("sales_rep", "contact:exprot", "own")

    assert (len(audit.query()), len(audit.inbox(None))) == (entries, notices)


def test_moving_a_team_is_a_sensitive_operation(crm: crmkit.CRM, audit: AuditLog) -> None:
    crm.users.create_team("HQ")
    crm.users.create_team("East")

    crm.users.move_team("East", "HQ")

    (entry,) = audit.query(operation="team.move")
    assert entry.sensitive
    assert entry.changes == {"team": "East", "parent": [None, "HQ"]}


# -- append-only -------------------------------------------------------------------------------


def test_the_audit_log_refuses_updates_even_with_raw_sql(
    crm: crmkit.CRM, audit: AuditLog, roles: RoleService
) -> None:
    roles.create("support")

    with pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"):
        raw(crm, "UPDATE audit_log SET detail = 'nothing happened'")

    assert all(entry.detail != "nothing happened" for entry in audit.query())


def test_the_audit_log_refuses_deletes_even_with_raw_sql(
    crm: crmkit.CRM, audit: AuditLog, roles: RoleService
) -> None:
    roles.create("support")
    count = len(audit.query())

    with pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"):
        raw(crm, "DELETE FROM audit_log")

    assert len(audit.query()) == count > 0


def test_the_audit_log_cannot_be_truncated(crm: crmkit.CRM, roles: RoleService) -> None:
    if crm.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    roles.create("support")

    with pytest.raises(sa.exc.DBAPIError, match="audit_log is append-only"):
        raw(crm, "TRUNCATE audit_log")


# -- querying ----------------------------------------------------------------------------------


def test_entries_are_filtered_by_the_acting_user(
    crm: crmkit.CRM, audit: AuditLog, roles: RoleService
) -> None:
    roles.create("officer")
    roles.grant("officer", "role:manage")
    officer = crm.users.create("zhou", roles=["officer"])
    roles.create("support", actor=officer)

    (mine,) = audit.query(user="zhou")
    assert (mine.operation, mine.actor, mine.actor_id) == ("role.create", "zhou", officer.id)
    assert all(entry.actor == "system" for entry in audit.query(user="system"))


def test_entries_are_filtered_by_entity_and_record(crm: crmkit.CRM, audit: AuditLog) -> None:
    crm.users.create("alice")
    bob = crm.users.create("bob")
    crm.users.set_team("bob", None)  # no change: not audited
    crm.users.create_team("East")
    crm.users.set_team("bob", "East")

    entries = audit.query(entity="user", record_id=bob.id)

    assert [entry.operation for entry in entries] == ["user.set_team", "user.create"]


def test_an_operation_filter_matches_exactly_or_by_prefix(
    crm: crmkit.CRM, audit: AuditLog, roles: RoleService
) -> None:
    crm.users.create("alice")
    roles.create("support")
    roles.grant("support", "task:read", "all")

    assert {e.operation for e in audit.query(operation="role.create")} == {"role.create"}
    assert {e.operation for e in audit.query(operation="role.*")} == {"role.create", "role.grant"}


def test_entries_are_filtered_by_time(
    crm: crmkit.CRM, audit: AuditLog, clock: list[dt.datetime]
) -> None:
    start = clock[0]
    for day, name in enumerate(["a", "b", "c"]):
        clock[0] = start + dt.timedelta(days=day)
        crm.users.create_team(name)

    entries = audit.query(
        operation="team.create",
        since=start + dt.timedelta(days=1),
        until=start + dt.timedelta(days=2),
    )

    assert [entry.changes["name"] for entry in entries] == [[None, "b"]]


def test_only_sensitive_entries_are_listed_when_asked(
    crm: crmkit.CRM, audit: AuditLog, roles: RoleService
) -> None:
    crm.users.create_team("East")
    roles.create("support")

    assert {entry.sensitive for entry in audit.query(sensitive=True)} == {True}
    assert "team.create" in {entry.operation for entry in audit.query(sensitive=False)}


def test_entries_come_newest_first_up_to_the_limit(crm: crmkit.CRM, audit: AuditLog) -> None:
    for name in ["a", "b", "c"]:
        crm.users.create_team(name)

    entries = audit.query(operation="team.create", limit=2)

    assert [entry.changes["name"][1] for entry in entries] == ["c", "b"]


def test_a_time_without_a_zone_is_refused(audit: AuditLog) -> None:
    with pytest.raises(crmkit.ValidationError, match="since: needs a time zone"):
        audit.query(since=dt.datetime(2025, 6, 1))


def test_an_unknown_user_filter_is_refused(audit: AuditLog) -> None:
    with pytest.raises(crmkit.NotFoundError, match="user 'nobody' not found"):
        audit.query(user="nobody")


def test_reading_the_audit_log_needs_audit_read(crm: crmkit.CRM, audit: AuditLog) -> None:
    rep = crm.users.create("alice")

    with pytest.raises(crmkit.PermissionDenied, match="audit:read"):
        audit.query(actor=rep)


# -- the inbox ---------------------------------------------------------------------------------


def test_an_admin_reads_their_inbox_and_marks_it_read(
    audit: AuditLog, roles: RoleService, admins: list[crmkit.User]
) -> None:
    root = admins[0]
    roles.create("support")
    unread = audit.inbox("root", actor=root)

    marked = audit.mark_read("root", [m.id for m in unread], actor=root)

    assert marked == len(unread) > 0
    assert audit.inbox("root", actor=root) == []
    assert len(audit.inbox("root", unread_only=False, actor=root)) == len(unread)


def test_marking_read_skips_other_users_notifications(
    audit: AuditLog, roles: RoleService, admins: list[crmkit.User]
) -> None:
    roles.create("support")
    others = [m.id for m in audit.inbox("ops")]

    assert audit.mark_read("root", others) == 0
    assert [m.id for m in audit.inbox("ops")] == others


def test_reading_another_users_inbox_needs_audit_read(
    crm: crmkit.CRM, audit: AuditLog, admins: list[crmkit.User]
) -> None:
    rep = crm.users.create("alice")

    assert audit.inbox("alice", actor=rep) == []
    with pytest.raises(crmkit.PermissionDenied, match="audit:read"):
        audit.inbox("root", actor=rep)
