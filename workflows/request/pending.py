"""A request waiting for approvers: reminders, escalation, expiry.

Each is a job scheduled when the request is announced, so it survives restarts and runs once
across replicas; each does nothing if the request was decided meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from workflows import audit
from workflows.jobs import queue
from workflows.models import Job
from workflows.policy import Policy
from workflows.request.message_store import APPROVAL_MESSAGE, REQUESTER_CARD, message_ref
from workflows.request.requests import snapshot
from workflows.runtime import Runtime
from workflows.states import Event, JobKind, RequestStatus, transition


def schedule(session: AsyncSession, policy: Policy, request_id: int, now: datetime) -> None:
    """Queue the reminder, escalation and expiry of a newly pending request."""
    pending = policy.rules.pending
    timers: list[tuple[JobKind, timedelta | None]] = [
        (JobKind.REMIND, pending.remind_after),
        (JobKind.ESCALATE, pending.escalate_after),
        (JobKind.EXPIRE, pending.expire_after),
    ]
    for kind, delay in timers:
        if delay is not None:
            queue.enqueue(session, kind, now=now, request_id=request_id, delay=delay)


async def _still_pending(runtime: Runtime, job: Job) -> bool:
    assert job.request_id is not None
    return (await snapshot(runtime, job.request_id)).request.status == RequestStatus.PENDING


async def remind(runtime: Runtime, job: Job) -> None:
    """Nobody decided yet: say so in the request's thread."""
    if not await _still_pending(runtime, job):
        return
    snap = await snapshot(runtime, job.request_id or 0)
    ref = await message_ref(runtime, snap.request.id, APPROVAL_MESSAGE)
    if ref is not None:
        await runtime.notifier.remind(ref, snap)
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="reminder_sent",
            request_id=job.request_id,
        )


async def escalate(runtime: Runtime, job: Job) -> None:
    """Still nobody: mention the policy's backup people in the thread."""
    backup = runtime.policy.rules.pending.escalate_to
    if backup is None or not await _still_pending(runtime, job):
        return
    snap = await snapshot(runtime, job.request_id or 0)
    ref = await message_ref(runtime, snap.request.id, APPROVAL_MESSAGE)
    if ref is not None:
        await runtime.notifier.escalate(ref, snap, backup.users, backup.groups)
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="request_escalated",
            request_id=job.request_id,
            users=backup.users,
            groups=backup.groups,
        )


async def expire(runtime: Runtime, job: Job) -> None:
    """Waited too long: the request ends, every copy says so, and the requester is told."""
    assert job.request_id is not None
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        if not await transition(session, job.request_id, Event.EXPIRE, now):
            return
        audit.record(
            session, at=now, actor="sabot", action="request_expired", request_id=job.request_id
        )
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=job.request_id)
    runtime.jobs_queued()
    snap = await snapshot(runtime, job.request_id)
    card = await message_ref(runtime, job.request_id, REQUESTER_CARD)
    if card is not None:
        await runtime.notifier.post_in_thread(
            card, f"{snap.request.short_id} expired without a decision. You can ask again."
        )
