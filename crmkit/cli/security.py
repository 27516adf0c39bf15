"""``crmkit roles``, ``crmkit tokens``, ``crmkit audit`` and ``crmkit inbox``: who may do
what, API tokens, the audit log, and admins' notifications.

Every command runs as the system (the CLI is the administrator's tool); changes to roles are
still audited as sensitive and reach the admins' inboxes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import click

from crmkit.cli.context import cli_state
from crmkit.cli.display import clip, echo_details, echo_json, echo_table
from crmkit.permissions.models import FieldAccess, Scope
from crmkit.services.audit_log import MAX_AUDIT_LIMIT, AuditLog, AuditRecord
from crmkit.services.roles import RoleInfo, RoleService
from crmkit.services.tokens import TokenService

JSON_HELP = "Print JSON instead of a table."
SCOPES = [scope.value for scope in Scope]
ACCESSES = [access.value for access in FieldAccess]
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _roles() -> RoleService:
    return cli_state().crm().roles


def _tokens() -> TokenService:
    return cli_state().crm().tokens


def _audit_log() -> AuditLog:
    return cli_state().crm().audit


def _field(value: str) -> tuple[str, str]:
    entity, dot, field = value.partition(".")
    if not dot or not entity or not field:
        raise click.BadParameter(f"{value!r} is not ENTITY.FIELD, e.g. contact.phone")
    return entity, field


# -- roles -------------------------------------------------------------------------------------


@click.group("roles")
def roles_group() -> None:
    """Roles: permissions with record scopes, and field rules, held by users.

    Built in: admin, manager, sales_rep, read_only. Scopes: own (the user's records), team
    (and their team's), subtree (and every team below theirs), all.

    Example:

    \b
        crmkit roles grant sales_rep contact:export --scope team
    """


@roles_group.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_roles_command(as_json: bool) -> None:
    """List roles, built-in ones first, with how many grants they have and who holds them.

    Example:

    \b
        crmkit roles list
    """
    roles = _roles().list()
    if as_json:
        echo_json([_role_json(role) for role in roles])
        return
    echo_table(
        ("name", "built_in", "grants", "field_rules", "holders", "description"),
        [
            (
                role.name,
                "yes" if role.is_builtin else "",
                len(role.grants),
                len(role.field_rules),
                clip(", ".join(role.holders)),
                clip(role.description),
            )
            for role in roles
        ],
    )


def _role_json(role: RoleInfo) -> dict[str, Any]:
    return {
        "name": role.name,
        "description": role.description,
        "built_in": role.is_builtin,
        "grants": {grant.permission: grant.scope for grant in role.grants},
        "field_rules": [
            {"entity": rule.entity, "field": rule.field, "access": rule.access}
            for rule in role.field_rules
        ],
        "holders": list(role.holders),
    }


@roles_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def show_role_command(name: str, as_json: bool) -> None:
    """Show a role: its grants with their scopes, its field rules and its holders.

    Example:

    \b
        crmkit roles show manager
    """
    role = _roles().get(name)
    if as_json:
        echo_json(_role_json(role))
        return
    echo_details(
        {
            "name": role.name,
            "description": role.description,
            "built_in": "yes" if role.is_builtin else "no",
            "holders": ", ".join(role.holders) or "nobody",
        }
    )
    click.echo("")
    if role.grants:
        echo_table(("permission", "scope"), [(g.permission, g.scope) for g in role.grants])
    else:
        click.echo(f"No grants yet: crmkit roles grant {role.name} contact:read --scope own")
    if role.field_rules:
        click.echo("")
        echo_table(
            ("field", "access"),
            [(f"{rule.entity}.{rule.field}", rule.access) for rule in role.field_rules],
        )


@roles_group.command("permissions")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def list_permissions_command(as_json: bool) -> None:
    """List every permission a role can grant (the enabled plugins' included).

    Example:

    \b
        crmkit roles permissions
    """
    names = _roles().permissions()
    if as_json:
        echo_json(names)
        return
    for name in names:
        click.echo(name)


@roles_group.command("create")
@click.argument("name")
@click.option("--description", default="", metavar="TEXT", help="What the role is for.")
def create_role_command(name: str, description: str) -> None:
    """Create a role of your own (with no grants yet).

    Example:

    \b
        crmkit roles create support --description "Reads customers, updates tasks"
    """
    _roles().create(name, description)
    click.echo(f"Created role {name}: add grants with crmkit roles grant {name} PERMISSION")


@roles_group.command("delete")
@click.argument("name")
def delete_role_command(name: str) -> None:
    """Delete a role of your own. Built-in roles, and roles active users hold, stay.

    Example:

    \b
        crmkit roles delete support
    """
    _roles().delete(name)
    click.echo(f"Deleted role {name}")


@roles_group.command("grant")
@click.argument("role")
@click.argument("permission")
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    help="Which records it covers: own, team, subtree (the team and every team below) or"
    " all. Default: own for record permissions, all for the others. Granting again"
    " replaces the scope.",
)
def grant_command(role: str, permission: str, scope: str | None) -> None:
    """Grant a permission to a role, with a record scope.

    Example:

    \b
        crmkit roles grant manager deal:export --scope subtree
    """
    grant = _roles().grant(role, permission, scope)
    click.echo(f"Role {role} now grants {grant.permission} (scope {grant.scope})")


@roles_group.command("revoke")
@click.argument("role")
@click.argument("permission")
def revoke_command(role: str, permission: str) -> None:
    """Take a permission away from a role.

    Example:

    \b
        crmkit roles revoke sales_rep lead:convert
    """
    _roles().revoke(role, permission)
    click.echo(f"Role {role} no longer grants {permission}")


@roles_group.command("field-rule")
@click.argument("role")
@click.argument("field", metavar="ENTITY.FIELD")
@click.argument("access", type=click.Choice(ACCESSES))
def field_rule_command(role: str, field: str, access: str) -> None:
    """Hide a field from a role, or make it read-only.

    A user with several roles is restricted only if every one of their roles restricts the
    field (roles add up).

    Example:

    \b
        crmkit roles field-rule sales_rep account.value_tier read_only
    """
    entity, name = _field(field)
    rule = _roles().set_field_rule(role, entity, name, access)
    click.echo(f"Role {role}: {rule.entity}.{rule.field} is {rule.access}")


@roles_group.command("clear-field-rule")
@click.argument("role")
@click.argument("field", metavar="ENTITY.FIELD")
def clear_field_rule_command(role: str, field: str) -> None:
    """Remove a role's rule on a field.

    Example:

    \b
        crmkit roles clear-field-rule sales_rep account.value_tier
    """
    entity, name = _field(field)
    _roles().clear_field_rule(role, entity, name)
    click.echo(f"Role {role}: no rule on {entity}.{name} any more")


@roles_group.command("assign")
@click.argument("username")
@click.argument("role")
def assign_command(username: str, role: str) -> None:
    """Give a user a role.

    Example:

    \b
        crmkit roles assign wang.fang manager
    """
    if _roles().assign(username, role):
        click.echo(f"{username} now holds role {role}")
    else:
        click.echo(f"{username} already holds role {role}")


@roles_group.command("unassign")
@click.argument("username")
@click.argument("role")
def unassign_command(username: str, role: str) -> None:
    """Take a role from a user (never admin from the last administrator).

    Example:

    \b
        crmkit roles unassign wang.fang manager
    """
    if _roles().unassign(username, role):
        click.echo(f"{username} no longer holds role {role}")
    else:
        click.echo(f"{username} does not hold role {role}")


# -- tokens ------------------------------------------------------------------------------------


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``90m``, ``2w`` as a time span."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r} is not a duration like 90m, 12h, 30d or 2w")
    return dt.timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


@click.group("tokens")
def tokens_group() -> None:
    """API tokens: bearer tokens for the REST API and scripts, stored only as hashes.

    Example:

    \b
        crmkit tokens issue li.na "ERP sync" --expires-in 90d
    """


@tokens_group.command("issue")
@click.argument("username")
@click.argument("name")
@click.option(
    "--expires-in",
    metavar="DURATION",
    help="How long it is valid: 90m, 12h, 30d, 2w (default: until revoked).",
)
def issue_token_command(username: str, name: str, expires_in: str | None) -> None:
    """Issue an API token for a user, named after what uses it.

    The token is printed once; only its hash is stored, so it cannot be shown again.

    Example:

    \b
        crmkit tokens issue li.na "ERP sync" --expires-in 30d
    """
    span = parse_duration(expires_in) if expires_in else None
    token, plain = _tokens().issue(username, name, expires_in=span)
    click.echo(plain)
    expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "no expiry"
    click.echo(
        f"Token {token.id} ({name}) for {username}, {expiry}. Store it now: it will not be"
        " shown again.",
        err=True,
    )


@tokens_group.command("list")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_tokens_command(username: str, as_json: bool) -> None:
    """List a user's tokens (their first characters only) with their status.

    Example:

    \b
        crmkit tokens list li.na
    """
    tokens = _tokens().list(username)
    if as_json:
        echo_json(
            [
                {
                    "id": token.id,
                    "name": token.name,
                    "prefix": token.prefix,
                    "status": token.status,
                    "created_at": token.created_at,
                    "expires_at": token.expires_at,
                    "revoked_at": token.revoked_at,
                    "last_used_at": token.last_used_at,
                }
                for token in tokens
            ]
        )
        return
    if not tokens:
        click.echo(f'{username} has no tokens: crmkit tokens issue {username} "NAME"')
        return
    echo_table(
        ("id", "name", "prefix", "status", "created_at", "expires_at", "last_used_at"),
        [
            (
                token.id,
                token.name,
                token.prefix + "…",
                token.status,
                token.created_at,
                token.expires_at,
                token.last_used_at,
            )
            for token in tokens
        ],
    )


@tokens_group.command("revoke")
@click.argument("token_id", metavar="ID", type=int)
def revoke_token_command(token_id: int) -> None:
    """Revoke a token: it stops working at once.

    Example:

    \b
        crmkit tokens revoke 3
    """
    token = _tokens().revoke(token_id)
    click.echo(f"Revoked token {token.id} ({token.name})")


# -- audit log and inbox -----------------------------------------------------------------------


def parse_moment(text: str) -> dt.datetime:
    """An ISO 8601 date or time; without a time zone it is UTC."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date or time, e.g. 2025-06-01 or 2025-06-01T09:00+08:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _changes_text(changes: Mapping[str, Any]) -> str:
    parts = []
    for name, value in changes.items():
        if isinstance(value, list) and len(value) == 2:
            parts.append(f"{name}: {value[0]} → {value[1]}")
        else:
            parts.append(f"{name}: {value}")
    return "; ".join(parts)


def _entry_json(entry: AuditRecord) -> dict[str, Any]:
    return {
        "id": entry.id,
        "occurred_at": entry.occurred_at,
        "actor": entry.actor,
        "operation": entry.operation,
        "entity": entry.entity,
        "record_id": entry.record_id,
        "sensitive": entry.sensitive,
        "detail": entry.detail,
        "changes": entry.changes,
    }


@click.command("audit")
@click.option("--user", metavar="USERNAME", help="Only what this user did ('system' for the CLI).")
@click.option("--entity", metavar="ENTITY", help="Only entries about this entity (contact, role…).")
@click.option("--record", "record_id", type=int, metavar="ID", help="Only this record's entries.")
@click.option(
    "--operation", metavar="OP", help="Only this operation; a trailing * matches a prefix (role.*)."
)
@click.option("--since", type=str, metavar="ISO", help="From this time on (UTC unless given).")
@click.option("--until", type=str, metavar="ISO", help="Before this time (UTC unless given).")
@click.option("--sensitive", is_flag=True, help="Only sensitive operations.")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, MAX_AUDIT_LIMIT),
    help="At most this many entries (newest first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every change in full.")
def audit_command(
    user: str | None,
    entity: str | None,
    record_id: int | None,
    operation: str | None,
    since: str | None,
    until: str | None,
    sensitive: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Search the audit log: who changed what, when, field by field (newest first).

    The log is append-only: the database refuses to change or delete an entry. Sensitive
    operations (permission changes, exports, bulk deletes, merges, wide reads) are marked !.

    Example:

    \b
        crmkit audit --entity contact --record 12
        crmkit audit --sensitive --since 2025-06-01 --operation "role.*"
    """
    entries = _audit_log().query(
        user=user,
        entity=entity,
        record_id=record_id,
        operation=operation,
        since=parse_moment(since) if since else None,
        until=parse_moment(until) if until else None,
        sensitive=True if sensitive else None,
        limit=limit,
    )
    if as_json:
        echo_json([_entry_json(entry) for entry in entries])
        return
    if not entries:
        click.echo("No audit entries match.")
        return
    echo_table(
        ("id", "time", "actor", "operation", "entity", "record", "!", "what"),
        [
            (
                entry.id,
                entry.occurred_at,
                entry.actor,
                entry.operation,
                entry.entity,
                entry.record_id,
                "!" if entry.sensitive else "",
                clip(entry.detail or _changes_text(entry.changes), 60),
            )
            for entry in entries
        ],
    )


@click.command("inbox")
@click.option("--user", metavar="USERNAME", help="Only this user's notifications (default: all).")
@click.option("--all", "show_all", is_flag=True, help="Include notifications already read.")
@click.option("--mark-read", is_flag=True, help="Mark the notifications shown as read.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def inbox_command(user: str | None, show_all: bool, mark_read: bool, as_json: bool) -> None:
    """Show in-app notifications: sensitive operations reach every active admin here.

    Example:

    \b
        crmkit inbox --user admin --mark-read
    """
    log = _audit_log()
    messages = log.inbox(user, unread_only=not show_all)
    if mark_read:
        log.mark_read(user, [message.id for message in messages])
    if as_json:
        echo_json(
            [
                {
                    "id": message.id,
                    "user": message.username,
                    "created_at": message.created_at,
                    "kind": message.kind,
                    "title": message.title,
                    "body": message.body,
                    "read_at": message.read_at,
                }
                for message in messages
            ]
        )
        return
    if not messages:
        click.echo("No notifications." if show_all else "No unread notifications.")
        return
    echo_table(
        ("id", "user", "time", "title", "body", "read"),
        [
            (
                message.id,
                message.username,
                message.created_at,
                clip(message.title),
                clip(message.body, 60),
                "yes" if message.read_at else "",
            )
            for message in messages
        ],
    )


def security_commands() -> Sequence[click.Command]:
    """The commands of this module, for the root group."""
    return (roles_group, tokens_group, audit_command, inbox_command)


__all__ = [
    "audit_command",
    "inbox_command",
    "parse_duration",
    "parse_moment",
    "roles_group",
    "security_commands",
    "tokens_group",
]
