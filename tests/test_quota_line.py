"""The quota line of the request form and Home: counted once per change, not once per form.

A burst of `/service-account request` commands each counting the organisation's accounts made
their forms wait for the database while the triggers' three seconds ran. The line that only
informs is now the last count, asked again when this process commits anything or when it is
`UsageCache.MAX_AGE_SECONDS` old (another replica's requests); a submit always counts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.support.fakes import RecordingNotifier
from workflows.db import Database
from workflows.errors import UserError
from workflows.migrations import upgrade
from workflows.policy import Policy
from workflows.request import requests
from workflows.request.quota import UsageCache
from workflows.request.validation import RequestForm
from workflows.runtime import Runtime

LIMIT = 2


def form(name: str) -> RequestForm:
    return RequestForm(name, "Runs the nightly CI jobs", ["jira"], ["read:jira-work"], "30")


class Replica:
    """One process's runtime on the shared database, and the quota counts it sent."""

    def __init__(self, url: str, seconds: list[float]) -> None:
        self.db = Database(url)
        self.runtime = Runtime(
            db=self.db,
            policy=Policy.from_settings(["U0BOB"], [], "C0APPROVALS"),
            atlassian=None,  # type: ignore[arg-type]  # nothing here reaches Atlassian
            notifier=RecordingNotifier(),
            cloud_id="cloud-1",
            service_account_limit=LIMIT,
            quota_lines=UsageCache(clock=lambda: seconds[0]),
        )
        self.counts = 0

        @event.listens_for(self.db.engine.sync_engine, "before_cursor_execute")
        def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            self.counts += "count(*)" in statement and "audit_event" in statement


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica, list[float]]]:
    url = f"sqlite:///{tmp_path / 'sabot.db'}"
    seconds = [1000.0]  # the caches' clock, moved by the test
    here, there = Replica(url, seconds), Replica(url, seconds)
    await upgrade(here.db)
    yield here, there, seconds
    await here.db.dispose()
    await there.db.dispose()


async def test_a_burst_of_forms_counts_once_and_a_write_here_counts_again(
    replicas: tuple[Replica, Replica, list[float]],
) -> None:
    here, _, _ = replicas
    lines = await asyncio.gather(*(here.runtime.quota_usage(fresh=False) for _ in range(30)))
    assert {line.line() for line in lines} == {"0 of the organisation's 2 service accounts in use"}
    assert here.counts == 1  # the thirty forms shared one count
    await here.runtime.quota_usage(fresh=False)
    assert here.counts == 1

    await requests.submit(here.runtime, "U0ALICE", form("ci-bot"), "C0GENERAL")
    after = await here.runtime.quota_usage(fresh=False)
    assert after.line() == (
        "1 of the organisation's 2 service accounts in use, 1 of them requested"
    )


async def test_another_replicas_request_shows_within_the_max_age_and_at_once_on_submit(
    replicas: tuple[Replica, Replica, list[float]],
) -> None:
    here, there, seconds = replicas
    assert (await here.runtime.quota_usage(fresh=False)).used == 0
    await requests.submit(there.runtime, "U0ALICE", form("ci-bot"), "C0GENERAL")
    await requests.submit(there.runtime, "U0ALICE", form("cd-bot"), "C0GENERAL")

    assert (await here.runtime.quota_usage(fresh=False)).used == 0  # the line may lag here
    assert (await here.runtime.quota_usage()).used == 2  # a fresh count does not
    with pytest.raises(UserError, match="the most its Atlassian plan allows"):
        await requests.submit(here.runtime, "U0CAROL", form("third-bot"), "C0GENERAL")

    seconds[0] += UsageCache.MAX_AGE_SECONDS
    assert (await here.runtime.quota_usage(fresh=False)).full
