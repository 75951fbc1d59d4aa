"""Prometheus metrics: what happened in this process, and what the database says now.

Two kinds, and the difference matters with several replicas and workers:

- Per process (counters and histograms, from the moment the process started): HTTP requests to
  /slack/events by outcome and their latency, Slack and Atlassian API calls by status, job runs,
  and provisioning step durations and failures. Each process counts what it did itself, so sum
  them across pods. A job (provisioning, Reveal) is counted by the process that ran it: the
  in-process worker of `sabot serve`, or `sabot worker`.
- From the database at scrape time (the same value from every replica, so take `max`, not
  `sum`): job queue depth and the age of the oldest due job, requests by status, tokens expiring
  within 14 days, and the approval latency histogram. Approval latency is computed from the
  database (request created -> the decision that approved it) rather than observed at the click:
  approvals happen in whichever replica took the click, a histogram built from the rows is the
  same everywhere, survives restarts, and counts each approved request exactly once.

Instrumentation stays in `bot/`, through hooks each part offers and `bot.process.assembly.assemble`
plugs in: an aiohttp middleware on the one HTTP session of every Slack client (`SlackCallMeter`),
httpx event hooks on the Atlassian client (`atlassian_hooks`), the saga's `StepObserver` port
(`MeteredSteps`) and the job handlers the worker is built with (`timed_job`). `workflows/` knows
nothing of Prometheus.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any
from wsgiref.simple_server import WSGIServer

import aiohttp
import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString
from sqlalchemy import and_, case, func, select
from sqlmodel import col

from bot.process import logs
from bot.slack.slack_api import SlackRateLimited, api_method
from workflows.account.accounts import live_token
from workflows.db import Database
from workflows.jobs.queue import Handler, RetryLater
from workflows.models import ApiToken, Decision, Job, ServiceAccountRequest
from workflows.states import JobKind, JobStatus, RequestStatus, Step, Verdict

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
EXPIRY_WINDOW = timedelta(days=14)
DATABASE_TIMEOUT_SECONDS = 5.0
# Slack waits 3 s for an acknowledgement; most answers take a few milliseconds.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# From a minute to a week: how long people take to approve.
HOUR, DAY = 3600.0, 86400.0
APPROVAL_BUCKETS = (60.0, 300.0, 900.0, 1800.0, HOUR, 4 * HOUR, 8 * HOUR, DAY, 3 * DAY, 7 * DAY)
APPROVING_VERDICTS = (Verdict.APPROVE, Verdict.BREAK_GLASS)


class Metrics:
    """Every metric of one process, in its own registry."""

    def __init__(self, *, database: bool = True) -> None:
        """`database=False` for a process that serves no scrape-time database gauges (a worker:
        the HTTP replicas report those)."""
        disable_created_metrics()  # a `_created` twin for every series, which nothing reads
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        r = self.registry
        self.slack_requests = Counter(
            "sabot_slack_requests",
            "HTTP requests to /slack/events, by outcome (status code class)",
            ["outcome"],
            registry=r,
        )
        self.slack_request_seconds = Histogram(
            "sabot_slack_request_seconds",
            "Time to answer a request to /slack/events (Slack's acknowledgement)",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.slack_api_calls = Counter(
            "sabot_slack_api_calls",
            "Slack Web API requests (each HTTP attempt: a 429 and its retry are two), by "
            "method, HTTP status and Slack error ('' when ok); status 'error': no answer "
            "(error 'no_answer') or held back by the process's rate-limit gate ('ratelimited')",
            ["method", "status", "error"],
            registry=r,
        )
        self.slack_api_seconds = Histogram(
            "sabot_slack_api_call_seconds",
            "Slack Web API request duration (one HTTP attempt, a wait at the rate-limit gate "
            "included)",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.atlassian_sent = Counter(
            "sabot_atlassian_requests_sent",
            "HTTP requests sent to the Atlassian admin API, by route; minus "
            "sabot_atlassian_requests (answered): those that got no answer",
            ["method", "route"],
            registry=r,
        )
        self.atlassian_calls = Counter(
            "sabot_atlassian_requests",
            "HTTP requests to the Atlassian admin API answered, by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.atlassian_seconds = Histogram(
            "sabot_atlassian_request_seconds",
            "Atlassian admin API request duration until the answer's headers (one HTTP attempt)",
            ["method", "route"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.step_seconds = Histogram(
            "sabot_provisioning_step_seconds",
            "Provisioning saga steps (create_account, grant_access, mint_token, deliver_token), "
            "by outcome; outcome=failed counts the failures",
            ["step", "outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.job_seconds = Histogram(
            "sabot_job_run_seconds",
            "Job runs in this process, by kind and outcome (done, retry, error)",
            ["kind", "outcome"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.database = DatabaseCollector()
        if database:
            r.register(self.database)
        self._outcomes = {
            cls: self.slack_requests.labels(cls) for cls in ("2xx", "3xx", "4xx", "5xx")
        }

    def observe_slack_request(self, status: int, seconds: float) -> None:
        """One request to /slack/events answered with `status` after `seconds`."""
        outcome = self._outcomes.get(f"{status // 100}xx")
        if outcome is None:
            outcome = self._outcomes["5xx"]
        outcome.inc()
        self.slack_request_seconds.observe(seconds)

    async def exposition(self, db: Database, now: datetime, *, reachable: bool = True) -> bytes:
        """The text a scrape gets: read the database (unless the caller found it unreachable),
        then render every metric."""
        if reachable:
            await self.database.refresh(db, now)
        else:
            self.database.snapshot = None
        return generate_latest(self.registry)


# -- read from the database at scrape time ---------------------------------------------------


@dataclass
class DatabaseSnapshot:
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    due_jobs: int = 0
    oldest_due_age: float = 0.0
    requests_by_status: dict[str, int] = field(default_factory=dict)
    tokens_expiring: int = 0
    approvals: int = 0
    approval_seconds_sum: float = 0.0
    approval_buckets: list[int] = field(default_factory=list)  # cumulative, per APPROVAL_BUCKETS


def _seconds_between(db: Database, start: Any, end: Any) -> Any:
    if db.is_sqlite:
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return func.extract("epoch", end - start)


async def read_database(db: Database, now: datetime) -> DatabaseSnapshot:
    """Everything the gauges show, read in one connection."""
    snapshot = DatabaseSnapshot()
    r, d = ServiceAccountRequest, Decision
    waited = _seconds_between(db, col(r.created_at), col(d.created_at))
    approvals = (
        select(
            func.count(),
            func.coalesce(func.sum(waited), 0.0),
            *(
                func.coalesce(func.sum(case((waited <= le, 1), else_=0)), 0)
                for le in APPROVAL_BUCKETS
            ),
        )
        .select_from(r)
        .join(d, and_(col(d.request_id) == col(r.id), col(d.approver_id) == col(r.decided_by)))
        .where(col(d.verdict).in_(APPROVING_VERDICTS))
    )
    due = select(func.count(), func.min(col(Job.run_after))).where(
        col(Job.status) == JobStatus.QUEUED, col(Job.run_after) <= now
    )
    expiring = select(func.count()).where(
        live_token(),
        col(ApiToken.revoke_after).is_(None),
        col(ApiToken.expires_at) > now,
        col(ApiToken.expires_at) <= now + EXPIRY_WINDOW,
    )
    async with db.reading() as conn:  # one snapshot, and no write lock on SQLite
        for status, count in await conn.execute(
            select(col(Job.status), func.count()).group_by(col(Job.status))
        ):
            snapshot.jobs_by_status[str(status)] = int(count)
        count, oldest = (await conn.execute(due)).one()
        snapshot.due_jobs = int(count)
        snapshot.oldest_due_age = max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
        for status, count in await conn.execute(
            select(col(r.status), func.count()).group_by(col(r.status))
        ):
            snapshot.requests_by_status[str(status)] = int(count)
        snapshot.tokens_expiring = int((await conn.execute(expiring)).scalar_one())
        total, seconds, *buckets = (await conn.execute(approvals)).one()
        snapshot.approvals, snapshot.approval_seconds_sum = int(total), float(seconds)
        snapshot.approval_buckets = [int(b) for b in buckets]
    return snapshot


class DatabaseCollector:
    """Gauges (and the approval histogram) from the last database read; `up` 0 if it failed."""

    def __init__(self) -> None:
        self.snapshot: DatabaseSnapshot | None = None
        self._failing = False

    async def refresh(self, db: Database, now: datetime) -> None:
        try:
            self.snapshot = await asyncio.wait_for(
                read_database(db, now), timeout=DATABASE_TIMEOUT_SECONDS
            )
        except Exception as error:
            self.snapshot = None
            if not self._failing:  # once per outage, not once per scrape
                log.warning("metrics: could not read the database (%s)", type(error).__name__)
            self._failing = True
        else:
            self._failing = False

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        yield GaugeMetricFamily(
            "sabot_database_up",
            "1 if the database answered the readiness check and the reads at this scrape",
            s is not None,
        )
        if s is None:
            return
        queued = s.jobs_by_status.get(JobStatus.QUEUED, 0)
        depth = GaugeMetricFamily(
            "sabot_job_queue_depth",
            "Jobs waiting (due: may run now; scheduled: later) or running",
            labels=["state"],
        )
        depth.add_metric(["due"], s.due_jobs)
        depth.add_metric(["scheduled"], queued - s.due_jobs)
        depth.add_metric(["running"], s.jobs_by_status.get(JobStatus.RUNNING, 0))
        yield depth
        yield GaugeMetricFamily(
            "sabot_job_oldest_due_age_seconds",
            "How long the oldest due job has waited past its run_after (0 if none)",
            s.oldest_due_age,
        )
        failed = s.jobs_by_status.get(JobStatus.FAILED, 0)
        yield GaugeMetricFamily("sabot_jobs_failed", "Jobs that gave up for good", failed)
        requests = GaugeMetricFamily(
            "sabot_requests", "Service-account requests, by status", labels=["status"]
        )
        for status in RequestStatus:
            requests.add_metric([status.value], s.requests_by_status.get(status.value, 0))
        yield requests
        yield GaugeMetricFamily(
            "sabot_tokens_expiring_soon",
            "Live API tokens (delivered, or made by hand and seen at Atlassian; not rotated out) "
            "that expire within 14 days",
            s.tokens_expiring,
        )
        buckets = [
            (floatToGoString(b), float(n))
            for b, n in zip(APPROVAL_BUCKETS, s.approval_buckets, strict=True)
        ]
        yield HistogramMetricFamily(
            "sabot_approval_latency_seconds",
            "Time from a request's creation to the decision that approved it (from the database)",
            buckets=[*buckets, ("+Inf", float(s.approvals))],
            sum_value=s.approval_seconds_sum,
        )


# -- instrumentation -------------------------------------------------------------------------

# A path segment that names a thing, not a resource kind: replaced so routes stay few.
_WORD = re.compile(r"[a-z][a-z-]*|v\d+")
_ID_AFTER = frozenset({"orgs", "users", "service-accounts", "api-tokens", "sites"})


def atlassian_route(path: str) -> str:
    """`/users/712020:ab/manage/api-tokens/t-1` -> `/users/{id}/manage/api-tokens/{id}`."""
    parts: list[str] = []
    for segment in path.strip("/").split("/"):
        after_id_word = bool(parts) and parts[-1] in _ID_AFTER and segment != "invite"
        parts.append("{id}" if after_id_word or not _WORD.fullmatch(segment) else segment)
    return "/" + "/".join(parts)


class SlackCallMeter:
    """Counts and times each Slack Web API request: an aiohttp client middleware on the one
    HTTP session every Slack client of the process shares (Bolt's per-request ones too)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        method = api_method(request.url.path)
        if method is None:  # a response_url, not the Web API
            return await handler(request)
        start, status, error = perf_counter(), "error", "no_answer"
        try:
            response = await handler(request)
            status, error = str(response.status), await _slack_error(response)
            return response
        except SlackRateLimited:
            error = "ratelimited"  # never sent: Slack's last 429 for this method still holds
            raise
        finally:
            self.metrics.slack_api_calls.labels(method, status, error).inc()
            self.metrics.slack_api_seconds.labels(method).observe(perf_counter() - start)


async def _slack_error(response: aiohttp.ClientResponse) -> str:
    """Slack's `error` ('' when ok), as slack_sdk reads it. aiohttp keeps the body it reads
    here for slack_sdk's own read."""
    try:
        body = await response.json(content_type=None)
    except ValueError:  # not JSON (slack_sdk reads a few methods' files as bytes)
        body = None
    if not isinstance(body, dict):
        return "" if response.status == 200 else "unknown"
    if response.status == 200 and body.get("ok"):
        return ""
    return str(body.get("error") or "unknown")


_SENT_AT = "sabot_sent_at"  # a request extension: when the request hook saw it go


def atlassian_hooks(metrics: Metrics) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """httpx event hooks that count and time each HTTP request to Atlassian. httpx calls no
    hook when a request gets no answer: that is the sent count minus the answered one."""

    async def sent(request: httpx.Request) -> None:
        request.extensions[_SENT_AT] = perf_counter()
        metrics.atlassian_sent.labels(request.method, atlassian_route(request.url.path)).inc()

    async def answered(response: httpx.Response) -> None:
        request = response.request
        route = atlassian_route(request.url.path)
        metrics.atlassian_calls.labels(request.method, route, str(response.status_code)).inc()
        seconds = perf_counter() - request.extensions[_SENT_AT]
        metrics.atlassian_seconds.labels(request.method, route).observe(seconds)

    return {"request": [sent], "response": [answered]}


class MeteredSteps:
    """The saga's steps timed by outcome, their log lines carrying `step=` (a StepObserver)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @asynccontextmanager
    async def step(self, name: Step) -> AsyncIterator[None]:
        start, outcome = perf_counter(), "failed"
        with logs.bound(step=name):
            try:
                yield
                outcome = "ok"
            finally:
                self.metrics.step_seconds.labels(name, outcome).observe(perf_counter() - start)


def timed_job(metrics: Metrics, kind: JobKind, handler: Handler) -> Handler:
    """`handler`, timed by outcome, its log lines carrying the request, the step and the job."""

    async def run(job: Job) -> None:
        request = f"SA-{job.request_id}" if job.request_id is not None else None
        start, outcome = perf_counter(), "error"
        with logs.bound(request_id=request, step=kind, job_id=job.id):
            try:
                await handler(job)
                outcome = "done"
            except RetryLater:
                outcome = "retry"
                raise
            finally:
                metrics.job_seconds.labels(kind, outcome).observe(perf_counter() - start)

    return run


def serve_worker_metrics(metrics: Metrics, port: int, host: str = "0.0.0.0") -> WSGIServer:
    """For `sabot worker`, which has no HTTP server: serve its per-process metrics at
    http://host:port/ from a thread. Returns the server (`shutdown()` stops it)."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
