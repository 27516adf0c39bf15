"""``crmkit users|teams|roles|tokens|audit|inbox`` through click's CliRunner against real
databases: the thin layer over the user, role, token and audit services."""

from __future__ import annotations

import json

import pytest
from cli_support import Run, failed, ok


@pytest.fixture
def run(cli_run: Run) -> Run:
    """``crmkit`` on this test's database."""
    return cli_run


@pytest.fixture
def org(run: Run) -> None:
    """总部 → 华东销售部 → 上海一组; wang.fang (manager) manages li.na (rep); root is the
    administrator."""
    ok(run("teams", "create", "总部"))
    ok(run("teams", "create", "华东销售部", "--parent", "总部"))
    ok(run("teams", "create", "上海一组", "--parent", "华东销售部"))
    ok(run("users", "create", "root", "--admin"))
    ok(run("users", "create", "wang.fang", "--team", "华东销售部", "--role", "manager"))
    ok(run("users", "create", "li.na", "--team", "上海一组", "--manager", "wang.fang"))


# -- users and teams ---------------------------------------------------------------------------


def test_users_list_shows_team_manager_and_roles(run: Run, org: None) -> None:
    users = {user["username"]: user for user in json.loads(ok(run("users", "list", "--json")))}

    li = users["li.na"]
    assert (li["team"], li["manager"], li["roles"], li["active"]) == (
        "上海一组",
        "wang.fang",
        ["sales_rep"],
        True,
    )


def test_teams_list_draws_the_tree(run: Run, org: None) -> None:
    ok(run("teams", "create", "华南销售部", "--parent", "总部"))

    lines = ok(run("teams", "list")).splitlines()

    assert lines == [
        "总部  (0 members)",
        "├── 华东销售部  (1 member)",
        "│   └── 上海一组  (1 member)",
        "└── 华南销售部  (0 members)",
    ]


def test_teams_move_refuses_a_cycle_in_one_line(run: Run, org: None) -> None:
    line = failed(run("teams", "move", "总部", "--parent", "上海一组"))

    assert line == (
        "Error: cannot move team '总部' under '上海一组': that would make a cycle:"
        " 总部 → 华东销售部 → 上海一组 → 总部 (each the parent of the next)"
    )


def test_teams_move_moves_a_team(run: Run, org: None) -> None:
    ok(run("teams", "move", "上海一组", "--parent", "总部"))

    teams = {team["name"]: team for team in json.loads(ok(run("teams", "list", "--json")))}
    assert teams["上海一组"]["parent"] == "总部"


def test_users_set_manager_and_set_team(run: Run, org: None) -> None:
    ok(run("users", "set-manager", "li.na", "root"))
    ok(run("users", "set-team", "li.na", "总部"))

    users = {user["username"]: user for user in json.loads(ok(run("users", "list", "--json")))}
    assert (users["li.na"]["manager"], users["li.na"]["team"]) == ("root", "总部")


def test_users_deactivate_reports_the_handover_and_list_marks_the_user(run: Run, org: None) -> None:
    ok(run("contacts", "create", "full_name=张伟", "owner_id=3"))
    ok(run("tokens", "issue", "li.na", "ERP sync"))

    out = ok(run("users", "deactivate", "li.na"))

    assert out.strip() == (
        "Deactivated li.na: 1 open record(s) handed to wang.fang (1 contact); 1 token(s) revoked"
    )
    assert "inactive since" in ok(run("users", "list"))


def test_users_deactivate_refuses_the_last_admin(run: Run, org: None) -> None:
    line = failed(run("users", "deactivate", "root"))

    assert "root is the last active administrator" in line


def test_users_roles_shows_the_roles_of_a_user(run: Run, org: None) -> None:
    assert ok(run("users", "roles", "wang.fang")).strip() == "wang.fang: manager"


# -- roles -------------------------------------------------------------------------------------


def test_roles_list_shows_the_built_in_roles(run: Run) -> None:
    roles = json.loads(ok(run("roles", "list", "--json")))

    assert [(role["name"], role["built_in"]) for role in roles] == [
        ("admin", True),
        ("manager", True),
        ("read_only", True),
        ("sales_rep", True),
    ]


def test_roles_grant_then_show(run: Run) -> None:
    ok(run("roles", "create", "support", "--description", "Answers the phone"))
    ok(run("roles", "grant", "support", "contact:read", "--scope", "subtree"))
    ok(run("roles", "field-rule", "support", "contact.phone", "read_only"))

    role = json.loads(ok(run("roles", "show", "support", "--json")))

    assert role["grants"] == {"contact:read": "subtree"}
    assert role["field_rules"] == [{"entity": "contact", "field": "phone", "access": "read_only"}]


def test_roles_revoke_and_clear_field_rule(run: Run) -> None:
    ok(run("roles", "create", "support"))
    ok(run("roles", "grant", "support", "contact:read"))
    ok(run("roles", "field-rule", "support", "contact.phone", "hidden"))

    ok(run("roles", "revoke", "support", "contact:read"))
    ok(run("roles", "clear-field-rule", "support", "contact.phone"))

    role = json.loads(ok(run("roles", "show", "support", "--json")))
    assert (role["grants"], role["field_rules"]) == ({}, [])


def test_roles_grant_of_an_unknown_permission_is_one_line_with_suggestions(run: Run) -> None:
    line = failed(run("roles", "grant", "sales_rep", "contact:exprot"))

    assert line.startswith("Error: invalid grant: permission: unknown permission")
    assert "did you mean contact:export" in line


def test_roles_grant_of_an_unknown_scope_lists_the_scopes(run: Run) -> None:
    result = run("roles", "grant", "sales_rep", "contact:read", "--scope", "company")

    assert result.exit_code == 2
    assert "'own', 'team', 'subtree', 'all'" in result.stderr


def test_roles_assign_and_unassign(run: Run, org: None) -> None:
    assert ok(run("roles", "assign", "li.na", "manager")).strip() == "li.na now holds role manager"
    assert "already holds" in ok(run("roles", "assign", "li.na", "manager"))

    ok(run("roles", "unassign", "li.na", "manager"))

    assert ok(run("users", "roles", "li.na")).strip() == "li.na: sales_rep"


def test_roles_delete_refuses_a_built_in_role(run: Run) -> None:
    assert failed(run("roles", "delete", "manager")) == (
        "Error: role 'manager' is built in and cannot be deleted"
    )


# -- tokens ------------------------------------------------------------------------------------


def test_tokens_issue_prints_the_token_once_with_a_warning(run: Run, org: None) -> None:
    result = run("tokens", "issue", "li.na", "ERP sync", "--expires-in", "30d")

    token = ok(result).strip()
    assert token.startswith("crmk_")
    assert "it will not be shown again" in result.stderr
    listing = ok(run("tokens", "list", "li.na"))
    assert token not in listing
    assert token[:11] in listing


def test_tokens_revoke_marks_the_token_revoked(run: Run, org: None) -> None:
    ok(run("tokens", "issue", "li.na", "ERP sync"))
    (token,) = json.loads(ok(run("tokens", "list", "li.na", "--json")))

    ok(run("tokens", "revoke", str(token["id"])))

    (token,) = json.loads(ok(run("tokens", "list", "li.na", "--json")))
    assert token["status"] == "revoked"


def test_tokens_issue_refuses_a_bad_duration(run: Run, org: None) -> None:
    result = run("tokens", "issue", "li.na", "ERP sync", "--expires-in", "forever")

    assert result.exit_code == 2
    assert "is not a duration like 90m, 12h, 30d or 2w" in result.stderr


# -- audit and inbox ---------------------------------------------------------------------------


def test_audit_filters_by_operation_and_sensitivity(run: Run, org: None) -> None:
    ok(run("roles", "grant", "sales_rep", "contact:export", "--scope", "team"))

    entries = json.loads(ok(run("audit", "--sensitive", "--operation", "role.grant", "--json")))

    (entry,) = entries
    assert (entry["actor"], entry["entity"], entry["sensitive"]) == ("system", "role", True)
    assert entry["changes"]["scope"] == [None, "team"]


def test_audit_filters_by_entity_and_record(run: Run, org: None) -> None:
    entries = json.loads(ok(run("audit", "--entity", "user", "--record", "3", "--json")))

    assert [entry["operation"] for entry in entries] == ["user.create"]


def test_audit_filters_by_time(run: Run, org: None) -> None:
    assert json.loads(ok(run("audit", "--until", "2000-01-01", "--json"))) == []
    assert json.loads(ok(run("audit", "--since", "2000-01-01", "--limit", "1", "--json")))


def test_audit_refuses_a_time_that_is_not_iso(run: Run) -> None:
    result = run("audit", "--since", "yesterday")

    assert result.exit_code == 2
    assert "is not an ISO date or time" in result.stderr


def test_audit_table_marks_sensitive_entries(run: Run, org: None) -> None:
    table = ok(run("audit", "--operation", "user.create"))

    (admin,) = [line for line in table.splitlines() if "administrator 'root' created" in line]
    (rep,) = [line for line in table.splitlines() if "li.na" in line]
    assert "  !  " in admin
    assert "  !  " not in rep


def test_inbox_shows_admins_the_sensitive_operations_and_marks_them_read(
    run: Run, org: None
) -> None:
    ok(run("roles", "grant", "sales_rep", "contact:export"))

    notices = json.loads(ok(run("inbox", "--user", "root", "--mark-read", "--json")))

    assert "system: role.grant" in {notice["title"] for notice in notices}
    assert ok(run("inbox", "--user", "root")).strip() == "No unread notifications."
    assert len(json.loads(ok(run("inbox", "--user", "root", "--all", "--json")))) == len(notices)
