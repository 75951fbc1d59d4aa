"""A job queue in the database: work that must survive a crash and run once across replicas.

A worker claims a job with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock
serialises claims). The lease is short and renewed every third of it while the job runs, so a
worker that dies (SIGKILL, a lost node) leaves its jobs to another within seconds; a job may
therefore run twice, which is why every handler is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows.clock import Clock
from workflows.db import Database, rowcount
from workflows.models import Job
from workflows.retries import SHIPPED, RetryRule
from workflows.states import JobKind, JobStatus

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]
# Called once when a job has failed for good, to leave what it was doing in a clear state.
GiveUp = Callable[[Job, str], Awaitable[None]]


class RetryLater(Exception):
    """A handler asks to be run again after `delay` seconds (e.g. waiting on a rate limit)."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay


def enqueue(
    session: AsyncSession,
    kind: JobKind,
    *,
    now: datetime,
    request_id: int | None = None,
    payload: dict[str, Any] | None = None,
    delay: timedelta = timedelta(0),
) -> None:
    """Add a job in the caller's transaction, so it exists only if the caller's change commits."""
    session.add(
        Job(
            kind=kind,
            request_id=request_id,
            payload=payload or {},
            run_after=now + delay,
            created_at=now,
        )
    )


async def claim(db: Database, worker_id: str, now: datetime, lease: timedelta) -> Job | None:
    """Take the oldest due job (or one whose worker's lease ran out), or None."""
    due = or_(
        and_(col(Job.status) == JobStatus.QUEUED, col(Job.run_after) <= now),
        and_(col(Job.status) == JobStatus.RUNNING, col(Job.locked_until) < now),
    )
    query = select(Job).where(due).order_by(col(Job.run_after), col(Job.id)).limit(1)
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    async with db.transaction() as session:
        job = (await session.execute(query)).scalar_one_or_none()
        if job is None:
            return None
        # A token per claim, not per worker: when a lease ran out and the job was taken again,
        # the first run's late finish must not overwrite the second run's.
        job.status, job.locked_by = JobStatus.RUNNING, f"{worker_id}/{uuid.uuid4().hex[:8]}"
        job.locked_until, job.attempts = now + lease, job.attempts + 1
    return job


async def _finish(db: Database, job: Job, **values: Any) -> bool:
    """Update the job if this run still holds it; False if its lease was lost."""
    async with db.transaction() as session:
        result = await session.execute(
            update(Job)
            .where(col(Job.id) == job.id, col(Job.locked_by) == job.locked_by)
            .values(**values)
        )
    return rowcount(result) > 0


def kind_of(job: Job) -> JobKind | None:
    """The job's kind; None for one this version does not know (queued by a newer release
    during a rolling deploy: it is retried until a replica that knows it takes it)."""
    try:
        return JobKind(job.kind)
    except ValueError:
        return None


def require_every_kind(handlers: Mapping[JobKind, Handler]) -> None:
    """Refuse to start a worker that would leave a kind of job to fail until it gives up."""
    missing = [kind.value for kind in JobKind if kind not in handlers]
    if missing:
        raise LookupError(f"no handler for job kind(s): {', '.join(missing)}")


class Worker:
    """Runs jobs from the database until stopped, a few at a time."""

    def __init__(
        self,
        db: Database,
        handlers: Mapping[JobKind, Handler],
        clock: Clock,
        *,
        concurrency: int = 4,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(seconds=15),
        retry: RetryRule = SHIPPED.jobs,
        give_up: Mapping[JobKind, GiveUp] | None = None,
        periodic: Callable[[datetime], Awaitable[object]] | None = None,
        periodic_every: timedelta | None = None,
        shutdown_grace: float = 20.0,
    ) -> None:
        require_every_kind(handlers)
        self.db, self.handlers, self.clock = db, handlers, clock
        self.give_up = give_up or {}
        # Called about once a poll interval (e.g. to queue daily tasks that are due).
        self.periodic = periodic
        # Daily tasks need not be looked at on every poll: that would be several
        # transactions a second for work due once a day.
        self.periodic_every = periodic_every or timedelta(seconds=poll_interval)
        self._last_periodic: datetime | None = None
        self.poll_interval, self.lease, self.retry = poll_interval, lease, retry
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._running: dict[asyncio.Task[None], Job] = {}
        # On stop, jobs in hand get this long to finish; the rest are handed back.
        self.shutdown_grace = shutdown_grace

    def wake(self) -> None:
        """New work was queued in this process: look now instead of at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until `stop` is set, then let the running ones finish."""
        while not stop.is_set():
            await self._slots.acquire()
            job = await self._claim_quietly()
            if job is None:
                self._slots.release()
                await self._sleep(stop)
                continue
            task = asyncio.create_task(self._run_in_slot(job))
            self._running[task] = job
            task.add_done_callback(self._running.pop)
        await self._wind_down()

    async def _wind_down(self) -> None:
        """Stopped (SIGTERM): take nothing new; let the jobs in hand finish within the grace
        period, then cancel the rest and release them, so another worker takes them at once
        instead of after the lease. Every step is idempotent, so a cut-off step is re-run."""
        if not self._running:
            return
        _, unfinished = await asyncio.wait(list(self._running), timeout=self.shutdown_grace)
        held = [self._running[task] for task in unfinished]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for job in held:
            log.warning("job %s (%s) not finished at shutdown: released", job.id, job.kind)
            await _finish(self.db, job, status=JobStatus.QUEUED, locked_by=None, locked_until=None)

    async def run_until_idle(self) -> None:
        """Run due jobs one by one until none is left (CLI and tests)."""
        while (job := await claim(self.db, self.worker_id, self.clock(), self.lease)) is not None:
            await self._execute(job)

    async def _tick(self) -> None:
        now = self.clock()
        due = self._last_periodic is None or now - self._last_periodic >= self.periodic_every
        if self.periodic is None or not due:
            return
        self._last_periodic = now
        try:
            await self.periodic(now)
        except Exception:
            log.exception("periodic work failed; trying again at the next poll")

    async def _claim_quietly(self) -> Job | None:
        await self._tick()
        try:
            return await claim(self.db, self.worker_id, self.clock(), self.lease)
        except Exception:
            log.exception("could not claim a job; trying again shortly")
            return None

    async def _sleep(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self._wake.clear()

    async def _run_in_slot(self, job: Job) -> None:
        try:
            await self._execute(job)
        finally:
            self._slots.release()
            self.wake()  # a slot is free: look for more work at once

    async def _execute(self, job: Job) -> None:
        heartbeat = asyncio.create_task(self._keep_lease(job))
        try:
            await self._run_handler(job)
        finally:
            heartbeat.cancel()

    async def _keep_lease(self, job: Job) -> None:
        """Renew the lease while the handler runs, so a slow job is not taken a second time."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                held = await _finish(self.db, job, locked_until=self.clock() + self.lease)
            except Exception:
                log.warning("could not renew the lease of job %s", job.id, exc_info=True)
                continue
            if not held:
                log.error("job %s (%s) lost its lease to another worker", job.id, job.kind)
                return

    async def _run_handler(self, job: Job) -> None:
        kind = kind_of(job)
        handler = None if kind is None else self.handlers.get(kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await handler(job)
        except RetryLater as wait:
            await self._again(job, wait.delay, str(wait))
        except Exception as error:
            await self._after_error(job, error)
        else:
            # The payload may hold a response_url: useless once done, so not kept.
            await _finish(self.db, job, status=JobStatus.DONE, payload={}, locked_until=None)

    async def _after_error(self, job: Job, error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"[:2000]
        if job.attempts >= self.retry.attempts:
            log.error(
                "job %s (%s) gave up after %d attempts: %s", job.id, job.kind, job.attempts, reason
            )
            await _finish(self.db, job, status=JobStatus.FAILED, payload={}, last_error=reason)
            kind = kind_of(job)
            give_up = None if kind is None else self.give_up.get(kind)
            if give_up is not None:
                await give_up(job, reason)
            return
        log.warning(
            "job %s (%s) attempt %d failed: %s",
            job.id,
            job.kind,
            job.attempts,
            reason,
            exc_info=not isinstance(error, LookupError),
        )
        await self._again(job, self.retry.wait(job.attempts), reason)

    async def _again(self, job: Job, delay: float, reason: str) -> None:
        await _finish(
            self.db,
            job,
            status=JobStatus.QUEUED,
            locked_by=None,
            locked_until=None,
            last_error=reason[:2000],
            run_after=self.clock() + timedelta(seconds=delay),
        )
