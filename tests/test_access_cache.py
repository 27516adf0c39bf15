"""The per-process cache of what a user may do (``Access``): a read reuses it only while the
access stamp has not moved, and every permission-relevant change bumps the stamp in its own
transaction, so a change made through another CRM instance on the same database (another
process, in production), or in plain SQL, is seen by the very next operation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

import crmkit
from crmkit.errors import NotFoundError, PermissionDenied
from crmkit.permissions.models import AccessStamp, RoleGrant

MakeCRM = Callable[..., crmkit.CRM]


@pytest.fixture
def two(make_crm: MakeCRM) -> tuple[crmkit.CRM, crmkit.CRM]:
    """Two CRM instances on one database: ``reader`` serves reads, ``admin`` changes
    permissions, each with its own engine and its own access cache."""
    reader, admin = make_crm(), make_crm()
    admin.users.create_team("Sales")
    admin.users.create_team("East", parent="Sales")
    admin.users.create_team("West", parent="Sales")
    admin.users.create("rep", team="East", roles=["sales_rep"])
    admin.users.create("other", team="West", roles=["sales_rep"])
    admin.contacts.create(
        {"full_name": "东区客户", "email": "east@example.com"}, actor=user(admin, "rep")
    )
    admin.contacts.create({"full_name": "西区客户"}, actor=user(admin, "other"))
    return reader, admin


def user(crm: crmkit.CRM, username: str) -> crmkit.User:
    return crm.users.get(username)


def names(crm: crmkit.CRM, username: str) -> list[str]:
    page = crm.contacts.list(actor=user(crm, username))
    return sorted(record.full_name for record in page.items)


@contextmanager
def statements(crm: crmkit.CRM) -> Iterator[list[str]]:
    """The SQL statements ``crm`` sends inside the block."""
    sent: list[str] = []

    def capture(*args: object) -> None:
        sent.append(str(args[2]))

    sa.event.listen(crm.engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        sa.event.remove(crm.engine, "before_cursor_execute", capture)


def stamp(crm: crmkit.CRM) -> int:
    with crm.engine.connect() as connection:
        return int(connection.execute(sa.select(AccessStamp.version)).scalar_one())


def test_a_second_read_reuses_the_cached_access(two: tuple[crmkit.CRM, crmkit.CRM]) -> None:
    reader, _ = two
    rep = user(reader, "rep")
    reader.contacts.list(actor=rep)
    with statements(reader) as sent:
        reader.contacts.list(actor=rep)
    assert not any("user_roles" in statement for statement in sent)
    assert any("access_stamp" in statement for statement in sent)


def test_a_scope_widened_through_another_instance_is_seen_by_the_next_read(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    assert names(reader, "rep") == ["东区客户"]
    admin.roles.grant("sales_rep", "contact:read", "all")
    assert names(reader, "rep") == ["东区客户", "西区客户"]


def test_a_permission_revoked_through_another_instance_is_refused_at_once(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    names(reader, "rep")
    admin.roles.revoke("sales_rep", "contact:read")
    with pytest.raises(PermissionDenied, match="contact:read"):
        names(reader, "rep")


def test_a_role_taken_away_through_another_instance_is_seen_by_the_next_read(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    admin.roles.assign("rep", "manager")
    assert names(reader, "rep") == ["东区客户"]  # manager: team and sub-teams (East only)
    admin.roles.unassign("rep", "sales_rep")
    admin.roles.unassign("rep", "manager")
    with pytest.raises(PermissionDenied):
        names(reader, "rep")


def test_a_team_move_through_another_instance_is_seen_by_the_next_read(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    admin.roles.grant("sales_rep", "contact:read", "team")
    assert names(reader, "rep") == ["东区客户"]
    admin.users.set_team("rep", "West")
    assert names(reader, "rep") == ["东区客户", "西区客户"]  # own record, and West's


def test_a_team_tree_change_through_another_instance_is_seen_by_the_next_read(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    admin.roles.grant("sales_rep", "contact:read", "subtree")
    admin.users.set_team("rep", "Sales")
    admin.contacts.update(
        admin.contacts.list().items[0].id, {"owner_id": user(admin, "other").id}
    )  # nothing the rep owns any more
    assert names(reader, "rep") == ["东区客户", "西区客户"]
    admin.users.move_team("West", None)  # West leaves the Sales subtree
    assert names(reader, "rep") == ["东区客户"]


def test_a_field_rule_added_through_another_instance_hides_the_field_at_once(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    record = reader.contacts.list(actor=user(reader, "rep")).items[0]
    assert record.email == "east@example.com"
    admin.roles.set_field_rule("sales_rep", "contact", "email", "hidden")
    record = reader.contacts.list(actor=user(reader, "rep")).items[0]
    assert "email" not in record


def test_a_deactivation_through_another_instance_is_refused_at_once(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    rep = user(reader, "rep")
    reader.contacts.list(actor=rep)
    admin.users.deactivate("rep")
    with pytest.raises(PermissionDenied, match="deactivated"):
        reader.contacts.list(actor=rep)


def test_a_grant_deleted_in_plain_sql_is_seen_by_the_next_read(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, admin = two
    names(reader, "rep")
    with admin.engine.begin() as connection:
        connection.execute(sa.delete(RoleGrant).where(RoleGrant.permission == "contact:read"))
    with pytest.raises(PermissionDenied):
        names(reader, "rep")


def test_every_permission_change_bumps_the_stamp(two: tuple[crmkit.CRM, crmkit.CRM]) -> None:
    _, admin = two
    changes = [
        lambda: admin.roles.grant("sales_rep", "contact:read", "team"),
        lambda: admin.roles.revoke("sales_rep", "contact:update"),
        lambda: admin.roles.set_field_rule("sales_rep", "contact", "email", "read_only"),
        lambda: admin.roles.assign("rep", "manager"),
        lambda: admin.roles.unassign("rep", "manager"),
        lambda: admin.users.create_team("North", parent="Sales"),
        lambda: admin.users.move_team("North", None),
        lambda: admin.users.set_team("rep", "West"),
        lambda: admin.users.deactivate("other"),
    ]
    for change in changes:
        before = stamp(admin)
        change()
        assert stamp(admin) > before


def test_a_change_that_does_not_touch_permissions_keeps_the_stamp(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    _, admin = two
    before = stamp(admin)
    admin.contacts.create({"full_name": "新客户"})
    admin.users.set_manager("rep", "other")
    assert stamp(admin) == before


def widen_and_read_then_roll_back(crm: crmkit.CRM, rep: crmkit.User) -> None:
    """In one transaction acting as ``rep``: widen the rep's scope, read with it, and fail."""
    with crm.transaction(rep) as op:
        grants = sa.update(RoleGrant).where(RoleGrant.permission == "contact:read")
        op.session.execute(grants.values(scope="all"))
        assert len(op.records("contact").list().items) == 2  # sees its own change
        raise RuntimeError("roll back")


def test_a_rolled_back_permission_change_leaves_no_trace_in_the_cache(
    two: tuple[crmkit.CRM, crmkit.CRM],
) -> None:
    reader, _ = two
    rep = user(reader, "rep")
    names(reader, "rep")
    with pytest.raises(RuntimeError):
        widen_and_read_then_roll_back(reader, rep)
    assert names(reader, "rep") == ["东区客户"]
    western = reader.contacts.list(search="西区客户").items[0].id
    with pytest.raises(NotFoundError):
        reader.contacts.get(western, actor=rep)
