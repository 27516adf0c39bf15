"""``crmkit users``, ``crmkit teams`` and ``crmkit pipelines``: who works in the CRM, how they
are organised, and the stages deals move through."""

from __future__ import annotations

from collections.abc import Sequence

import click

from crmkit.cli.context import cli_state
from crmkit.cli.display import echo_json, echo_table
from crmkit.entities.deals import StageKind
from crmkit.services.deals import DEFAULT_STAGES

JSON_HELP = "Print JSON instead of a table."


@click.group("users")
def users_group() -> None:
    """Users: the people who sign in and own records.

    Example:

    \b
        crmkit users create wang.fang --team "上海一组" --display-name 王芳
    """


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def list_users_command(as_json: bool) -> None:
    """List users by user name.

    Example:

    \b
        crmkit users list
    """
    users = cli_state().crm().users.list()
    rows = [
        {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "email": user.email,
            "team_id": user.team_id,
            "admin": user.is_admin,
            "active": user.is_active,
        }
        for user in users
    ]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No users yet: crmkit users create USERNAME")
    else:
        headers = ("id", "username", "display_name", "email", "team_id", "admin", "active")
        echo_table(headers, [[row[key] for key in headers] for row in rows])


@users_group.command("create")
@click.argument("username")
@click.option("--display-name", metavar="NAME", help="The name shown (default: the user name).")
@click.option("--email", metavar="ADDRESS", help="The user's e-mail address.")
@click.option("--team", metavar="TEAM", help="The team (by name) the user belongs to.")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
def create_user_command(
    username: str, display_name: str | None, email: str | None, team: str | None, admin: bool
) -> None:
    """Create a user, optionally in a team.

    Example:

    \b
        crmkit users create li.na --display-name 李娜 --team "华东销售部" --admin
    """
    user = (
        cli_state()
        .crm()
        .users.create(
            username, display_name=display_name or "", email=email, team=team, admin=admin
        )
    )
    click.echo(f"Created user {user.username} (id {user.id})")


@click.group("teams")
def teams_group() -> None:
    """Teams: a tree of departments and sub-teams.

    Example:

    \b
        crmkit teams create "华东销售部" --parent "总部"
    """


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
