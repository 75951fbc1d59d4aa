"""Owners who left, and the daily reconcile report: periodic jobs that tell the admins."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlmodel import col

from workflows import audit
from workflows.account.reconcile import reconcile
from workflows.db import rowcount
from workflows.jobs import inbound, queue
from workflows.models import Job, ServiceAccount, ServiceAccountRequest
from workflows.request.requests import snapshot
from workflows.runtime import Runtime
from workflows.states import JobKind, RequestStatus

HELD = (RequestStatus.ACTIVE.value, RequestStatus.REVOKED.value)  # accounts someone must own


async def _admins(runtime: Runtime) -> list[str]:
    return sorted(await runtime.policy.people(runtime.policy.rules.admins))


async def check_owners(runtime: Runtime, job: Job) -> None:
    """Flag the accounts of owners whose Slack account was deactivated, once each."""
    directory = runtime.policy.directory
    if directory is None:
        return
    async with runtime.db.transaction() as session:
        owners = (
            (
                await session.execute(
                    select(col(ServiceAccount.owner_id))
                    .distinct()
                    .join(
                        ServiceAccountRequest,
                        col(ServiceAccountRequest.id) == col(ServiceAccount.request_id),
                    )
                    .where(
                        col(ServiceAccountRequest.status).in_(HELD),
                        col(ServiceAccount.orphaned_at).is_(None),
                    )
                )
            )
            .scalars()
            .all()
        )
    for owner in owners:
        if await directory.is_deactivated(owner):
            await _orphan(runtime, owner)


async def owner_deactivated(runtime: Runtime, *, event_id: str, owner: str) -> bool:
    """Slack said this person's account was deactivated: flag their accounts now rather than at
    the next daily check. False when the event was a repeat delivery."""
    taken = await inbound.take_once(
        runtime.db,
        event_id=event_id,
        kind="user_change",
        now=runtime.clock(),
        job=JobKind.OWNER_LEFT,
        payload={"owner": owner},
    )
    if taken:
        runtime.jobs_queued()
    return taken


async def owner_left(runtime: Runtime, job: Job) -> None:
    await _orphan(runtime, str(job.payload["owner"]))


async def _orphan(runtime: Runtime, owner: str) -> None:
    async with runtime.db.transaction() as session:
        candidates = (
            (
                await session.execute(
                    select(col(ServiceAccount.request_id)).where(
                        col(ServiceAccount.owner_id) == owner,
                        col(ServiceAccount.orphaned_at).is_(None),
                    )
                )
            )
            .scalars()
            .all()
        )
    for request_id in candidates:
        await _flag(runtime, request_id, owner)
    runtime.jobs_queued()


async def _flag(runtime: Runtime, request_id: int, owner: str) -> None:
    """One account, once: the daily check and a user_change event may both get here."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        flagged = await session.execute(
            update(ServiceAccount)
            .where(
                col(ServiceAccount.request_id) == request_id,
                col(ServiceAccount.orphaned_at).is_(None),
            )
            .values(orphaned_at=now)
        )
        if not rowcount(flagged):
            return
        audit.record(
            session, at=now, actor="sabot", action="owner_left", request_id=request_id, owner=owner
        )
        queue.enqueue(session, JobKind.ORPHAN_ALERT, now=now, request_id=request_id)


async def orphan_alert(runtime: Runtime, job: Job) -> None:
    assert job.request_id is not None
    snap = await snapshot(runtime, job.request_id)
    for admin in await _admins(runtime):
        await runtime.notifier.alert_orphan(admin, snap)


async def reconcile_report(runtime: Runtime, job: Job) -> None:
    """The daily comparison with Atlassian; admins hear of drift, nothing is changed."""
    report = await reconcile(runtime.db, runtime.atlassian, apply=False, clock=runtime.clock)
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="reconcile_checked",
            drift=report.drift_found,
            checked=report.checked,
            in_use=report.in_use,  # the quota's count at Atlassian (workflows.request.quota)
        )
    if report.drift_found:
        text = "\n".join(
            ["Daily reconcile found drift (`sabot reconcile` for details):", *report.lines()[:30]]
        )
        for admin in await _admins(runtime):
            await runtime.notifier.tell(admin, text)
