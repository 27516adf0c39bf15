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


def run(backend: str, contacts: int, rounds: int) -> None:
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
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    for backend in options.backend or BACKENDS:
        run(backend, options.contacts, options.rounds)


if __name__ == "__main__":
    main()
