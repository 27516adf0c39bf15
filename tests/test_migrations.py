"""The schema: migrations create it, repeat as a no-op, and a database that is missing,
unreachable or never initialised fails with one clear line saying what to do."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import crmkit

CORE_TABLES = {
    "access_stamp",
    "accounts",
    "activities",
    "api_tokens",
    "audit_log",
    "field_rules",
    "merges",
    "notifications",
    "role_grants",
    "user_roles",
    "contacts",
    "deals",
    "event_deliveries",
    "event_outbox",
    "leads",
    "lead_forms",
    "webhook_subscriptions",
    "pipelines",
    "plugin_states",
    "roles",
    "stages",
    "tasks",
    "teams",
    "users",
    "assignment_rules",
    "assignment_members",
    "assignment_cursors",
    "user_availability",
    "pool_policies",
    "segments",
    "pool_claims",
    "desk_accounts",
    "desk_sessions",
    "desk_keys",
    "message_deliveries",
    "message_suppressions",
    "scheduled_runs",
    "ownership_history",
}


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def upgraded(url: str) -> crmkit.CRM:
    return crmkit.open(url, discover=False, upgrade=True)


def test_upgrade_creates_every_core_table(fresh_database_url: str) -> None:
    upgraded(fresh_database_url).close()

    assert table_names(fresh_database_url) == CORE_TABLES | {"alembic_version"}


def test_the_migrated_schema_matches_the_models(fresh_database_url: str) -> None:
    def core_only(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in CORE_TABLES

    with upgraded(fresh_database_url) as crm, crm.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": core_only}
        )
        differences = compare_metadata(context, crmkit.Model.metadata)

    assert differences == []


def test_upgrade_reports_the_core_branch(fresh_database_url: str) -> None:
    with crmkit.open(fresh_database_url, discover=False) as crm:
        assert crm.upgrade() == ["crmkit"]


def test_a_second_upgrade_changes_no_schema(fresh_database_url: str) -> None:
    statements: list[str] = []

    with upgraded(fresh_database_url) as crm:
        sa.event.listen(
            crm.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
        crm.upgrade()

    ddl = [s for s in statements if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP"))]
    assert ddl == []


def test_a_second_upgrade_keeps_the_data(fresh_database_url: str) -> None:
    with upgraded(fresh_database_url) as crm:
        contact = crm.contacts.create({"full_name": "张伟"})

    with upgraded(fresh_database_url) as crm:
        assert crm.contacts.get(contact.id).full_name == "张伟"


def test_opening_an_uninitialised_database_creates_nothing(fresh_database_url: str) -> None:
    with crmkit.open(fresh_database_url, discover=False) as crm:
        assert not crm.initialised

    assert table_names(fresh_database_url) == set()


def test_using_an_uninitialised_database_tells_to_run_db_upgrade(
    fresh_database_url: str,
) -> None:
    crm = crmkit.open(fresh_database_url, discover=False)

    with crm, pytest.raises(crmkit.ConfigError, match="run 'crmkit db upgrade'") as error:
        crm.contacts.create({"full_name": "张伟"})

    assert "\n" not in str(error.value)
    assert "is not initialised" in str(error.value)


def test_an_uninitialised_database_works_once_upgraded(fresh_database_url: str) -> None:
    with crmkit.open(fresh_database_url, discover=False) as crm:
        with pytest.raises(crmkit.ConfigError):
            crm.contacts.count()
        crm.upgrade()

        assert crm.contacts.count() == 0


@pytest.mark.parametrize(
    ("url", "mentions"),
    [
        ("postgresql+psycopg://crm:s3cret@127.0.0.1:1/crm", "cannot connect to the database"),
        ("sqlite:////nonexistent-folder/deeper/crm.db", "cannot connect to the database"),
        ("not a database url", "is malformed: use sqlite:///path/to/crm.db"),
        ("nosuchdb://host/crm", "nosuchdb"),
    ],
    ids=["unreachable-server", "missing-folder", "malformed", "unknown-dialect"],
)
def test_a_wrong_database_url_is_one_clear_config_error(url: str, mentions: str) -> None:
    with pytest.raises(crmkit.ConfigError, match=mentions) as error:
        crmkit.open(url, discover=False)

    assert "\n" not in str(error.value).strip()


def test_a_connection_error_does_not_show_the_password() -> None:
    with pytest.raises(crmkit.ConfigError) as error:
        crmkit.open("postgresql+psycopg://crm:s3cret@127.0.0.1:1/crm", discover=False)

    assert "s3cret" not in str(error.value)


def test_a_database_url_with_a_bad_port_is_a_config_error() -> None:
    with pytest.raises(crmkit.ConfigError, match="is malformed"):
        crmkit.open("postgresql+psycopg://crm@127.0.0.1:port/crm", discover=False)


def test_a_missing_driver_error_does_not_show_the_password() -> None:
    with pytest.raises(crmkit.ConfigError) as error:
        crmkit.open("mysql+nosuchdriver://crm:s3cret@127.0.0.1/crm", discover=False)

    assert "s3cret" not in str(error.value)


def test_a_malformed_url_error_does_not_show_the_password() -> None:
    with pytest.raises(crmkit.ConfigError, match="is malformed") as error:
        crmkit.open("postgresql+psycopg://crm:s3cret@127.0.0.1:port/crm", discover=False)

    assert "s3cret" not in str(error.value)


def test_a_missing_postgresql_database_is_one_clear_config_error(database_url: str) -> None:
    url = sa.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("a server that answers but lacks the database: PostgreSQL")
    missing = url.set(database="crmkit_no_such_database").render_as_string(hide_password=False)

    with pytest.raises(crmkit.ConfigError, match="crmkit_no_such_database") as error:
        crmkit.open(missing, discover=False)

    assert "\n" not in str(error.value).strip()
