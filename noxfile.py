"""Every check and chore of crmkit, as nox sessions.

Run them through the wrapper, which installs nox itself:

    ./noxw                    the default sessions below: the whole test suite
    ./noxw -s demo            a demo CRM with sample data in ./demo, then its REST API
    ./noxw -s demo -- --no-serve   the same without serving the API
    ./noxw -s tests-sqlite -- -k contacts -x    arguments after -- go to pytest
    ./noxw --list             every session with its one-line description

Sessions run on the Python that runs nox (3.11+), each in its own virtualenv
under .nox/.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

# The example third-party plugin distribution; the test suite and the demo use it.
REFERRALS_PLUGIN = Path("examples/crmkit-referrals")
# A second third-party plugin, written from the plugin docs alone (issue 18's held-out
# check); the test suite runs its own tests on both engines.
TICKETS_PLUGIN = Path("examples/crmkit-tickets")

# Folders whose Python code is type-checked, when they hold any.
TYPED_SOURCE_DIRS = ("crmkit", "plugins")

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START_POSTGRES_COMMAND = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

# The demo: where it lives, what it runs, and what it suggests next. `{crmkit}` is replaced
# by the crmkit command inside the demo's virtualenv, `{config}` by the config file path.
DEMO_DIR = Path("demo")
DEMO_CONFIG = DEMO_DIR / "crmkit.toml"
# Run once, when demo/crmkit.toml does not exist yet: create the database, enable the example
# and the dedupe plugins, load the sample data, add assignment rules for new leads, a shared-pool
# policy and a lead-capture form.
DEMO_SETUP = [
    "init",
    "plugins enable referrals",
    "plugins enable dedupe",
    "plugins enable cardscan",
    "plugins enable reminders",
    "plugins enable loyalty",
    "plugins enable insights",
    "plugins enable campaigns",
    "demo",
    "rules add lead web-inquiries --strategy round_robin --member li.na --member wang.fang"
    " --member zhou.jie --when source_channel=web",
    "rules add lead other-leads --strategy least_loaded --member chan.kaming --member lin.yating",
    "pool policy add account no-follow-up-30-days --days 30",
    "forms add 官网询价 --fields full_name,company_name,phone,email,inquiry --owner li.na",
    # business cards from a trade fair: generated, then scanned (clear ones saved, the rest
    # wait for review)
    "cards samples demo/cards --count 5 --seed 5 --truth demo/cards-truth.json",
    "cards scan demo/cards --save --where 广交会",
    # reminders: the demo data adds li.na's reminders (one due now) and a lunar birthday;
    # the worker's one pass fires what is due into her in-app inbox
    "worker --once",
]
# Run every time.
DEMO_STEPS = [
    "plugins list",
    "contacts list --limit 10",
    "cards review --status all --limit 3",
    "messages channels",
    "reminders list --user li.na",
    "inbox --user li.na",
    # the loyalty plugin's demo data: cards issued, purchases, a tier, a coupon
    "loyalty programs",
    "loyalty member 1",
    # the insight plugin: this year's sales funnel and the customers' RFM segments
    "insight funnel",
    "insight rfm",
    # the campaigns plugin's demo data: li.na's welcome campaign, started; the worker's pass
    # queued its first mails (the demo has no SMTP server: they wait in the delivery log)
    "campaigns show 欢迎新客户",
]
# Printed after the demo is set up; the session then serves the REST API in the foreground
# (`crmkit serve`, Ctrl-C stops it) unless `-- --no-serve` is given.
DEMO_NEXT_STEPS = [
    ("See all commands", "{crmkit} --config {config} --help"),
    ("List contacts", "{crmkit} --config {config} contacts list"),
    ("See installed plugins", "{crmkit} --config {config} plugins list"),
    ("Start the REST API", "{crmkit} --config {config} serve"),
    (
        "Open the web desk",
        "{crmkit} --config {config} users set-password li.na --generate, then serve and"
        " open http://127.0.0.1:8000/desk",
    ),
    ("Embed the lead form", "{crmkit} --config {config} forms snippet KEY (see: forms list)"),
    ("Find duplicate contacts", "{crmkit} --config {config} dedupe scan"),
    ("Who gets a web lead", "{crmkit} --config {config} rules test lead --set source_channel=web"),
    ("Release neglected accounts", "{crmkit} --config {config} pool release --dry-run"),
    ("Scan business cards", "{crmkit} --config {config} cards scan demo/cards --save"),
    ("A rep's reminders", "{crmkit} --config {config} reminders list --user li.na"),
    ("Run the worker", "{crmkit} --config {config} worker"),
    ("The delivery log", "{crmkit} --config {config} messages log"),
    ("A member's points and tier", "{crmkit} --config {config} loyalty member 1"),
    ("The sales funnel as a picture", "{crmkit} --config {config} insight funnel --png f.png"),
    ("Who is slipping away", "{crmkit} --config {config} insight churn"),
    ("An e-mail campaign", "{crmkit} --config {config} campaigns show 欢迎新客户"),
]
# The demo user whose token the demo prints (a sales rep: the API shows what they may see).
DEMO_API_USER = "li.na"
DEMO_API_URL = "http://127.0.0.1:8000"

nox.options.sessions = [
    "lint",
    "types",
    "imports",
    "tests-sqlite",
    "tests-postgres",
    "docs",
    "examples",
]
nox.options.error_on_external_run = True


def crmkit_with_example_plugin(extra: str = "", *, tickets: bool = False) -> list[str]:
    """Install arguments for crmkit (editable, with `extra`) plus the example plugin (and,
    with `tickets`, the held-out tickets plugin).

    They go into one install command so the plugins' dependency on crmkit is met by
    this checkout, never looked up on a package index.
    """
    arguments = ["-e", f".[{extra}]" if extra else "."]
    for plugin in (REFERRALS_PLUGIN, TICKETS_PLUGIN) if tickets else (REFERRALS_PLUGIN,):
        if plugin.is_dir():
            arguments += ["-e", str(plugin)]
    return arguments


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (fix with: ruff check --fix . && ruff format .)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """Type-check crmkit and the bundled plugins with mypy (strict, see pyproject.toml)."""
    targets = [name for name in TYPED_SOURCE_DIRS if any((ROOT / name).rglob("*.py"))]
    if not targets:
        session.error(f"nothing to type-check: no Python files in {', '.join(TYPED_SOURCE_DIRS)}")
    # The bundled plugins' dependencies (the dedupe extra, Litestar for their routes) are
    # needed to type-check plugins/; pytest for the test kit, crmkit/testing.py.
    session.install(
        "-e",
        ".[dedupe,loyalty,cardscan,brokers,reminders,insights,campaigns]",
        "litestar",
        "mypy",
        "pytest",
        "types-python-dateutil",
    )
    session.run("mypy", *targets, *session.posargs)


@nox.session
def imports(session: nox.Session) -> None:
    """Check the import contracts in pyproject.toml: layers, and plugins using only public API."""
    session.install(
        *crmkit_with_example_plugin(
            "dedupe,loyalty,cardscan,brokers,reminders,insights,campaigns", tickets=True
        ),
        "import-linter",
    )
    session.run("lint-imports", *session.posargs)


def prepare_machine(session: nox.Session, what: str) -> None:
    """Install the Debian packages and start the servers ``what`` ("demo" or "tests") needs,
    each only when missing (.ci/prepare; root or password-less sudo only then). Set
    CRMKIT_PREPARE_MACHINE=0 to skip it on a machine you prepare yourself."""
    if os.environ.get("CRMKIT_PREPARE_MACHINE", "1") == "0":
        session.log("CRMKIT_PREPARE_MACHINE=0: not preparing the machine")
        return
    session.run("bash", str(ROOT / ".ci" / "prepare"), what, external=True)


def run_tests(session: nox.Session, database: str, env: dict[str, str] | None = None) -> None:
    """Run the test suite against one database engine (two workers; -- args go to pytest)."""
    session.run(
        "pytest",
        "-n",
        "2",
        *session.posargs,
        env={"CRMKIT_TEST_DB": database, **(env or {})},
    )


@nox.session(name="tests-sqlite")
def tests_sqlite(session: nox.Session) -> None:
    """Run the tests on SQLite (embedded; the broker, browser and OCR tests need the machine
    prepared: .ci/prepare tests)."""
    prepare_machine(session, "tests")
    session.install(*crmkit_with_example_plugin("test", tickets=True))
    run_tests(session, "sqlite")


@nox.session(name="tests-postgres")
def tests_postgres(session: nox.Session) -> None:
    """Run the tests on PostgreSQL; fails when the server is not reachable.

    CRMKIT_TEST_POSTGRES_URL is an admin URL (default: postgres on 127.0.0.1:5432); the tests
    create and drop their own throwaway databases through it.
    """
    url = os.environ.get("CRMKIT_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    prepare_machine(session, "tests")
    session.install(*crmkit_with_example_plugin("test", tickets=True))
    problem = postgres_connection_problem(session, url)
    if problem:
        session.error(
            f"PostgreSQL is not reachable at {url} ({problem}); start it with: "
            f"{START_POSTGRES_COMMAND}"
        )
    run_tests(session, "postgresql", {"CRMKIT_TEST_POSTGRES_URL": url})


# Connects with psycopg inside the session's virtualenv and prints what went wrong, if anything.
POSTGRES_PROBE = """
import sys
import psycopg
from sqlalchemy.engine import make_url

url = make_url(sys.argv[1]).set(drivername="postgresql")
try:
    psycopg.connect(url.render_as_string(hide_password=False), connect_timeout=5).close()
except Exception as error:
    print(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
"""


def postgres_connection_problem(session: nox.Session, url: str) -> str:
    """Return why PostgreSQL at `url` cannot be reached, or "" when it can."""
    output = session.run("python", "-c", POSTGRES_PROBE, url, silent=True, log=False)
    return str(output or "").strip()


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ with mkdocs; any warning fails the build."""
    # the plugin pages document their CLIs
    session.install("-e", ".[docs,dedupe,loyalty,cardscan,brokers,reminders,insights,campaigns]")
    # Quiet the banners mkdocs-material and properdocs print about MkDocs 2.0.
    quiet = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    session.run("mkdocs", "build", "--strict", *session.posargs, env=quiet)


@nox.session
def examples(session: nox.Session) -> None:
    """Run every examples/*.py script, each in a fresh empty working directory."""
    scripts = sorted((ROOT / "examples").glob("*.py"))
    if not scripts:
        session.log("No examples/*.py scripts yet: nothing to run.")
        return
    session.install(*crmkit_with_example_plugin("dedupe,loyalty,reminders,campaigns"))
    workspace = Path(session.create_tmp()).resolve()
    for script in scripts:
        run_dir = workspace / script.stem
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        with session.chdir(run_dir):
            session.run("python", str(script))


@nox.session
def demo(session: nox.Session) -> None:
    """Set up a demo CRM with sample data in ./demo and show what to try next."""
    prepare_machine(session, "demo")  # OCR libraries and CJK fonts for the card scanner
    session.install(
        *crmkit_with_example_plugin("dedupe,loyalty,cardscan,reminders,insights,campaigns,brokers")
    )
    crmkit = str(Path(session.bin) / "crmkit")
    config = ["--config", str(DEMO_CONFIG)]
    DEMO_DIR.mkdir(exist_ok=True)
    if not DEMO_CONFIG.exists():
        for step in DEMO_SETUP:
            session.run("crmkit", *config, *shlex.split(step))
    for step in DEMO_STEPS:
        session.run("crmkit", *config, *shlex.split(step))

    config_path = str(DEMO_CONFIG.resolve())
    replacements = {"crmkit": shlex.quote(crmkit), "config": shlex.quote(config_path)}
    width = max(len(description) for description, _ in DEMO_NEXT_STEPS) + 2
    lines = ["", "The demo CRM is ready in demo/. What next:", ""]
    for description, command in DEMO_NEXT_STEPS:
        lines.append(f"  {description + ':':<{width}}{command.format(**replacements)}")
    lines += ["", "Run ./noxw -s demo again at any time; delete demo/ to start afresh.", ""]
    print("\n".join(lines))
    if "--no-serve" in session.posargs:
        return
    issued = session.run(
        "crmkit",
        *config,
        "tokens",
        "issue",
        DEMO_API_USER,
        "demo API",
        "--expires-in",
        "7d",
        silent=True,
    )
    token = next(
        (word for word in str(issued).split() if word.startswith("crmk_")), "(see tokens issue)"
    )
    # a fresh desk password for the same rep, printed with the desk's address
    password_set = session.run(
        "crmkit", *config, "users", "set-password", DEMO_API_USER, "--generate", silent=True
    )
    password = str(password_set).strip().rsplit(" ", 1)[-1]
    print(
        "\n".join(
            [
                f"Serving the REST API on {DEMO_API_URL} (Ctrl-C stops it):",
                f"  the web desk: {DEMO_API_URL}/desk  (sign in as {DEMO_API_USER},"
                f" password {password})",
                f"  interactive docs: {DEMO_API_URL}/schema/swagger",
                f"  a token of {DEMO_API_USER} (sales rep) to try:  {token}",
                f"  curl -G -H 'Authorization: Bearer {token}' --data-urlencode 'q=徐'"
                f" {DEMO_API_URL}/contacts",
                "",
            ]
        )
    )
    session.run("crmkit", *config, "serve")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks (bench/run.py); arguments after -- go to the script."""
    script = ROOT / "bench" / "run.py"
    if not script.is_file():
        session.error("bench/run.py does not exist yet: there are no benchmarks to run")
    session.install("-e", ".[bench,dedupe,loyalty,brokers,insights]")
    session.run("python", str(script), *session.posargs)
