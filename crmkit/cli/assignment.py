"""``crmkit rules``, ``crmkit assign`` and ``crmkit pool``: assignment rules, bulk
assignment and the shared pool."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from typing import Any

import click

from crmkit.assignment.rules import OPERATORS, Rule
from crmkit.cli.context import cli_state
from crmkit.cli.display import echo_json, echo_table
from crmkit.cli.terminal import raw_stream
from crmkit.errors import CRMError
from crmkit.permissions.catalogue import ASSIGNABLE
from crmkit.services.users import find_user

ENTITY = click.Choice(ASSIGNABLE)
_CLI_OPERATORS = {"=": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def parse_when(items: Sequence[str]) -> dict[str, Any]:
    """``--when`` texts as filter-syntax conditions: ``source_channel=web``,
    ``amount>=1000``, ``region in 华东,华南``, ``name contains 伟``, ``email empty``."""
    conditions: dict[str, Any] = {}
    for item in items:
        words = item.split(maxsplit=2)
        if len(words) >= 2 and words[1] in OPERATORS:
            field, operator = words[0], words[1]
            value: Any = words[2] if len(words) > 2 else True
            if operator == "in":
                value = [part.strip() for part in str(value).split(",") if part.strip()]
            conditions[f"{field}__{operator}"] = value
            continue
        for symbol in ("<=", ">=", "!=", "=", "<", ">"):
            field, found, value = item.partition(symbol)
            if found and field.strip():
                operator = _CLI_OPERATORS[symbol]
                key = field.strip() if operator == "eq" else f"{field.strip()}__{operator}"
                conditions[key] = value.strip()
                break
        else:
            raise click.BadParameter(
                f"{item!r}: write FIELD=VALUE, FIELD>=VALUE, 'FIELD in A,B',"
                " 'FIELD contains TEXT' or 'FIELD empty'",
                param_hint="--when",
            )
    return conditions


def _pairs(items: Sequence[str], option: str, *, numbers: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        key, found, value = item.partition("=")
        if not found or not key.strip() or not value.strip():
            raise click.BadParameter(f"{item!r}: write KEY=VALUE", param_hint=option)
        if numbers:
            try:
                result[key.strip()] = int(value)
            except ValueError:
                raise click.BadParameter(
                    f"{item!r}: {value!r} is not a whole number", param_hint=option
                ) from None
        else:
            result[key.strip()] = value.strip()
    return result


def _rule_row(rule: Rule) -> dict[str, Any]:
    members = []
    for member in rule.members:
        extra = []
        if member.weight != 1:
            extra.append(f"weight {member.weight}")
        if member.capacity is not None:
            extra.append(f"cap {member.capacity}")
        if member.territory:
            extra.append(f"{rule.territory_field}={member.territory}")
        members.append(member.label + (f" ({', '.join(extra)})" if extra else ""))
    return {
        "entity": rule.entity,
        "name": rule.name,
        "strategy": rule.strategy,
        "when": ", ".join(
            [c.describe() for c in rule.conditions]
            + [f"{key}={value}" for key, value in rule.filters.items()]
        )
        or "always",
        "members": "; ".join(members),
        "source": rule.source,
    }


@click.group("rules")
def rules_group() -> None:
    """Assignment rules: who gets new leads, contacts, accounts and deals.

    Example:

    \b
        crmkit rules add lead web --strategy round_robin --member alice --member bob
        crmkit rules test lead --set source_channel=web
    """


@rules_group.command("list")
@click.option("--entity", type=ENTITY, help="Only the rules of this entity.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def rules_list(entity: str | None, as_json: bool) -> None:
    """List the rules in the order they are tried (config file first).

    Example:

    \b
        crmkit rules list --entity lead
    """
    rows = [_rule_row(rule) for rule in cli_state().crm().assignment.rules(entity)]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No assignment rules: new records belong to whoever creates them.")
    else:
        headers = ("entity", "name", "strategy", "when", "members", "source")
        echo_table(headers, [[row[h] for h in headers] for row in rows])


@rules_group.command("add")
@click.argument("entity", type=ENTITY)
@click.argument("name")
@click.option(
    "--strategy",
    required=True,
    help="round_robin, least_loaded, weighted, territory, fixed, or a plugin's strategy.",
)
@click.option(
    "--member", "members", multiple=True, metavar="USER|team:NAME", help="A member (repeatable)."
)
@click.option(
    "--when",
    "when",
    multiple=True,
    metavar="CONDITION",
    help="A condition (repeatable, all must hold): FIELD=VALUE, FIELD>=N,"
    " 'FIELD in A,B', 'FIELD contains TEXT', 'FIELD empty'.",
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="MEMBER=N",
    help="A member's weight (weighted strategy).",
)
@click.option(
    "--capacity",
    "capacity",
    multiple=True,
    metavar="MEMBER=N",
    help="A member's cap of open records of the entity.",
)
@click.option("--territory-field", metavar="FIELD", help="The field the territory map reads.")
@click.option(
    "--territory",
    "territory",
    multiple=True,
    metavar="VALUE=MEMBER",
    help="A territory entry (repeatable).",
)
@click.option(
    "--default-member", metavar="MEMBER", help="Territory: the member for values not in the map."
)
@click.option("--position", type=int, help="Try it at this place (1 = first); default last.")
def rules_add(
    entity: str,
    name: str,
    strategy: str,
    members: Sequence[str],
    when: Sequence[str],
    weights: Sequence[str],
    capacity: Sequence[str],
    territory_field: str | None,
    territory: Sequence[str],
    default_member: str | None,
    position: int | None,
) -> None:
    """Add an assignment rule of ENTITY called NAME.

    Example:

    \b
        crmkit rules add lead web --strategy round_robin --member alice --member bob \\
            --when source_channel=web
        crmkit rules add account regions --strategy territory --territory-field region \\
            --territory 华东=alice --territory 华南=team:South --default-member bob
        crmkit rules add deal big --strategy least_loaded --member team:KA --when amount>=100000
    """
    rule = (
        cli_state()
        .crm()
        .assignment.add_rule(
            entity,
            name,
            strategy,
            members,
            when=parse_when(when),
            weights=_pairs(weights, "--weight", numbers=True),
            capacity=_pairs(capacity, "--capacity", numbers=True),
            territory_field=territory_field,
            territory=_pairs(territory, "--territory", numbers=False),
            default_member=default_member,
            position=position,
        )
    )
    click.echo(f"rule {rule.name!r} of {entity} added at position {rule.position}")


@rules_group.command("remove")
@click.argument("entity", type=ENTITY)
@click.argument("name")
def rules_remove(entity: str, name: str) -> None:
    """Remove the rule NAME of ENTITY.

    Example:

    \b
        crmkit rules remove lead web
    """
    cli_state().crm().assignment.remove_rule(entity, name)
    click.echo(f"rule {name!r} of {entity} removed")


@rules_group.command("test")
@click.argument("entity", type=ENTITY)
@click.option(
    "--set",
    "values",
    multiple=True,
    metavar="FIELD=VALUE",
    help="A field of the sample record (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rules_test(entity: str, values: Sequence[str], as_json: bool) -> None:
    """Show which rule and member a sample record would get, and why (changes nothing).

    Example:

    \b
        crmkit rules test lead --set source_channel=web --set region=华东
    """
    explanation = cli_state().crm().assignment.test(entity, _pairs(values, "--set", numbers=False))
    decision = explanation.decision
    if as_json:
        echo_json(
            {
                "entity": entity,
                "steps": list(explanation.steps),
                "owner": decision.username if decision else None,
                "rule": decision.rule if decision else None,
                "reason": decision.reason if decision else None,
            }
        )
        return
    for step in explanation.steps:
        click.echo(f"- {step}")
    if decision is None:
        click.echo("→ no rule assigns it: it would belong to whoever creates it")
    else:
        click.echo(f"→ {decision.username} (rule {decision.rule!r}, {decision.strategy})")


@rules_group.command("away")
@click.argument("username")
@click.option("--until", type=click.DateTime(), help="Back at this time (UTC); default: open.")
@click.option("--note", default="", help="Why (holiday, leave, ...).")
def rules_away(username: str, until: dt.datetime | None, note: str) -> None:
    """Mark USERNAME away: every rule skips them until --until or `crmkit rules back`.

    Example:

    \b
        crmkit rules away alice --until 2026-12-01 --note 年假
    """
    moment = until.replace(tzinfo=dt.UTC) if until is not None else None
    cli_state().crm().assignment.set_away(username, until=moment, note=note)
    click.echo(f"{username} is away" + (f" until {moment:%Y-%m-%d %H:%M} UTC" if moment else ""))


@rules_group.command("back")
@click.argument("username")
def rules_back(username: str) -> None:
    """Mark USERNAME available again.

    Example:

    \b
        crmkit rules back alice
    """
    cli_state().crm().assignment.set_back(username)
    click.echo(f"{username} is back")


@click.group("assign")
def assign_group() -> None:
    """Assign records with the rules.

    Example:

    \b
        crmkit assign run --entity lead
    """


@assign_group.command("run")
@click.option(
    "--entity",
    "entities",
    type=ENTITY,
    multiple=True,
    help="Only this entity (repeatable); default every assignable one.",
)
def assign_run(entities: Sequence[str]) -> None:
    """Give every unowned open record to the member its rules choose.

    Example:

    \b
        crmkit assign run --entity lead
    """
    crm = cli_state().crm()
    for entity in entities or ASSIGNABLE:
        model: Any = crm.entity(entity).model
        from sqlalchemy import func, select

        with crm.engine.connect() as connection:
            total = connection.scalar(
                select(func.count()).where(model.owner_id.is_(None), model.deleted_at.is_(None))
            )
        if sys.stderr.isatty() and total:
            with click.progressbar(
                length=int(total or 0),
                label=f"Assigning {entity}s",
                file=raw_stream(sys.stderr),
                show_pos=True,
            ) as bar:
                result = crm.assignment.run(entity, progress=bar.update)
        else:
            result = crm.assignment.run(entity)
        click.echo(f"{entity}: {result.assigned} assigned, {result.unmatched} matched no rule")


@click.group("pool")
def pool_group() -> None:
    """The shared pool (公海): records without an owner.

    Example:

    \b
        crmkit pool list account --as alice
        crmkit pool claim account 12 --as alice
    """


@pool_group.command("list")
@click.argument("entity", type=ENTITY)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="At most this many.",
)
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pool_list(entity: str, limit: int, as_user: str | None, as_json: bool) -> None:
    """List records of ENTITY in the pool.

    Example:

    \b
        crmkit pool list account --as alice
    """
    crm = cli_state().crm()
    actor = _user(as_user)
    records = crm.pool.pool_records(entity, limit=limit, actor=actor)
    rows = [record.to_dict() for record in records]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo(f"The {entity} pool is empty.")
    else:
        label = "name" if entity in ("account", "deal") else "full_name"
        echo_table(
            ("id", label, "team_id", "updated_at"),
            [[r["id"], r.get(label), r.get("team_id"), r["updated_at"]] for r in rows],
        )


@pool_group.command("claim")
@click.argument("entity", type=ENTITY)
@click.argument("record_ids", nargs=-1, type=int, required=True)
@click.option("--as", "as_user", required=True, metavar="USERNAME", help="The claiming user.")
def pool_claim(entity: str, record_ids: Sequence[int], as_user: str) -> None:
    """Claim records of ENTITY from the pool for a user (within their limits).

    Example:

    \b
        crmkit pool claim account 12 15 --as alice
    """
    claimed = cli_state().crm().pool.claim(entity, record_ids, actor=_user(as_user))
    click.echo(
        f"{as_user} claimed {len(claimed)} {entity}(s): " + ", ".join(str(r.id) for r in claimed)
    )


@pool_group.command("release")
@click.option("--entity", type=ENTITY, help="Only this entity's policies.")
@click.option("--dry-run", is_flag=True, help="Only count what would be released.")
def pool_release(entity: str | None, dry_run: bool) -> None:
    """Release records nobody followed up, per the pool policies (the worker does this
    periodically too).

    Example:

    \b
        crmkit pool release --dry-run
    """
    crm = cli_state().crm()
    if dry_run:
        for name, count in crm.pool.due(entity).items():
            click.echo(f"{name}: {count} would be released")
        return
    results = crm.pool.release(entity)
    if not results:
        click.echo("No pool policies: nothing to release.")
    for result in results:
        click.echo(
            f"{result.entity}:{result.policy}: {result.records} released"
            f" from {result.owners} owner(s)"
        )


@pool_group.group("policy")
def policy_group() -> None:
    """Release policies: after how many days without follow-up a record goes back.

    Example:

    \b
        crmkit pool policy add account "30 days" --days 30
    """


@policy_group.command("add")
@click.argument("entity", type=ENTITY)
@click.argument("name")
@click.option("--days", type=int, required=True, help="Days without a follow-up activity.")
@click.option(
    "--when",
    "when",
    multiple=True,
    metavar="CONDITION",
    help="The segment (repeatable), as in `crmkit rules add --when`.",
)
def policy_add(entity: str, name: str, days: int, when: Sequence[str]) -> None:
    """Add a release policy.

    Example:

    \b
        crmkit pool policy add account "30 days" --days 30 --when "value_tier in b,c"
    """
    cli_state().crm().pool.add_policy(entity, name, days, when=parse_when(when))
    click.echo(f"pool policy {name!r} of {entity} added")


@policy_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def policy_list(as_json: bool) -> None:
    """List the release policies.

    Example:

    \b
        crmkit pool policy list
    """
    rows = [
        {
            "entity": p.entity,
            "name": p.name,
            "days": p.days,
            "when": dict(p.when),
            "source": p.source,
        }
        for p in cli_state().crm().pool.policies()
    ]
    if as_json:
        echo_json(rows)
    elif not rows:
        click.echo("No pool policies.")
    else:
        echo_table(
            ("entity", "name", "days", "when", "source"),
            [[r["entity"], r["name"], r["days"], r["when"] or "all", r["source"]] for r in rows],
        )


@policy_group.command("remove")
@click.argument("entity", type=ENTITY)
@click.argument("name")
def policy_remove(entity: str, name: str) -> None:
    """Remove a release policy.

    Example:

    \b
        crmkit pool policy remove account "30 days"
    """
    cli_state().crm().pool.remove_policy(entity, name)
    click.echo(f"pool policy {name!r} of {entity} removed")


def _user(username: str | None) -> Any:
    if username is None:
        return None
    crm = cli_state().crm()
    with crm.transaction(write=False) as op:
        user = find_user(op.session, username)
        if not user.is_active:
            raise CRMError(f"user {username!r} is deactivated")
        return user


def assignment_commands() -> list[click.Command]:
    """The command groups of this module, for the root group."""
    return [rules_group, assign_group, pool_group]


__all__ = ["assignment_commands", "parse_when"]
