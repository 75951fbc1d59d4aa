"""The domain in process with a clock that tests move: the runtime and worker over SQLite, the
Atlassian stand-in through httpx's ASGI transport (real HTTP semantics, no socket), and a
notifier that records what would have been said."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from sandbox.atlassian import AtlassianState, create_atlassian_app
from tests.support.fakes import Clock, RecordingNotifier
from workflows.db import Database
from workflows.jobs.handlers import job_handlers
from workflows.jobs.queue import Worker
from workflows.migrations import upgrade
from workflows.policy import Policy
from workflows.providers.atlassian import AtlassianAdmin
from workflows.runtime import Runtime


class World:
    """The runtime, its worker and clock, what was said, and the Atlassian stand-in's state."""

    def __init__(
        self,
        runtime: Runtime,
        worker: Worker,
        clock: Clock,
        notifier: RecordingNotifier,
        atlassian: AtlassianState,
    ) -> None:
        self.runtime, self.worker, self.clock = runtime, worker, clock
        self.notifier, self.atlassian = notifier, atlassian

    async def run(self) -> None:
        await self.worker.run_until_idle()

    def live_tokens(self) -> list[str]:
        return [t.label for t in self.atlassian.tokens if not t.revoked]


@asynccontextmanager
async def lifecycle_world(tmp_path: Path) -> AsyncIterator[World]:
    """A fresh world: its database in `tmp_path`, its clock at a Monday morning."""
    state = AtlassianState()
    state.clock = lambda: clock.now.timestamp()  # the stand-in judges expiry on our clock
    clock, notifier = Clock(), RecordingNotifier()
    atlassian = AtlassianAdmin(
        "http://atlassian.test",
        state.org_id,
        SecretStr(state.api_key),
        transport=httpx.ASGITransport(app=create_atlassian_app(state)),
    )
    db = Database(f"sqlite:///{tmp_path / 'sabot.db'}")
    await upgrade(db)
    runtime = Runtime(
        db=db,
        policy=Policy.from_settings(["U0BOB"], ["U0CAROL"], "C0APPROVALS"),
        atlassian=atlassian,
        notifier=notifier,
        cloud_id="cloud-sandbox-1",
        clock=clock,
    )
    try:
        yield World(runtime, Worker(db, job_handlers(runtime), clock), clock, notifier, state)
    finally:
        await atlassian.aclose()
        await db.dispose()
