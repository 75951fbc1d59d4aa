"""A pending request over time: reminder, escalation, expiry, driven by a clock, not sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fakes import Clock, RecordingNotifier
from workflows.db import Database
from workflows.jobs.handlers import job_handlers
from workflows.jobs.queue import Worker
from workflows.migrations import upgrade
from workflows.policy import Policy
from workflows.policy_file import load_policy
from workflows.request import requests
from workflows.request.validation import RequestForm
from workflows.runtime import Runtime

POLICY = """\
approval_channel: C0APPROVALS
approvers:
  default:
    users: [U0BOB]
pending:
  remind_after: 4h
  escalate_after: 24h
  escalate_to:
    users: [U0CAROL]
    groups: [S0BACKUP]
  expire_after: 72h
"""
FORM = RequestForm("ci-bot", "Runs the nightly CI jobs", ["jira"], ["read:jira-work"], "30")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Worker, Clock, Any]]:
    (tmp_path / "policy.yml").write_text(POLICY)
    db = Database(f"sqlite:///{tmp_path / 'sabot.db'}")
    await upgrade(db)
    clock, notifier = Clock(), RecordingNotifier()
    runtime = Runtime(
        db=db,
        policy=Policy(load_policy(tmp_path / "policy.yml")),
        atlassian=None,  # type: ignore[arg-type]  # not reached while pending
        notifier=notifier,
        cloud_id="cloud-1",
        clock=clock,
    )
    worker = Worker(db, job_handlers(runtime), clock)
    yield runtime, worker, clock, notifier
    await db.dispose()


async def test_reminder_then_escalation_then_expiry(world: Any) -> None:
    runtime, worker, clock, notifier = world
    request = await requests.submit(runtime, "U0ALICE", FORM, "C0GENERAL")
    await worker.run_until_idle()
    assert notifier.kinds() == ["approval", "card"]

    clock.advance(hours=3, minutes=59)
    await worker.run_until_idle()
    assert "remind" not in notifier.kinds()
    clock.advance(minutes=2)
    await worker.run_until_idle()
    assert notifier.kinds().count("remind") == 1

    clock.advance(hours=20)
    await worker.run_until_idle()
    assert ("escalate", (["U0CAROL"], ["S0BACKUP"])) in notifier.said

    clock.advance(hours=48)
    await worker.run_until_idle()
    snap = await requests.snapshot(runtime, request.id)
    assert snap.request.status == "expired"
    assert ("update", ("approval", "expired")) in notifier.said
    assert any(kind == "thread" and "expired" in text for kind, text in notifier.said)
    # each timer ran exactly once
    assert notifier.kinds().count("remind") == 1 and notifier.kinds().count("escalate") == 1


async def test_a_decided_request_is_neither_reminded_nor_expired(world: Any) -> None:
    runtime, worker, clock, notifier = world
    request = await requests.submit(runtime, "U0ALICE", FORM, "C0GENERAL")
    await worker.run_until_idle()
    await requests.cancel(runtime, request.id, "U0ALICE")
    clock.advance(days=4)
    await worker.run_until_idle()
    assert "remind" not in notifier.kinds() and "escalate" not in notifier.kinds()
    assert (await requests.snapshot(runtime, request.id)).request.status == "cancelled"
