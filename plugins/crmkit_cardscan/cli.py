"""``crmkit cards ...``: scan, review, show, confirm, discard, image."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit_cardscan import service
from crmkit_cardscan.reading import MAIN_FIELDS

#: File name endings a folder scan picks up.
CARD_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".heic",
    ".heif",
    ".bmp",
    ".tif",
    ".tiff",
    ".pdf",
}


_FORMATS = ", ".join(sorted(suffix.lstrip(".") for suffix in CARD_SUFFIXES))


@click.group(name="cards")
def cards_group() -> None:
    """Business-card scanning (bundled plugin cardscan)."""


def _fail(error: crmkit.CRMError) -> None:
    raise click.ClickException(str(error)) from None


def _actor(as_user: str | None) -> crmkit.User | None:
    if not as_user:
        return None
    return crmkit.cli_crm().users.get(as_user)


def _files(paths: tuple[str, ...]) -> tuple[list[Path], list[Path]]:
    """The card files the paths name, and the files in named folders that are not in a card
    format (reported as skipped; hidden files such as ``.DS_Store`` are left out)."""
    found: list[Path] = []
    skipped: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if "\x00" in raw:
            raise click.ClickException(f"{raw!r}: no such file or folder")
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix.lower() in CARD_SUFFIXES:
                    found.append(child)
                elif not child.name.startswith("."):
                    skipped.append(child)
        elif path.exists():
            found.append(path)
        else:
            raise click.ClickException(f"{raw}: no such file or folder")
    return found, skipped


def _print_draft(result: dict[str, Any]) -> None:
    click.echo(f"card scan {result['id']} [{result['status']}]  {result['filename']}")
    fields = result["fields"]
    order = [*MAIN_FIELDS, *sorted(set(fields) - set(MAIN_FIELDS))]
    for name in order:
        if name in fields:
            entry = fields[name]
            click.echo(
                f"  {name:<14} {entry['value']}  ({entry['confidence']:.2f} {entry['source']})"
            )
    for flag in result["flags"]:
        click.echo(f"  ! {flag}")
    if result["contact_id"]:
        click.echo(f"  saved as contact {result['contact_id']}")


@cards_group.command(name="scan")
@click.argument("paths", nargs=-1, required=True, metavar="FILE|FOLDER...")
@click.option(
    "--save", is_flag=True, help="Save cards without low-confidence fields or duplicates."
)
@click.option(
    "--where", metavar="TEXT", help="Where the cards were collected (the activity says it)."
)
@click.option(
    "--as", "as_user", metavar="USERNAME", help="Scan as this user (default: the system)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def scan_command(
    paths: tuple[str, ...], save: bool, where: str | None, as_user: str | None, as_json: bool
) -> None:
    """Read business cards from files or folders (JPEG, PNG, WebP, HEIC, BMP, TIFF, PDF).

    Without --save each card is kept for review and its draft printed; with --save a card
    read with confidence and matching no existing contact is saved as a contact, its account
    and a "card scanned" activity; the others wait in `crmkit cards review`. A file that
    cannot be read is reported and the scan goes on.

    Example: crmkit cards scan ~/fair-cards/ --save --where "Canton Fair 2026"
    """
    crm = crmkit.cli_crm()
    try:
        actor = _actor(as_user)
        files, skipped = _files(paths)
    except crmkit.CRMError as error:
        _fail(error)
        return
    results: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    show_bar = len(files) > 1 and not as_json
    with (
        click.progressbar(files, label="Scanning cards", file=sys.stderr, show_pos=True)
        if show_bar
        else _NoBar(files) as bar
    ):
        for path in bar:
            try:
                data = path.read_bytes()
                results.extend(
                    service.scan_file(crm, data, path.name, save=save, where=where, actor=actor)
                )
            except OSError as error:
                failed.append({"file": str(path), "error": f"{path}: {error.strerror}"})
            except crmkit.PermissionDenied as error:
                _fail(error)
            except crmkit.CRMError as error:
                failed.append({"file": str(path), "error": str(error)})
    saved = sum(1 for r in results if r["status"] == "saved")
    review = sum(1 for r in results if r["status"] == "review")
    if as_json:
        click.echo(
            json.dumps(
                {
                    "cards": results,
                    "failed": failed,
                    "skipped": [str(path) for path in skipped],
                    "saved": saved,
                    "review": review,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for result in results:
            _print_draft(result)
        for failure in failed:
            click.echo(f"failed: {failure['error']}", err=True)
        for path in skipped:
            click.echo(f"skipped: {path}: not a card format ({_FORMATS})", err=True)
        summary = f"{saved} saved, {review} need review, {len(failed)} failed"
        click.echo(summary + (f", {len(skipped)} skipped" if skipped else ""))
    if (failed or skipped) and not results:
        sys.exit(1)


class _NoBar:
    """A stand-in for the progress bar when it is not shown."""

    def __init__(self, items: list[Path]) -> None:
        self.items = items

    def __enter__(self) -> list[Path]:
        return self.items

    def __exit__(self, *exc: object) -> None:
        return None


@cards_group.command(name="review")
@click.option(
    "--status",
    type=click.Choice([*service.STATUSES, "all"]),
    default="review",
    show_default=True,
    help="Which scans.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def review_command(status: str, limit: int, as_user: str | None, as_json: bool) -> None:
    """List card scans waiting for review (or of another status), newest first.

    Example: crmkit cards review --limit 20
    """
    crm = crmkit.cli_crm()
    try:
        rows = service.scans(
            crm, status=None if status == "all" else status, limit=limit, actor=_actor(as_user)
        )
    except crmkit.CRMError as error:
        _fail(error)
        return
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo(
            {"review": "No card scans to review.", "all": "No card scans."}.get(
                status, f"No {status} card scans."
            )
        )
        return
    for row in rows:
        _print_draft(row)


@cards_group.command(name="show")
@click.argument("scan_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def show_command(scan_id: int, as_user: str | None, as_json: bool) -> None:
    """Show one card scan's draft, flags and duplicates.

    Example: crmkit cards show 7
    """
    crm = crmkit.cli_crm()
    try:
        row = service.get(crm, scan_id, actor=_actor(as_user))
    except crmkit.CRMError as error:
        _fail(error)
        return
    if as_json:
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))
    else:
        _print_draft(row)


@cards_group.command(name="confirm")
@click.argument("scan_id", type=click.IntRange(1, 2**31 - 1))
@click.option(
    "--link",
    "link_id",
    type=click.IntRange(1, 2**31 - 1),
    metavar="CONTACT_ID",
    help="Attach the card to this existing contact instead of creating one.",
)
@click.option("--update", is_flag=True, help="With --link: also fill the contact's empty fields.")
@click.option(
    "--set",
    "changes",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Correct a field before saving (repeatable): --set title=销售总监",
)
@click.option("--where", metavar="TEXT", help="Where the card was collected.")
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user.")
def confirm_command(
    scan_id: int,
    link_id: int | None,
    update: bool,
    changes: tuple[str, ...],
    where: str | None,
    as_user: str | None,
) -> None:
    """Save a card under review: as a new contact, or linked to an existing one.

    Example: crmkit cards confirm 7 --set title=销售总监
    Example: crmkit cards confirm 8 --link 42 --update
    """
    corrected: dict[str, str] = {}
    for item in changes:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.ClickException(f"--set {item!r}: write FIELD=VALUE")
        corrected[name.strip()] = value.strip()
    if update and link_id is None:
        raise click.ClickException("--update needs --link CONTACT_ID")
    choice = "update" if update else "link" if link_id else "new"
    crm = crmkit.cli_crm()
    try:
        row = service.confirm(
            crm,
            scan_id,
            choice=choice,
            contact_id=link_id,
            changes=corrected,
            where=where,
            actor=_actor(as_user),
        )
    except crmkit.CRMError as error:
        _fail(error)
        return
    click.echo(
        f"card scan {row['id']} saved: contact {row['contact_id']}"
        + (f", account {row['account_id']}" if row["account_id"] else "")
    )


@cards_group.command(name="discard")
@click.argument("scan_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user.")
def discard_command(scan_id: int, as_user: str | None) -> None:
    """Discard a card under review (its image is deleted).

    Example: crmkit cards discard 9
    """
    crm = crmkit.cli_crm()
    try:
        service.discard(crm, scan_id, actor=_actor(as_user))
    except crmkit.CRMError as error:
        _fail(error)
        return
    click.echo(f"card scan {scan_id} discarded")


@cards_group.command(name="image")
@click.argument("scan_id", type=click.IntRange(1, 2**31 - 1))
@click.option("-o", "--output", metavar="FILE", required=True, help="Where to write it.")
@click.option("--as", "as_user", metavar="USERNAME", help="Act as this user.")
def image_command(scan_id: int, output: str, as_user: str | None) -> None:
    """Write a card's stored image (JPEG) to a file.

    Example: crmkit cards image 7 -o card-7.jpg
    """
    crm = crmkit.cli_crm()
    try:
        data, _ = service.image(crm, scan_id, actor=_actor(as_user))
    except crmkit.CRMError as error:
        _fail(error)
        return
    try:
        Path(output).write_bytes(data)
    except OSError as error:
        raise click.ClickException(f"{output}: {error.strerror}") from None
    except ValueError:
        raise click.ClickException(f"{output!r}: not a file name") from None
    click.echo(f"wrote {len(data)} bytes to {output}")


@cards_group.command(name="samples")
@click.argument("folder", metavar="FOLDER")
@click.option("--count", type=click.IntRange(1, 1000), default=6, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same cards.")
@click.option(
    "--qr-share",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="Share of cards with a vCard or MeCard QR code.",
)
@click.option(
    "--truth",
    "truth_path",
    metavar="FILE",
    default=None,
    help="Where the truth goes (default: FOLDER/truth.json). Outside FOLDER, a scan of the"
    " folder finds the cards only.",
)
def samples_command(
    folder: str, count: int, seed: int, qr_share: float, truth_path: str | None
) -> None:
    """Write generated business-card photos (Chinese, English, bilingual; some with a QR
    code) into FOLDER and their truth (what each card says) as JSON: demo data to scan.

    Example: crmkit cards samples demo/cards --count 5 --truth demo/cards-truth.json
    """
    from crmkit_cardscan.cardset import write_set

    truth = Path(truth_path) if truth_path else Path(folder) / "truth.json"
    try:
        truths = write_set(Path(folder), seed, count, qr_share=qr_share, truth=truth)
    except crmkit.CRMError as error:
        _fail(error)
        return
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{folder!r}: cannot write there ({error})") from None
    click.echo(f"wrote {len(truths)} cards to {folder} and their truth to {truth}")
