"""Round-robin is fair across processes: two processes creating leads at the same time on
PostgreSQL end with member counts that differ by at most one."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from typing import Any

import pytest

import crmkit
from tests.conftest import BACKEND

LEADS_PER_PROCESS = 40


def create_leads(url: str, name: str, start: Any, count: int) -> None:
    crm = crmkit.open(url, discover=False)
    try:
        start.wait(timeout=60)
        for i in range(count):
            crm.leads.create({"full_name": f"{name}-{i}", "source_channel": "web"})
    finally:
        crm.close()


@pytest.mark.skipif(
    BACKEND != "postgresql", reason="concurrent writers: PostgreSQL (SQLite serialises writers)"
)
@pytest.mark.parametrize("members", [2, 3])
def test_two_processes_share_round_robin_fairly(
    crm: crmkit.CRM, database_url: str, members: int
) -> None:
    names = [f"rep{i}" for i in range(members)]
    users = [crm.users.create(name) for name in names]
    crm.assignment.add_rule("lead", "web", "round_robin", names, when={"source_channel": "web"})
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [
        context.Process(target=create_leads, args=(database_url, f"p{n}", start, LEADS_PER_PROCESS))
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    counts = Counter(lead.owner_id for lead in crm.leads.iterate())
    assert sum(counts.values()) == 2 * LEADS_PER_PROCESS
    per_member = [counts[user.id] for user in users]
    assert max(per_member) - min(per_member) <= 1, per_member
