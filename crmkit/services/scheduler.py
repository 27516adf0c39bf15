"""The scheduler: one loop in ``crmkit worker`` for everything due at a time.

Jobs come from the core (message delivery, shared-pool release) and from plugins through
the ``crmkit_scheduled_jobs`` hook. A job runs every ``every_seconds``; time is cut into
slots of that length (slot = seconds since the epoch // ``every_seconds``), and each slot is
one *occurrence*:

* an **exclusive** job (the default) runs once per occurrence across all workers: the worker
  whose insert of ``(job, slot)`` into ``scheduled_runs`` succeeds runs it, the others skip
  it. A run still ``running`` after its lease belonged to a worker that died: the next worker
  to look takes it over (so a job must tolerate running again after a crash: make it
  idempotent). Missed slots during downtime are not replayed: the next pass runs the current
  one (a job that must catch up looks at its own data, as reminders do).
* a **shared** job runs on every worker at every pass; it claims its own rows (``FOR UPDATE
  SKIP LOCKED``), so the workers split its work (message delivery, due reminders).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from attrs import frozen
from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from crmkit.db.base import utcnow
from crmkit.entities.system import ScheduledRun
from crmkit.errors import ConfigError

if TYPE_CHECKING:
    from crmkit.app import CRM

log = logging.getLogger(__name__)


@frozen
class JobContext:
    """What a job run gets: the CRM, this worker's id, the time of the pass and the start
    of the occurrence's slot."""

    crm: CRM
    worker_id: str
    now: dt.datetime
    slot_start: dt.datetime


@frozen
class ScheduledJob:
    """A job the worker runs every ``every_seconds`` (see the module docstring).

    ``run(context)`` returns a short summary for the log and ``crmkit worker --once`` (or
    ``None``); raising marks the run failed (logged; the next occurrence runs as usual).
    ``shared=True`` runs it on every worker at every pass: the job claims its own rows.
    ``lease_seconds`` is how long an exclusive run may take before another worker assumes
    its worker died."""

    name: str
    run: Callable[[JobContext], str | None]
    every_seconds: float = 60.0
    shared: bool = False
    lease_seconds: float = 600.0
    description: str = ""

    def __attrs_post_init__(self) -> None:
        if self.every_seconds <= 0:
            raise ConfigError(f"scheduled job {self.name!r}: every_seconds must be positive")

    def slot(self, now: dt.datetime) -> int:
        """The occurrence ``now`` falls in."""
        return int(now.timestamp() // self.every_seconds)


@frozen
class JobOutcome:
    """What one job did in one pass: ``ran`` (or skipped: not due, another worker has it),
    its summary or error."""

    job: str
    ran: bool
    summary: str = ""
    error: str | None = None
    seconds: float = 0.0


def default_worker_id() -> str:
    """host:pid:random, the worker's name in claims."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Scheduler:
    """Runs the due jobs of one worker. Several schedulers (workers) may share a database.
    The jobs are collected once, when the scheduler is made."""

    def __init__(self, crm: CRM, worker_id: str | None = None) -> None:
        self.crm = crm
        self.worker_id = worker_id or default_worker_id()
        self._jobs = self._collect()

    def jobs(self) -> list[ScheduledJob]:
        """The core's jobs and the enabled plugins'."""
        return list(self._jobs)

    def _collect(self) -> list[ScheduledJob]:
        """The core's jobs and the enabled plugins', by name; a name used twice is an error."""
        from crmkit.services.messages import delivery_job
        from crmkit.services.pool import release_job

        jobs = [delivery_job(), release_job(self.crm)]
        for group in self.crm.host.call("crmkit_scheduled_jobs", crm=self.crm):
            jobs.extend(group)
        names = [job.name for job in jobs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigError(f"two scheduled jobs are named {twice[0]!r}; names must be unique")
        return jobs

    def run_once(self, now: dt.datetime | None = None) -> list[JobOutcome]:
        """One pass: run every job whose current occurrence this worker claims."""
        now = now or utcnow()
        return [self.run_job(job, now) for job in self.jobs()]

    def run_job(self, job: ScheduledJob, now: dt.datetime) -> JobOutcome:
        """Run ``job`` for the occurrence of ``now`` if this worker gets it."""
        slot = job.slot(now)
        slot_start = dt.datetime.fromtimestamp(slot * job.every_seconds, dt.UTC)
        if not job.shared and not self._claim(job, slot, now):
            return JobOutcome(job.name, ran=False)
        started = time.perf_counter()
        context = JobContext(self.crm, self.worker_id, now, slot_start)
        try:
            summary = job.run(context) or ""
        except Exception as error:
            log.exception("scheduled job %s failed", job.name)
            message = f"{type(error).__name__}: {error}"[:2000]
            if not job.shared:
                self._finish(job, slot, "failed", message)
            return JobOutcome(
                job.name, ran=True, error=message, seconds=time.perf_counter() - started
            )
        if not job.shared:
            self._finish(job, slot, "done", summary)
        return JobOutcome(
            job.name, ran=True, summary=summary, seconds=time.perf_counter() - started
        )

    def _session(self) -> Session:
        return Session(self.crm.engine, expire_on_commit=False)

    def _claim(self, job: ScheduledJob, slot: int, now: dt.datetime) -> bool:
        """Insert ``(job, slot)``; if another worker has it, take it over only when that
        worker's lease expired while it was still running."""
        lease = now + dt.timedelta(seconds=job.lease_seconds)
        postgres = self.crm.engine.dialect.name == "postgresql"
        maker = postgresql_insert if postgres else sqlite_insert
        with self._session() as session, session.begin():
            inserted = session.execute(
                maker(ScheduledRun)
                .values(
                    job=job.name,
                    slot=slot,
                    status="running",
                    worker_id=self.worker_id,
                    started_at=now,
                    lease_expires_at=lease,
                    result="",
                )
                .on_conflict_do_nothing(index_elements=["job", "slot"])
                .returning(ScheduledRun.id)
            ).scalar()
            if inserted is not None:
                return True
            taken = session.execute(
                update(ScheduledRun)
                .where(
                    and_(
                        ScheduledRun.job == job.name,
                        ScheduledRun.slot == slot,
                        ScheduledRun.status == "running",
                        ScheduledRun.lease_expires_at < now,
                    )
                )
                .values(worker_id=self.worker_id, started_at=now, lease_expires_at=lease)
            )
            return bool(taken.rowcount)  # type: ignore[attr-defined]

    def _finish(self, job: ScheduledJob, slot: int, status: str, result: str) -> None:
        with self._session() as session, session.begin():
            session.execute(
                update(ScheduledRun)
                .where(
                    ScheduledRun.job == job.name,
                    ScheduledRun.slot == slot,
                    ScheduledRun.worker_id == self.worker_id,
                )
                .values(status=status, finished_at=utcnow(), result=result[:2000])
            )

    def recent_runs(self, limit: int = 50) -> list[ScheduledRun]:
        """The latest exclusive runs, newest first (``crmkit jobs runs``)."""
        with self._session() as session:
            return list(
                session.scalars(select(ScheduledRun).order_by(ScheduledRun.id.desc()).limit(limit))
            )

    def run(self, stop: threading.Event, poll_interval: float = 1.0) -> None:
        """Run passes until ``stop`` is set; wait ``poll_interval`` seconds after a pass in
        which no shared job found work."""
        log.info("scheduler %s started", self.worker_id)
        while not stop.is_set():
            try:
                outcomes = self.run_once()
            except Exception:
                log.exception("scheduler pass failed; retrying after %.1fs", poll_interval)
                stop.wait(poll_interval)
                continue
            for outcome in outcomes:
                if outcome.ran and outcome.summary and not outcome.summary.startswith("idle"):
                    log.info("job %s: %s", outcome.job, outcome.summary)
            busy = any(o.ran and o.summary and not o.summary.startswith("idle") for o in outcomes)
            if not busy:
                stop.wait(poll_interval)
