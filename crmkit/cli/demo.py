"""``crmkit demo``: a CRM full of realistic sample data, to try things on."""

from __future__ import annotations

import click

from crmkit.cli.context import cli_state
from crmkit.services.demo import load_demo_data


@click.command("demo")
@click.option(
    "--contacts",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many contacts to create; accounts, leads, deals, activities and tasks scale with it.",
)
@click.option(
    "--seed", default=7, show_default=True, help="Random seed: the same seed, the same data."
)
def demo_command(contacts: int, seed: int) -> None:
    """Load sample data to try crmkit on.

    Teams, users, a sales pipeline, accounts, contacts, leads, deals, activities and tasks,
    with the mixed Chinese and Latin names, addresses and phone formats of real customer
    lists. Enabled plugins add their own.

    Refused when the demo data is already loaded: use a fresh database for another set.

    Example:

    \b
        crmkit --config demo/crmkit.toml init
        crmkit --config demo/crmkit.toml demo --contacts 500
    """
    summary = load_demo_data(cli_state().crm(), contacts=contacts, seed=seed)
    click.echo("Demo data loaded:")
    for line in summary.lines():
        click.echo(f"  {line}")
    click.echo("Try: crmkit contacts list --filter city=上海")


__all__ = ["demo_command"]
