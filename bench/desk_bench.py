"""Benchmark: the desk's server time next to the REST API's, for the same data.

100 k contacts (``scope_bench``'s data set: 500 users in a 5-level team tree). A leaf-team
sales rep (scope "own") reads, in-process through Litestar's test client (no network, so the
figure is the server's time: routing, session or token check, the service call, rendering):

* the first page of their contacts, 50 rows: ``GET /desk/contacts`` (HTML) next to
  ``GET /contacts?limit=50`` (JSON);
* one of their contacts: ``GET /desk/contacts/{id}`` (the record page: fields, timeline,
  related deals and tasks) next to the API routes that return the same data
  (``GET /contacts/{id}``, ``/contacts/{id}/activities``, ``/deals``, ``/tasks``), and, for
  reference, next to ``GET /contacts/{id}`` alone.

Each round times ``REQUESTS`` requests of each route, desk and API alternating which goes
first; every round is reported and the ratio of medians. Goal (issue 20): the desk within
1.3 x of the API.

Run: ``python bench/desk_bench.py [--backend sqlite|postgresql] [--contacts N] [--rounds R]``
(prints; the figures in docs/benchmarks.md were copied from its output with the load).

``--profile`` instead counts the transactions and SQL statements of one request of each list
route and profiles ``REQUESTS`` of each with pyinstrument: the handlers run in Litestar's
worker threads, so each handler call is profiled in its own thread and the sessions are
combined (template rendering, which Litestar does on the event loop, is not in them).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import scope_bench  # noqa: E402
from dbs import BACKENDS, Databases  # noqa: E402
from litestar.testing import TestClient  # noqa: E402

import crmkit  # noqa: E402
from crmkit.api import create_app  # noqa: E402

REQUESTS = 40
PASSWORD = "bench password 长一点"


def timed(client: TestClient[Any], paths: tuple[str, ...], headers: dict[str, str]) -> float:
    """Milliseconds per round of ``paths`` (each requested once), over ``REQUESTS`` rounds."""
    start = time.perf_counter()
    for _ in range(REQUESTS):
        for path in paths:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return (time.perf_counter() - start) * 1000 / REQUESTS


def statements(crm: crmkit.CRM, client: TestClient[Any], path: str, headers: dict[str, str]) -> str:
    """How many transactions and SQL statements one request of ``path`` runs."""
    from sqlalchemy import event

    counts = {"transactions": 0, "statements": 0}

    def began(_connection: Any) -> None:
        counts["transactions"] += 1

    def executed(*_args: Any) -> None:
        counts["statements"] += 1

    engine = crm.engine
    event.listen(engine, "begin", began)
    event.listen(engine, "before_cursor_execute", executed)
    try:
        assert client.get(path, headers=headers).status_code == 200
    finally:
        event.remove(engine, "begin", began)
        event.remove(engine, "before_cursor_execute", executed)
    return f"{counts['transactions']} transactions, {counts['statements']} statements"


def profiled(client: TestClient[Any], path: str, headers: dict[str, str]) -> str:
    """A pyinstrument profile of ``REQUESTS`` requests of ``path``: the handler calls (in
    Litestar's worker threads) and the template rendering (on the event loop), each call
    profiled in its own thread and the sessions combined."""
    import jinja2
    import litestar.concurrency
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    sessions: list[Session] = []

    def profiling(fn: Any, *args: Any, **kwargs: Any) -> Any:
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        try:
            return fn(*args, **kwargs)
        finally:
            profiler.stop()
            if profiler.last_session is not None:
                sessions.append(profiler.last_session)

    original_thread = litestar.concurrency._run_sync_asyncio
    original_render = jinja2.Template.render

    async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await original_thread(lambda: profiling(fn, *args, **kwargs))

    def render(self: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        return profiling(original_render, self, *args, **kwargs)  # type: ignore[no-any-return]

    litestar.concurrency._run_sync_asyncio = in_thread  # type: ignore[assignment]
    jinja2.Template.render = render  # type: ignore[method-assign]
    try:
        timed(client, (path,), headers)
    finally:
        litestar.concurrency._run_sync_asyncio = original_thread  # type: ignore[assignment]
        jinja2.Template.render = original_render  # type: ignore[method-assign]
    combined = sessions[0]
    for session in sessions[1:]:
        combined = Session.combine(combined, session)
    renderer = ConsoleRenderer(unicode=True, color=False, show_all=False, short_mode=False)
    return renderer.render(combined)


def run(backend: str, contacts: int, rounds: int, profile: bool = False) -> None:
    org = scope_bench.organisation()
    rep = next(actor for actor in org.actors if actor.key == "L4")
    with Databases(backend) as databases:
        url = databases.fresh()
        started = time.perf_counter()
        if backend == "sqlite":
            scope_bench.build_sqlite(url, org, contacts)
        else:
            scope_bench.build_postgres(url, org, contacts)
        print(f"{backend}: {contacts} contacts loaded in {time.perf_counter() - started:.0f} s")
        crm = crmkit.open(url, discover=False)
        username = f"user{rep.user_id}"
        crm.sign_in.set_password(username, PASSWORD)
        _, token = crm.tokens.issue(username, "bench")
        user = crm.users.get(username)
        mine = crm.contacts.list({"owner_id": user.id}, limit=1, actor=user).items
        record_id = mine[0]["id"]
        api = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(crm)) as client:
            page = client.get("/desk/sign-in")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf is not None
            signed = client.post(
                "/desk/sign-in",
                data={"csrf_token": csrf.group(1), "username": username, "password": PASSWORD},
            )
            assert signed.status_code == 200, signed.text[:300]
            one = f"/contacts/{record_id}"
            if profile:
                timed(client, ("/desk/contacts",), {})  # warm up both
                timed(client, ("/contacts?limit=50",), api)
                for path, headers in (("/desk/contacts", {}), ("/contacts?limit=50", api)):
                    print(f"{backend} {path}: {statements(crm, client, path, headers)}")
                    print(profiled(client, path, headers))
                crm.close()
                return
            pairs = {
                "list, 50 rows": (("/desk/contacts",), ("/contacts?limit=50",)),
                # the record page shows the record, its timeline and its related deals and
                # tasks: the API routes that return the same data
                "record page": (
                    (f"/desk{one}",),
                    (
                        one,
                        f"{one}/activities?sort=-occurred_at&limit=20",
                        f"{one}/deals?limit=10",
                        f"{one}/tasks?limit=10",
                    ),
                ),
                "the record alone (API: one route)": ((f"/desk{one}",), (one,)),
            }
            for label, (desk_path, api_path) in pairs.items():
                timed(client, desk_path, {})  # warm up both
                timed(client, api_path, api)
                desk_ms, api_ms = [], []
                for round_number in range(rounds):
                    if round_number % 2 == 0:
                        desk_ms.append(timed(client, desk_path, {}))
                        api_ms.append(timed(client, api_path, api))
                    else:
                        api_ms.append(timed(client, api_path, api))
                        desk_ms.append(timed(client, desk_path, {}))
                ratio = statistics.median(desk_ms) / statistics.median(api_ms)
                print(
                    f"{backend} {label}: desk "
                    + " ".join(f"{v:.1f}" for v in desk_ms)
                    + " ms; API "
                    + " ".join(f"{v:.1f}" for v in api_ms)
                    + f" ms; median ratio {ratio:.2f}"
                )
        crm.close()
    print("load:", os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=BACKENDS, action="append")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="profile the list routes")
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    for backend in options.backend or BACKENDS:
        run(backend, options.contacts, options.rounds, options.profile)


if __name__ == "__main__":
    main()
