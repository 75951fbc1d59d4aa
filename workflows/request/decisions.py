"""Approvers deciding: approve, deny, and break-glass self-approval."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows import audit
from workflows.errors import Conflict, NotAllowed, UserError
from workflows.jobs import queue
from workflows.models import Decision, ServiceAccountRequest
from workflows.request.requests import load_request, refuse
from workflows.runtime import Runtime
from workflows.states import Event, JobKind, RequestStatus, Verdict, transition

S = RequestStatus
# How a decided request is described to someone who clicks on it late.
OUTCOME_WORDS = {
    S.APPROVED: "approved",
    S.PROVISIONING: "approved",
    S.ACTIVE: "approved",
    S.FAILED: "approved",
    S.REVOKED: "approved",
    S.DELETED: "approved",
    S.DENIED: "denied",
    S.CANCELLED: "cancelled",
    S.EXPIRED: "expired",
    S.SUBMITTED: "not yet announced",
}
# What a late click is told is under way, so nobody clicks again to hurry it.
IN_PROGRESS = {
    S.APPROVED: " Its account is being made now.",
    S.PROVISIONING: " Its account is being made now.",
}


async def ensure_may_decide(
    runtime: Runtime, request_id: int, user_id: str, verdict: Verdict
) -> tuple[ServiceAccountRequest, frozenset[str]]:
    """The request and who may approve it now, if `user_id` is one of them; else an audited
    NotAllowed.

    Group membership is looked up afresh: someone removed from a group since the request was
    made cannot approve it, and their earlier approval stops counting.
    """
    async with runtime.db.reading() as session:
        request = await load_request(session, request_id)
    if user_id == request.requester_id:
        why = "you cannot decide on your own request"
        if runtime.policy.rules.break_glass.enabled:
            why += " (in an emergency, use Break glass on your request's card)"
    else:
        allowed = await runtime.policy.eligibility(
            request.requester_id, request.products, request.scopes, fresh=True
        )
        if user_id in allowed.approvers:
            return request, allowed.approvers
        why = "you are not an approver for this request"
    await refuse(runtime, request, user_id, "decision_refused", why, verdict=verdict)
    raise NotAllowed(f"Sorry, {why}.")


async def decide(
    runtime: Runtime, request_id: int, approver_id: str, verdict: Verdict, reason: str | None = None
) -> RequestStatus:
    """Record one approver's verdict; return the request's status afterwards.

    Of any number of concurrent clicks, the request moves on once: the status change is a
    conditional update, the request row is locked while verdicts are counted, and decision rows
    are unique per approver.
    """
    request, eligible = await ensure_may_decide(runtime, request_id, approver_id, verdict)
    try:
        async with runtime.db.transaction() as session:
            status = await _record(
                session, request, approver_id, verdict, reason, runtime.clock(), eligible
            )
    except IntegrityError:
        raise Conflict("You have already decided on this request.") from None
    runtime.jobs_queued()
    return status


async def break_glass(runtime: Runtime, request_id: int, user_id: str, reason: str) -> None:
    """Emergency self-approval: only where the policy allows it, always with a reason, loudly."""
    async with runtime.db.transaction() as session:
        request = await load_request(session, request_id)
    if not runtime.policy.rules.break_glass.enabled:
        raise NotAllowed("Break-glass approval is not enabled by the policy.")
    if user_id != request.requester_id:
        await refuse(
            runtime,
            request,
            user_id,
            "decision_refused",
            "break-glass by another",
            verdict=Verdict.BREAK_GLASS,
        )
        raise NotAllowed("Only the requester can break glass on their own request.")
    if not reason.strip():
        raise UserError("Say why this cannot wait for an approver.")
    async with runtime.db.transaction() as session:
        await _record(
            session,
            request,
            user_id,
            Verdict.BREAK_GLASS,
            reason.strip(),
            runtime.clock(),
            frozenset(),
        )
    runtime.jobs_queued()


async def _record(
    session: AsyncSession,
    request: ServiceAccountRequest,
    approver_id: str,
    verdict: Verdict,
    reason: str | None,
    now: datetime,
    eligible: frozenset[str],
) -> RequestStatus:
    assert request.id is not None
    await _lock_pending(session, request.id)
    session.add(
        Decision(
            request_id=request.id,
            approver_id=approver_id,
            verdict=verdict,
            reason=reason,
            created_at=now,
        )
    )
    await session.flush()  # the unique (request, approver) row: a double click stops here
    if verdict == Verdict.DENY:
        await transition(
            session, request.id, Event.DENY, now, decided_by=approver_id, status_reason=reason
        )
        outcome = RequestStatus.DENIED
    elif (
        verdict == Verdict.BREAK_GLASS
        or await _approvals(session, request.id, eligible, now) >= request.required_approvals
    ):
        await transition(session, request.id, Event.APPROVE, now, decided_by=approver_id)
        outcome = RequestStatus.APPROVED
    else:
        outcome = RequestStatus.PENDING
    audit.record(
        session,
        at=now,
        actor=approver_id,
        action=f"request_{verdict}",
        request_id=request.id,
        reason=reason,
    )
    if outcome == RequestStatus.APPROVED:
        queue.enqueue(session, JobKind.PROVISION, now=now, request_id=request.id)
    if verdict == Verdict.BREAK_GLASS:
        queue.enqueue(session, JobKind.BREAK_GLASS_ALERT, now=now, request_id=request.id)
    queue.enqueue(session, JobKind.REFRESH, now=now, request_id=request.id)
    return outcome


async def _lock_pending(session: AsyncSession, request_id: int) -> None:
    # The row lock (PostgreSQL; SQLite's write lock already serialises) makes concurrent verdicts
    # on one request count one after the other, so a quorum of 2 is met exactly once.
    status = (
        await session.execute(
            select(col(ServiceAccountRequest.status))
            .where(col(ServiceAccountRequest.id) == request_id)
            .with_for_update()
        )
    ).scalar_one()
    if status != RequestStatus.PENDING:
        request = await load_request(session, request_id)
        who = f" by <@{request.decided_by}>" if request.decided_by else ""
        outcome = OUTCOME_WORDS.get(RequestStatus(request.status), request.status)
        busy = IN_PROGRESS.get(RequestStatus(request.status), "")
        raise Conflict(f"{request.short_id} was already {outcome}{who}.{busy}")


async def _approvals(
    session: AsyncSession, request_id: int, eligible: frozenset[str], now: datetime
) -> int:
    """Approvals from people who may approve the request at this moment. An approval of
    someone who is no longer an approver stops counting (and is marked so, for the card and
    the trail); it counts again if they are made an approver again."""
    rows = (
        (
            await session.execute(
                select(Decision).where(
                    col(Decision.request_id) == request_id, col(Decision.verdict) == Verdict.APPROVE
                )
            )
        )
        .scalars()
        .all()
    )
    for decision in rows:
        counts = decision.approver_id in eligible
        if counts != decision.counts:
            decision.counts = counts
            audit.record(
                session,
                at=now,
                actor="sabot",
                action="approval_counted" if counts else "approval_discounted",
                request_id=request_id,
                approver=decision.approver_id,
                why="an approver again" if counts else "no longer an approver for this request",
            )
    return sum(1 for decision in rows if decision.counts)
