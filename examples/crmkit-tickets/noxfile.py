"""The plugin's checks: `nox` runs its tests on SQLite and on PostgreSQL."""

from __future__ import annotations

import os

import nox

POSTGRES_URL = os.environ.get(
    "CRMKIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@nox.session
def tests(session: nox.Session) -> None:
    """The tests on SQLite."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(name="tests-postgres")
def tests_postgres(session: nox.Session) -> None:
    """The tests on PostgreSQL (an administrator URL in CRMKIT_TEST_POSTGRES_URL)."""
    session.install("-e", ".[test]")
    session.run("pytest", f"--crmkit-postgres-url={POSTGRES_URL}", *session.posargs)
