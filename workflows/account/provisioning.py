"""After approval: the saga that makes the account at Atlassian.

Each step records its result before the next one starts, so a crash anywhere resumes without a
second account: the create is preceded by a marker, and a retry first looks for an account of
that name made by the attempt that crashed.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select
from sqlmodel import col

from workflows import audit
from workflows.jobs import queue
from workflows.models import Job, ServiceAccount, ServiceAccountRequest
from workflows.providers.atlassian import AtlassianError
from workflows.providers.atlassian_contract import RemoteAccount
from workflows.request.requests import load_request
from workflows.runtime import Runtime
from workflows.states import Event, JobKind, RequestStatus, RevealStatus, Step, transition

log = logging.getLogger(__name__)

# -- the saga ---------------------------------------------------------------------------------


class CreateUnconfirmed(AtlassianError):
    """A create may have made an account the database does not hold (Atlassian could not be
    asked, or answered ambiguously)."""


async def provision(runtime: Runtime, job: Job) -> None:
    """Create the account and grant product access; resumable from any step."""
    assert job.request_id is not None
    request, account = await _start(runtime, job.request_id)
    if account is None:
        return
    try:
        await _ensure_created(runtime, request, account)
        await _ensure_granted(runtime, request, account)
    except CreateUnconfirmed as unknown:
        rule = runtime.retries.unconfirmed_create
        if unknown.transient and job.attempts < rule.attempts:
            # Giving up now could leave an account nobody knows of: ask again a bit later.
            raise queue.RetryLater(rule.wait(job.attempts), unknown.reason) from None
        await _fail(runtime, request, unknown.reason, _maybe_made(request))
        return
    except AtlassianError as error:
        await _fail(runtime, request, error.reason, _left_behind(request, account))
        return
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        if await transition(session, job.request_id, Event.PROVISIONED, now):
            account.reveal_status = RevealStatus.READY
            session.add(account)
            audit.record(
                session,
                at=now,
                actor="sabot",
                action="account_ready",
                request_id=job.request_id,
                email=account.email,
            )
            queue.enqueue(session, JobKind.REFRESH, now=now, request_id=job.request_id)
            queue.enqueue(session, JobKind.NOTIFY_READY, now=now, request_id=job.request_id)
    runtime.jobs_queued()


async def _start(
    runtime: Runtime, request_id: int
) -> tuple[ServiceAccountRequest, ServiceAccount | None]:
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        await transition(session, request_id, Event.START_PROVISIONING, now)
        request = await load_request(session, request_id)
        if request.status != RequestStatus.PROVISIONING:
            return request, None  # finished, failed or never approved: nothing to do
        account = (
            await session.execute(
                select(ServiceAccount).where(col(ServiceAccount.request_id) == request_id)
            )
        ).scalar_one_or_none()
        if account is None:
            account = ServiceAccount(
                request_id=request_id,
                name=request.name,
                owner_id=request.requester_id,
                created_at=now,
            )
            session.add(account)
            audit.record(
                session, at=now, actor="sabot", action="provisioning_started", request_id=request_id
            )
    return request, account


def description(request: ServiceAccountRequest, account: ServiceAccount) -> str:
    # Unique to this attempt's account row: how a retry recognises the account it made, and
    # never adopts a same-named account made by hand or by another request.
    made = account.created_at.strftime("%Y%m%dT%H%M%S") if account.created_at else "?"
    return f"Requested in Slack via sabot ({request.short_id}, {made})"


async def _ensure_created(
    runtime: Runtime, request: ServiceAccountRequest, account: ServiceAccount
) -> None:
    rule, marker = runtime.retries.create_account, description(request, account)
    if account.atlassian_account_id:
        return
    if account.create_started_at is not None:
        # An earlier run sent a create and never recorded its answer (it crashed, or was
        # stopped mid-call): adopt what it made. Until that create's answer could no longer be
        # coming, its account may not be listed yet, so a second create would make a twin.
        if await adopt(runtime, account, marker):
            return
        settles = (
            account.create_started_at
            + runtime.atlassian.answer_window
            + runtime.retries.create_settle
        )
        if runtime.clock() < settles:
            wait = (settles - runtime.clock()).total_seconds()
            raise queue.RetryLater(wait, "an earlier create may still be landing")
    for attempt in range(1, rule.attempts + 1):
        # An earlier try may have created it before its answer was lost: adopt that one.
        if attempt > 1 and await adopt(runtime, account, marker):
            return
        await _mark_create_sent(runtime, account)
        try:
            async with runtime.steps.step(Step.CREATE_ACCOUNT):
                remote = await runtime.atlassian.create_service_account(account.name, marker)
        except AtlassianError as error:
            if not error.transient:
                raise
            if attempt == rule.attempts:
                if await adopt(runtime, account, marker):
                    return  # the last answer was lost, but the account was made
                raise AtlassianError(
                    f"Atlassian did not create the account in {attempt} tries "
                    f"(last: {error.reason})",
                    status=error.status,
                    transient=True,
                ) from None
            await asyncio.sleep(rule.wait(attempt))
            continue
        await _record_created(runtime, account, remote, adopted=False)
        return


async def adopt(runtime: Runtime, account: ServiceAccount, description: str) -> bool:
    """Record the account an earlier create made (found by its marker); False if none."""
    try:
        listed = await runtime.atlassian.find_by_display_name(account.name)
    except AtlassianError as error:
        raise CreateUnconfirmed(
            f"Atlassian's list of accounts could not be read ({error.reason})",
            status=error.status,
            transient=error.transient,
        ) from None
    found = [a for a in listed if a.description == description]
    if len(found) > 1:  # none of them recorded: which one is ours is for a person to say
        raise CreateUnconfirmed(
            f"{len(found)} accounts named {account.name} carry this request's "
            "marker; an admin must keep one and delete the others"
        )
    if found:
        await _record_created(runtime, account, found[0], adopted=True)
    return bool(found)


async def _mark_create_sent(runtime: Runtime, account: ServiceAccount) -> None:
    """Recorded before every create call: a run that finds it set knows a create may have
    happened, and since when."""
    async with runtime.db.transaction() as session:
        account.create_started_at = runtime.clock()
        session.add(account)


async def _record_created(
    runtime: Runtime, account: ServiceAccount, remote: RemoteAccount, *, adopted: bool
) -> None:
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        account.atlassian_id, account.atlassian_account_id = remote.id, remote.atlassian_id
        account.email = remote.email
        session.add(account)
        audit.record(
            session,
            at=now,
            actor="sabot",
            action="account_created",
            request_id=account.request_id,
            atlassian_id=remote.id,
            atlassian_account_id=remote.atlassian_id,
            email=remote.email,
            adopted=adopted,
        )


async def _ensure_granted(
    runtime: Runtime, request: ServiceAccountRequest, account: ServiceAccount
) -> None:
    assert account.atlassian_account_id is not None
    for product in request.products:
        if product in account.granted_products:
            continue
        async with runtime.steps.step(Step.GRANT_ACCESS):
            await runtime.atlassian.grant_product(
                account.atlassian_account_id, product, runtime.cloud_id
            )
        async with runtime.db.transaction() as session:
            account.granted_products = [*account.granted_products, product]
            session.add(account)
            audit.record(
                session,
                at=runtime.clock(),
                actor="sabot",
                action="access_granted",
                request_id=account.request_id,
                product=product,
            )


def _left_behind(request: ServiceAccountRequest, account: ServiceAccount | None) -> str:
    """What a failure left at Atlassian, for the people who must act on it.

    Without a recorded id nothing was made: every create is preceded by a look for the account
    an earlier lost answer may have made (else the failure is a CreateUnconfirmed).
    """
    if account is not None and account.atlassian_account_id:
        return (
            f"The account {account.email} was made at Atlassian without all its access; it is "
            f"recorded here. Once the cause is fixed an admin can finish it with "
            f"`retry {request.short_id}`, or remove it with `delete {request.name}`."
        )
    return "No account was made at Atlassian."


def _maybe_made(request: ServiceAccountRequest) -> str:
    return (
        f"Atlassian may have made the account {request.name} without answering; an admin "
        f"should look for it at Atlassian (the daily reconcile lists it as unknown)."
    )


async def _fail(runtime: Runtime, request: ServiceAccountRequest, reason: str, left: str) -> None:
    """End the request `failed`, and say so to the requester and the approvers."""
    assert request.id is not None
    now = runtime.clock()
    log.warning("provisioning %s failed: %s", request.short_id, reason)
    async with runtime.db.transaction() as session:
        if not await transition(session, request.id, Event.FAIL, now, status_reason=reason):
            return
        audit.record(
            session,
            at=now,
            actor="sabot",
            action="provisioning_failed",
            request_id=request.id,
            reason=reason,
            left=left,
        )
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=request.id)
        queue.enqueue(
            session,
            JobKind.THREAD_NOTE,
            now=now,
            request_id=request.id,
            payload={"text": f"Provisioning {request.short_id} failed: {reason}. {left}"},
        )
        told = (
            f"Your service account request {request.short_id} (`{request.name}`) was approved, "
            f"but provisioning failed: {reason}. {left} You can ask again once this is fixed."
        )
        queue.enqueue(
            session, JobKind.TELL_REQUESTER, now=now, request_id=request.id, payload={"text": told}
        )
    runtime.jobs_queued()


async def give_up(runtime: Runtime, job: Job, reason: str) -> None:
    """The saga kept failing for a reason other than Atlassian's answers: end it clearly."""
    assert job.request_id is not None
    async with runtime.db.transaction() as session:
        request = await load_request(session, job.request_id)
        account = (
            await session.execute(
                select(ServiceAccount).where(col(ServiceAccount.request_id) == job.request_id)
            )
        ).scalar_one_or_none()
    log.error("provisioning %s stopped: %s", request.short_id, reason)
    unsure = bool(account and account.create_started_at and not account.atlassian_account_id)
    await _fail(
        runtime,
        request,
        f"an internal error kept recurring (job {job.id}; the details are in the log)",
        _maybe_made(request) if unsure else _left_behind(request, account),
    )
