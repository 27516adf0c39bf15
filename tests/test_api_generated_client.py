"""A client generated from the OpenAPI document takes it whole: openapi-python-client (pinned
in the test extra) generates a typed client for a CRM like the demo's (every bundled plugin
enabled, the example plugin, a custom field) without a single warning, and the client drives
the API: create (with the duplicate warnings of the 201), list, the next page by cursor,
update with If-Match, a 412 and a 422 as typed problems, and a plugin's route."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import crmkit
from crmkit.testing import ApiClient, api_client

#: Media types the generator does not read itself: images are bytes to it.
GENERATOR_CONFIG = """\
content_type_overrides:
  image/png: application/octet-stream
  image/jpeg: application/octet-stream
  image/svg+xml: application/octet-stream
"""
PLUGINS = ["referrals", "dedupe", "cardscan", "reminders", "loyalty", "insights", "campaigns"]
PACKAGE = "crmkit_generated_client"


@pytest.fixture
def demo_api(make_crm: Callable[..., crmkit.CRM]) -> Iterator[ApiClient]:
    crm = make_crm(
        enable=PLUGINS,
        custom_fields=[{"entity": "contact", "name": "member_no", "type": "text"}],
    )
    with api_client(crm) as api:
        yield api


def generate(
    document: dict[str, Any], folder: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the generator on ``document``; the client package lands in ``folder``."""
    bin_dir = Path(sys.executable).parent
    generator = shutil.which("openapi-python-client", path=str(bin_dir))
    assert generator, "openapi-python-client is not installed (the test extra pins it)"
    (folder / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    (folder / "generator.yml").write_text(GENERATOR_CONFIG, encoding="utf-8")
    output = folder / PACKAGE
    done = subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--output-path",
            str(output),
            "--meta",
            "none",
            "--config",
            str(folder / "generator.yml"),
            "--fail-on-warning",  # the generator's own verdict, beside the checks below
        ],
        capture_output=True,
        text=True,
        # its post-generation hooks run ruff, installed beside it
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=300,
        check=False,
    )
    return done, output


@pytest.fixture
def client_package(demo_api: ApiClient, tmp_path: Path) -> Iterator[ModuleType]:
    document = demo_api.client.get("/schema/openapi.json").json()
    done, output = generate(document, tmp_path)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "Warning" not in report, report
    assert "Unable to" not in report, report
    assert output.is_dir()
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def typed_client(demo_api: ApiClient, username: str = "admin") -> Any:
    """The generated client, sending its requests through the in-process test client."""
    client = module("client").Client(base_url=str(demo_api.client.base_url))
    demo_api.client.headers["Authorization"] = f"Bearer {demo_api.token_for(username)}"
    client.set_httpx_client(demo_api.client)
    return client


def test_the_generated_client_creates_lists_pages_updates_and_reads_problems(
    demo_api: ApiClient, client_package: ModuleType
) -> None:
    models = module("models")
    create = module("api.contacts.create_contact")
    listing = module("api.contacts.list_contacts")
    update = module("api.contacts.update_contact")
    client = typed_client(demo_api)

    first = create.sync_detailed(
        client=client,
        body=models.ContactCreate(full_name="张伟", phone="138 1234 5678", member_no="M-1"),
    )
    assert first.status_code == 201
    assert isinstance(first.parsed, models.ContactSaved)
    assert first.parsed.phone == "+8613812345678"
    assert first.parsed.member_no == "M-1"
    assert first.parsed.duplicate_warnings == []

    # the same phone under another name: saved, and the 201 says it may be a duplicate
    second = create.sync_detailed(
        client=client, body=models.ContactCreate(full_name="李娜", phone="13812345678")
    )
    assert second.status_code == 201
    (warning,) = second.parsed.duplicate_warnings
    assert isinstance(warning, models.MatchedRecord)
    assert (warning.record_id, warning.visible, warning.action.value) == (
        first.parsed.id,
        True,
        "warn",
    )

    page = listing.sync(client=client, limit=1)
    assert isinstance(page, models.ContactPage)
    assert [c.full_name for c in page.items] == ["张伟"]
    following = listing.sync(client=client, limit=1, cursor=page.next_cursor)
    assert [c.full_name for c in following.items] == ["李娜"]
    assert following.next_cursor is None

    etag = first.headers["ETag"]
    changed = update.sync_detailed(
        record_id=first.parsed.id,
        client=client,
        body=models.ContactUpdate(title="采购总监"),
        if_match=etag,
    )
    assert changed.status_code == 200
    assert changed.parsed.title == "采购总监"
    assert changed.parsed.version == first.parsed.version + 1

    stale = update.sync_detailed(
        record_id=first.parsed.id,
        client=client,
        body=models.ContactUpdate(title="总经理"),
        if_match=etag,
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, models.Problem)
    assert stale.parsed.type_ == "urn:crmkit:problem:precondition-failed"

    invalid = create.sync_detailed(
        client=client, body=models.ContactCreate(full_name="王芳", email="not an address")
    )
    assert invalid.status_code == 422
    assert isinstance(invalid.parsed, models.Problem)
    assert [error.field for error in invalid.parsed.errors] == ["email"]

    # a plugin's route: a typed body in, named models out
    check = module("api.dedupe.plugins_dedupe_check_check")
    values = models.PluginsDedupeCheckCheckBody.from_dict(
        {"full_name": "李娜", "phone": "13812345678"}
    )
    matches = check.sync(client=client, body=values)
    assert {match.record_id for match in matches} == {first.parsed.id, second.parsed.id}
    assert all(isinstance(match, models.MatchedRecord) and match.visible for match in matches)
