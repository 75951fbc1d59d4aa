"""Jobs of an account's later life: token revocation, deletion, expiry warnings."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows import audit
from workflows.account import provisioning
from workflows.account.token_use import match, remote_tokens, unused
from workflows.jobs import queue
from workflows.jobs.queue import RetryLater
from workflows.models import ApiToken, Job, ServiceAccount
from workflows.policy import Policy
from workflows.request.requests import load_request, snapshot
from workflows.runtime import Runtime
from workflows.states import LIVE_TOKENS, UNDELIVERED, JobKind, TokenState

UNREVOKED = (*UNDELIVERED, *LIVE_TOKENS)
IN_FLIGHT = (TokenState.MINTING, TokenState.UNWANTED)
LOOK_AGAIN = timedelta(days=1)  # for a hand-made token not made yet

log = logging.getLogger(__name__)


async def _account(runtime: Runtime, request_id: int | None) -> ServiceAccount:
    async with runtime.db.transaction() as session:
        return (
            await session.execute(
                select(ServiceAccount).where(col(ServiceAccount.request_id) == request_id)
            )
        ).scalar_one()


async def _token(runtime: Runtime, token_id: int) -> ApiToken | None:
    async with runtime.db.transaction() as session:
        return await session.get(ApiToken, token_id)


async def _mark(
    runtime: Runtime, token: ApiToken, state: TokenState, action: str, **detail: object
) -> None:
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        await session.execute(
            update(ApiToken)
            .where(col(ApiToken.id) == token.id)
            .values(state=state, revoked_at=now if state == TokenState.REVOKED else None)
        )
        account = await session.get(ServiceAccount, token.account_id)
        audit.record(
            session,
            at=now,
            actor="sabot",
            action=action,
            request_id=account.request_id if account else None,
            label=token.label,
            expires_at=token.expires_at.isoformat() if token.expires_at else None,
            **detail,
        )


async def revoke_token(runtime: Runtime, job: Job) -> None:
    """A rotated-out token, once its grace period is over."""
    token = await _token(runtime, int(job.payload["token_id"]))
    now = runtime.clock()
    if (
        token is None
        or token.state not in LIVE_TOKENS
        or token.revoke_after is None
        or token.revoke_after > now
    ):
        return  # already gone, or its revocation was moved (a later job will do it)
    account = await _account(runtime, job.request_id)
    token_id = await _atlassian_token_id(runtime, account, token)
    if token_id is None and token.state == TokenState.MANUAL:
        await _look_again_tomorrow(runtime, job, token, now)
        return
    if token_id and account.atlassian_account_id:
        await runtime.atlassian.revoke_token(account.atlassian_account_id, token_id)
    # A rotated-out token, or one its owner revoked as unused (the payload says which).
    await _mark(
        runtime,
        token,
        TokenState.REVOKED,
        "token_revoked",
        why=job.payload.get("why", "rotated out"),
    )


async def _look_again_tomorrow(runtime: Runtime, job: Job, token: ApiToken, now: datetime) -> None:
    """A hand-made token rotated out before the admin made it: the admin's request still
    stands, so it is looked for each day until it would have expired, and revoked if found."""
    if token.expires_at is None or token.expires_at <= now:
        await _mark(runtime, token, TokenState.EXPIRED, "token_expired", why="never made by hand")
        return
    async with runtime.db.transaction() as session:
        queue.enqueue(
            session,
            JobKind.REVOKE_TOKEN,
            now=now,
            request_id=job.request_id,
            payload=dict(job.payload),
            delay=min(LOOK_AGAIN, token.expires_at - now),
        )


async def _atlassian_token_id(
    runtime: Runtime, account: ServiceAccount, token: ApiToken
) -> str | None:
    """Atlassian's id of the token: known for a minted one; a hand-made one is found by its
    label (None: it was never made, or is gone already)."""
    if token.atlassian_token_id or token.state != TokenState.MANUAL:
        return token.atlassian_token_id
    if not account.atlassian_account_id:
        return None
    # Unreadable now: the error fails the job, whose retries read again.
    remote = await runtime.atlassian.tokens(account.atlassian_account_id, account.atlassian_id)
    found = match(token, remote)
    return found.id if found else None


async def _revoke_everything(runtime: Runtime, account: ServiceAccount, why: str) -> None:
    """Every token live at Atlassian now is revoked. A mint still in flight (its row unwanted
    since the revoke) may land after the list was read: that reveal revokes it when its answer
    comes, or the reveal job's next run does, so its row is left to it."""
    seen: set[str] = set()
    if account.atlassian_account_id:
        revoked = await runtime.atlassian.revoke_all_tokens(
            account.atlassian_account_id, account.atlassian_id
        )
        seen = {t.label for t in revoked}
    async with runtime.db.transaction() as session:
        tokens = (
            (
                await session.execute(
                    select(ApiToken).where(
                        col(ApiToken.account_id) == account.id, col(ApiToken.state).in_(UNREVOKED)
                    )
                )
            )
            .scalars()
            .all()
        )
    for token in tokens:
        if token.state in IN_FLIGHT and token.label not in seen:
            continue
        await _mark(runtime, token, TokenState.REVOKED, "token_revoked", why=why)


async def revoke_all(runtime: Runtime, job: Job) -> None:
    await _revoke_everything(runtime, await _account(runtime, job.request_id), "revoked by command")


async def delete_account(runtime: Runtime, job: Job) -> None:
    account = await _account(runtime, job.request_id)
    if account.atlassian_account_id is None and account.create_started_at is not None:
        # A failed request whose create may have happened without an answer: find that
        # account by the request's marker, so deleting the request deletes it too.
        async with runtime.db.reading() as session:
            request = await load_request(session, account.request_id)
        await provisioning.adopt(runtime, account, provisioning.description(request, account))
    await _revoke_everything(runtime, account, "account deleted")
    route = "none (never created)"
    if account.atlassian_id and account.atlassian_account_id:
        route = await runtime.atlassian.delete_service_account(
            account.atlassian_id,
            account.atlassian_account_id,
            f"Deleted through sabot (SA-{account.request_id})",
        )
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="account_deleted",
            request_id=job.request_id,
            route=route,
        )


async def offer_token(runtime: Runtime, job: Job) -> None:
    assert job.request_id is not None
    await runtime.notifier.offer_new_token(await snapshot(runtime, job.request_id))


def schedule_expiry(
    session: AsyncSession, policy: Policy, token: ApiToken, request_id: int, now: datetime
) -> None:
    """Warn the owner N days before the token expires (policy), and mark it expired then."""
    if token.expires_at is None:
        return
    planned = token.expires_at.isoformat()
    for days in policy.rules.lifecycle.warn_days_before_expiry:
        at = token.expires_at - timedelta(days=days)
        if at > now:
            queue.enqueue(
                session,
                JobKind.EXPIRY_WARNING,
                now=now,
                request_id=request_id,
                delay=at - now,
                payload={"token_id": token.id, "days": days, "expires_at": planned},
            )
    schedule_end(session, token, request_id, now)


def schedule_end(session: AsyncSession, token: ApiToken, request_id: int, now: datetime) -> None:
    """Mark the token expired when it expires."""
    if token.expires_at is None:
        return
    queue.enqueue(
        session,
        JobKind.TOKEN_EXPIRED,
        now=now,
        request_id=request_id,
        delay=max(token.expires_at - now, timedelta(0)),
        payload={"token_id": token.id, "expires_at": token.expires_at.isoformat()},
    )


def _stale(job: Job, token: ApiToken) -> bool:
    """A job of an expiry the token no longer has (a hand-made token's expiry, as Atlassian
    showed it, replaced the one asked for: the new schedule's jobs do the work)."""
    planned = job.payload.get("expires_at")
    if planned is None or token.expires_at is None:
        return False  # queued before jobs named their expiry: the one there is
    return abs(datetime.fromisoformat(planned) - token.expires_at) > timedelta(seconds=1)


async def expiry_warning(runtime: Runtime, job: Job) -> None:
    token = await _token(runtime, int(job.payload["token_id"]))
    if token is None or token.state not in LIVE_TOKENS or token.revoke_after is not None:
        return  # revoked or being rotated out: nothing to warn about
    if _stale(job, token):
        return
    assert job.request_id is not None and token.expires_at is not None
    account = await _account(runtime, job.request_id)
    remote = await remote_tokens(runtime, account)
    if token.state == TokenState.MANUAL:
        if remote is None and runtime.clock() < token.expires_at:
            # Whether the admin made it is not known: no warning for a token that may not
            # exist; asked again in an hour.
            raise RetryLater(3600, "Atlassian's token list could not be read")
        if remote is None or match(token, remote) is None:
            log.info("no token %s at Atlassian: never made by hand, or gone", token.label)
            return  # nothing there expires
    # An unused token is better left to lapse: the warning says so when Atlassian shows it.
    use = unused(runtime, token, remote)
    await runtime.notifier.warn_expiry(
        await snapshot(runtime, job.request_id),
        token.label,
        token.expires_at,
        int(job.payload["days"]),
        use,
    )
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="expiry_warning_sent",
            request_id=job.request_id,
            label=token.label,
            days=job.payload["days"],
            unused_days=use.idle_days if use else None,
        )


async def token_expired(runtime: Runtime, job: Job) -> None:
    token = await _token(runtime, int(job.payload["token_id"]))
    if token is not None and token.state in LIVE_TOKENS and not _stale(job, token):
        await _mark(runtime, token, TokenState.EXPIRED, "token_expired")
