"""Reveal: the token is minted when the owner clicks, and answered to that click alone.

A token pushed at approval time could land while the owner is away (Slack says `ok` to an
ephemeral nobody sees); a click proves the person is there, and no token exists before then.
The value lives in memory between mint and delivery, never in the database or a log.

A revoke may come while a mint is in flight (slow, rate-limited, retried). Every step that
records a mint or a delivery therefore checks, in its own transaction, that the account is still
active and this reveal still wanted; a token minted for a reveal that a revoke overtook is
revoked the moment it is seen, and the clicker is told.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows import audit
from workflows.account.lifecycle import schedule_end, schedule_expiry
from workflows.db import rowcount
from workflows.discovery import replacement
from workflows.errors import Conflict, NotAllowed
from workflows.jobs import queue
from workflows.models import ApiToken, Job, ServiceAccount, ServiceAccountRequest
from workflows.ports import ManualToken, ReplyTarget, TokenDelivery
from workflows.providers.atlassian import AtlassianError, MintRefused
from workflows.providers.atlassian_contract import MintedToken
from workflows.request.requests import load_request, locked_request
from workflows.runtime import Runtime
from workflows.states import (
    UNDELIVERED,
    JobKind,
    RequestStatus,
    RevealStatus,
    Step,
    TokenState,
)

log = logging.getLogger(__name__)

R, T = RevealStatus, TokenState


async def account_of(
    runtime: Runtime, request_id: int
) -> tuple[ServiceAccountRequest, ServiceAccount]:
    async with runtime.db.reading() as session:
        request = await load_request(session, request_id)
        account = (
            await session.execute(
                select(ServiceAccount).where(col(ServiceAccount.request_id) == request_id)
            )
        ).scalar_one_or_none()
    if account is None:
        raise Conflict(f"{request.short_id} is {request.status}: there is no token to reveal.")
    return request, account


async def token_lifetime(
    runtime: Runtime, request: ServiceAccountRequest, account: ServiceAccount
) -> int:
    """Days a new token of this account may live under today's policy (NotAllowed if none)."""
    try:
        return await runtime.policy.token_lifetime(
            account.owner_id, list(request.products), list(request.scopes), request.lifetime_days
        )
    except NotAllowed as refused:
        raise NotAllowed(
            f"`{request.name}` ({request.short_id}) cannot get a new token: {refused}."
        ) from None


async def request_reveal(runtime: Runtime, request_id: int, target: ReplyTarget) -> None:
    """The owner clicked Reveal: claim the one reveal and queue the mint."""
    now = runtime.clock()
    request, account = await account_of(runtime, request_id)
    if account.owner_id != target.user_id:
        await _refused(runtime, request_id, target.user_id, "not the owner")
        raise NotAllowed("Only the owner of this account can reveal its token.")
    try:
        await token_lifetime(runtime, request, account)
    except NotAllowed as refused:
        await _refused(runtime, request_id, target.user_id, str(refused))
        raise
    async with runtime.db.transaction() as session:
        # The request row is locked first, as a revoke locks it: the two take turns.
        request = await locked_request(session, request_id)
        active = request.status == RequestStatus.ACTIVE
        if not (active and await move_reveal(session, account.id, R.READY, R.REVEALING)):
            raise Conflict(await _why_not(runtime, request_id))
        audit.record(
            session, at=now, actor=target.user_id, action="reveal_requested", request_id=request_id
        )
        queue.enqueue(
            session,
            JobKind.REVEAL,
            now=now,
            request_id=request_id,
            payload={
                "user_id": target.user_id,
                "channel_id": target.channel_id,
                "response_url": target.response_url,
            },
        )
    runtime.jobs_queued()


async def move_reveal(
    session: AsyncSession,
    account_id: int | None,
    before: RevealStatus,
    after: RevealStatus,
    **values: object,
) -> bool:
    """Move an account's Reveal from `before` to `after`, only if it is still `before`: the
    one place its status changes, as a conditional update, so two clicks or a click and a
    revoke cannot both win."""
    moved = await session.execute(
        update(ServiceAccount)
        .where(col(ServiceAccount.id) == account_id, col(ServiceAccount.reveal_status) == before)
        .values(reveal_status=after, **values)
    )
    return bool(rowcount(moved))


async def _refused(runtime: Runtime, request_id: int, user: str, why: str) -> None:
    async with runtime.db.transaction() as session:
        audit.record(
            session,
            at=runtime.clock(),
            actor=user,
            action="reveal_refused",
            request_id=request_id,
            why=why[:300],
        )


async def _why_not(runtime: Runtime, request_id: int) -> str:
    request, account = await account_of(runtime, request_id)
    if request.status != RequestStatus.ACTIVE:
        return f"{request.short_id} is {request.status}: there is no token to reveal."
    if account.reveal_status == R.REVEALED and account.revealed_at:
        return (
            f"The token of {request.name} was already revealed at "
            f"{account.revealed_at:%Y-%m-%d %H:%M} UTC; it is shown only once."
        )
    if account.reveal_status == R.REVEALING:
        return (
            "The token is being made right now; it will appear here in a moment. "
            "Nothing more to click."
        )
    if account.reveal_status == R.MANUAL:
        return _manual_pending_text(request)
    return f"{request.short_id} has no token to reveal now."


# -- the reveal job ---------------------------------------------------------------------------


@dataclass
class _Reveal:
    """One run of the reveal job: the token rows it made, so it cleans up only its own."""

    runtime: Runtime
    request: ServiceAccountRequest
    account: ServiceAccount
    target: ReplyTarget
    made: list[ApiToken] = field(default_factory=list)


class _Overtaken(Exception):
    """The account is no longer active, or this reveal no longer wanted (a revoke came)."""


class _Handled(Exception):
    """A failure already recorded and told; nothing more to do."""


async def reveal(runtime: Runtime, job: Job) -> None:
    """Mint the token and deliver it ephemerally; on any failure revoke it and reopen Reveal."""
    assert job.request_id is not None
    request, account = await account_of(runtime, job.request_id)
    run = _Reveal(runtime, request, account, ReplyTarget(**job.payload))
    if account.reveal_status != R.REVEALING:
        # A retry of a finished job, or a revoke came first: tokens a crashed run may have
        # minted for it are found by label and revoked.
        await revoke_undelivered(runtime, account, only=(T.UNWANTED,))
        return
    try:
        lifetime = await token_lifetime(runtime, request, account)
    except NotAllowed as refused:
        await _reopen(run, "reveal_refused", str(refused))
        await _tell(run, str(refused))
        return
    try:
        await _deliver(run, *await _mint(run, lifetime))
    except _Overtaken:
        await _discard_mine(run, "the account was revoked while the token was being made")
        await _tell(run, await _overtaken_text(run))
    except _Handled:
        pass


async def _deliver(run: _Reveal, token: ApiToken, minted: MintedToken) -> None:
    runtime, request, account = run.runtime, run.request, run.account
    if not await _record_minted(run, token, minted):
        raise _Overtaken
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
    if not await _still_wanted(run, token):
        raise _Overtaken
    try:
        async with runtime.steps.step(Step.DELIVER_TOKEN):
            await runtime.notifier.deliver_token(run.target, delivery)
    except Exception as error:
        log.warning(
            "token delivery for %s failed (%s); revoking it", request.short_id, type(error).__name__
        )
        await _discard_mine(run, "the delivery failed")
        await _reopen(run, "delivery_failed", type(error).__name__)
        await _tell(run, "The token could not be delivered, so it was revoked. Click Reveal again.")
        return
    if not await _delivered(run, token):
        # A revoke landed between the check and the delivery: it revokes this token too.
        await _tell(
            run,
            f"`{account.name}` was revoked just now; the token shown above no longer works.",
        )


async def _mint(run: _Reveal, lifetime: int) -> tuple[ApiToken, MintedToken]:
    """Mint a token, trying again (bounded) while Atlassian fails in a passing way.

    A mint is not idempotent, so the client never re-sends one; here each try first revokes,
    by its unique label, whatever an earlier try may have minted, then mints under a new label.
    """
    runtime = run.runtime
    rule, attempt = runtime.retries.mint_token, 1
    # Left by a run of this job that crashed (Reveal is this run's alone while it is revealing).
    await revoke_undelivered(runtime, run.account)
    while True:
        token = await _start_mint(run, lifetime)
        try:
            async with runtime.steps.step(Step.MINT_TOKEN):
                minted = await runtime.atlassian.mint_token(
                    run.account.atlassian_account_id or "",
                    token.label,
                    token.scopes,
                    token.expires_at or runtime.clock(),
                    account_id=run.account.atlassian_id,
                )
        except MintRefused as refused:
            # Not a passing failure, and no other route mints: trying again would fail again.
            await _manual_step(run, token, refused)
            raise _Handled from None
        except AtlassianError as error:
            if not error.transient or attempt >= rule.attempts:
                await _mint_failed(run, error, attempt)
                raise _Handled from None
            log.info("mint for %s failed (%s); trying again", run.request.short_id, error)
            await asyncio.sleep(rule.wait(attempt))
            await _discard_mine(run, "a mint that may have failed half-way")
            attempt += 1
            continue
        return token, minted


async def _start_mint(run: _Reveal, lifetime: int) -> ApiToken:
    """Record the token about to be minted, if the account is still active and the reveal
    still wanted (checked with the request row locked, as a revoke locks it)."""
    runtime, request, account = run.runtime, run.request, run.account
    now = runtime.clock()
    # A unique label, recorded before the call: if the answer is lost, the token is found by its
    # label and revoked instead of living on unknown.
    token = ApiToken(
        account_id=account.id or 0,
        scopes=list(request.scopes),
        label=f"sabot-{request.short_id.lower()}-{secrets.token_hex(4)}",
        expires_at=now + timedelta(days=lifetime),
        created_at=now,
    )
    async with runtime.db.transaction() as session:
        if not await _wanted(session, request.id or 0, account.id or 0):
            raise _Overtaken
        session.add(token)
    run.made.append(token)
    return token


async def _wanted(session: AsyncSession, request_id: int, account_id: int) -> bool:
    """The account is active and its Reveal held by a reveal in progress."""
    status = (await locked_request(session, request_id)).status
    reveal_status = (
        await session.execute(
            select(col(ServiceAccount.reveal_status)).where(col(ServiceAccount.id) == account_id)
        )
    ).scalar_one()
    return status == RequestStatus.ACTIVE and reveal_status == R.REVEALING


async def _record_minted(run: _Reveal, token: ApiToken, minted: MintedToken) -> bool:
    """The mint's answer, recorded only while it is still wanted; False if a revoke came."""
    token.atlassian_token_id = minted.id  # kept in memory: a discard revokes it by id
    async with run.runtime.db.transaction() as session:
        if not await _wanted(session, run.request.id or 0, run.account.id or 0):
            return False
        recorded = await session.execute(
            update(ApiToken)
            .where(col(ApiToken.id) == token.id, col(ApiToken.state) == T.MINTING)
            .values(state=T.MINTED, atlassian_token_id=minted.id)
        )
    return rowcount(recorded) == 1


async def _still_wanted(run: _Reveal, token: ApiToken) -> bool:
    async with run.runtime.db.transaction() as session:
        state = (
            await session.execute(select(col(ApiToken.state)).where(col(ApiToken.id) == token.id))
        ).scalar_one()
        return state == T.MINTED and await _wanted(
            session, run.request.id or 0, run.account.id or 0
        )


async def _mint_failed(run: _Reveal, error: AtlassianError, tries: int) -> None:
    """Reopen Reveal and tell the owner; a token the failed tries may have left is revoked."""
    if error.transient:
        # The last try may have minted a token: revoke it while Reveal is still closed to
        # other clicks (revoking later could hit the token of a newer click).
        kept = "no token was kept"
        try:
            await _discard_mine(run, "minted but never delivered")
        except AtlassianError as revoking:
            log.warning("could not revoke yet (%s); the next Reveal will", revoking.reason)
            kept = "a token it may have made will be revoked at your next click"
        text = (
            f"Atlassian could not mint the token after {tries} tries ({error.reason}); "
            f"{kept}. Click Reveal to try again in a while."
        )
    else:
        await _set_states(run, T.MINTING, T.FAILED)
        text = (
            f"Atlassian could not mint the token: {error.reason}. Click Reveal to try again "
            "later; if it fails again, an admin needs to look at it."
        )
    if not await _reopen(run, "mint_failed", error.reason):
        text = await _overtaken_text(run)  # a revoke took Reveal meanwhile
    await _tell(run, text)


def _manual_pending_text(request: ServiceAccountRequest) -> str:
    return (
        f"Atlassian does not let sabot mint the token of `{request.name}` "
        f"({request.short_id}). The account exists and has its product access; an admin "
        "has been asked to create the token by hand in the Atlassian admin console and give "
        "it to you. Nothing more to click."
    )


async def _manual_step(run: _Reveal, token: ApiToken, refused: MintRefused) -> None:
    """The mint route refused for good: Reveal ends in a manual step, not a failure to retry.
    The account keeps its access; the admins are asked (a job, so it survives a crash) to
    make the token by hand, under this row's label, and the owner is told."""
    runtime, request, account = run.runtime, run.request, run.account
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        wanted = await _wanted(session, request.id or 0, account.id or 0)
        if wanted:
            await session.execute(
                update(ApiToken)
                .where(col(ApiToken.id) == token.id, col(ApiToken.state) == T.MINTING)
                .values(state=T.MANUAL)
            )
            await move_reveal(session, account.id, R.REVEALING, R.MANUAL)
            audit.record(
                session,
                at=now,
                actor="sabot",
                action="token_manual_step",
                request_id=account.request_id,
                label=token.label,
                scopes=token.scopes,
                expires_at=token.expires_at.isoformat() if token.expires_at else None,
                reason=refused.reason[:300],
            )
            queue.enqueue(
                session,
                JobKind.MANUAL_TOKEN,
                now=now,
                request_id=account.request_id,
                payload={"token_id": token.id, "reason": refused.reason[:500]},
            )
            queue.enqueue(session, JobKind.REFRESH, now=now, request_id=account.request_id)
            # Its warnings wait for the daily check to see it made (idle.py: _seen_made).
            schedule_end(session, token, account.request_id, now)
    if not wanted:  # a revoke took Reveal meanwhile; nothing was minted
        current, _ = await account_of(runtime, request.id or 0)
        await _tell(run, f"{current.short_id} (`{current.name}`) is {current.status} now.")
        return
    runtime.jobs_queued()
    log.info("mint for %s refused (%s): an admin makes it by hand", request.short_id, refused)
    await _tell(run, _manual_pending_text(request))


async def manual_token(runtime: Runtime, job: Job) -> None:
    """Ask every admin to make the refused token by hand, with what the policy would have
    used (the approvers' channel when no admin is named)."""
    request, account = await account_of(runtime, job.request_id or 0)
    async with runtime.db.reading() as session:
        token = await session.get(ApiToken, int(job.payload["token_id"]))
    if token is None or token.state != T.MANUAL:
        return  # revoked or rotated meanwhile: nothing to make any more
    manual = ManualToken(
        request.short_id,
        account.name,
        account.email or "",
        account.owner_id,
        token.label,
        list(token.scopes),
        token.expires_at or runtime.clock(),
        list(request.products),
        runtime.cloud_id,
        str(job.payload.get("reason", "")),
    )
    admins = sorted(await runtime.policy.people(runtime.policy.rules.admins))
    await runtime.notifier.ask_for_manual_token(admins, manual)


async def _set_states(run: _Reveal, before: TokenState, after: TokenState) -> None:
    async with run.runtime.db.transaction() as session:
        await session.execute(
            update(ApiToken)
            .where(col(ApiToken.id).in_([t.id for t in run.made]), col(ApiToken.state) == before)
            .values(state=after)
        )


async def _delivered(run: _Reveal, token: ApiToken) -> bool:
    """Recorded as delivered unless a revoke came meanwhile (its job revokes the token)."""
    runtime, account = run.runtime, run.account
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        delivered = await session.execute(
            update(ApiToken)
            .where(col(ApiToken.id) == token.id, col(ApiToken.state) == T.MINTED)
            .values(state=T.DELIVERED, delivered_at=now)
        )
        if not rowcount(delivered):
            return False
        await move_reveal(session, account.id, R.REVEALING, R.REVEALED, revealed_at=now)
        audit.record(
            session,
            at=now,
            actor="sabot",
            action="token_delivered",
            request_id=account.request_id,
            label=token.label,
            expires_at=token.expires_at.isoformat() if token.expires_at else None,
        )
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=account.request_id)
        schedule_expiry(session, runtime.policy, token, account.request_id, now)
        await replacement.on_token_delivered(session, account.request_id, now)
    runtime.jobs_queued()
    return True


async def _reopen(run: _Reveal, action: str, reason: str) -> bool:
    """Open Reveal again, if this reveal still holds it; False when a revoke took it."""
    runtime, account = run.runtime, run.account
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        reopened = await move_reveal(session, account.id, R.REVEALING, R.READY)
        audit.record(
            session,
            at=now,
            actor="sabot",
            action=action,
            request_id=account.request_id,
            labels=[t.label for t in run.made],
            reason=reason[:300],
        )
    return reopened


async def _overtaken_text(run: _Reveal) -> str:
    request, _ = await account_of(run.runtime, run.request.id or 0)
    return (
        f"{request.short_id} (`{request.name}`) is {request.status} now: the token made for "
        "your click was revoked at once and never shown."
    )


async def _tell(run: _Reveal, text: str) -> None:
    try:
        await run.runtime.notifier.reply(run.target, text)
    except Exception:
        log.warning("could not tell %s about a failed reveal", run.target.user_id, exc_info=True)


async def _revoke_at_atlassian(runtime: Runtime, account: ServiceAccount, token: ApiToken) -> None:
    """Revoke one token at Atlassian, found by id or else by its unique label."""
    atlassian_id = account.atlassian_account_id or ""
    token_id = token.atlassian_token_id
    if token_id is None:
        remote = await runtime.atlassian.tokens(atlassian_id, account.atlassian_id)
        token_id = next((t.id for t in remote if t.label == token.label), None)
    if token_id is not None:
        await runtime.atlassian.revoke_token(atlassian_id, token_id)


async def _revoke_rows(
    runtime: Runtime, account: ServiceAccount, tokens: list[ApiToken], why: str
) -> None:
    for token in tokens:
        await _revoke_at_atlassian(runtime, account, token)
        now = runtime.clock()
        async with runtime.db.transaction() as session:
            revoked = await session.execute(
                update(ApiToken)
                .where(col(ApiToken.id) == token.id, col(ApiToken.state).in_(UNDELIVERED))
                .values(state=T.REVOKED, revoked_at=now)
            )
            if rowcount(revoked):
                audit.record(
                    session,
                    at=now,
                    actor="sabot",
                    action="token_revoked",
                    request_id=account.request_id,
                    label=token.label,
                    why=why,
                )


async def _discard_mine(run: _Reveal, why: str) -> None:
    """Revoke every token this run made that never reached the owner (by the id Atlassian
    answered, else by label)."""
    async with run.runtime.db.reading() as session:
        undelivered = set(
            (
                await session.execute(
                    select(col(ApiToken.id)).where(
                        col(ApiToken.id).in_([t.id for t in run.made]),
                        col(ApiToken.state).in_(UNDELIVERED),
                    )
                )
            )
            .scalars()
            .all()
        )
    mine = [t for t in run.made if t.id in undelivered]
    await _revoke_rows(run.runtime, run.account, mine, why)


async def revoke_undelivered(
    runtime: Runtime, account: ServiceAccount, only: tuple[TokenState, ...] = tuple(UNDELIVERED)
) -> None:
    """Tokens minted (or maybe minted) but never delivered are revoked, never kept."""
    async with runtime.db.reading() as session:
        leftovers = (
            (
                await session.execute(
                    select(ApiToken).where(
                        col(ApiToken.account_id) == account.id, col(ApiToken.state).in_(only)
                    )
                )
            )
            .scalars()
            .all()
        )
    await _revoke_rows(runtime, account, list(leftovers), "minted but never delivered")


async def give_up(runtime: Runtime, job: Job, reason: str) -> None:
    """A reveal that kept failing: reopen the button and tell the owner."""
    _, account = await account_of(runtime, job.request_id or 0)
    async with runtime.db.transaction() as session:
        await move_reveal(session, account.id, R.REVEALING, R.READY)
        audit.record(
            session,
            at=runtime.clock(),
            actor="sabot",
            action="reveal_failed",
            request_id=job.request_id,
            reason=reason[:300],
        )
    try:
        await runtime.notifier.reply(
            ReplyTarget(**job.payload),
            "The token could not be revealed just now. Click Reveal again in a while.",
        )
    except Exception:
        log.warning("could not tell the owner about a failed reveal", exc_info=True)
