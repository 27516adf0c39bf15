"""Fixtures for both databases.

``CRMKIT_TEST_DB=sqlite`` (default) or ``postgresql`` picks the engine; for PostgreSQL,
``CRMKIT_TEST_POSTGRES_URL`` is an admin URL of a real server. Each test gets its own fresh
database, copied from a per-worker template that already holds the core schema.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import crmkit
from crmkit.settings import Settings

BACKEND = os.environ.get("CRMKIT_TEST_DB", "sqlite")
ADMIN_URL = os.environ.get(
    "CRMKIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RUN_ID = uuid.uuid4().hex[:8]


def pytest_report_header() -> str:
    return f"crmkit test database: {BACKEND}"


def _admin_engine() -> sa.Engine:
    return sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


def _postgres_url(name: str) -> str:
    return sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """A migrated database to copy for each test (a file on SQLite, a template on PostgreSQL)."""
    if BACKEND == "sqlite":
        path = tmp_path_factory.mktemp("template") / "template.db"
        crmkit.open(f"sqlite:///{path}", discover=False, upgrade=True).close()
        yield str(path)
        return
    if BACKEND != "postgresql":
        raise pytest.UsageError(f"CRMKIT_TEST_DB must be sqlite or postgresql, not {BACKEND!r}")
    name = f"crmkit_tmpl_{RUN_ID}_{worker_id}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    crmkit.open(_postgres_url(name), discover=False, upgrade=True).close()
    yield name
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def fresh_database_url(tmp_path: Path, worker_id: str) -> Iterator[str]:
    """An empty database (no schema at all) for tests of init and migrations."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"crmkit_e_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield _postgres_url(name)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def database_url(template: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own for this test, with the core schema."""
    if BACKEND == "sqlite":
        path = tmp_path / "crm.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    name = f"crmkit_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _postgres_url(name)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def make_crm(database_url: str) -> Iterator[Callable[..., crmkit.CRM]]:
    """Open CRMs on this test's database: ``make_crm(custom_fields=[...], plugins={...})``.

    Keyword arguments other than ``plugins`` and ``discover`` are settings (config-file keys
    of the ``[crmkit]`` table, plus ``webhooks`` and ``plugin_settings``).
    """
    opened: list[crmkit.CRM] = []

    def factory(
        *, plugins: dict[str, Any] | None = None, discover: bool = False, **settings: Any
    ) -> crmkit.CRM:
        webhooks = settings.pop("webhooks", [])
        plugin_settings = settings.pop("plugin_settings", {})
        data = {"crmkit": settings, "webhooks": webhooks, "plugins": plugin_settings}
        crm = crmkit.CRM(
            Settings.from_mapping(data, database_url=database_url),
            plugins=plugins,
            discover=discover,
        )
        if plugins:
            crm.upgrade()
        opened.append(crm)
        return crm

    yield factory
    for crm in opened:
        crm.close()


@pytest.fixture
def crm(make_crm: Callable[..., crmkit.CRM]) -> crmkit.CRM:
    """A CRM on a fresh database with a default sales pipeline."""
    instance = make_crm()
    instance.pipelines.create("Sales")
    return instance


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    """The xdist worker name ("master" without xdist)."""
    workerinput = getattr(request.config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "master"


# The REST API tests' ``api`` fixture (tests/api_support.py), shared by tests/test_api_*.py.
from api_support import api  # noqa: E402, F401

# The admin CLI tests' ``cli_run`` fixture (tests/cli_support.py).
from cli_support import cli_run  # noqa: E402, F401

# The desk tests' ``desk`` fixture (tests/desk_support.py).
from desk_support import desk  # noqa: E402, F401
