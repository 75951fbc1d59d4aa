"""Putting the parts together: database, Atlassian client, Slack client, worker."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from slack_sdk.web.async_client import AsyncWebClient

from bot.process.background import Background
from bot.process.metrics import MeteredSteps, Metrics, SlackCallMeter, atlassian_hooks, timed_job
from bot.process.settings import POLICY_NEEDS, Settings, SettingsError
from bot.slack.directory import SlackDirectory
from bot.slack.notifier import SlackNotifier
from bot.slack.services import Services
from bot.slack.slack_api import slack_session, web_client
from workflows.account import idle
from workflows.db import Database
from workflows.jobs import inbound
from workflows.jobs.handlers import give_up_handlers, job_handlers
from workflows.jobs.queue import Handler, Worker
from workflows.jobs.recurring import queue_due
from workflows.migrations import upgrade
from workflows.policy import Policy, PolicyFile
from workflows.ports import StepObserver, Unobserved
from workflows.providers.atlassian import AtlassianAdmin, EventHooks
from workflows.runtime import Runtime
from workflows.states import JobKind

log = logging.getLogger(__name__)

SLACK_TIMEOUT_SECONDS = 15  # as bot.slack.slack_api.web_client sets it


def atlassian_client(settings: Settings, event_hooks: EventHooks | None = None) -> AtlassianAdmin:
    assert settings.atlassian_org_id and settings.atlassian_api_key
    return AtlassianAdmin(
        settings.atlassian_api_url,
        settings.atlassian_org_id,
        settings.atlassian_api_key,
        retries=settings.failure_policy(),
        timeout=settings.atlassian_timeout_seconds,
        event_hooks=event_hooks,
    )


async def site_id(settings: Settings, atlassian: AtlassianAdmin) -> str:
    """The configured cloud id, or the organisation's only site; several sites need a choice."""
    if settings.atlassian_site_id:
        return settings.atlassian_site_id
    sites = await atlassian.find_site_ids()
    if len(sites) == 1:
        return sites[0]
    if not sites:
        raise SettingsError(
            "setting ATLASSIAN_SITE_ID: the organisation has no Jira or "
            "Confluence site; set it to the site's cloud id"
        )
    raise SettingsError(
        f"setting ATLASSIAN_SITE_ID: the organisation has {len(sites)} sites "
        f"({', '.join(sites)}); set it to the one to use"
    )


@dataclass
class Assembly:
    settings: Settings
    db: Database
    client: AsyncWebClient
    runtime: Runtime
    worker: Worker
    services: Services
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    worker_task: asyncio.Task[None] | None = None

    def start_worker(self) -> None:
        self.runtime.jobs_queued = self.worker.wake
        self.worker_task = asyncio.create_task(self.worker.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await self.services.background.drain()
        if self.worker_task is not None:
            await self.worker_task
        await self.runtime.atlassian.aclose()
        if self.client.session is not None:
            await self.client.session.close()
        await self.db.dispose()
        log.info("sabot stopped cleanly")


def settle_heap() -> None:
    """Once started: put everything built so far (modules, the app, its listeners, about 180,000
    objects) out of the cyclic garbage collector's reach, and turn the collector back on (the
    `sabot` command starts with it off: bot/__main__.py). Those objects live as long as the
    process, yet a full collection walked them all each time: about 60 ms during which the event
    loop answers nothing."""
    gc.freeze()
    gc.enable()


def recurring_tasks(settings: Settings) -> dict[JobKind, timedelta]:
    return {
        JobKind.CHECK_OWNERS: timedelta(seconds=settings.owner_check_interval_seconds),
        JobKind.RECONCILE_REPORT: timedelta(seconds=settings.reconcile_interval_seconds),
        JobKind.FORGET_OLD_EVENTS: inbound.REMEMBERED_FOR,
        JobKind.IDLE_CREDENTIALS: idle.CHECK_EVERY,
    }


def policy_rules(settings: Settings) -> PolicyFile:
    """The policy file named by SABOT_POLICY, or the simplest policy the settings form."""
    if settings.sabot_policy:
        from workflows.policy_file import load_policy  # PyYAML: only with a policy file

        return load_policy(settings.sabot_policy)
    settings.require(*POLICY_NEEDS)
    assert settings.sabot_approval_channel
    return Policy.from_settings(
        settings.sabot_approvers, settings.sabot_admins, settings.sabot_approval_channel
    ).rules


def _jobs(runtime: Runtime, metrics: Metrics | None) -> dict[JobKind, Handler]:
    handlers = job_handlers(runtime)
    if metrics is None:
        return handlers
    return {kind: timed_job(metrics, kind, handler) for kind, handler in handlers.items()}


async def _prepared(
    settings: Settings, db: Database, atlassian: AtlassianAdmin, *, migrate: bool
) -> str:
    """The schema brought up to date, and the site's cloud id."""
    # The site lookup (a round trip to Atlassian) goes on while the migrations run.
    lookup = asyncio.ensure_future(site_id(settings, atlassian))
    try:
        if migrate:
            await upgrade(db)
        return await lookup
    finally:
        if not lookup.done():
            lookup.cancel()  # the migrations failed, or start-up was stopped
        elif not lookup.cancelled():
            lookup.exception()  # looked at, so a second failure is not reported as lost


async def assemble(
    settings: Settings,
    *,
    migrate: bool = True,
    metrics: Metrics | None = None,
    stop: asyncio.Event | None = None,
) -> Assembly:
    """Every part of the process; with `metrics`, each outside call, saga step and job is
    counted and timed there, and logged with its context. `stop`: the event that stops it
    (set by the signal handlers the caller installed before starting)."""
    rules = policy_rules(settings)
    db = Database(settings.database_url.get_secret_value())
    atlassian = atlassian_client(settings, None if metrics is None else atlassian_hooks(metrics))
    try:
        cloud_id = await _prepared(settings, db, atlassian, migrate=migrate)
    except BaseException:  # a failure, or start-up stopped by a signal: nothing left open
        await atlassian.aclose()
        await db.dispose()
        raise
    # One connection pool for every Web API call of this process, Bolt's per-request clients
    # included: without a session slack_sdk opens a new one, and a new connection (a TLS
    # handshake with slack.com), for every call.
    # The `respond()` of every listener uses it too (bot.slack.app.PooledRespond).
    meter = () if metrics is None else (SlackCallMeter(metrics),)
    slack_http = slack_session(settings, timeout=SLACK_TIMEOUT_SECONDS, middlewares=meter)
    client = web_client(settings, session=slack_http)
    policy = Policy(rules, SlackDirectory(client))
    steps: StepObserver = Unobserved() if metrics is None else MeteredSteps(metrics)
    runtime = Runtime(
        db=db,
        policy=policy,
        atlassian=atlassian,
        notifier=SlackNotifier(client, policy.approval_channel),
        cloud_id=cloud_id,
        service_account_limit=settings.atlassian_service_account_limit,
        retries=settings.failure_policy(),
        steps=steps,
    )
    tasks = recurring_tasks(settings)
    worker = Worker(
        db,
        _jobs(runtime, metrics),
        runtime.clock,
        poll_interval=settings.worker_poll_seconds,
        lease=timedelta(seconds=settings.job_lease_seconds),
        retry=runtime.retries.jobs,
        give_up=give_up_handlers(runtime),
        shutdown_grace=settings.worker_shutdown_grace_seconds,
        periodic=partial(queue_due, db, tasks=tasks),
        # a tenth of the shortest interval, between the poll interval and a minute
        periodic_every=max(
            min(min(tasks.values()) / 10, timedelta(minutes=1)),
            timedelta(seconds=settings.worker_poll_seconds),
        ),
    )
    services = Services(settings=settings, runtime=runtime, background=Background())
    return Assembly(settings, db, client, runtime, worker, services, stop or asyncio.Event())
