"""``crmkit loyalty ...``: programs, cards, purchases, redemptions, refunds, coupons,
statements, the member view and the periodic jobs.

Every command calls the same services as the API routes; a crmkit error is printed as one
line and the command exits non-zero.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

import crmkit
from crmkit_loyalty import coupons, importing, jobs, service, views
from crmkit_loyalty.cards import IMAGE_FORMATS, IMAGE_KINDS, card_image, clean_number

F = TypeVar("F", bound=Callable[..., Any])


def _one_line_errors(command: F) -> F:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except crmkit.CRMError as error:
            raise click.ClickException(crmkit.terminal_safe(str(error))) from None

    return run  # type: ignore[return-value]


def _print(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """JSON, or the text form with stored control characters shown, never obeyed."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(crmkit.terminal_safe(text(data)))


def _when(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
KEY_OPTION = click.option(
    "--key", help="Idempotency key: the same key again changes nothing and prints the first answer."
)


@click.group(name="loyalty")
def loyalty_group() -> None:
    """Loyalty cards, points, tiers and coupons (bundled plugin loyalty)."""


# -- programs ----------------------------------------------------------------------------


@loyalty_group.group(name="programs", invoke_without_command=True)
@click.pass_context
@JSON_OPTION
def programs_group(context: click.Context, as_json: bool) -> None:
    """List programs (or add / sync them).

    Example: crmkit loyalty programs
    """
    if context.invoked_subcommand is None:
        _list_programs(as_json)


@_one_line_errors
def _list_programs(as_json: bool) -> None:
    rows = service.list_programs(crmkit.cli_crm())
    _print(
        rows,
        as_json,
        lambda rows: (
            "\n".join(
                f"{r['name']}: {', '.join(f'{c} x{v}' for c, v in r['rates'].items())} per unit,"
                f" {r['cards']} active cards,"
                f" tiers {', '.join(t['name'] for t in r['tiers']) or '-'}"
                for r in rows
            )
            or "No programs yet: crmkit loyalty programs add --file program.toml"
        ),
    )


@programs_group.command(name="add")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The program as TOML (a table) or JSON (an object).",
)
@_one_line_errors
def programs_add(path: Path) -> None:
    """Create or replace a program from a file.

    Example: crmkit loyalty programs add --file tea-club.toml
    """
    text = path.read_text(encoding="utf-8")
    try:
        definition = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise click.ClickException(
            f"{path}: not valid {path.suffix[1:] or 'TOML'}: {error}"
        ) from None
    program = service.add_program(crmkit.cli_crm(), definition)
    click.echo(f"Program {program['name']} saved.")


@programs_group.command(name="sync")
@_one_line_errors
def programs_sync() -> None:
    """Write the programs of [plugins.loyalty] programs in the config to the database.

    Example: crmkit loyalty programs sync
    """
    names = service.sync_programs(crmkit.cli_crm())
    click.echo(f"Synced {len(names)} program(s): {', '.join(names) or '-'}")


# -- cards -------------------------------------------------------------------------------


@loyalty_group.group(name="cards")
def cards_group() -> None:
    """Issue, show, block and draw member cards."""


def _card_text(card: dict[str, Any]) -> str:
    lines = [
        f"Card {card['card']} ({card['program']}) of {card.get('contact') or card['contact_id']}:"
        f" {card['status']}, balance {card['balance']}, pending {card['pending']},"
        f" tier {card['tier'] or '-'}"
    ]
    for soon in card.get("expiring", []):
        lines.append(f"  {soon['points']} points expire at {soon['expires_at']}")
    return "\n".join(lines)


@cards_group.command(name="issue")
@click.argument("contact_id", type=int)
@click.option("--program", help="The program (default: the only one or default_program).")
@KEY_OPTION
@JSON_OPTION
@_one_line_errors
def cards_issue(contact_id: int, program: str | None, key: str | None, as_json: bool) -> None:
    """Issue a card to a contact.

    Example: crmkit loyalty cards issue 42 --program tea-club
    """
    card = service.issue_card(crmkit.cli_crm(), contact_id, program=program, key=key)
    _print(card, as_json, lambda c: f"Issued card {c['card']} to contact {c['contact_id']}.")


@cards_group.command(name="show")
@click.argument("card")
@JSON_OPTION
@_one_line_errors
def cards_show(card: str, as_json: bool) -> None:
    """A card: holder, balance, pending points, tier, points expiring soon.

    Example: crmkit loyalty cards show 8812345678901234
    """
    _print(views.card(crmkit.cli_crm(), card), as_json, _card_text)


@cards_group.command(name="block")
@click.argument("card")
@click.option("--reason", default="lost", show_default=True, help="Why (lost, stolen, ...).")
@click.option("--no-replace", is_flag=True, help="Block only; issue no new card.")
@KEY_OPTION
@JSON_OPTION
@_one_line_errors
def cards_block(card: str, reason: str, no_replace: bool, key: str | None, as_json: bool) -> None:
    """Block a card; a new card takes over its points, tier, coupons and history.

    Example: crmkit loyalty cards block 8812345678901234 --reason lost
    """
    result = service.block_card(
        crmkit.cli_crm(), card, reason=reason, replace=not no_replace, key=key
    )
    _print(
        result,
        as_json,
        lambda r: (
            f"Blocked card {r['card']}"
            + (
                f"; new card {r['replaced_by']} holds {r['balance']} points"
                if r.get("replaced_by")
                else ""
            )
        ),
    )


@cards_group.command(name="image")
@click.argument("card")
@click.option("--kind", type=click.Choice(IMAGE_KINDS), default="qr", show_default=True)
@click.option(
    "--format", "image_format", type=click.Choice(IMAGE_FORMATS), default="svg", show_default=True
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@_one_line_errors
def cards_image(card: str, kind: str, image_format: str, out: Path | None) -> None:
    """Draw a card's number as a QR code or a barcode.

    Example: crmkit loyalty cards image 8812345678901234 --kind qr --format png --out card.png
    """
    number = views.card(crmkit.cli_crm(), card)["card"]
    data = card_image(clean_number(number), kind, image_format)
    if out is None:
        sys.stdout.buffer.write(data)
    else:
        out.write_bytes(data)
        click.echo(f"Wrote {out}")


# -- purchases, redemptions, refunds -------------------------------------------------------


def _item(text: str) -> dict[str, str]:
    parts = text.split(":")
    if len(parts) != 3:
        raise click.BadParameter(f"{text!r}: write an item as SKU:CATEGORY:AMOUNT")
    return {"sku": parts[0], "category": parts[1], "amount": parts[2]}


@loyalty_group.command(name="purchase")
@click.argument("card")
@click.argument("amount")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--receipt", help="The till's receipt id (refunds name it).")
@click.option("--store", help="The store.")
@click.option("--at", "occurred_at", help="When (ISO date-time; default now).")
@click.option("--item", "items", multiple=True, help="SKU:CATEGORY:AMOUNT (repeat; must add up).")
@KEY_OPTION
@JSON_OPTION
@_one_line_errors
def purchase_command(
    card: str,
    amount: str,
    currency: str,
    receipt: str | None,
    store: str | None,
    occurred_at: str | None,
    items: tuple[str, ...],
    key: str | None,
    as_json: bool,
) -> None:
    """Record a purchase and earn its points.

    Example: crmkit loyalty purchase 8812345678901234 388.00 --receipt R1001 --item T1:tea:388
    """
    result = service.record_purchase(
        crmkit.cli_crm(),
        card,
        amount,
        currency=currency,
        receipt_id=receipt,
        items=[_item(item) for item in items],
        store=store,
        occurred_at=occurred_at,
        key=key,
    )
    _print(
        result,
        as_json,
        lambda r: (
            f"Receipt {r['receipt_id']}: +{r['points']} points"
            + (" (pending)" if r["pending"] else "")
            + f", balance {r['balance']}"
            + (f", now {r['tier']}" if r["tier_changed"] else "")
        ),
    )


@loyalty_group.command(name="import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-bad", is_flag=True, help="Import the good rows; report the bad ones.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=2000, show_default=True)
@JSON_OPTION
@_one_line_errors
def import_command(path: Path, skip_bad: bool, batch_size: int, as_json: bool) -> None:
    """Import purchase history from CSV: card, receipt_id, amount, currency, occurred_at,
    store, and items (a JSON list) or category. A receipt already recorded is skipped, so an
    interrupted import can be run again; a bad row stops it whole unless --skip-bad.

    Example: crmkit loyalty import purchases-2026.csv
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    result = importing.import_purchases(
        crmkit.cli_crm(), rows, batch_size=batch_size, skip_bad=skip_bad
    )
    _print(
        result.as_dict(),
        as_json,
        lambda r: (
            f"Imported {r['imported']} purchases ({r['points']} points);"
            f" skipped {len(r['skipped'])} already recorded"
            + "".join(f"\n  {error}" for error in r["errors"])
        ),
    )


@loyalty_group.command(name="redeem")
@click.argument("card")
@click.argument("points")
@click.option("--note", help="What for.")
@KEY_OPTION
@JSON_OPTION
@_one_line_errors
def redeem_command(
    card: str, points: str, note: str | None, key: str | None, as_json: bool
) -> None:
    """Spend points (soonest-expiring first).

    Example: crmkit loyalty redeem 8812345678901234 500 --note "tea set"
    """
    result = service.redeem(crmkit.cli_crm(), card, points, note=note, key=key)
    _print(result, as_json, lambda r: f"Redeemed {r['points']} points; balance {r['balance']}")


@loyalty_group.command(name="refund")
@click.argument("receipt")
@click.option("--amount", help="Refund part of it (default: all that is left).")
@click.option("--program", help="The program, when the receipt id is in several.")
@KEY_OPTION
@JSON_OPTION
@_one_line_errors
def refund_command(
    receipt: str, amount: str | None, program: str | None, key: str | None, as_json: bool
) -> None:
    """Refund a purchase: its points are taken back, even if already spent.

    Example: crmkit loyalty refund R1001
    """
    result = service.refund(crmkit.cli_crm(), receipt, amount=amount, program=program, key=key)
    _print(
        result,
        as_json,
        lambda r: (
            f"Refunded {r['refunded_amount']} of {r['receipt_id']}: -{r['reversed']} points,"
            f" balance {r['balance']}" + (f". {r['message']}" if r.get("message") else "")
        ),
    )


# -- coupons -----------------------------------------------------------------------------


@loyalty_group.group(name="coupons")
def coupons_group() -> None:
    """Issue, list and redeem coupons (a program's rewards)."""


@coupons_group.command(name="issue")
@click.argument("card")
@click.argument("reward")
@KEY_OPTION
@JSON_OPTION
@_one_line_errors
def coupons_issue(card: str, reward: str, key: str | None, as_json: bool) -> None:
    """Issue a coupon of a reward to a card (its points cost is redeemed).

    Example: crmkit loyalty coupons issue 8812345678901234 "50 off"
    """
    result = coupons.issue_coupon(crmkit.cli_crm(), card, reward, key=key)
    _print(
        result,
        as_json,
        lambda r: f"Coupon {r['code']} ({r['reward']}) valid until {r['expires_at']}",
    )


@coupons_group.command(name="redeem")
@click.argument("code")
@click.option("--receipt", help="The receipt it was used on.")
@KEY_OPTION
@JSON_OPTION
@_one_line_errors
def coupons_redeem(code: str, receipt: str | None, key: str | None, as_json: bool) -> None:
    """Use a coupon (once).

    Example: crmkit loyalty coupons redeem K7M2PQ9XH4TZ --receipt R1002
    """
    result = coupons.redeem_coupon(crmkit.cli_crm(), code, receipt_id=receipt, key=key)
    _print(result, as_json, lambda r: f"Coupon {r['code']} used: {r['kind']} {r['value']}")


@coupons_group.command(name="list")
@click.argument("card")
@JSON_OPTION
@_one_line_errors
def coupons_list(card: str, as_json: bool) -> None:
    """A card's coupons.

    Example: crmkit loyalty coupons list 8812345678901234
    """
    rows = coupons.coupons_of(crmkit.cli_crm(), card)
    _print(
        rows,
        as_json,
        lambda rows: (
            "\n".join(
                f"{r['code']}  {r['reward']}  until {r['expires_at']}"
                + (f"  used {r['redeemed_at']}" if r["redeemed_at"] else "")
                for r in rows
            )
            or "No coupons."
        ),
    )


# -- reading -----------------------------------------------------------------------------


@loyalty_group.command(name="statement")
@click.argument("card")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@JSON_OPTION
@_one_line_errors
def statement_command(card: str, as_csv: bool, as_json: bool) -> None:
    """Every points movement of a card (and the cards it replaced), with the balance.

    Example: crmkit loyalty statement 8812345678901234 --csv > statement.csv
    """
    rows = views.statement(crmkit.cli_crm(), card)
    if as_csv:
        click.echo(views.statement_csv(rows), nl=False)
        return
    _print(
        rows,
        as_json,
        lambda rows: (
            "\n".join(
                f"{r['at'][:19]}  {r['kind']:<8} {r['points']:>+7}  balance {r['balance']:>7}"
                + (f"  pending {r['pending']:+}" if r["pending"] else "")
                + (f"  {r['receipt_id']}" if r["receipt_id"] else "")
                for r in rows
            )
            or "No movements."
        ),
    )


@loyalty_group.command(name="member")
@click.argument("contact_id", type=int)
@click.option("--purchases", type=click.IntRange(0, 500), default=20, show_default=True)
@JSON_OPTION
@_one_line_errors
def member_command(contact_id: int, purchases: int, as_json: bool) -> None:
    """A contact's cards, balances, tiers, points expiring soon and purchase history.

    Example: crmkit loyalty member 42
    """

    def text(data: dict[str, Any]) -> str:
        lines = [_card_text(card) for card in data["cards"]] or ["No cards."]
        for soon in data["expiring"]:
            lines.append(
                f"{soon['points']} points of {soon['card']} expire at {soon['expires_at']}"
            )
        for p in data["purchases"]:
            lines.append(
                f"  {p['occurred_at'][:16]}  {p['receipt_id']}  {p['amount']} {p['currency']}"
                f"  {p['store'] or ''}  +{p['points']}"
            )
        return "\n".join(lines)

    _print(views.member(crmkit.cli_crm(), contact_id, purchases=purchases), as_json, text)


# -- periodic work -----------------------------------------------------------------------


@loyalty_group.command(name="expire")
@click.option("--now", help="Run as of this time (ISO; default now).")
@JSON_OPTION
@_one_line_errors
def expire_command(now: str | None, as_json: bool) -> None:
    """Release pending points, send expiry notices, expire points that are due.

    The worker runs this on its schedule; running it again expires nothing twice.
    Example: crmkit loyalty expire
    """
    _print(jobs.expire_points(crmkit.cli_crm(), now=_when(now)), as_json, jobs.job_summary)


@loyalty_group.command(name="review-tiers")
@click.option("--now", help="Run as of this time (ISO; default now).")
@JSON_OPTION
@_one_line_errors
def review_tiers_command(now: str | None, as_json: bool) -> None:
    """Review every card's tier: upgrades, grace periods, downgrades.

    Example: crmkit loyalty review-tiers
    """
    _print(jobs.review_tiers(crmkit.cli_crm(), now=_when(now)), as_json, jobs.job_summary)
