"""Fixtures for both databases, on crmkit's own test kit (crmkit.testing, a pytest plugin).

``CRMKIT_TEST_DB=sqlite`` (default) or ``postgresql`` picks the engine; for PostgreSQL,
``CRMKIT_TEST_POSTGRES_URL`` is an admin URL of a real server. Each test gets its own fresh
database, copied from a per-worker template that already holds the core schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

import crmkit
from crmkit.testing import TestDatabases

BACKEND = os.environ.get("CRMKIT_TEST_DB", "sqlite")
ADMIN_URL = os.environ.get(
    "CRMKIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RUN_ID = uuid.uuid4().hex[:8]

# Property tests assert behaviour, not speed (speed is measured in bench/): no per-example
# deadline, so a first example that pays for a lazy import or a cold cache on a loaded CI
# machine does not fail the run.
settings.register_profile("crmkit", deadline=None)
settings.load_profile("crmkit")


@pytest.fixture(scope="session")
def template(crmkit_test_databases: TestDatabases) -> str:
    """The per-worker migrated template (a file on SQLite, a database name on PostgreSQL),
    from crmkit's test kit."""
    return crmkit_test_databases.template()


@pytest.fixture
def fresh_database_url(crmkit_test_databases: TestDatabases, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema at all) for tests of init and migrations."""
    with crmkit_test_databases.database(tmp_path, empty=True) as url:
        yield url


@pytest.fixture
def database_url(crm_database_url: str) -> str:
    """A database of its own for this test, with the core schema (the test kit's)."""
    return crm_database_url


# ``make_crm`` is the test kit's (crmkit.testing): ``make_crm(custom_fields=[...],
# plugins={...})`` opens CRMs on this test's database, with no plugin discovered unless
# ``enable=[...]`` or ``discover=True`` is given.


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

# A real SMTP server (aiosmtpd) for the e-mail tests (tests/smtp_support.py).
from smtp_support import smtp_server  # noqa: E402, F401
