"""``crmkit contacts|accounts|leads|deals|activities|tasks``: the record commands.

One factory builds the same five commands (list, show, create, update, delete) for every
core entity from a short description of each; leads add ``convert`` and deals ``move``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from attrs import frozen

from crmkit.cli.context import cli_state
from crmkit.cli.display import echo_details, echo_json, echo_table
from crmkit.cli.parameters import (
    FIELD_VALUE,
    filter_option,
    pairs_to_dict,
    search_option,
    split_names,
)
from crmkit.services.cells import MAX_PAGE, plural

if TYPE_CHECKING:
    from crmkit.app import CRM

JSON_HELP = "Print JSON instead of a table."


@frozen
class EntityCommands:
    """How the record commands of one entity look: the columns ``list`` shows (the second
    names the record in messages) and the values the help examples use."""

    entity: str
    columns: tuple[str, ...]
    filter_example: str
    create_example: str
    update_example: str

    @property
    def a_record(self) -> str:
        """``a contact``, ``an account`` (for help texts)."""
        return f"{'an' if self.entity[0] in 'aeiou' else 'a'} {self.entity}"

    @property
    def group_name(self) -> str:
        """The command group: the entity's plural (``contacts``)."""
        return plural(self.entity)


CORE_RECORD_COMMANDS = (
    EntityCommands(
        "contact",
        ("id", "full_name", "title", "phone", "email", "city", "account_id", "lifecycle_stage"),
        "city=上海 --filter lifecycle_stage__in=prospect,first_purchase",
        'full_name=张伟 phone="138 1234 5678" email=zhang.wei@example.cn city=上海',
        "lifecycle_stage=repeat_buyer",
    ),
    EntityCommands(
        "account",
        ("id", "name", "industry", "phone", "city", "lifecycle_stage", "value_tier"),
        "value_tier=VIP",
        'name="上海锦程贸易有限公司" city=上海 phone="021-6288 1234"',
        "value_tier=A",
    ),
    EntityCommands(
        "lead",
        ("id", "full_name", "company_name", "phone", "email", "status", "source_channel"),
        "status=new",
        'full_name=陳志明 company_name="宏達資訊股份有限公司" phone="+886 912 345 678"',
        "status=qualified",
    ),
    EntityCommands(
        "deal",
        ("id", "name", "amount", "currency", "stage_id", "account_id", "expected_close_date"),
        "amount__gte=100000",
        'name="ERP 系统升级" amount=120000 account_id=3',
        "expected_close_date=2025-09-30",
    ),
    EntityCommands(
        "activity",
        ("id", "kind", "subject", "occurred_at", "contact_id", "account_id", "deal_id"),
        "kind=call --filter contact_id=12",
        'kind=call subject="电话回访：确认报价" contact_id=12 customer_request="缩短交货期"',
        'watch_points="采购经理下周出差"',
    ),
    EntityCommands(
        "task",
        ("id", "title", "status", "due_at", "priority", "owner_id", "contact_id"),
        "status=open --sort due_at",
        'title="发送报价单" due_at=2025-07-01T10:00+08:00 contact_id=12',
        "status=done",
    ),
)


def echo_record_page(
    crm: CRM, entity: str, page: Any, columns: Sequence[str], *, empty: str
) -> None:
    """A page of records as a table of ``columns`` (``empty`` when it has none), and where
    the next page starts, on stderr."""
    if not page.items:
        click.echo(empty)
        return
    rows = []
    for record in page.items:
        values = record_values(crm, entity, record)
        rows.append([values.get(column) for column in columns])
    echo_table(columns, rows)
    if page.next_cursor:
        click.echo(f"More: add --cursor {page.next_cursor}", err=True)


def record_values(crm: CRM, entity: str, record: Any) -> dict[str, object]:
    """A record's fields in export order: id, the fields, custom fields, timestamps."""
    snapshot = crm.records(entity).snapshot(record)
    from crmkit.services.transfer import export_fields

    ordered = export_fields(crm, entity)
    values = {name: snapshot.get(name) for name in ordered}
    values.update({k: v for k, v in snapshot.items() if k not in values and k != "deleted_at"})
    return values


def record_group(spec: EntityCommands) -> click.Group:
    """The command group of one entity: list, show, create, update, delete."""
    group_name = spec.group_name
    group = click.Group(
        group_name,
        help=f"{group_name.capitalize()}: list, show, create, update and delete.\n\n"
        f"Example:\n\n\b\n    crmkit {group_name} list --filter {spec.filter_example}",
    )
    for factory in (_list_command, _show_command, _create_command, _update_command):
        group.add_command(factory(spec))
    group.add_command(_delete_command(spec))
    return group


def _list_command(spec: EntityCommands) -> click.Command:
    entity, group_name = spec.entity, spec.group_name

    @click.command(
        "list",
        help=f"List {group_name}, a page at a time.\n\n"
        "Filters are FIELD=VALUE or FIELD__OP=VALUE with OP one of eq, ne, lt, lte, gt, gte,"
        " in (comma-separated values), contains, empty (true/false); values are read like"
        f" input, so a phone number matches however it is typed.\n\n"
        f"Example:\n\n\b\n    crmkit {group_name} list --filter {spec.filter_example}",
    )
    @filter_option("Only records matching this (repeatable; all must match).")
    @search_option
    @click.option(
        "--sort",
        default="id",
        show_default=True,
        metavar="[-]FIELD",
        help="Sort by this field; a leading - sorts descending.",
    )
    @click.option(
        "--limit",
        default=50,
        show_default=True,
        type=click.IntRange(1, MAX_PAGE),
        help="Records per page.",
    )
    @click.option("--cursor", metavar="CURSOR", help="Continue after the page that printed it.")
    @click.option(
        "--fields",
        metavar="A,B,...",
        help=f"Columns to show (default: {','.join(spec.columns)}).",
    )
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    def command(
        filters: Sequence[tuple[str, str]],
        search: str | None,
        sort: str,
        limit: int,
        cursor: str | None,
        fields: str | None,
        as_json: bool,
    ) -> None:
        crm = cli_state().crm()
        columns = split_names([fields]) if fields else list(spec.columns)
        from crmkit.services.transfer import export_fields

        known = [*export_fields(crm, entity), "created_by_id", "updated_by_id"]
        unknown = [column for column in columns if column not in known]
        if unknown:
            raise click.BadParameter(
                f"{', '.join(unknown)}: not a field of {entity}; the fields are {', '.join(known)}",
                param_hint="--fields",
            )
        page = crm.records(entity).list(
            pairs_to_dict(filters), search=search, sort=sort, limit=limit, cursor=cursor
        )
        if as_json:
            items = [record_values(crm, entity, record) for record in page.items]
            echo_json({"items": items, "next_cursor": page.next_cursor})
            return
        echo_record_page(crm, entity, page, columns, empty=f"No {group_name} found.")

    return command


def _show_command(spec: EntityCommands) -> click.Command:
    entity, group_name = spec.entity, spec.group_name

    @click.command(
        "show",
        help=f"Show every field of one {entity}.\n\n"
        f"Example:\n\n\b\n    crmkit {group_name} show 12",
    )
    @click.argument("record_id", metavar="ID", type=int)
    @click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
    def command(record_id: int, as_json: bool) -> None:
        crm = cli_state().crm()
        values = record_values(crm, entity, crm.records(entity).get(record_id))
        if as_json:
            echo_json(values)
        else:
            echo_details(values)

    return command


def _create_command(spec: EntityCommands) -> click.Command:
    entity, group_name = spec.entity, spec.group_name

    @click.command(
        "create",
        help=f"Create {spec.a_record} from FIELD=VALUE pairs.\n\n"
        "Values are validated and normalised as in every other way in (phone numbers to"
        " E.164, names NFKC); list fields take VALUE;VALUE.\n\n"
        f"Example:\n\n\b\n    crmkit {group_name} create {spec.create_example}",
    )
    @click.argument("values", nargs=-1, type=FIELD_VALUE)
    @click.option("--json", "as_json", is_flag=True, help="Print the new record as JSON.")
    def command(values: Sequence[tuple[str, str]], as_json: bool) -> None:
        crm = cli_state().crm()
        record = crm.records(entity).create(pairs_to_dict(values))
        if as_json:
            echo_json(record_values(crm, entity, record))
        else:
            click.echo(f"Created {entity} {record.id}")

    return command


def _update_command(spec: EntityCommands) -> click.Command:
    entity, group_name = spec.entity, spec.group_name

    @click.command(
        "update",
        help=f"Change fields of {spec.a_record}.\n\n"
        "FIELD= (nothing after the =) clears a field. With --expected-version the change"
        " is refused if someone else changed the record since you read that version.\n\n"
        f"Example:\n\n\b\n    crmkit {group_name} update 12 {spec.update_example}"
        " --expected-version 3",
    )
    @click.argument("record_id", metavar="ID", type=int)
    @click.argument("values", nargs=-1, type=FIELD_VALUE)
    @click.option(
        "--expected-version",
        type=int,
        metavar="N",
        help="The version you read; refuse the update if the record is at another one.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the updated record as JSON.")
    def command(
        record_id: int,
        values: Sequence[tuple[str, str]],
        expected_version: int | None,
        as_json: bool,
    ) -> None:
        if not values:
            raise click.UsageError("give at least one FIELD=VALUE to change")
        crm = cli_state().crm()
        record = crm.records(entity).update(
            record_id, pairs_to_dict(values), expected_version=expected_version
        )
        if as_json:
            echo_json(record_values(crm, entity, record))
        else:
            click.echo(f"Updated {entity} {record.id} (version {record.version})")

    return command


def _delete_command(spec: EntityCommands) -> click.Command:
    entity, group_name = spec.entity, spec.group_name

    @click.command(
        "delete",
        help=f"Delete {spec.a_record} (a soft delete).\n\n"
        "It disappears from every list and search; its data stays stored.\n\n"
        f"Example:\n\n\b\n    crmkit {group_name} delete 12",
    )
    @click.argument("record_id", metavar="ID", type=int)
    @click.option(
        "--expected-version",
        type=int,
        metavar="N",
        help="The version you read; refuse if the record is at another one.",
    )
    def command(record_id: int, expected_version: int | None) -> None:
        cli_state().crm().records(entity).delete(record_id, expected_version=expected_version)
        click.echo(f"Deleted {entity} {record_id}")

    return command


@click.command("convert")
@click.argument("lead_id", metavar="ID", type=int)
@click.option(
    "--account-id",
    type=int,
    metavar="N",
    help="Attach to this existing account instead of creating one from the company name.",
)
@click.option("--no-deal", is_flag=True, help="Do not create a deal.")
@click.option("--json", "as_json", is_flag=True, help="Print what was created as JSON.")
def convert_command(lead_id: int, account_id: int | None, no_deal: bool, as_json: bool) -> None:
    """Convert a lead into a contact, an account and a deal (in one transaction).

    Example:

    \b
        crmkit leads convert 7 --account-id 3
    """
    crm = cli_state().crm()
    result = crm.leads.convert(lead_id, account_id=account_id, create_deal=not no_deal)
    if as_json:
        echo_json(
            {
                "lead_id": result.lead_id,
                "contact_id": result.contact_id,
                "account_id": result.account_id,
                "deal_id": result.deal_id,
            }
        )
        return
    made = [f"contact {result.contact_id}"]
    if result.account_id is not None:
        made.append(f"account {result.account_id}")
    if result.deal_id is not None:
        made.append(f"deal {result.deal_id}")
    click.echo(f"Converted lead {lead_id}: {', '.join(made)}")


@click.command("move")
@click.argument("deal_id", metavar="ID", type=int)
@click.argument("stage")
@click.option(
    "--expected-version",
    type=int,
    metavar="N",
    help="The version you read; refuse if the deal is at another one.",
)
def move_command(deal_id: int, stage: str, expected_version: int | None) -> None:
    """Move a deal to a stage of its pipeline, given by name or id.

    Won and lost stages close the deal; every move emits deal.stage_changed.

    Example:

    \b
        crmkit deals move 12 Negotiation
    """
    crm = cli_state().crm()
    target: int | str = int(stage) if stage.isdigit() else stage
    deal = crm.deals.move_to_stage(deal_id, target, expected_version=expected_version)
    click.echo(f"Moved deal {deal_id} to {crm.deals.stage_of(deal).name}")


def record_groups() -> list[click.Group]:
    """The record command groups of the core entities, with their extra commands."""
    groups = {spec.entity: record_group(spec) for spec in CORE_RECORD_COMMANDS}
    groups["lead"].add_command(convert_command)
    groups["deal"].add_command(move_command)
    return list(groups.values())


__all__ = ["CORE_RECORD_COMMANDS", "EntityCommands", "record_group", "record_groups"]
