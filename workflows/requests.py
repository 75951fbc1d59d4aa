"""Asking for a service account and deciding on it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows import audit, jobs
from workflows.db import rowcount
from workflows.errors import Conflict, FormInvalid, NotAllowed, NotFound, UserError
from workflows.models import Decision, ServiceAccount, ServiceAccountRequest
from workflows.ports import RequestSnapshot
from workflows.runtime import Runtime
from workflows.states import ENDED, Event, RequestStatus, next_status, sources_of
from workflows.validation import RequestForm, validate

APPROVE, DENY = "approve", "deny"


async def transition(
    session: AsyncSession, request_id: int, event: Event, now: datetime, **values: object
) -> bool:
    """Apply `event` if the request is in a status that allows it. False if it is not."""
    sources = sources_of(event)
    target = next_status(sources[0], event)
    result = await session.execute(
        update(ServiceAccountRequest)
        .where(
            col(ServiceAccountRequest.id) == request_id,
            col(ServiceAccountRequest.status).in_([s.value for s in sources]),
        )
        .values(status=target.value, updated_at=now, **values)
    )
    return bool(rowcount(result))


async def load_request(session: AsyncSession, request_id: int) -> ServiceAccountRequest:
    request = await session.get(ServiceAccountRequest, request_id, populate_existing=True)
    if request is None:
        raise NotFound(f"There is no request SA-{request_id}.")
    return request


async def snapshot(runtime: Runtime, request_id: int) -> RequestSnapshot:
    """The request with its decisions and account, as messages about it show them."""
    async with runtime.db.transaction() as session:
        request = await load_request(session, request_id)
        decisions = (
            (
                await session.execute(
                    select(Decision)
                    .where(col(Decision.request_id) == request_id)
                    .order_by(col(Decision.id))
                )
            )
            .scalars()
            .all()
        )
        account = (
            await session.execute(
                select(ServiceAccount).where(col(ServiceAccount.request_id) == request_id)
            )
        ).scalar_one_or_none()
    return RequestSnapshot(request, list(decisions), account, runtime.policy.quorum)


async def name_in_use(session: AsyncSession, name: str) -> bool:
    """A name stays taken while any request or account of that name is still live."""
    ended = [status.value for status in ENDED]
    query = (
        select(func.count())
        .select_from(ServiceAccountRequest)
        .where(
            col(ServiceAccountRequest.name) == name,
            col(ServiceAccountRequest.status).not_in(ended),
        )
    )
    return bool((await session.execute(query)).scalar_one())


async def submit(
    runtime: Runtime, requester_id: str, form: RequestForm, origin_channel_id: str | None
) -> ServiceAccountRequest:
    """Store a valid request and queue its announcement to the approvers."""
    if not runtime.policy.can_be_approved(requester_id):
        raise UserError(
            "No approver other than you is configured, so this request could never "
            "be approved. Ask an admin to add approvers."
        )
    clean, errors = validate(form)
    if clean is None:
        raise FormInvalid(errors)
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        if await name_in_use(session, clean.name):
            raise FormInvalid({"name": f"The name {clean.name} is already in use."})
        request = ServiceAccountRequest(
            name=clean.name,
            justification=clean.justification,
            products=[p.value for p in clean.products],
            scopes=clean.scopes,
            lifetime_days=clean.lifetime_days,
            requester_id=requester_id,
            origin_channel_id=origin_channel_id,
            created_at=now,
            updated_at=now,
        )
        session.add(request)
        await session.flush()
        assert request.id is not None
        audit.record(
            session,
            at=now,
            actor=requester_id,
            action="request_submitted",
            request_id=request.id,
            name=clean.name,
            products=request.products,
            scopes=clean.scopes,
            lifetime_days=clean.lifetime_days,
        )
        jobs.enqueue(session, "announce", now=now, request_id=request.id)
    runtime.jobs_queued()
    return request


async def decide(
    runtime: Runtime, request_id: int, approver_id: str, verdict: str, reason: str | None = None
) -> RequestStatus:
    """Record one approver's verdict; return the request's status afterwards.

    Exactly one of any number of concurrent clicks moves the request on: the status change is a
    conditional update and the decision rows are unique per approver.
    """
    now = runtime.clock()
    request = await ensure_may_decide(runtime, request_id, approver_id, verdict)
    try:
        async with runtime.db.transaction() as session:
            status = await _apply_decision(
                session, runtime, request, approver_id, verdict, reason, now
            )
    except IntegrityError:
        raise Conflict("You have already decided on this request.") from None
    runtime.jobs_queued()
    return status


async def ensure_may_decide(
    runtime: Runtime, request_id: int, user_id: str, verdict: str
) -> ServiceAccountRequest:
    """The request, if `user_id` may decide on it; else an audited NotAllowed."""
    async with runtime.db.transaction() as session:
        request = await load_request(session, request_id)
    if runtime.policy.may_decide(user_id, request.requester_id):
        return request
    why = (
        "you cannot decide on your own request"
        if user_id == request.requester_id
        else "you are not an approver for this request"
    )
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor=user_id,
            action="decision_refused",
            request_id=request.id,
            verdict=verdict,
            why=why,
        )
    raise NotAllowed(f"Sorry, {why}.")


async def _apply_decision(
    session: AsyncSession,
    runtime: Runtime,
    request: ServiceAccountRequest,
    approver_id: str,
    verdict: str,
    reason: str | None,
    now: datetime,
) -> RequestStatus:
    assert request.id is not None
    # Lock the request row (PostgreSQL; SQLite's write lock already serialises) so concurrent
    # verdicts on one request are counted one after the other.
    current = (
        await session.execute(
            select(col(ServiceAccountRequest.status))
            .where(col(ServiceAccountRequest.id) == request.id)
            .with_for_update()
        )
    ).scalar_one()
    if current != RequestStatus.PENDING:
        raise Conflict(await _already(session, request.id))
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
    if verdict == DENY:
        moved = await transition(
            session, request.id, Event.DENY, now, decided_by=approver_id, status_reason=reason
        )
        outcome = RequestStatus.DENIED
    else:
        approvals = await _count(session, request.id, APPROVE)
        if approvals < runtime.policy.quorum:
            moved, outcome = True, RequestStatus.PENDING
        else:
            moved = await transition(
                session, request.id, Event.APPROVE, now, decided_by=approver_id
            )
            outcome = RequestStatus.APPROVED
    if not moved:  # raising rolls the decision row back with the rest
        raise Conflict(await _already(session, request.id))
    audit.record(
        session,
        at=now,
        actor=approver_id,
        action=f"request_{verdict}d",
        request_id=request.id,
        reason=reason,
    )
    if outcome == RequestStatus.APPROVED:
        jobs.enqueue(session, "provision", now=now, request_id=request.id)
    jobs.enqueue(session, "refresh", now=now, request_id=request.id)
    return outcome


async def _count(session: AsyncSession, request_id: int, verdict: str) -> int:
    query = (
        select(func.count())
        .select_from(Decision)
        .where(col(Decision.request_id) == request_id, col(Decision.verdict) == verdict)
    )
    return int((await session.execute(query)).scalar_one())


async def _already(session: AsyncSession, request_id: int) -> str:
    request = await load_request(session, request_id)
    who = f" by <@{request.decided_by}>" if request.decided_by else ""
    return f"{request.short_id} is already {request.status}{who}."
