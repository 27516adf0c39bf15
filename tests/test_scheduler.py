"""The scheduler: plugins' jobs, one run per occurrence across workers, lease takeover."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from cli_support import Run, ok

import crmkit
from crmkit.services.scheduler import Scheduler

NOON = dt.datetime(2026, 12, 8, 12, 0, 30, tzinfo=dt.UTC)


class CountingPlugin:
    """A plugin with an exclusive hourly job and a shared job."""

    def __init__(self, *, fail: bool = False) -> None:
        self.runs: list[tuple[str, str]] = []
        self.fail = fail

    def hourly(self, context: crmkit.JobContext) -> str:
        self.runs.append(("hourly", context.worker_id))
        if self.fail:
            raise RuntimeError("the expiry query failed")
        return "expired 3 lots"

    def shared(self, context: crmkit.JobContext) -> str:
        self.runs.append(("shared", context.worker_id))
        return "idle"

    @crmkit.hookimpl
    def crmkit_scheduled_jobs(self, crm: crmkit.CRM) -> list[crmkit.ScheduledJob]:
        return [
            crmkit.ScheduledJob("test.hourly", self.hourly, every_seconds=3600),
            crmkit.ScheduledJob("test.shared", self.shared, every_seconds=1, shared=True),
        ]


def test_an_exclusive_job_runs_once_per_occurrence_across_workers(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    plugin = CountingPlugin()
    crm = make_crm(plugins={"counting": plugin})
    one, two = Scheduler(crm, "w1"), Scheduler(crm, "w2")

    one.run_once(NOON)
    two.run_once(NOON)
    one.run_once(NOON + dt.timedelta(minutes=5))

    assert [run for run in plugin.runs if run[0] == "hourly"] == [("hourly", "w1")]
    two.run_once(NOON + dt.timedelta(hours=1))
    assert [run for run in plugin.runs if run[0] == "hourly"] == [
        ("hourly", "w1"),
        ("hourly", "w2"),
    ]


def test_a_shared_job_runs_on_every_worker_every_pass(make_crm: Callable[..., crmkit.CRM]) -> None:
    plugin = CountingPlugin()
    crm = make_crm(plugins={"counting": plugin})

    Scheduler(crm, "w1").run_once(NOON)
    Scheduler(crm, "w2").run_once(NOON)

    assert [run for run in plugin.runs if run[0] == "shared"] == [
        ("shared", "w1"),
        ("shared", "w2"),
    ]


def test_a_run_whose_worker_died_is_taken_over_after_its_lease(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    plugin = CountingPlugin()
    crm = make_crm(plugins={"counting": plugin})
    job = next(j for j in Scheduler(crm, "w1").jobs() if j.name == "test.hourly")
    dead = Scheduler(crm, "dead-worker")
    assert dead._claim(job, job.slot(NOON), NOON)  # claimed, then the worker died

    Scheduler(crm, "w2").run_once(NOON + dt.timedelta(minutes=5))
    assert ("hourly", "w2") not in plugin.runs  # the lease (600 s) still holds
    Scheduler(crm, "w2").run_once(NOON + dt.timedelta(minutes=11))

    assert ("hourly", "w2") in plugin.runs


def test_a_failing_job_is_reported_and_the_others_still_run(
    make_crm: Callable[..., crmkit.CRM],
) -> None:
    plugin = CountingPlugin(fail=True)
    crm = make_crm(plugins={"counting": plugin})

    outcomes = {o.job: o for o in Scheduler(crm, "w1").run_once(NOON)}

    assert outcomes["test.hourly"].error == "RuntimeError: the expiry query failed"
    assert outcomes["test.shared"].ran
    (run,) = [r for r in Scheduler(crm, "w1").recent_runs() if r.job == "test.hourly"]
    assert run.status == "failed"


def test_two_jobs_with_one_name_are_refused(make_crm: Callable[..., crmkit.CRM]) -> None:
    class Twice:
        @crmkit.hookimpl
        def crmkit_scheduled_jobs(self, crm: crmkit.CRM) -> list[crmkit.ScheduledJob]:
            return [crmkit.ScheduledJob("pool.release", lambda context: None)]

    crm = make_crm(plugins={"twice": Twice()})
    with pytest.raises(crmkit.ConfigError, match=r"two scheduled jobs are named 'pool\.release'"):
        Scheduler(crm, "w1")


def test_the_worker_once_runs_the_due_jobs(cli_run: Run) -> None:
    ok(cli_run("messages", "send", "webhook", "回访", "--to", "http://127.0.0.1:9/hook"))

    output = ok(cli_run("worker", "--once"))

    assert output.splitlines()[0].startswith("dispatched ")
    # a loopback address is refused before any connection (crmkit.outbound): dead at once
    assert "job messages.deliver: sent 0, retried 0, dead 1" in output
    (logged,) = json.loads(ok(cli_run("messages", "log", "--json")))
    assert logged["status"] == "dead"
    assert "127.0.0.1:9" in logged["last_error"]
