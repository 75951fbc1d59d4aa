"""Asking for a service account and deciding on it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows import audit
from workflows.errors import Conflict, FormInvalid, NotAllowed, NotFound, UserError
from workflows.jobs import queue
from workflows.models import Decision, ServiceAccount, ServiceAccountRequest
from workflows.ports import RequestSnapshot
from workflows.request.validation import RequestForm, ValidRequest, validate
from workflows.runtime import Runtime
from workflows.states import ENDED, Event, JobKind, transition


async def load_request(session: AsyncSession, request_id: int) -> ServiceAccountRequest:
    request = await session.get(ServiceAccountRequest, request_id, populate_existing=True)
    if request is None:
        raise NotFound(f"There is no request SA-{request_id}.")
    return request


async def locked_request(session: AsyncSession, request_id: int) -> ServiceAccountRequest:
    """The request read afresh, its row locked until the transaction ends (PostgreSQL; on
    SQLite the write lock already serialises): whatever is decided on it cannot be overtaken
    by a revoke, a rotate or a mint that locks it too."""
    request = (
        await session.execute(
            select(ServiceAccountRequest)
            .where(col(ServiceAccountRequest.id) == request_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
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
    return RequestSnapshot(
        request,
        list(decisions),
        account,
        request.required_approvals,
        runtime.policy.rules.break_glass.enabled,
    )


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
    policy = runtime.policy
    if not await policy.may_request(requester_id):
        raise NotAllowed("The policy does not let you ask for service accounts. Ask an admin.")
    clean, errors = validate(form, policy.offer)
    if clean is None:
        raise FormInvalid(errors)
    products = [p.value for p in clean.products]
    eligibility = await policy.eligibility(requester_id, products, clean.scopes)
    if not eligibility.reachable:
        raise UserError(
            f"This request needs {eligibility.quorum} approval(s), but only "
            f"{len(eligibility.approvers)} approver(s) other than you may approve it, so it "
            "could never be approved. Ask an admin to add approvers."
        )
    seats = await runtime.quota_usage()
    if seats.full:
        raise UserError(
            f"The organisation already has {seats.line()}, the most its Atlassian plan allows "
            "(ATLASSIAN_SERVICE_ACCOUNT_LIMIT, or the policy's service_account_limit). Ask an "
            "admin to delete an unused account, or to raise the limit if the plan has changed."
        )
    try:
        request = await _store(
            runtime, requester_id, clean, products, eligibility.quorum, origin_channel_id
        )
    except IntegrityError:  # the same name submitted at the same moment by someone else
        raise FormInvalid({"name": f"The name {clean.name} is already in use."}) from None
    runtime.jobs_queued()
    return request


async def _store(
    runtime: Runtime,
    requester_id: str,
    clean: ValidRequest,
    products: list[str],
    required_approvals: int,
    origin_channel_id: str | None,
) -> ServiceAccountRequest:
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        if await name_in_use(session, clean.name):
            raise FormInvalid({"name": f"The name {clean.name} is already in use."})
        request = ServiceAccountRequest(
            name=clean.name,
            justification=clean.justification,
            products=products,
            scopes=clean.scopes,
            lifetime_days=clean.lifetime_days,
            required_approvals=required_approvals,
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
        queue.enqueue(session, JobKind.ANNOUNCE, now=now, request_id=request.id)
    return request


async def cancel(runtime: Runtime, request_id: int, user_id: str) -> ServiceAccountRequest:
    """The requester (or an admin) withdraws a request nobody has decided yet."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        request = await load_request(session, request_id)
    if user_id != request.requester_id and not await runtime.policy.is_admin(user_id):
        await refuse(runtime, request, user_id, "cancel_refused", "not the requester")
        raise NotAllowed("Only the requester or an admin can cancel this request.")
    async with runtime.db.transaction() as session:
        if not await transition(session, request_id, Event.CANCEL, now, decided_by=user_id):
            request = await load_request(session, request_id)
            raise Conflict(
                f"{request.short_id} is {request.status}: it can no longer be cancelled."
            )
        audit.record(
            session, at=now, actor=user_id, action="request_cancelled", request_id=request_id
        )
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=request_id)
    runtime.jobs_queued()
    return request


async def retry(runtime: Runtime, request_id: int, user_id: str) -> ServiceAccountRequest:
    """An admin runs a failed request's provisioning again. The saga resumes from its records:
    an account made before the failure is kept (or found by its marker), not made twice."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        request = await load_request(session, request_id)
    if not await runtime.policy.is_admin(user_id):
        await refuse(runtime, request, user_id, "retry_refused", "not an admin")
        raise NotAllowed("Only an admin can retry a failed request.")
    try:
        async with runtime.db.transaction() as session:
            if not await transition(session, request_id, Event.RETRY, now, status_reason=None):
                request = await load_request(session, request_id)
                raise Conflict(
                    f"{request.short_id} is {request.status}: only a failed request can be retried."
                )
            audit.record(
                session, at=now, actor=user_id, action="provisioning_retried", request_id=request_id
            )
            queue.enqueue(session, JobKind.PROVISION, now=now, request_id=request_id)
            queue.enqueue(session, JobKind.REFRESH, now=now, request_id=request_id)
    except IntegrityError:  # the live-name index: someone asked for the name since
        raise Conflict(
            f"Another request has taken the name `{request.name}` since; "
            f"{request.short_id} cannot be retried."
        ) from None
    runtime.jobs_queued()
    return request


async def refuse(
    runtime: Runtime,
    request: ServiceAccountRequest,
    user_id: str,
    action: str,
    why: str,
    **detail: object,
) -> None:
    """Record who tried what and why it was refused (the caller raises the error)."""
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor=user_id,
            action=action,
            request_id=request.id,
            why=why,
            **detail,
        )


def parse_short_id(text: str) -> int:
    """`SA-12`, `sa-12` or `12` as a person types it."""
    digits = text.strip().upper().removeprefix("SA-")
    if not digits.isdigit() or len(digits) > 12:
        raise NotFound("{} is not a request id such as SA-12.", repr(text[:30]))
    return int(digits)
