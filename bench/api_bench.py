"""Benchmark 5: the REST API under load.

100 k contacts (the scoped-read data set of ``scope_bench``: 500 users in a 5-level team
tree), served by ``crmkit serve``'s app under uvicorn (one process), loaded by ``wrk`` from a
second process on loopback with 50 connections: ``GET /contacts/{id}`` (one of the rep's
contacts) and ``GET /contacts?limit=50`` (the first page a sales rep may see: scope "own"),
both with the rep's bearer token. The baseline, in the same run on the same database: a bare
Litestar + SQLAlchemy app (``bench/api_bare.py``) running the same SQL without crmkit
(no token check, no permission loading) on crmkit's engine. Goal: at least 0.7 × the bare
rate, p99 < 50 ms.

Both servers run at once (the idle one costs nothing) and their loads alternate, crmkit
first in odd rounds and bare first in even ones, so both see the same machine; each figure
is the best of its rounds. A second, lower concurrency (10 connections, one round) is
measured too and reported separately.

Run alone with ``python bench/api_bench.py [--quick] [--backend B]`` (prints, writes
nothing); ``bench/run.py --only api`` writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from attrs import define, field

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import scope_bench  # noqa: E402
from dbs import BACKENDS, Databases  # noqa: E402

import crmkit  # noqa: E402

Log = Callable[[str], None]
CONNECTIONS = 50  # the issue's concurrency
LOW_CONNECTIONS = 10  # the extra, clearly labelled row
ROUNDS = 2  # alternating loads per app and route at CONNECTIONS
WARM_UP_SECONDS = 2


@define
class Load:
    """What one wrk run measured."""

    rate: float  # requests per second
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors and non-2xx answers


@define
class ApiResult:
    """Both apps, both routes, on one engine."""

    backend: str
    contacts: int
    owned: int  # contacts the rep owns (the scope of the page)
    #: (app, route, connections) -> every load measured, in order
    loads: dict[tuple[str, str, int], list[Load]] = field(factory=dict)

    def best(self, app: str, route: str, connections: int) -> Load:
        """The load with the highest rate of ``app`` on ``route``."""
        return max(self.loads[app, route, connections], key=lambda load: load.rate)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(target: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env={**os.environ, **env}, cwd=HERE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/contacts/1", timeout=2):
                pass
            return process
        except urllib.error.HTTPError:
            return process  # it answers (401/404): it is up
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"server {target} exited with {process.returncode}") from None
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server {target} did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, token: str | None, seconds: int, connections: int = CONNECTIONS) -> Load:
    """``wrk -t2 -cN --latency`` against ``url``; the numbers it prints."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    socket_errors = re.search(r"Socket errors: (.*)", output)
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return Load(rate, p50, p99, requests, errors)


def measure(backend: str, url: str, contacts: int, seconds: int, log: Log) -> ApiResult:
    """Serve both apps on ``url`` and load each route, alternating the apps."""
    crm = crmkit.open(url, discover=False)
    rep = crm.users.get("user100")  # a sales rep (scope "own") in a leaf team
    _, token = crm.tokens.issue(rep.username, "api bench")
    owned = crm.contacts.count(actor=rep)
    first = crm.contacts.list(limit=1, actor=rep).items[0].id
    crm.close()
    result = ApiResult(backend, contacts, owned)
    routes = {"one": f"/contacts/{first}", "page": "/contacts?limit=50"}
    apps = {
        "crmkit": (
            ["crmkit.api.serving:app_from_environment", "--factory"],
            {"CRMKIT_DATABASE_URL": url, "CRMKIT_CONFIG": os.devnull},
        ),
        "bare": (["api_bare:app"], {"BARE_DATABASE_URL": url, "BARE_OWNER_ID": str(rep.id)}),
    }
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for app, (target, env) in apps.items():
            port = _free_port()
            servers[app] = (_serve(target, env, port), port)

        def load(app: str, route: str, connections: int, length: int) -> None:
            address = f"http://127.0.0.1:{servers[app][1]}{routes[route]}"
            measured = wrk(address, token, length, connections)
            log(
                f"api: {backend}: {app} {route} c{connections}: {measured.rate:,.0f} req/s,"
                f" p50 {measured.p50_ms:.1f} ms, p99 {measured.p99_ms:.1f} ms,"
                f" errors {measured.errors}"
            )
            result.loads.setdefault((app, route, connections), []).append(measured)

        for route in routes:
            for app in apps:
                address = f"http://127.0.0.1:{servers[app][1]}{routes[route]}"
                wrk(address, token, WARM_UP_SECONDS)
            for round_number in range(ROUNDS):
                order = list(apps) if round_number % 2 == 0 else list(reversed(apps))
                for app in order:
                    load(app, route, CONNECTIONS, seconds)
            for app in apps:
                load(app, route, LOW_CONNECTIONS, max(5, seconds * 2 // 3))
    finally:
        for process, _ in servers.values():
            _stop(process)
    return result


def run(
    backends: Sequence[str], *, contacts: int, seconds: int, log: Log = print
) -> list[ApiResult]:
    """Build the data set on each engine and load both apps."""
    if shutil.which("wrk") is None:
        raise RuntimeError("the API benchmark needs wrk: apt-get install -y wrk")
    results = []
    for backend in backends:
        with Databases(backend) as dbs:
            url = dbs.fresh()
            org = scope_bench.organisation()
            log(f"api: {backend}: building {contacts:,} contacts")
            build = scope_bench.build_sqlite if backend == "sqlite" else scope_bench.build_postgres
            build(url, org, contacts)
            results.append(measure(backend, url, contacts, seconds, log))
            dbs.drop(url)
    return results


def _server_stack() -> str:
    parts = ["uvicorn, one process, `--log-level warning --no-access-log`"]
    for module in ("httptools", "uvloop"):
        if importlib.util.find_spec(module) is not None:
            parts.append(module)
    return ", ".join(parts)


def as_markdown(results: Sequence[ApiResult]) -> list[str]:
    """The results section of docs/benchmarks.md."""
    lines = [
        "### REST API under load",
        "",
        f"`wrk -t2` on loopback against {_server_stack()} (the load generator, the server and"
        " PostgreSQL share the machine's 2 cores), a sales rep's token (scope: own"
        " contacts). *bare*: Litestar + SQLAlchemy running the same SQL on crmkit's engine"
        " without crmkit, served the same way. The two servers' loads alternate; each figure is"
        f" the best of {ROUNDS} loads of the same length at {CONNECTIONS} connections, one"
        f" load at {LOW_CONNECTIONS}.",
        "",
    ]
    for connections, title in (
        (CONNECTIONS, f"**{CONNECTIONS} connections** (the issue's figure)"),
        (LOW_CONNECTIONS, f"**{LOW_CONNECTIONS} connections** (extra row, not the issue's)"),
    ):
        lines += [
            title + ":",
            "",
            "| engine | route | crmkit req/s | bare req/s | ratio (goal ≥ 0.7) |"
            " crmkit p50 / p99 | bare p50 / p99 | errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for result in results:
            for route, label in (
                ("one", "GET /contacts/{id}"),
                ("page", "GET /contacts?limit=50"),
            ):
                mine = result.best("crmkit", route, connections)
                bare = result.best("bare", route, connections)
                errors = sum(
                    load.errors
                    for app in ("crmkit", "bare")
                    for load in result.loads[app, route, connections]
                )
                lines.append(
                    f"| {result.backend} | {label} | {mine.rate:,.0f} | {bare.rate:,.0f} |"
                    f" {mine.rate / bare.rate:.2f} | {mine.p50_ms:.1f} / {mine.p99_ms:.1f} ms |"
                    f" {bare.p50_ms:.1f} / {bare.p99_ms:.1f} ms | {errors} |"
                )
        lines.append("")
    lines.append("Every load (req/s, in the order run):")
    lines.append("")
    for result in results:
        for (app, route, connections), loads in sorted(result.loads.items()):
            rates = ", ".join(f"{load.rate:,.0f}" for load in loads)
            lines.append(f"- {result.backend} {app} {route} c{connections}: {rates}")
    lines.append("")
    for result in results:
        lines.append(
            f"{result.backend}: {result.contacts:,} contacts; the rep owns {result.owned:,}."
        )
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 k contacts, 5 s per load")
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    arguments = parser.parse_args(argv)
    contacts, seconds = (10_000, 5) if arguments.quick else (100_000, 15)
    results = run(arguments.backend or list(BACKENDS), contacts=contacts, seconds=seconds)
    print("\n".join(as_markdown(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
