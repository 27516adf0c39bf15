"""``crmkit users``, ``crmkit teams`` and ``crmkit pipelines``: who works in the CRM, how they
are organised (a team tree, a manager chain), and the stages deals move through.

Every command runs as the system (the CLI is the administrator's tool)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence

import click

from crmkit.cli.context import cli_state
from crmkit.cli.display import echo_json, echo_table
from crmkit.entities.deals import StageKind
from crmkit.services.deals import DEFAULT_STAGES
from crmkit.services.users import TeamInfo, UserProfile

JSON_HELP = "Print JSON instead of a table."


@click.group("users")
def users_group() -> None:
    """Users: the people who sign in and own records.

    Example:

    \b
        crmkit users create wang.fang --team "上海一组" --display-name 王芳
    """


@users_group.command("list")
@click.option("--active", "active_only", is_flag=True, help="Leave out deactivated users.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_users_command(active_only: bool, as_json: bool) -> None:
    """List users by user name, with their team, manager and roles; deactivated users are
    marked (with the date they left).

    Example:

    \b
        crmkit users list --active
    """
    profiles = cli_state().crm().users.profiles(include_inactive=not active_only)
    if as_json:
        echo_json(
            [
                {
                    "id": profile.id,
                    "username": profile.username,
                    "display_name": profile.display_name,
                    "email": profile.email,
                    "team_id": profile.team_id,
                    "team": profile.team,
                    "manager_id": profile.manager_id,
                    "manager": profile.manager,
                    "roles": list(profile.roles),
                    "admin": profile.is_admin,
                    "active": profile.is_active,
                    "deactivated_at": profile.deactivated_at,
                }
                for profile in profiles
            ]
        )
    elif not profiles:
        click.echo("No users yet: crmkit users create USERNAME")
    else:
        headers = ("id", "username", "display_name", "team", "manager", "roles", "admin", "status")
        echo_table(
            headers,
            [
                (
                    profile.id,
                    profile.username,
                    profile.display_name,
                    profile.team,
                    profile.manager,
                    ",".join(profile.roles),
                    "yes" if profile.is_admin else "",
                    _status(profile),
                )
                for profile in profiles
            ],
        )


def _status(profile: UserProfile) -> str:
    if profile.is_active:
        return "active"
    if profile.deactivated_at is not None:
        return f"inactive since {profile.deactivated_at:%Y-%m-%d}"
    return "inactive"


@users_group.command("create")
@click.argument("username")
@click.option("--display-name", metavar="NAME", help="The name shown (default: the user name).")
@click.option("--email", metavar="ADDRESS", help="The user's e-mail address.")
@click.option("--team", metavar="TEAM", help="The team (by name) the user belongs to.")
@click.option("--manager", metavar="USERNAME", help="The user's manager (by user name).")
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE",
    help="A role the user holds (repeatable; default: sales_rep, or admin with --admin).",
)
@click.option("--admin", is_flag=True, help="Make the user an administrator (sees everything).")
def create_user_command(
    username: str,
    display_name: str | None,
    email: str | None,
    team: str | None,
    manager: str | None,
    roles: Sequence[str],
    admin: bool,
) -> None:
    """Create a user, optionally in a team, under a manager, with roles.

    Example:

    \b
        crmkit users create li.na --display-name 李娜 --team "华东销售部" --manager wang.fang \\
            --role sales_rep
    """
    user = (
        cli_state()
        .crm()
        .users.create(
            username,
            display_name=display_name or "",
            email=email,
            team=team,
            manager=manager,
            roles=tuple(roles) or None,
            admin=admin,
        )
    )
    click.echo(f"Created user {user.username} (id {user.id})")


@users_group.command("deactivate")
@click.argument("username")
def deactivate_user_command(username: str) -> None:
    """Deactivate a departing user, in one transaction.

    Their API tokens stop working at once; their open contacts, accounts, leads, deals and
    tasks go to their manager (or, with no active manager, to the shared pool, unowned).
    Admins are notified. The last active administrator cannot be deactivated.

    Example:

    \b
        crmkit users deactivate li.na
    """
    result = cli_state().crm().users.deactivate(username)
    moved = sum(result.handed_over.values())
    to = result.successor or "the shared pool"
    detail = ", ".join(f"{count} {entity}" for entity, count in result.handed_over.items() if count)
    click.echo(
        f"Deactivated {result.username}: {moved} open record(s) handed to {to}"
        + (f" ({detail})" if detail else "")
        + f"; {result.tokens_revoked} token(s) revoked"
    )


@users_group.command("set-password")
@click.argument("username")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking twice.",
)
@click.option(
    "--generate",
    is_flag=True,
    help="Make a random password (16 characters), set it and print it once.",
)
def set_password_command(username: str, password_stdin: bool, generate: bool) -> None:
    """Set or reset a user's password for the web desk (/desk).

    Asks for the password twice without showing it (or reads it from standard input). The
    user is unlocked and every desk session they had ends. Passwords are stored as Argon2id
    hashes; the shortest allowed is [crmkit.desk] min_password_length (10).

    Example:

    \b
        crmkit users set-password li.na
        echo 'a long passphrase' | crmkit users set-password li.na --password-stdin
        crmkit users set-password li.na --generate
    """
    if password_stdin and generate:
        raise click.UsageError("use either --password-stdin or --generate, not both")
    if generate:
        password = secrets.token_urlsafe(12)
        cli_state().crm().sign_in.set_password(username, password)
        click.echo(f"Password of {username} set to: {password}")
        return
    if password_stdin:
        line: str = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
    else:
        password = click.prompt(
            f"New desk password for {username}", hide_input=True, confirmation_prompt=True
        )
    cli_state().crm().sign_in.set_password(username, password)
    click.echo(f"Password of {username} set; they can sign in at /desk")


@users_group.command("set-manager")
@click.argument("username")
@click.argument("manager", required=False)
def set_manager_command(username: str, manager: str | None) -> None:
    """Set a user's manager (leave MANAGER out to clear it).

    A departing user's open records go to their manager. A manager chain may not loop back
    on itself.

    Example:

    \b
        crmkit users set-manager li.na wang.fang
    """
    cli_state().crm().users.set_manager(username, manager)
    click.echo(f"{username} now reports to {manager}" if manager else f"{username} has no manager")


@users_group.command("set-team")
@click.argument("username")
@click.argument("team", required=False)
def set_team_command(username: str, team: str | None) -> None:
    """Move a user to a team (leave TEAM out for no team). Their records keep their team.

    Example:

    \b
        crmkit users set-team li.na "上海一组"
    """
    cli_state().crm().users.set_team(username, team)
    click.echo(f"{username} is now in team {team}" if team else f"{username} is in no team")


@users_group.command("roles")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def user_roles_command(username: str, as_json: bool) -> None:
    """Show the roles a user holds (change them with crmkit roles assign/unassign).

    Example:

    \b
        crmkit users roles li.na
    """
    profile = cli_state().crm().users.profile(username)
    if as_json:
        echo_json(
            {"username": profile.username, "roles": list(profile.roles), "admin": profile.is_admin}
        )
        return
    roles = ", ".join(profile.roles) or "no roles"
    admin = " (administrator: sees and does everything)" if profile.is_admin else ""
    click.echo(f"{profile.username}: {roles}{admin}")


@click.group("teams")
def teams_group() -> None:
    """Teams: a tree of departments and sub-teams.

    A manager's subtree scope covers their team and every team below it.

    Example:

    \b
        crmkit teams create "华东销售部" --parent "总部"
    """


@teams_group.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_teams_command(as_json: bool) -> None:
    """Show the team tree, with the number of active members of each team.

    Example:

    \b
        crmkit teams list
    """
    teams = cli_state().crm().users.teams()
    if as_json:
        echo_json(
            [
                {
                    "id": team.id,
                    "name": team.name,
                    "parent": team.parent,
                    "depth": team.depth,
                    "path": list(team.path),
                    "members": team.members,
                }
                for team in teams
            ]
        )
    elif not teams:
        click.echo('No teams yet: crmkit teams create "Sales"')
    else:
        for line in tree_lines(teams):
            click.echo(line)


def tree_lines(teams: Sequence[TeamInfo]) -> list[str]:
    """The team tree drawn with box-drawing characters (``teams`` in depth-first order)."""
    last_child: dict[int, bool] = {}
    for index, team in enumerate(teams):
        following = [t for t in teams[index + 1 :] if t.depth <= team.depth]
        last_child[index] = not following or following[0].depth < team.depth
    lines = []
    open_levels: list[bool] = []  # per depth: whether an ancestor has siblings still to come
    for index, team in enumerate(teams):
        del open_levels[team.depth :]
        members = f"  ({team.members} member{'s' if team.members != 1 else ''})"
        if team.depth == 0:
            lines.append(team.name + members)
        else:
            indent = "".join("│   " if more else "    " for more in open_levels[1:])
            branch = "└── " if last_child[index] else "├── "
            lines.append(indent + branch + team.name + members)
        open_levels.append(not last_child[index])
    return lines


@teams_group.command("create")
@click.argument("name")
@click.option("--parent", metavar="TEAM", help="The parent team (by name).")
def create_team_command(name: str, parent: str | None) -> None:
    """Create a team, optionally under a parent team.

    Example:

    \b
        crmkit teams create "上海一组" --parent "华东销售部"
    """
    team = cli_state().crm().users.create_team(name, parent=parent)
    click.echo(f"Created team {team.name} (id {team.id})")


@teams_group.command("move")
@click.argument("name")
@click.option(
    "--parent", metavar="TEAM", help="The new parent team (leave out to make it a top team)."
)
def move_team_command(name: str, parent: str | None) -> None:
    """Move a team, with every team below it, under another team.

    A team cannot move under itself or one of its own sub-teams (a cycle). Managers' subtree
    scopes follow the new tree at once; admins are notified.

    Example:

    \b
        crmkit teams move "上海一组" --parent "华南销售部"
    """
    cli_state().crm().users.move_team(name, parent)
    click.echo(f"Moved team {name} under {parent}" if parent else f"{name} is now a top team")


@click.group("pipelines")
def pipelines_group() -> None:
    """Pipelines: the ordered stages deals move through.

    Example:

    \b
        crmkit pipelines list
    """


@pipelines_group.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_pipelines_command(as_json: bool) -> None:
    """List pipelines (the default first) with their stages.

    Example:

    \b
        crmkit pipelines list --json
    """
    crm = cli_state().crm()
    pipelines = [(pipeline, crm.pipelines.stages(pipeline.id)) for pipeline in crm.pipelines.all()]
    if as_json:
        echo_json(
            [
                {
                    "id": pipeline.id,
                    "name": pipeline.name,
                    "default": pipeline.is_default,
                    "stages": [
                        {"id": s.id, "name": s.name, "probability": s.probability, "kind": s.kind}
                        for s in stages
                    ],
                }
                for pipeline, stages in pipelines
            ]
        )
        return
    if not pipelines:
        click.echo("No pipelines yet: crmkit pipelines create Sales")
        return
    echo_table(
        ("id", "name", "default", "stages"),
        [
            (
                pipeline.id,
                pipeline.name,
                "yes" if pipeline.is_default else "",
                " → ".join(f"{s.name} {s.probability}%" for s in stages),
            )
            for pipeline, stages in pipelines
        ],
    )


def _stages(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> list[tuple[str, int, str]]:
    kinds = {kind.value for kind in StageKind}
    stages = []
    for value in values:
        parts = value.split(":")
        kind = StageKind.OPEN.value
        if len(parts) >= 3 and parts[-1].strip().lower() in kinds:
            kind = parts.pop().strip().lower()
        if len(parts) < 2 or not parts[-1].strip().isdigit() or not parts[0].strip():
            raise click.BadParameter(
                f"{value!r} is not NAME:PROBABILITY[:KIND], e.g. Proposal:50 or Won:100:won"
            )
        probability = int(parts.pop().strip())
        stages.append((":".join(parts).strip(), probability, kind))
    return stages


@pipelines_group.command("create")
@click.argument("name")
@click.option(
    "--stage",
    "stages",
    multiple=True,
    callback=_stages,
    metavar="NAME:PROB[:KIND]",
    help="A stage, in order (repeatable): name, win probability 0-100, and kind open, won or"
    " lost (default open). Without any: "
    + ", ".join(f"{n}:{p}:{k}" for n, p, k in DEFAULT_STAGES)
    + ".",
)
@click.option("--default", "make_default", is_flag=True, help="Make it the default pipeline.")
def create_pipeline_command(
    name: str, stages: list[tuple[str, int, str]], make_default: bool
) -> None:
    """Create a pipeline. The first pipeline becomes the default one.

    Example:

    \b
        crmkit pipelines create Renewals --stage Due:50 --stage Renewed:100:won \\
            --stage Cancelled:0:lost
    """
    chosen = stages or list(DEFAULT_STAGES)
    pipeline = cli_state().crm().pipelines.create(name, chosen, default=make_default)
    default = " (default)" if pipeline.is_default else ""
    click.echo(f"Created pipeline {pipeline.name}{default} with {len(chosen)} stages")


__all__ = ["pipelines_group", "teams_group", "users_group"]
