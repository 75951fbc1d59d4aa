"""Reveal: the token is minted when the requester clicks, and answered to that click alone.

A token pushed at approval time could land while the requester is away (Slack says `ok` to an
ephemeral nobody sees); a click proves the person is there, and no token exists before then.
The value lives in memory between mint and delivery, never in the database or a log.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows import audit, jobs
from workflows.catalog import MAX_LIFETIME_DAYS
from workflows.db import rowcount
from workflows.errors import Conflict, NotAllowed
from workflows.lifecycle import schedule_expiry
from workflows.models import ApiToken, Job, ServiceAccount, ServiceAccountRequest
from workflows.ports import ReplyTarget, TokenDelivery
from workflows.providers.atlassian import AtlassianError
from workflows.providers.atlassian_contract import MintedToken
from workflows.requests import load_request
from workflows.runtime import Runtime
from workflows.states import RequestStatus

log = logging.getLogger(__name__)

# reveal_status of an account: locked (not provisioned) -> ready -> revealing -> revealed
READY, REVEALING, REVEALED = "ready", "revealing", "revealed"
UNDELIVERED = ("minting", "minted")


async def request_reveal(runtime: Runtime, request_id: int, target: ReplyTarget) -> None:
    """The requester clicked Reveal: claim the one reveal and queue the mint."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        request = await load_request(session, request_id)
    if request.requester_id != target.user_id:
        async with runtime.db.transaction() as session:
            audit.record(
                session,
                at=now,
                actor=target.user_id,
                action="reveal_refused",
                request_id=request_id,
                why="not the requester",
            )
        raise NotAllowed("Only the person who asked for this account can reveal its token.")
    async with runtime.db.transaction() as session:
        claimed = await session.execute(
            update(ServiceAccount)
            .where(
                col(ServiceAccount.request_id) == request_id,
                col(ServiceAccount.reveal_status) == READY,
            )
            .values(reveal_status=REVEALING)
        )
        if not rowcount(claimed):
            raise Conflict(await _why_not(session, request))
        audit.record(
            session, at=now, actor=target.user_id, action="reveal_requested", request_id=request_id
        )
        jobs.enqueue(
            session,
            "reveal",
            now=now,
            request_id=request_id,
            payload={
                "user_id": target.user_id,
                "channel_id": target.channel_id,
                "response_url": target.response_url,
            },
        )
    runtime.jobs_queued()


async def _why_not(session: AsyncSession, request: ServiceAccountRequest) -> str:
    account = (
        await session.execute(
            select(ServiceAccount).where(col(ServiceAccount.request_id) == request.id)
        )
    ).scalar_one_or_none()
    if request.status != RequestStatus.ACTIVE or account is None:
        return f"{request.short_id} is {request.status}: there is no token to reveal."
    if account.reveal_status == REVEALED and account.revealed_at:
        return (
            f"The token of {request.name} was already revealed at "
            f"{account.revealed_at:%Y-%m-%d %H:%M} UTC; it is shown only once."
        )
    return "The token is being revealed right now; it will appear in a moment."


async def reveal(runtime: Runtime, job: Job) -> None:
    """Mint the token and deliver it ephemerally; on any failure revoke it and reopen Reveal."""
    assert job.request_id is not None
    target = ReplyTarget(**job.payload)
    async with runtime.db.transaction() as session:
        request = await load_request(session, job.request_id)
        account = (
            await session.execute(
                select(ServiceAccount).where(col(ServiceAccount.request_id) == job.request_id)
            )
        ).scalar_one()
    if account.reveal_status != REVEALING:
        return  # a retry of a job that already finished
    try:
        token, minted = await _mint(runtime, request, account)
    except _MintFailed as failure:
        await _mint_failed(runtime, account, target, failure)
        return
    await _set_token(runtime, token, state="minted", atlassian_token_id=minted.id)
    delivery = TokenDelivery(
        request.short_id,
        account.name,
        account.email or "",
        minted.value,
        token.label,
        token.expires_at or runtime.clock(),
        runtime.cloud_id,
        list(request.products),
    )
    try:
        await runtime.notifier.deliver_token(target, delivery)
    except Exception as error:
        log.warning(
            "token delivery for %s failed (%s); revoking it", request.short_id, type(error).__name__
        )
        await _revoke(runtime, account, token)
        await _reopen(
            runtime, account, token, "delivery_failed", type(error).__name__, state="revoked"
        )
        await _tell(
            runtime,
            target,
            "The token could not be delivered, so it was revoked. Click Reveal to try again.",
        )
        return
    await _delivered(runtime, account, token)


class _MintFailed(Exception):
    """Minting failed for good; `token` is the last try's record."""

    def __init__(self, token: ApiToken, error: AtlassianError, tries: int) -> None:
        super().__init__(error.reason)
        self.token, self.error, self.tries = token, error, tries


async def _mint(
    runtime: Runtime, request: ServiceAccountRequest, account: ServiceAccount
) -> tuple[ApiToken, MintedToken]:
    """Mint a token, trying again (bounded) while Atlassian fails in a passing way.

    A mint is not idempotent, so the client never re-sends one; here each try first revokes,
    by its unique label, whatever an earlier try may have minted, then mints under a new label.
    """
    retry, attempt = runtime.atlassian.retry, 1
    while True:
        await revoke_undelivered(runtime, account)
        token = await _start_mint(runtime, request, account)
        try:
            minted = await runtime.atlassian.mint_token(
                account.atlassian_account_id or "",
                token.label,
                token.scopes,
                token.expires_at or runtime.clock(),
            )
        except AtlassianError as error:
            if not error.transient or attempt >= retry.attempts:
                raise _MintFailed(token, error, attempt) from None
            log.info("mint for %s failed (%s); trying again", request.short_id, error)
            await asyncio.sleep(retry.base_delay * 2 ** (attempt - 1))
            attempt += 1
            continue
        return token, minted


async def _mint_failed(
    runtime: Runtime, account: ServiceAccount, target: ReplyTarget, failure: _MintFailed
) -> None:
    """Reopen Reveal and tell the requester; a token the failed tries may have left is revoked."""
    error = failure.error
    if error.transient:
        # The last try may have minted a token: revoke it while Reveal is still closed to
        # other clicks (revoking later could hit the token of a newer click).
        kept = "no token was kept"
        try:
            await revoke_undelivered(runtime, account)
        except AtlassianError as revoking:
            log.warning("could not revoke yet (%s); the next Reveal will", revoking.reason)
            kept = "a token it may have made will be revoked at your next click"
        text = (
            f"Atlassian could not mint the token after {failure.tries} tries ({error.reason}); "
            f"{kept}. Click Reveal to try again in a while."
        )
    else:
        text = (
            f"Atlassian could not mint the token: {error.reason}. Click Reveal to try again "
            "later; if it fails again, an admin needs to look at it."
        )
    state = None if error.transient else "failed"  # None: as revoked above, or still minting
    await _reopen(runtime, account, failure.token, "mint_failed", error.reason, state=state)
    await _tell(runtime, target, text)


async def _start_mint(
    runtime: Runtime, request: ServiceAccountRequest, account: ServiceAccount
) -> ApiToken:
    now = runtime.clock()
    days = min(request.lifetime_days, MAX_LIFETIME_DAYS)
    # A unique label, recorded before the call: if the answer is lost, the token is found by its
    # label and revoked instead of living on unknown.
    token = ApiToken(
        account_id=account.id or 0,
        scopes=list(request.scopes),
        label=f"sabot-{request.short_id.lower()}-{secrets.token_hex(4)}",
        expires_at=now + timedelta(days=days),
        created_at=now,
    )
    async with runtime.db.transaction() as session:
        session.add(token)
    return token


async def _set_token(runtime: Runtime, token: ApiToken, **values: object) -> None:
    async with runtime.db.transaction() as session:
        await session.execute(update(ApiToken).where(col(ApiToken.id) == token.id).values(**values))


async def _delivered(runtime: Runtime, account: ServiceAccount, token: ApiToken) -> None:
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        await session.execute(
            update(ApiToken)
            .where(col(ApiToken.id) == token.id)
            .values(state="delivered", delivered_at=now)
        )
        await session.execute(
            update(ServiceAccount)
            .where(col(ServiceAccount.id) == account.id)
            .values(reveal_status=REVEALED, revealed_at=now)
        )
        audit.record(
            session,
            at=now,
            actor="sabot",
            action="token_delivered",
            request_id=account.request_id,
            label=token.label,
            expires_at=token.expires_at.isoformat() if token.expires_at else None,
        )
        jobs.enqueue(session, "refresh", now=now, request_id=account.request_id)
        schedule_expiry(session, runtime.policy, token, account.request_id, now)
    runtime.jobs_queued()


async def _reopen(
    runtime: Runtime,
    account: ServiceAccount,
    token: ApiToken,
    action: str,
    reason: str,
    *,
    state: str | None,
) -> None:
    """Open Reveal again; `state`, when given, is the token's new state."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        if state is not None:
            await session.execute(
                update(ApiToken).where(col(ApiToken.id) == token.id).values(state=state)
            )
        await session.execute(
            update(ServiceAccount)
            .where(col(ServiceAccount.id) == account.id)
            .values(reveal_status=READY)
        )
        audit.record(
            session,
            at=now,
            actor="sabot",
            action=action,
            request_id=account.request_id,
            label=token.label,
            reason=reason,
        )


async def _tell(runtime: Runtime, target: ReplyTarget, text: str) -> None:
    try:
        await runtime.notifier.reply(target, text)
    except Exception:
        log.warning("could not tell %s about a failed reveal", target.user_id, exc_info=True)


async def _revoke(runtime: Runtime, account: ServiceAccount, token: ApiToken) -> None:
    """Revoke one token at Atlassian, found by id or else by its unique label."""
    atlassian_id = account.atlassian_account_id or ""
    token_id = token.atlassian_token_id
    if token_id is None:
        remote = await runtime.atlassian.tokens(atlassian_id)
        token_id = next((t.id for t in remote if t.label == token.label), None)
    if token_id is not None:
        await runtime.atlassian.revoke_token(atlassian_id, token_id)


async def revoke_undelivered(runtime: Runtime, account: ServiceAccount) -> None:
    """Tokens minted (or maybe minted) but never delivered are revoked, never kept."""
    async with runtime.db.transaction() as session:
        leftovers = (
            (
                await session.execute(
                    select(ApiToken).where(
                        col(ApiToken.account_id) == account.id,
                        col(ApiToken.state).in_(UNDELIVERED),
                    )
                )
            )
            .scalars()
            .all()
        )
    for token in leftovers:
        await _revoke(runtime, account, token)
        await _set_token(runtime, token, state="revoked", revoked_at=runtime.clock())
        async with runtime.db.transaction() as session:
            audit.record(
                session,
                at=runtime.clock(),
                actor="sabot",
                action="token_revoked",
                request_id=account.request_id,
                label=token.label,
                why="minted but never delivered",
            )


async def give_up(runtime: Runtime, job: Job, reason: str) -> None:
    """A reveal that kept failing: reopen the button and tell the requester."""
    async with runtime.db.transaction() as session:
        await session.execute(
            update(ServiceAccount)
            .where(
                col(ServiceAccount.request_id) == job.request_id,
                col(ServiceAccount.reveal_status) == REVEALING,
            )
            .values(reveal_status=READY)
        )
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="reveal_failed",
            request_id=job.request_id,
            reason=reason[:300],
        )
    await _tell(
        runtime,
        ReplyTarget(**job.payload),
        "The token could not be revealed just now. Click Reveal again in a while.",
    )
