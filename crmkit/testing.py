"""crmkit's test kit: pytest fixtures that test a plugin or an application on a real CRM.

Installing crmkit registers this module as a pytest plugin (entry point ``crmkit`` in the
``pytest11`` group), so its fixtures are there in any test suite without an import. Tell it
which plugins your tests are about, once, in your ``conftest.py``::

    import pytest

    @pytest.fixture
    def crmkit_plugins():
        return ["referrals"]  # installed plugins enabled (migrated, set up) in `crm`

    @pytest.fixture
    def crmkit_settings():
        return {"plugin_settings": {"referrals": {"blocked_domains": ["spam.example"]}}}

and write tests against the fixtures::

    def test_blocked_domain_is_refused(crm):
        with pytest.raises(crmkit.PluginError, match="spam.example"):
            crm.contacts.create({"full_name": "X", "email": "x@spam.example"})

    def test_sales_rep_sees_the_summary(crm_api):
        crm_api.user("li.na", roles=["sales_rep"])
        response = crm_api.as_user("li.na").get("/plugins/referrals/summary")
        assert response.status_code == 200

    def test_list_command(crm_cli):
        assert "no referrals" in crm_cli.ok("referrals", "list")

The fixtures:

``crm``
    A CRM on a database of its own with the ``crmkit_plugins`` enabled and the
    ``crmkit_settings`` applied; closed after the test.
``make_crm``
    Opens more CRMs on the same database: ``make_crm(enable=["referrals"],
    plugin_settings={...}, custom_fields=[...], plugins={"inline": obj})``. Keywords other
    than ``enable``, ``plugins`` and ``discover`` are settings: the keys of the config file's
    ``[crmkit]`` table, plus ``webhooks`` and ``plugin_settings`` (``[plugins.<name>]``).
    ``plugins`` embeds plugin objects (always enabled) for a throwaway plugin in one test.
``crm_api``
    An :class:`ApiClient`: the REST API of ``crm`` in-process, with an administrator
    ``admin``; ``crm_api.user(name, roles=[...])`` adds users with tokens.
``crm_cli``
    A :class:`CommandLine` that runs ``crmkit`` commands on ``crm`` (same database, settings
    and plugins): ``crm_cli.ok(...)`` returns the output of a command that must succeed,
    ``crm_cli.fails(...)`` the one error line of a command that must fail.
``crm_database_url``
    The URL of this test's database (core schema only, no plugin enabled yet).

Databases: SQLite, a file per test, by default. ``pytest --crmkit-postgres-url=URL`` (or the
environment variables ``CRMKIT_TEST_DB=postgresql`` and ``CRMKIT_TEST_POSTGRES_URL=URL``) runs
every test on PostgreSQL instead: ``URL`` is an administrator URL of a real server; each test
gets a database of its own, copied from a per-worker template that holds the core schema, and
dropped after the test. ``pytest-xdist`` workers each have their own template.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

import crmkit
from crmkit.settings import Settings

if TYPE_CHECKING:
    from click.testing import Result
    from litestar import Litestar
    from litestar.testing import TestClient

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")
_RUN_ID = uuid.uuid4().hex[:8]  # keeps databases of parallel test runs apart

#: The signature of the ``make_crm`` fixture's factory.
CRMFactory = Callable[..., crmkit.CRM]


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--crmkit-db`` and ``--crmkit-postgres-url``: which database engine the tests use."""
    group = parser.getgroup("crmkit", "crmkit test databases")
    group.addoption(
        "--crmkit-db",
        choices=BACKENDS,
        default=None,
        help="database engine of the crmkit fixtures (default: $CRMKIT_TEST_DB or sqlite;"
        " postgresql when --crmkit-postgres-url is given)",
    )
    group.addoption(
        "--crmkit-postgres-url",
        default=None,
        help="administrator URL of the PostgreSQL server the tests create their databases on"
        f" (default: $CRMKIT_TEST_POSTGRES_URL or {DEFAULT_POSTGRES_URL})",
    )


def pytest_report_header(config: pytest.Config) -> str:
    """Say which database engine the crmkit fixtures use."""
    return f"crmkit test database: {TestDatabases.from_config(config).backend}"


class TestDatabases:
    """Creates each test's database: a copy of a migrated template, on SQLite or PostgreSQL."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, backend: str, admin_url: str, folder: Path, worker: str) -> None:
        if backend not in BACKENDS:
            raise pytest.UsageError(
                f"the crmkit test database must be sqlite or postgresql, not {backend!r}"
                " (--crmkit-db or CRMKIT_TEST_DB)"
            )
        self.backend = backend
        self.admin_url = admin_url
        self.folder = folder
        self.worker = worker
        self._template: str | None = None

    @classmethod
    def from_config(
        cls, config: pytest.Config, folder: Path | None = None, worker: str = "master"
    ) -> TestDatabases:
        """The engine and server the command line options (or the environment) choose."""
        url_option = config.getoption("crmkit_postgres_url", None)
        backend = config.getoption("crmkit_db", None) or (
            "postgresql" if url_option else os.environ.get("CRMKIT_TEST_DB", "sqlite")
        )
        admin_url = url_option or os.environ.get("CRMKIT_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
        return cls(backend, admin_url, folder or Path("."), worker)

    def _admin(self) -> sa.Engine:
        return sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")

    def _url_of(self, name: str) -> str:
        return sa.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def _execute(self, statement: str) -> None:
        admin = self._admin()
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(statement)
        except sa.exc.OperationalError as error:
            first = str(error.orig or error).strip().splitlines()[0]
            raise pytest.UsageError(
                f"cannot reach PostgreSQL for the crmkit test databases ({first}); start it or"
                " pass a reachable server with --crmkit-postgres-url"
            ) from None
        finally:
            admin.dispose()

    def template(self) -> str:
        """The migrated template (a file path on SQLite, a database name on PostgreSQL)."""
        if self._template is None:
            if self.backend == "sqlite":
                path = self.folder / "template.db"
                crmkit.open(f"sqlite:///{path}", discover=False, upgrade=True).close()
                self._template = str(path)
            else:
                name = f"crmkit_tmpl_{_RUN_ID}_{self.worker}"
                self._execute(f'CREATE DATABASE "{name}"')
                crmkit.open(self._url_of(name), discover=False, upgrade=True).close()
                self._template = name
        return self._template

    @contextmanager
    def database(self, folder: Path, *, empty: bool = False) -> Iterator[str]:
        """A database of its own for one test, with the core schema (none if ``empty``)."""
        if self.backend == "sqlite":
            path = folder / ("empty.db" if empty else "crm.db")
            if not empty:
                shutil.copyfile(self.template(), path)
            yield f"sqlite:///{path}"
            return
        name = f"crmkit_{'e' if empty else 't'}_{_RUN_ID}_{uuid.uuid4().hex[:8]}"
        template = "" if empty else f' TEMPLATE "{self.template()}"'
        self._execute(f'CREATE DATABASE "{name}"{template}')
        try:
            yield self._url_of(name)
        finally:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_template(self) -> None:
        """Drop the PostgreSQL template at the end of the session."""
        if self.backend == "postgresql" and self._template is not None:
            self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._template = None


@pytest.fixture(scope="session")
def crmkit_test_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestDatabases]:
    """The session's :class:`TestDatabases` (one template per xdist worker)."""
    workerinput = getattr(request.config, "workerinput", None)
    worker = str(workerinput["workerid"]) if workerinput else "master"
    databases = TestDatabases.from_config(
        request.config, tmp_path_factory.mktemp("crmkit-template"), worker
    )
    yield databases
    databases.drop_template()


@pytest.fixture
def crm_database_url(crmkit_test_databases: TestDatabases, tmp_path: Path) -> Iterator[str]:
    """This test's own database, with the core schema and no plugin enabled."""
    with crmkit_test_databases.database(tmp_path) as url:
        yield url


@pytest.fixture
def crmkit_plugins() -> Sequence[str]:
    """The installed plugins the ``crm`` fixture enables: override it in your conftest.py."""
    return ()


@pytest.fixture
def crmkit_settings() -> Mapping[str, Any]:
    """Settings of the ``crm`` fixture (``make_crm`` keywords): override it in conftest.py."""
    return {}


def settings_from_keywords(database_url: str, settings: Mapping[str, Any]) -> Settings:
    """``Settings`` from ``make_crm``-style keywords (the ``[crmkit]`` keys, ``webhooks`` and
    ``plugin_settings``), on ``database_url``."""
    section = dict(settings)
    data = {
        "crmkit": section,
        "webhooks": section.pop("webhooks", []),
        "plugins": section.pop("plugin_settings", {}),
    }
    return Settings.from_mapping(data, database_url=database_url)


class CRMFactoryState:
    """What ``make_crm`` opened, so that ``crm_cli`` and ``crm_api`` can open the same."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.opened: list[crmkit.CRM] = []
        self.embedded: dict[int, Mapping[str, object]] = {}

    def make(
        self,
        *,
        enable: Sequence[str] = (),
        plugins: Mapping[str, object] | None = None,
        discover: bool | None = None,
        **settings: Any,
    ) -> crmkit.CRM:
        """Open a CRM on the test's database; see the module docstring."""
        crm = crmkit.CRM(
            settings_from_keywords(self.database_url, settings),
            plugins=plugins,
            discover=bool(enable) if discover is None else discover,
        )
        self.opened.append(crm)
        self.embedded[id(crm)] = dict(plugins or {})
        if plugins:
            crm.upgrade()  # embedded plugins' migrations, if any
        for name in enable:
            if name not in crm.enabled_plugin_names():
                crm.enable_plugin(name)
        return crm

    def close(self) -> None:
        """Close every CRM opened (their plugins' shutdown hooks run)."""
        for crm in reversed(self.opened):
            crm.close()


def source_checkout_plugins(root: Path) -> dict[str, Any]:
    """The plugins the ``pyproject.toml`` in ``root`` declares (``crmkit.plugins`` entry
    points) that are not installed: a plugin's tests then run from its source checkout
    without ``pip install -e .`` first. Each is imported from ``root``."""
    import importlib
    import sys
    import tomllib

    from crmkit.plugins import discover_plugins, in_memory_plugin

    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    declared = project.get("entry-points", {}).get("crmkit.plugins", {})
    installed = discover_plugins() if declared else {}
    missing = {name: target for name, target in declared.items() if name not in installed}
    found: dict[str, Any] = {}
    for name, target in missing.items():
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        module = importlib.import_module(str(target).split(":")[0])
        plugin = in_memory_plugin(name, module)
        plugin.distribution = str(project.get("name") or name)
        plugin.version = str(project.get("version") or "0")
        found[name] = plugin
    return found


@pytest.fixture(scope="session")
def crmkit_source_plugins(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Plugins of the test run's own source checkout that are not installed (see
    :func:`source_checkout_plugins`)."""
    return source_checkout_plugins(request.config.rootpath)


@pytest.fixture
def make_crm(
    crm_database_url: str,
    crmkit_source_plugins: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[CRMFactory]:
    """Open CRMs on this test's database: ``make_crm(enable=[...], **settings)``."""
    if crmkit_source_plugins:  # found like installed ones, by every CRM of the test
        from crmkit.plugins import discover_plugins

        monkeypatch.setattr(
            "crmkit.app.discover_plugins",
            lambda: {**discover_plugins(), **crmkit_source_plugins},
        )
    state = CRMFactoryState(crm_database_url)
    yield state.make
    state.close()


@pytest.fixture
def crm(
    make_crm: CRMFactory, crmkit_plugins: Sequence[str], crmkit_settings: Mapping[str, Any]
) -> crmkit.CRM:
    """A CRM with ``crmkit_plugins`` enabled and ``crmkit_settings`` applied."""
    return make_crm(enable=tuple(crmkit_plugins), **crmkit_settings)


# -- the REST API -------------------------------------------------------------------------------


class UserClient:
    """Requests as one user: ``get``, ``post``, ``put``, ``patch``, ``delete`` with their
    token (keywords go to httpx, such as ``json=`` and ``params=``)."""

    def __init__(self, api: ApiClient, username: str) -> None:
        self.api = api
        self.username = username

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send ``method path`` as this user; returns the httpx response."""
        return self.api.call(method, path, self.username, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        """``GET path`` as this user."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        """``POST path`` as this user."""
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        """``PUT path`` as this user."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        """``PATCH path`` as this user."""
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        """``DELETE path`` as this user."""
        return self.request("DELETE", path, **kwargs)


class ApiClient:
    """The REST API of one CRM, served in-process by Litestar's test client, with users and
    their tokens."""

    def __init__(self, crm: crmkit.CRM, client: TestClient[Any]) -> None:
        self.crm = crm
        self.client = client
        self.tokens: dict[str, str] = {}

    def user(self, username: str, **options: Any) -> crmkit.User:
        """Create a user (keywords of ``crm.users.create``: ``roles=``, ``team=``,
        ``admin=``, ``manager=``) and issue a token for them."""
        user = self.crm.users.create(username, **options)
        self.token_for(username)
        return user

    def token_for(self, username: str) -> str:
        """A token of an existing user (issued on first use)."""
        if username not in self.tokens:
            _, plain = self.crm.tokens.issue(username, "tests")
            self.tokens[username] = plain
        return self.tokens[username]

    def auth(self, username: str) -> dict[str, str]:
        """The ``Authorization`` header of ``username``."""
        return {"Authorization": f"Bearer {self.token_for(username)}"}

    def call(self, method: str, path: str, username: str = "admin", **kwargs: Any) -> Any:
        """A request as ``username`` (the administrator by default)."""
        headers = {**self.auth(username), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def as_user(self, username: str) -> UserClient:
        """Requests as ``username``: ``crm_api.as_user("li.na").get("/contacts")``."""
        return UserClient(self, username)


#: The route sets whose OpenAPI document was checked already (the check takes a few tenths
#: of a second; most tests of a suite serve the same routes).
_CHECKED_ROUTES: dict[tuple[str, ...], list[str]] = {}


def untyped_routes(app: Litestar) -> list[str]:
    """The routes of ``app`` whose JSON request or response bodies are not named, typed
    schemas in its OpenAPI document (see :func:`crmkit.api.untyped_operations`), one line
    each; empty when a client generator can type every route."""
    from litestar.routes import HTTPRoute

    from crmkit.api import untyped_operations

    key = tuple(
        sorted(
            f"{route.path} {handler.handler_name} {handler.fn.__module__}"
            for route in app.routes
            if isinstance(route, HTTPRoute)
            for handler in route.route_handlers
        )
    )
    if key not in _CHECKED_ROUTES:
        _CHECKED_ROUTES[key] = untyped_operations(app.openapi_schema.to_schema())
    return _CHECKED_ROUTES[key]


def assert_typed_routes(app: Litestar) -> None:
    """Fail the test when a route of ``app`` has an untyped body (:func:`untyped_routes`)."""
    problems = untyped_routes(app)
    if problems:
        pytest.fail(
            "routes without named, typed schemas (answer a msgspec.Struct or a dataclass, "
            "not dict[str, Any]; see docs/plugins.md#typed-routes):\n  " + "\n  ".join(problems),
            pytrace=False,
        )


@contextmanager
def api_client(
    crm: crmkit.CRM, admin: str = "admin", *, check_schema: bool = True
) -> Iterator[ApiClient]:
    """An :class:`ApiClient` on ``crm`` with an administrator called ``admin``.

    Every route must have named, typed request and response schemas (a client generator
    takes the OpenAPI document whole): a route that answers ``dict[str, Any]`` fails the test
    (:func:`assert_typed_routes`); ``check_schema=False`` skips the check."""
    from litestar.testing import TestClient

    from crmkit.api import create_app

    app = create_app(crm)
    if check_schema:
        assert_typed_routes(app)
    with TestClient(app) as client:
        api = ApiClient(crm, client)
        api.user(admin, admin=True)
        yield api


def assert_problem(response: Any, status: int, *, field: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status`` (naming ``field`` among its
    errors, if given); return its body."""
    from crmkit.api import PROBLEM_MEDIA_TYPE

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["type"].startswith("urn:crmkit:problem:")
    if field is not None:
        assert field in [error["field"] for error in body.get("errors", [])], body
    return body


@pytest.fixture
def crm_api(crm: crmkit.CRM) -> Iterator[ApiClient]:
    """The REST API of ``crm``, with an administrator ``admin``."""
    with api_client(crm) as api:
        yield api


# -- the command line ---------------------------------------------------------------------------


class CommandLine:
    """Runs ``crmkit`` commands in-process (click's ``CliRunner``) on one CRM's database,
    settings and plugins."""

    def __init__(self, arguments: Sequence[str] = ()) -> None:
        from click.testing import CliRunner

        self.arguments = list(arguments)
        self.runner = CliRunner()

    def run(self, *args: str, input: str | None = None) -> Result:
        """Run ``crmkit ARGS...``; the click ``Result`` (exit_code, stdout, stderr)."""
        from crmkit.cli import cli

        return self.runner.invoke(cli, [*self.arguments, *args], input=input)

    def ok(self, *args: str, input: str | None = None) -> str:
        """The standard output of a command that must succeed (exit status 0)."""
        result = self.run(*args, input=input)
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result.stdout

    def fails(self, *args: str, input: str | None = None) -> str:
        """The one line a command that must fail printed on stderr (exit status 1, no
        traceback)."""
        result = self.run(*args, input=input)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]


def isolate_command_line(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Run commands in ``folder`` with no crmkit variables from the environment."""
    monkeypatch.chdir(folder)
    for name in ("CRMKIT_CONFIG", "CRMKIT_DATABASE_URL", "CRMKIT_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def command_line_for(crm: crmkit.CRM, monkeypatch: pytest.MonkeyPatch, folder: Path) -> CommandLine:
    """A :class:`CommandLine` whose commands open a CRM like ``crm``: the same database,
    settings, installed and embedded plugins (for the rest of the test, run in ``folder``)."""
    from crmkit.cli import context

    isolate_command_line(monkeypatch, folder)
    embedded = {name: plugin.module for name, plugin in crm.embedded.items()}
    discover = bool(set(crm.installed) - set(crm.embedded))

    def open_like_the_test(settings: Settings | None = None, **_: Any) -> crmkit.CRM:
        return crmkit.CRM(crm.settings, plugins=embedded, discover=discover)

    monkeypatch.setattr(context, "open_crm", open_like_the_test)
    return CommandLine(["--database-url", crm.settings.database_url])


@pytest.fixture
def crm_cli(crm: crmkit.CRM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CommandLine:
    """``crmkit`` commands on ``crm``: its database, settings and plugins (embedded too)."""
    return command_line_for(crm, monkeypatch, tmp_path)


__all__ = [
    "ApiClient",
    "CRMFactory",
    "CommandLine",
    "TestDatabases",
    "UserClient",
    "api_client",
    "assert_problem",
    "assert_typed_routes",
    "command_line_for",
    "crm",
    "crm_api",
    "crm_cli",
    "crm_database_url",
    "crmkit_plugins",
    "crmkit_settings",
    "crmkit_source_plugins",
    "crmkit_test_databases",
    "isolate_command_line",
    "make_crm",
    "settings_from_keywords",
    "source_checkout_plugins",
    "untyped_routes",
]
