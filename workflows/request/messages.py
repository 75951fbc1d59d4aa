"""The messages about a request: posted once, re-rendered from the database on every change.

Every copy (the approvers' channel, approvers' DMs if the policy asks, the requester's card) is
stored with its Slack coordinates, so each one is updated and nobody acts on a stale copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from workflows import audit
from workflows.models import Job, SlackMessage
from workflows.ports import MessageRef, RequestSnapshot
from workflows.request import pending
from workflows.request.message_store import (
    APPROVAL_MESSAGE,
    APPROVER_DM,
    REQUESTER_CARD,
    all_messages,
    message_ref,
)
from workflows.request.requests import snapshot
from workflows.runtime import Runtime
from workflows.states import Event, transition

MAX_REFRESH_ROUNDS = 5


async def announce(runtime: Runtime, job: Job) -> None:
    """Post the request to the approvers and open the requester's card (each once)."""
    assert job.request_id is not None
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        if await transition(session, job.request_id, Event.ANNOUNCE, now):
            audit.record(
                session,
                at=now,
                actor="sabot",
                action="request_announced",
                request_id=job.request_id,
            )
            pending.schedule(session, runtime.policy, job.request_id, now)
    runtime.jobs_queued()
    snap = await snapshot(runtime, job.request_id)
    notifier = runtime.notifier
    await _post_once(runtime, snap, APPROVAL_MESSAGE, notifier.post_approval_request)
    await _post_once(runtime, snap, REQUESTER_CARD, notifier.post_requester_card)
    if runtime.policy.rules.notify_approvers_by_dm:
        await _post_approver_dms(runtime, snap)


async def _post_approver_dms(runtime: Runtime, snap: RequestSnapshot) -> None:
    r = snap.request
    eligible = await runtime.policy.eligibility(r.requester_id, r.products, r.scopes)
    for user in sorted(eligible.approvers):

        async def post(s: RequestSnapshot, user: str = user) -> MessageRef:
            return await runtime.notifier.post_approval_dm(user, s)

        await _post_once(runtime, snap, APPROVER_DM + user, post)


async def _post_once(
    runtime: Runtime,
    snap: RequestSnapshot,
    kind: str,
    post: Callable[[RequestSnapshot], Awaitable[MessageRef]],
) -> None:
    request_id = snap.request.id
    assert request_id is not None
    if await message_ref(runtime, request_id, kind) is not None:
        return
    ref = await post(snap)
    async with runtime.db.transaction() as session:
        session.add(
            SlackMessage(
                request_id=request_id,
                kind=kind,
                channel_id=ref.channel_id,
                ts=ref.ts,
                created_at=runtime.clock(),
            )
        )


async def refresh(runtime: Runtime, job: Job) -> None:
    """Re-render every copy of the request's messages from the database.

    Two refreshes of one request may run at once and finish out of order; so after posting,
    each one reads the request again and posts again if it changed meanwhile. The last post
    is therefore always of the newest state.
    """
    assert job.request_id is not None
    snap = await snapshot(runtime, job.request_id)
    for _ in range(MAX_REFRESH_ROUNDS):
        for kind, ref in await all_messages(runtime, job.request_id):
            await runtime.notifier.update_message(kind, ref, snap)
        latest = await snapshot(runtime, job.request_id)
        if latest.fingerprint() == snap.fingerprint():
            return
        snap = latest


async def note_in_thread(runtime: Runtime, job: Job) -> None:
    ref = await message_ref(runtime, job.request_id, APPROVAL_MESSAGE)
    if ref is not None:
        await runtime.notifier.post_in_thread(ref, str(job.payload["text"]))


async def tell_requester(runtime: Runtime, job: Job) -> None:
    """A message of the requester's own (their card changes silently; this they notice)."""
    assert job.request_id is not None
    request = (await snapshot(runtime, job.request_id)).request
    await runtime.notifier.tell(request.requester_id, str(job.payload["text"]))


async def tell_approvers(runtime: Runtime, job: Job) -> None:
    """A change the approvers must know of (an admin's revoke undone, an owner reassigned):
    a message of its own in their channel."""
    await runtime.notifier.tell_approvers(str(job.payload["text"]))


async def notify_ready(runtime: Runtime, job: Job) -> None:
    assert job.request_id is not None
    await runtime.notifier.tell_account_ready(await snapshot(runtime, job.request_id))


async def break_glass_alert(runtime: Runtime, job: Job) -> None:
    """A self-approval is loud: a message of its own in the approvers' channel."""
    assert job.request_id is not None
    await runtime.notifier.alert_break_glass(await snapshot(runtime, job.request_id))
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="break_glass_announced",
            request_id=job.request_id,
        )
