"""The card plugin with a database, on SQLite and PostgreSQL: scanning through the real OCR
engine (rapidocr), saving, duplicates through the core check, review and confirm, the CLI
with its progress and summary, the REST routes and the image's permissions.

OCR is slow on CI's two cores: these tests read a handful of small generated cards, each
rendered once per session."""

from __future__ import annotations

import io
import json
import platform
import random
import re
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import crmkit_cardscan
import numpy as np
import pytest
from api_support import Api, assert_problem
from click.testing import CliRunner
from crmkit_cardscan import service
from crmkit_cardscan.cardset import make_person, render_card
from litestar.testing import TestClient
from PIL import Image

import crmkit
from crmkit.api import create_app
from crmkit.cli import cli


def _card(seed: int, kind: str, **override: Any) -> tuple[bytes, dict[str, Any]]:
    rng = random.Random(seed)
    truth = make_person(rng, kind) | override
    truth["qr_share"] = 0.0
    image = render_card(rng, truth)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), truth


@pytest.fixture(scope="session")
def chinese_card() -> tuple[bytes, dict[str, Any]]:
    """A clean Simplified Chinese card and its truth."""
    return _card(11, "sc")


@pytest.fixture(scope="session")
def english_card() -> tuple[bytes, dict[str, Any]]:
    """A clean English card and its truth."""
    return _card(12, "en")


@pytest.fixture
def cards_crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    crm = make_crm(plugins={"cardscan": crmkit_cardscan})
    crm.users.create("admin", admin=True)
    crm.roles.grant("sales_rep", "cards:scan")
    crm.users.create("li.na")
    crm.users.create("wang.fang")
    return crm


def _phone(text: str, region: str) -> str:
    return crmkit.normalise_phone(text, region)


def test_a_scan_without_saving_keeps_a_draft_for_review(
    cards_crm: crmkit.CRM, chinese_card: tuple[bytes, dict[str, Any]]
) -> None:
    data, truth = chinese_card
    li_na = cards_crm.users.get("li.na")
    (result,) = service.scan_file(cards_crm, data, "fair.jpg", actor=li_na)
    fields = {name: entry["value"] for name, entry in result["fields"].items()}
    assert result["status"] == "review"
    assert fields["full_name"] == truth["full_name"]
    assert fields["company"] == truth["company"]
    assert fields["mobile"] == _phone(truth["mobile"], "CN")
    assert fields["email"] == truth["email"]
    assert cards_crm.contacts.count() == 0
    assert [row["id"] for row in service.scans(cards_crm, actor=li_na)] == [result["id"]]
    # another rep does not see it
    wang_fang = cards_crm.users.get("wang.fang")
    assert service.scans(cards_crm, actor=wang_fang) == []
    with pytest.raises(crmkit.NotFoundError):
        service.get(cards_crm, result["id"], actor=wang_fang)


def test_saving_creates_contact_account_and_activity_with_the_image(
    cards_crm: crmkit.CRM, english_card: tuple[bytes, dict[str, Any]]
) -> None:
    data, truth = english_card
    li_na = cards_crm.users.get("li.na")
    cards_crm.roles.grant("sales_rep", "account:create")
    (result,) = service.scan_file(
        cards_crm, data, "booth.jpg", save=True, where="Canton Fair", actor=li_na
    )
    assert result["status"] == "saved", result["flags"]
    contact = cards_crm.contacts.get(result["contact_id"], actor=li_na)
    assert contact.full_name == truth["full_name"]
    assert contact.owner_id == li_na.id
    assert contact.company_name == truth["company"]  # as printed, for duplicate checks
    account = cards_crm.accounts.get(result["account_id"])
    assert account.name == truth["company"]
    activity = cards_crm.records("activity").get(result["activity_id"])
    assert activity.subject == "card scanned"
    assert "Canton Fair" in activity.body
    assert "li.na" in activity.body
    image, media_type = service.image(cards_crm, result["id"], actor=li_na)
    assert media_type == "image/jpeg"
    assert Image.open(io.BytesIO(image)).size[0] > 0
    # the image follows the contact's permissions: another rep cannot see li.na's contact
    with pytest.raises(crmkit.NotFoundError):
        service.image(cards_crm, result["id"], actor=cards_crm.users.get("wang.fang"))


def test_a_card_confirmed_later_keeps_where_who_and_when_it_was_scanned(
    cards_crm: crmkit.CRM, english_card: tuple[bytes, dict[str, Any]]
) -> None:
    data = english_card[0]
    li_na = cards_crm.users.get("li.na")
    # scanned without --save: the card waits for review
    (scanned,) = service.scan_file(cards_crm, data, "booth.jpg", where="Canton Fair", actor=li_na)
    assert scanned["status"] == "review"
    assert scanned["location"] == "Canton Fair"
    # an administrator confirms it later, without repeating --where
    confirmed = service.confirm(
        cards_crm, scanned["id"], actor=cards_crm.users.get("admin"), choice="new"
    )
    activity = cards_crm.records("activity").get(confirmed["activity_id"])
    assert activity.body.startswith(
        f"Business card booth.jpg scanned at Canton Fair by li.na on {scanned['scanned_at'][:10]} "
    )
    assert "; confirmed by admin on " in activity.body
    assert activity.occurred_at.isoformat()[:19] == scanned["scanned_at"][:19]  # the scan's time
    # confirm --where corrects the place
    (again,) = service.scan_file(cards_crm, data, "again.jpg", actor=li_na)
    confirmed = service.confirm(cards_crm, again["id"], where="Hall 3", actor=li_na)
    body = cards_crm.records("activity").get(confirmed["activity_id"]).body
    assert " scanned at Hall 3 by li.na on " in body


def test_social_handles_go_to_the_contacts_social_field(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    crm = make_crm(
        plugins={"cardscan": crmkit_cardscan, "printed": SocialEnginePlugin()},
        plugin_settings={"cardscan": {"engine": "printed"}},
    )
    blank = io.BytesIO()
    Image.new("RGB", (60, 40), "white").save(blank, format="PNG")
    (result,) = service.scan_file(crm, blank.getvalue(), "social.png", save=True)
    assert result["status"] == "saved", result["flags"]
    contact = crm.contacts.get(result["contact_id"])
    assert contact.social == {
        "wechat": "wangwei88",
        "linkedin": "https://www.linkedin.com/in/wei-wang",
    }
    assert "address" not in result["fields"]


def test_a_card_of_a_known_contact_is_flagged_then_linked(
    cards_crm: crmkit.CRM, chinese_card: tuple[bytes, dict[str, Any]]
) -> None:
    data, truth = chinese_card
    li_na = cards_crm.users.get("li.na")
    known = cards_crm.contacts.create(
        {"full_name": truth["full_name"], "phone": truth["mobile"]}, actor=li_na
    )
    (result,) = service.scan_file(cards_crm, data, "again.jpg", save=True, actor=li_na)
    assert result["status"] == "review"
    assert [d["record_id"] for d in result["duplicates"]] == [known.id]
    assert any(flag.startswith("looks like") for flag in result["flags"])
    assert cards_crm.contacts.count() == 1  # never a silent second contact
    linked = service.confirm(
        cards_crm, result["id"], choice="update", contact_id=known.id, actor=li_na
    )
    assert linked["contact_id"] == known.id
    updated = cards_crm.contacts.get(known.id)
    assert updated.email == truth["email"]
    assert cards_crm.contacts.count() == 1


def test_a_match_outside_the_scope_is_counted_never_shown(
    cards_crm: crmkit.CRM, chinese_card: tuple[bytes, dict[str, Any]]
) -> None:
    data, truth = chinese_card
    wang_fang = cards_crm.users.get("wang.fang")
    cards_crm.contacts.create(
        {"full_name": "Secret Customer", "phone": truth["mobile"], "notes": "VIP"},
        actor=wang_fang,
    )
    (result,) = service.scan_file(
        cards_crm, data, "c.jpg", save=True, actor=cards_crm.users.get("li.na")
    )
    assert result["status"] == "review"
    assert result["hidden_matches"] == 1
    (match,) = result["duplicates"]
    assert match["visible"] is False
    assert match["record_id"] is None
    assert "a contact you cannot see, owned by wang.fang" in " ".join(result["flags"])
    assert "Secret" not in repr(result)


def test_an_unreadable_file_saves_nothing(cards_crm: crmkit.CRM) -> None:
    with pytest.raises(crmkit.CRMError, match=r"empty\.jpg: the file is empty"):
        service.scan_file(cards_crm, b"", "empty.jpg", save=True)
    blank = io.BytesIO()
    Image.new("RGB", (600, 350), "white").save(blank, format="PNG")
    with pytest.raises(crmkit.CRMError, match=r"blank\.png: no text found on the card"):
        service.scan_file(cards_crm, blank.getvalue(), "blank.png", save=True)
    assert service.scans(cards_crm, status=None) == []


def test_scanning_needs_the_permission(
    cards_crm: crmkit.CRM, chinese_card: tuple[bytes, dict[str, Any]]
) -> None:
    cards_crm.users.create("reader", roles=["read_only"])
    with pytest.raises(crmkit.PermissionDenied, match="cards:scan"):
        service.scan_file(cards_crm, chinese_card[0], "x.jpg", actor=cards_crm.users.get("reader"))


# -- hooks -----------------------------------------------------------------------------


class PrintedLinesEngine:
    """An OCR engine from another plugin: it 'reads' the text it was made with."""

    name = "printed"

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts

    def read(self, image: object) -> Sequence[crmkit.OcrLine]:
        return [
            crmkit.OcrLine(text, (10, 10 + 40 * i, 300, 40 + 40 * i), 0.99)
            for i, text in enumerate(self.texts)
        ]


class EnginePlugin:
    @crmkit.hookimpl
    def crmkit_ocr_engine(self, crm: crmkit.CRM, name: str) -> crmkit.OcrEngine | None:
        if name != "printed":
            return None
        return PrintedLinesEngine(["王芳", "采购主管", "手机：13912345678", "LINE ID: wangf"])

    @crmkit.hookimpl
    def crmkit_card_fields(
        self, lines: Sequence[crmkit.OcrLine], fields: Any, region: str
    ) -> dict[str, crmkit.CardField] | None:
        for line in lines:
            if line.text.startswith("LINE ID:"):
                return {"line_id": crmkit.CardField(line.text[8:].strip(), 0.95, "line")}
        return None


class SocialEnginePlugin:
    """An engine that 'reads' a card with a WeChat ID and a LinkedIn profile."""

    @crmkit.hookimpl
    def crmkit_ocr_engine(self, crm: crmkit.CRM, name: str) -> crmkit.OcrEngine | None:
        return PrintedLinesEngine(
            [
                "王伟",
                "销售总监",
                "手机：13912345678",
                "微信号：wangwei88",
                "LinkedIn: linkedin.com/in/wei-wang",
            ]
        )


def test_another_plugin_provides_the_engine_and_a_parser(
    make_crm: Callable[..., crmkit.CRM], english_card: tuple[bytes, dict[str, Any]]
) -> None:
    crm = make_crm(
        plugins={"cardscan": crmkit_cardscan, "printed": EnginePlugin()},
        plugin_settings={"cardscan": {"engine": "printed"}},
    )
    (result,) = service.scan_file(crm, english_card[0], "x.jpg")
    assert result["engine"] == "printed"
    assert result["fields"]["full_name"]["value"] == "王芳"
    assert result["fields"]["mobile"]["value"] == "+8613912345678"
    assert result["fields"]["line_id"] == {"value": "wangf", "confidence": 0.95, "source": "line"}


def test_an_unknown_engine_is_a_clear_error(
    make_crm: Callable[..., crmkit.CRM], english_card: tuple[bytes, dict[str, Any]]
) -> None:
    crm = make_crm(
        plugins={"cardscan": crmkit_cardscan}, plugin_settings={"cardscan": {"engine": "nope"}}
    )
    with pytest.raises(crmkit.ConfigError, match="no OCR engine called 'nope'"):
        service.scan_file(crm, english_card[0], "x.jpg")


def test_a_missing_dependency_shows_as_failed_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("crmkit_cardscan")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "zxingcpp", None)
    from crmkit.plugins import discover_plugins

    plugin = discover_plugins()["cardscan"]
    assert not plugin.loaded
    assert "zxingcpp" in (plugin.load_error or "")


# -- CLI -------------------------------------------------------------------------------


def test_cli_scans_a_folder_past_bad_files_and_sums_up(
    database_url: str, tmp_path: Path, chinese_card: tuple[bytes, dict[str, Any]]
) -> None:
    config = tmp_path / "crmkit.toml"
    config.write_text(f'[crmkit]\ndatabase_url = "{database_url}"\n')
    base = ["--config", str(config)]
    runner = CliRunner()
    enabled = runner.invoke(cli, [*base, "plugins", "enable", "cardscan"])
    assert enabled.exit_code == 0, enabled.output
    folder = tmp_path / "fair"
    folder.mkdir()
    (folder / "a-card.jpg").write_bytes(chinese_card[0])
    (folder / "b-empty.jpg").write_bytes(b"")
    (folder / "c-notes.png").write_bytes(b"not really a picture")
    scanned = runner.invoke(cli, [*base, "cards", "scan", str(folder), "--save"])
    assert scanned.exit_code == 0, scanned.output
    assert "Traceback" not in scanned.output
    assert "b-empty.jpg: the file is empty (0 bytes)" in scanned.stderr
    assert "c-notes.png: not an image or PDF" in scanned.stderr
    assert scanned.stdout.strip().splitlines()[-1] == "1 saved, 0 need review, 2 failed"

    listed = runner.invoke(cli, [*base, "cards", "review", "--status", "saved", "--json"])
    assert listed.exit_code == 0, listed.output
    assert "Traceback" not in listed.output
    output = tmp_path / "card.jpg"
    image = runner.invoke(cli, [*base, "cards", "image", "1", "-o", str(output)])
    assert image.exit_code == 0, image.output
    assert output.read_bytes()[:2] == b"\xff\xd8"
    missing = runner.invoke(cli, [*base, "cards", "confirm", "99"])
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "Error: card scan 99 not found"
    only_bad = runner.invoke(cli, [*base, "cards", "scan", str(folder / "b-empty.jpg")])
    assert only_bad.exit_code == 1
    assert "Traceback" not in only_bad.output


# -- API -------------------------------------------------------------------------------


@pytest.fixture
def cards_api(cards_crm: crmkit.CRM) -> Iterator[Api]:
    """The API of the cards CRM, with tokens for admin, li.na and wang.fang."""
    with TestClient(create_app(cards_crm)) as client:
        api = Api(cards_crm, client)
        for username in ("admin", "li.na", "wang.fang"):
            _, plain = cards_crm.tokens.issue(username, "tests")
            api.tokens[username] = plain
        yield api


def test_api_upload_review_confirm_and_image(
    cards_api: Api, chinese_card: tuple[bytes, dict[str, Any]]
) -> None:
    data = chinese_card[0]
    uploaded = cards_api.call(
        "POST",
        "/plugins/cardscan/scans",
        "li.na",
        files=[("card", ("a.jpg", data, "image/jpeg")), ("card", ("b.jpg", b"", "image/jpeg"))],
    )
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    assert body["review"] == 1
    assert body["failed"] == [{"file": "b.jpg", "error": "b.jpg: the file is empty (0 bytes)"}]
    scan_id = body["cards"][0]["id"]
    listed = cards_api.call("GET", "/plugins/cardscan/scans", "li.na").json()
    assert [row["id"] for row in listed] == [scan_id]
    confirmed = cards_api.call(
        "POST",
        f"/plugins/cardscan/scans/{scan_id}/confirm",
        "li.na",
        json={"choice": "new", "fields": {"title": "采购总监"}},
    )
    assert confirmed.status_code == 201, confirmed.text
    contact_id = confirmed.json()["contact_id"]
    assert cards_api.crm.contacts.get(contact_id).title == "采购总监"
    image = cards_api.call("GET", f"/plugins/cardscan/scans/{scan_id}/image", "li.na")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    hidden = cards_api.call("GET", f"/plugins/cardscan/scans/{scan_id}/image", "wang.fang")
    assert_problem(hidden, 404)
    again = cards_api.call("POST", f"/plugins/cardscan/scans/{scan_id}/confirm", "li.na")
    assert_problem(again, 409)


def test_api_bad_uploads_are_problems(cards_api: Api) -> None:
    empty = cards_api.call(
        "POST", "/plugins/cardscan/scans", "li.na", files=[("card", ("e.jpg", b"", "image/jpeg"))]
    )
    assert "the file is empty" in assert_problem(empty, 400)["detail"]
    nothing = cards_api.call(
        "POST", "/plugins/cardscan/scans", "li.na", files={"save": (None, "true")}
    )
    assert assert_problem(nothing, 400)["detail"].startswith("no card uploaded")
    huge = cards_api.call(
        "POST",
        "/plugins/cardscan/scans",
        "li.na",
        files=[("card", ("big.jpg", b"\xff" * (21 * 2**20), "image/jpeg"))],
    )
    assert_problem(huge, 413)
    assert_problem(cards_api.call("GET", "/plugins/cardscan/scans/5/image", "li.na"), 404)
    assert_problem(
        cards_api.call("POST", "/plugins/cardscan/scans/5/confirm", "li.na", json={"choice": "x"}),
        400,
    )


# -- fuzz ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_card_routes_conform_to_their_openapi(cards_api: Api, mode: str) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", cards_api.client.app)
    headers = {"Authorization": f"Bearer {cards_api.tokens['li.na']}"}
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/plugins/cardscan")
    ]
    assert len(operations) == 6
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=generation))
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Any) -> None:
            response = case.call(headers=headers)
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance, content_type_conformance],
            )
            if response.status_code >= 400:
                assert "Traceback" not in response.text
                assert "SELECT" not in response.text

        try:
            check()
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error


@pytest.mark.parametrize(
    "arguments",
    [
        ["cards", "show", "0"],
        ["cards", "show", "99999999999999999999"],
        ["cards", "confirm", "1", "--set", "nonsense"],
        ["cards", "confirm", "1", "--update"],
        ["cards", "discard", "-5"],
        ["cards", "review", "--status", "weird"],
        ["cards", "scan", "/no/such/folder"],
        ["cards", "scan", "\x00"],
        ["cards", "image", "1", "-o", "/proc/forbidden/x.jpg"],
        ["cards", "review", "--as", "nobody"],
    ],
)
def test_bad_cli_arguments_fail_in_one_line(
    database_url: str, tmp_path: Path, arguments: list[str]
) -> None:
    config = tmp_path / "crmkit.toml"
    config.write_text(f'[crmkit]\ndatabase_url = "{database_url}"\n')
    runner = CliRunner()
    base = ["--config", str(config)]
    assert runner.invoke(cli, [*base, "plugins", "enable", "cardscan"]).exit_code == 0
    result = runner.invoke(cli, [*base, *arguments])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_writes_sample_cards_with_their_truth(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "crmkit.toml"
    config.write_text(f'[crmkit]\ndatabase_url = "{database_url}"\n')
    runner = CliRunner()
    base = ["--config", str(config)]
    assert runner.invoke(cli, [*base, "plugins", "enable", "cardscan"]).exit_code == 0
    folder = tmp_path / "samples"
    result = runner.invoke(cli, [*base, "cards", "samples", str(folder), "--count", "2"])
    assert result.exit_code == 0, result.output
    truth = json.loads((folder / "truth.json").read_text("utf-8"))
    assert [card["file"] for card in truth] == ["card-001.jpg", "card-002.jpg"]
    assert Image.open(folder / "card-001.jpg").format == "JPEG"
    # the truth elsewhere: the folder holds the cards only
    elsewhere = tmp_path / "truth" / "cards.json"
    result = runner.invoke(
        cli,
        [
            *base,
            "cards",
            "samples",
            str(tmp_path / "only"),
            "--count",
            "1",
            "--truth",
            str(elsewhere),
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == ["card-001.jpg"]
    assert [card["file"] for card in json.loads(elsewhere.read_text("utf-8"))] == ["card-001.jpg"]


# -- bad input, at the CLI and the API -----------------------------------------------------


def _png_bytes(image: Image.Image, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def bad_files(chinese_card: tuple[bytes, dict[str, Any]]) -> dict[str, tuple[str, bytes, str]]:
    """Every bad input of the issue: name -> (file name, content, what the error says)."""
    card_png = _png_bytes(Image.new("RGB", (64, 48), "white"))
    # a PNG whose header announces 40 000 x 40 000 pixels (with a valid checksum)
    header = b"IHDR" + (40_000).to_bytes(4, "big") * 2 + card_png[24:29]
    bomb = card_png[:12] + header + zlib.crc32(header).to_bytes(4, "big") + card_png[33:]
    # a PNG whose image data was damaged (its chunk checksum no longer matches)
    corrupt = bytearray(_png_bytes(Image.new("RGB", (64, 48), "gray")))
    data_at = corrupt.index(b"IDAT") + 8
    corrupt[data_at : data_at + 4] = b"\x00\xff\x00\xff"
    gif = io.BytesIO()
    Image.new("RGB", (50, 50), "white").save(gif, format="GIF")
    # a 30 MB photo: 3,300 x 3,100 pixels of sensor noise, as a PNG that does not compress
    noise = np.random.default_rng(30).integers(0, 256, (3100, 3300, 3), dtype=np.uint8)
    photo = _png_bytes(Image.fromarray(noise), compress_level=0)
    assert len(photo) > 30 * 10**6
    return {
        "not an image": (
            "notes.jpg",
            b"Meeting notes, not a picture\n" * 20,
            "not an image or PDF",
        ),
        "truncated": ("cut.jpg", chinese_card[0][: len(chinese_card[0]) // 2], "truncated"),
        "corrupt": ("broken.png", bytes(corrupt), "truncated or corrupt"),
        "decompression bomb": ("bomb.png", bomb, "too large to decode"),
        "0 bytes": ("empty.jpg", b"", r"the file is empty \(0 bytes\)"),
        "no text": ("blank.png", _png_bytes(Image.new("RGB", (600, 350), "white")), "no text"),
        "unsupported format": ("anim.gif", gif.getvalue(), "GIF images are not supported"),
        "30 MB photo": ("photo.png", photo, r"the file is \d\d\.\d MiB; the limit is 20 MiB"),
    }


BAD = [
    "not an image",
    "truncated",
    "corrupt",
    "decompression bomb",
    "0 bytes",
    "no text",
    "unsupported format",
    "30 MB photo",
]


@pytest.fixture
def cards_cli(database_url: str, tmp_path: Path) -> Callable[..., Any]:
    """Runs ``crmkit --config ... ARGS`` on a CRM with cardscan enabled."""
    config = tmp_path / "crmkit.toml"
    config.write_text(f'[crmkit]\ndatabase_url = "{database_url}"\n')
    runner = CliRunner()

    def run(*arguments: str) -> Any:
        return runner.invoke(cli, ["--config", str(config), *arguments])

    assert run("plugins", "enable", "cardscan").exit_code == 0
    return run


def _nothing_saved(run: Callable[..., Any]) -> None:
    scans = run("cards", "review", "--status", "all")
    assert scans.exit_code == 0, scans.output
    assert scans.stdout.strip() == "No card scans."
    contacts = run("contacts", "list", "--json")
    assert contacts.exit_code == 0, contacts.output
    assert json.loads(contacts.stdout)["items"] == []


@pytest.mark.parametrize("bad", BAD)
def test_cli_a_bad_file_is_one_line_and_saves_nothing(
    cards_cli: Callable[..., Any],
    tmp_path: Path,
    bad_files: dict[str, tuple[str, bytes, str]],
    bad: str,
) -> None:
    name, content, message = bad_files[bad]
    path = tmp_path / name
    path.write_bytes(content)
    result = cards_cli("cards", "scan", str(path), "--save", "--where", "Canton Fair")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert re.fullmatch(rf"failed: {re.escape(name)}: .*{message}.*", line), line
    assert result.stdout.strip() == "0 saved, 0 need review, 1 failed"
    _nothing_saved(cards_cli)


def test_cli_a_folder_scan_goes_on_past_every_bad_file(
    cards_cli: Callable[..., Any],
    tmp_path: Path,
    bad_files: dict[str, tuple[str, bytes, str]],
    english_card: tuple[bytes, dict[str, Any]],
) -> None:
    folder = tmp_path / "fair"
    folder.mkdir()
    for index, bad in enumerate(BAD):
        name, content, _ = bad_files[bad]
        # (a folder scan takes card file endings: the GIF comes as a .png)
        (folder / f"{index}-{name.replace('.gif', '.png')}").write_bytes(content)
    (folder / "9-good.jpg").write_bytes(english_card[0])
    result = cards_cli("cards", "scan", str(folder), "--save")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failures) == len(BAD)
    for index, bad in enumerate(BAD):
        assert re.search(bad_files[bad][2], failures[index]), failures[index]
    assert result.stdout.strip().splitlines()[-1] == f"1 saved, 0 need review, {len(BAD)} failed"


def test_cli_a_folder_scan_reports_files_not_in_a_card_format(
    cards_cli: Callable[..., Any], tmp_path: Path, english_card: tuple[bytes, dict[str, Any]]
) -> None:
    folder = tmp_path / "fair"
    folder.mkdir()
    (folder / "a-card.jpg").write_bytes(english_card[0])
    (folder / "b-animation.gif").write_bytes(b"GIF89a" + bytes(20))
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    result = cards_cli("cards", "scan", str(folder), "--save")
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 1  # the hidden file is no card and no news
    assert "b-animation.gif: not a card format (bmp, heic, heif, jpeg, jpg, pdf" in skipped[0]
    assert result.stdout.strip().splitlines()[-1] == "1 saved, 0 need review, 0 failed, 1 skipped"

    as_json = cards_cli("cards", "scan", str(folder), "--json")
    assert json.loads(as_json.stdout)["skipped"] == [str(folder / "b-animation.gif")]

    only_other = tmp_path / "notes"
    only_other.mkdir()
    (only_other / "notes.txt").write_text("call back on Monday")
    nothing = cards_cli("cards", "scan", str(only_other))
    assert nothing.exit_code == 1  # nothing was read, and something was left out
    assert "skipped: " in nothing.stderr
    assert "notes.txt" in nothing.stderr
    assert "Traceback" not in nothing.output


@pytest.mark.parametrize("bad", BAD)
def test_api_a_bad_file_is_a_problem_and_saves_nothing(
    cards_api: Api, bad_files: dict[str, tuple[str, bytes, str]], bad: str
) -> None:
    name, content, message = bad_files[bad]
    response = cards_api.call(
        "POST",
        "/plugins/cardscan/scans",
        "li.na",
        files=[("card", (name, content, "application/octet-stream"))],
        data={"save": "true"},
    )
    if bad == "30 MB photo":  # refused from its size, before it is read
        assert_problem(response, 413)
    else:
        problem = assert_problem(response, 400)
        assert re.search(f"{re.escape(name)}: .*{message}", problem["detail"]), problem
    assert "Traceback" not in response.text
    listed = cards_api.call("GET", "/plugins/cardscan/scans?status=all", "admin")
    assert listed.json() == []
    assert cards_api.crm.contacts.count() == 0
    assert cards_api.crm.accounts.count() == 0


def test_api_an_upload_goes_on_past_its_bad_files(
    cards_api: Api,
    bad_files: dict[str, tuple[str, bytes, str]],
    english_card: tuple[bytes, dict[str, Any]],
) -> None:
    bad = [b for b in BAD if b != "30 MB photo"]  # (one upload holds at most 20 MB)
    files = [("card", (bad_files[b][0], bad_files[b][1], "image/jpeg")) for b in bad]
    files.append(("card", ("good.jpg", english_card[0], "image/jpeg")))
    response = cards_api.call("POST", "/plugins/cardscan/scans", "li.na", files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert [card["filename"] for card in body["cards"]] == ["good.jpg"]
    assert [failure["file"] for failure in body["failed"]] == [bad_files[b][0] for b in bad]
    for failure, b in zip(body["failed"], bad, strict=True):
        assert re.search(bad_files[b][2], failure["error"]), failure


# -- a missing library ---------------------------------------------------------------------

#: Run in a child process: the CLI with a module made unfindable (or the system libraries of
#: OpenCV made missing) before crmkit loads its plugins.
HIDING = """
import importlib.abc, os, pathlib, sys
hidden = sys.argv[1]
sys.argv = ["crmkit", *sys.argv[2:]]
if hidden == "libGL":
    real_read = pathlib.Path.read_bytes
    def read_bytes(self):
        data = real_read(self)
        if str(self) == "/etc/ld.so.cache":
            return data.replace(b"libGL.so.1", b"libXX.so.1")
        return data
    pathlib.Path.read_bytes = read_bytes
    real_exists = os.path.exists
    os.path.exists = lambda path: not str(path).endswith("/libGL.so.1") and real_exists(path)
else:
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == hidden or name.startswith(hidden + "."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, Hide())
from crmkit.cli import main
main()
"""


@pytest.mark.parametrize(
    ("hidden", "reason"),
    [
        ("rapidocr_onnxruntime", "missing rapidocr_onnxruntime: pip install 'crmkit[cardscan]'"),
        ("onnxruntime", "missing onnxruntime: pip install 'crmkit[cardscan]'"),
        ("pypdfium2", "missing pypdfium2: pip install 'crmkit[cardscan]'"),
        ("libGL", "missing system library libGL.so.1 (OpenCV needs it): apt-get install libgl1"),
    ],
)
def test_a_missing_library_fails_the_plugin_and_nothing_else(
    cards_cli: Callable[..., Any],
    tmp_path: Path,
    chinese_card: tuple[bytes, dict[str, Any]],
    hidden: str,
    reason: str,
) -> None:
    config = tmp_path / "crmkit.toml"
    card = tmp_path / "card.jpg"
    card.write_bytes(chinese_card[0])

    def crmkit_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", HIDING, hidden, "--config", str(config), *arguments],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = crmkit_cli("plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (cardscan,) = [p for p in json.loads(listed.stdout) if p["name"] == "cardscan"]
    assert reason in cardscan["error"]
    table = crmkit_cli("plugins", "list")
    assert table.returncode == 0, table.stderr
    (row,) = [line for line in table.stdout.splitlines() if line.startswith("cardscan")]
    assert "ModuleNotFoundError: missing" in row
    contacts = crmkit_cli("contacts", "list")
    assert contacts.returncode == 0, contacts.stderr
    scanned = crmkit_cli("cards", "scan", str(card), "--save")
    assert scanned.returncode != 0
    assert "Traceback" not in scanned.stderr
    # the start-up warning every command gives for an enabled plugin that cannot load, then
    # the command's one-line error
    *warning, line = scanned.stderr.strip().splitlines()
    assert line.startswith("Error: 'cards' is a command of plugin 'cardscan', which failed")
    assert reason in line
    assert [w for w in warning if "enabled but failed to load" not in w] == []


def test_the_system_library_check_reads_the_loader_cache(tmp_path: Path) -> None:
    cache = tmp_path / "ld.so.cache"
    cache.write_bytes(
        b"glibc-ld.so.cache1.1\x00libGL.so.1\x00/usr/lib/x86_64-linux-gnu/libGL.so.1\x00"
    )
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "libSM.so.6").write_bytes(b"")
    where = {"cache": cache, "directories": [str(folder)]}
    names = ["libGL.so.1", "libSM.so.6", "libgthread-2.0.so.0", "libglib-2.0.so.0"]
    missing = crmkit_cardscan.missing_system_libraries(names, **where)
    assert missing == ["libgthread-2.0.so.0", "libglib-2.0.so.0"]
    with pytest.raises(ModuleNotFoundError, match=r"apt-get install libglib2\.0-0$"):
        crmkit_cardscan.require_system_libraries(
            {name: crmkit_cardscan.OPENCV_SYSTEM_LIBRARIES[name] for name in names}, **where
        )
    # no loader cache (not glibc Linux): nothing to say before the first card
    assert crmkit_cardscan.missing_system_libraries(names, cache=tmp_path / "none") == []


def test_the_engine_gives_freed_memory_back_after_each_card(
    monkeypatch: pytest.MonkeyPatch, english_card: tuple[bytes, dict[str, Any]]
) -> None:
    """malloc_trim after each card keeps a long folder scan's memory flat (docs/decisions.md,
    "Cards: the OCR engine gives freed memory back after each card")."""
    from crmkit_cardscan import engines

    if sys.platform.startswith("linux") and "glibc" in " ".join(platform.libc_ver()):
        assert engines._malloc_trim() is not None
    engines.release_free_memory()  # harmless everywhere, glibc or not
    calls: list[int] = []
    monkeypatch.setattr(engines, "release_free_memory", lambda: calls.append(1))
    image = Image.open(io.BytesIO(english_card[0])).convert("RGB")
    lines = engines.RapidOcrEngine().read(image)
    assert lines
    assert calls == [1]
