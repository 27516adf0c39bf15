"""``crmkit campaigns``: write, check, start, pause, run and test-send campaigns.

The CLI acts as the system (like every admin command); ``--owner`` names the user whose view
of the contacts bounds a new campaign's audience, ``--user`` whose address gets a test."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit_campaigns import service
from crmkit_campaigns.sending import run_campaigns


def _read(path: str) -> dict[str, Any]:
    """A definition file: TOML (``.toml``) or JSON (``.json``)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise click.ClickException(f"{path}: {error}") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: a campaign definition is a table")
    return data


def _filters(where: tuple[str, ...]) -> dict[str, str]:
    filters = {}
    for item in where:
        name, sign, value = item.partition("=")
        if not sign or not name.strip():
            raise click.BadParameter(f"{item!r}: give FIELD=VALUE", param_hint="--where")
        filters[name.strip()] = value
    return filters


def _show(info: service.CampaignInfo, as_json: bool) -> None:
    row = {
        "id": info.id,
        "name": info.name,
        "status": info.status,
        "owner": info.owner,
        "segment": info.segment,
        "filters": dict(info.filters),
        "steps": info.steps,
        "window": dict(info.window),
        "allow_same_day": info.allow_same_day,
        "audience": info.audience,
        "created_at": info.created_at.isoformat(),
        "started_at": info.started_at.isoformat() if info.started_at else None,
        "members": dict(info.members),
    }
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))
        return
    audience = f"segment {info.segment}" if info.segment else f"filters {dict(info.filters)}"
    click.echo(f"{info.name} ({info.status}), owner {info.owner or '-'}, {audience}")
    for position, step in enumerate(info.steps, start=1):
        when = ""
        if step["kind"] == "follow_up":
            when = f" after {step['after_days']:g} day(s) unless {step['unless']}"
        elif step["kind"] == "thank_you":
            when = f" on {step['on']}"
        click.echo(f"  {position}. {step['kind']}{when}: {next(iter(step['subject'].values()))}")
    window = info.window
    click.echo(
        f"  window: {','.join(window['days'])} {window['start']}-{window['end']}"
        f" {window['timezone']}; same day allowed: {'yes' if info.allow_same_day else 'no'}"
    )
    if info.members:
        counts = ", ".join(f"{status} {count}" for status, count in sorted(info.members.items()))
        click.echo(f"  members: {counts}")


@click.group("campaigns")
def campaigns_group() -> None:
    """E-mail campaigns to a segment or a filter of contacts: first mail, follow-ups,
    thank-yous.

    Example:

    \b
        crmkit campaigns create spring --file spring.toml --where city=上海 --owner li.na
        crmkit campaigns test spring --user li.na
        crmkit campaigns start spring
        crmkit campaigns run
    """


@campaigns_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def check_command(file: str) -> None:
    """Check a definition FILE (TOML or JSON): steps, templates, window.

    Example:

    \b
        crmkit campaigns check spring.toml
    """
    checked = service.check_definition(crmkit.cli_crm(), _read(file))
    click.echo(f"{file}: {len(checked['steps'])} step(s), templates and window are valid.")


@campaigns_group.command("create")
@click.argument("name")
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(dir_okay=False),
    help="TOML or JSON definition.",
)
@click.option("--where", multiple=True, metavar="FIELD=VALUE", help="Audience filter (repeatable).")
@click.option("--segment", help="Audience: a saved segment.")
@click.option("--owner", metavar="USERNAME", help="Whose view of the contacts bounds the audience.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_command(
    name: str,
    file: str,
    where: tuple[str, ...],
    segment: str | None,
    owner: str | None,
    as_json: bool,
) -> None:
    """Save campaign NAME as a draft from a definition FILE.

    Example:

    \b
        crmkit campaigns create spring --file spring.toml --where lifecycle_stage=customer
    """
    raw = _read(file)
    if where:
        raw["filters"] = _filters(where)
    if segment:
        raw["segment"] = segment
    _show(service.create_campaign(crmkit.cli_crm(), name, raw, owner=owner), as_json)


@campaigns_group.command("update")
@click.argument("name")
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(dir_okay=False),
    help="TOML or JSON definition.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def update_command(name: str, file: str, as_json: bool) -> None:
    """Replace campaign NAME's steps and window (and, before it starts, its audience).

    Example:

    \b
        crmkit campaigns update spring --file spring.toml
    """
    _show(service.update_campaign(crmkit.cli_crm(), name, _read(file)), as_json)


@campaigns_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(as_json: bool) -> None:
    """List the campaigns.

    Example:

    \b
        crmkit campaigns list
    """
    infos = service.list_campaigns(crmkit.cli_crm())
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"name": i.name, "status": i.status, "owner": i.owner, "audience": i.audience}
                    for i in infos
                ],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if not infos:
        click.echo("No campaigns.")
    for info in infos:
        click.echo(f"{info.id:>4}  {info.status:<8} {info.audience:>8}  {info.name}")


@campaigns_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(name: str, as_json: bool) -> None:
    """Show campaign NAME: steps, window, members by status.

    Example:

    \b
        crmkit campaigns show spring
    """
    _show(service.get_campaign(crmkit.cli_crm(), name), as_json)


@campaigns_group.command("start")
@click.argument("name")
def start_command(name: str) -> None:
    """Start campaign NAME (its audience becomes its members), or resume it.

    Example:

    \b
        crmkit campaigns start spring
    """
    info = service.start_campaign(crmkit.cli_crm(), name)
    click.echo(f"Campaign {info.name} is running: {info.audience} member(s).")


@campaigns_group.command("pause")
@click.argument("name")
def pause_command(name: str) -> None:
    """Pause campaign NAME.

    Example:

    \b
        crmkit campaigns pause spring
    """
    service.pause_campaign(crmkit.cli_crm(), name)
    click.echo(f"Campaign {name} is paused.")


@campaigns_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask.")
def delete_command(name: str, yes: bool) -> None:
    """Delete campaign NAME and its members (the delivery log and activities stay).

    Example:

    \b
        crmkit campaigns delete spring --yes
    """
    if not yes:
        raise click.UsageError("deleting a campaign cannot be undone: add --yes")
    service.delete_campaign(crmkit.cli_crm(), name)
    click.echo(f"Campaign {name} deleted.")


@campaigns_group.command("run")
@click.option("--campaign", "only", metavar="NAME", help="Only this campaign.")
def run_command(only: str | None) -> None:
    """Hand due campaign mails to the message queue now (the worker does it every 15 s;
    ``crmkit worker --once`` then delivers them).

    Example:

    \b
        crmkit campaigns run
    """
    results = run_campaigns(crmkit.cli_crm(), only=only)
    if not results:
        click.echo("No running campaign.")
    for r in results:
        if r.window_closed:
            click.echo(
                f"{r.campaign}: outside its schedule window (stopped: replied"
                f" {r.replied}, opted out {r.opted_out})"
            )
            continue
        click.echo(
            f"{r.campaign}: queued {r.sent} mail(s), {r.thanked} thank-you(s); deferred"
            f" {r.deferred}, suppressed {r.suppressed}, invalid {r.invalid}, left {r.left};"
            f" stopped: replied {r.replied}, opted out {r.opted_out}"
        )


@campaigns_group.command("test")
@click.argument("name")
@click.option(
    "--user",
    "username",
    envvar="CRMKIT_USER",
    required=True,
    metavar="USERNAME",
    help="Who gets the test (their e-mail).",
)
@click.option("--step", default=1, type=click.IntRange(1, 1000), help="Which step (default 1).")
@click.option(
    "--contact", "contact_id", type=click.IntRange(1, 2**31 - 1), help="Render for this contact."
)
@click.option("--language", help="Template language (default: the contact's).")
def test_command(
    name: str, username: str, step: int, contact_id: int | None, language: str | None
) -> None:
    """Send one step of campaign NAME to USERNAME's own address (as they see the contact).

    Example:

    \b
        crmkit campaigns test spring --user li.na --step 2 --contact 12
    """
    record = service.send_test(
        crmkit.cli_crm(),
        name,
        step=step,
        contact_id=contact_id,
        language=language,
        user=username,
    )
    click.echo(f"Test of {name} step {step} to {record.address}: {record.status}.")
