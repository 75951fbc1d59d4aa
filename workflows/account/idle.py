"""Unused credentials: the daily idle check, and what owners and admins decide about it.

Each day every held account's tokens are read at Atlassian (their last use). A token unused
for `lifecycle.idle_token_days` (or never used since it was made, that long ago) gets its
owner a Keep / Revoke question; an account none of whose live tokens was used for
`lifecycle.idle_account_days`, or that has had no live token that long, is proposed for
deletion to its owner and the admins. A question is asked once: a Keep (or an unanswered
question) holds it back until another N days have gone by.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows import audit
from workflows.account import accounts
from workflows.account.lifecycle import schedule_expiry
from workflows.account.token_use import made, match, moment, remote_tokens, use_of
from workflows.db import rowcount
from workflows.errors import Conflict, NotFound
from workflows.jobs import queue
from workflows.models import ApiToken, Job, ServiceAccount, ServiceAccountRequest
from workflows.ports import IdleAccount, IdleToken, TokenUse
from workflows.providers.atlassian_contract import RemoteToken
from workflows.runtime import Runtime
from workflows.states import JobKind, RequestStatus, TokenState

CHECK_EVERY = timedelta(days=1)
HELD = (RequestStatus.ACTIVE.value, RequestStatus.REVOKED.value)
REVOKED_WHY = "idle: revoked from the unused-token question"


# -- the daily check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seen:
    token: ApiToken
    use: TokenUse


async def check_idle(runtime: Runtime, job: Job) -> None:
    """The daily round over every held account (a failed read skips that account today)."""
    async with runtime.db.reading() as session:
        held = (
            (
                await session.execute(
                    select(ServiceAccount)
                    .join(
                        ServiceAccountRequest,
                        col(ServiceAccountRequest.id) == col(ServiceAccount.request_id),
                    )
                    .where(col(ServiceAccountRequest.status).in_(HELD))
                    .order_by(col(ServiceAccount.id))
                )
            )
            .scalars()
            .all()
        )
    for account in held:
        await _check_account(runtime, account)
    runtime.jobs_queued()


async def _token_rows(runtime: Runtime, account: ServiceAccount) -> list[ApiToken]:
    async with runtime.db.reading() as session:
        return list(
            (
                await session.execute(
                    select(ApiToken)
                    .where(col(ApiToken.account_id) == account.id)
                    .order_by(col(ApiToken.id))
                )
            )
            .scalars()
            .all()
        )


async def _check_account(runtime: Runtime, account: ServiceAccount) -> None:
    now, lifecycle = runtime.clock(), runtime.policy.rules.lifecycle
    rows = await _token_rows(runtime, account)
    # A token an admin made by hand (the mint was refused) is found by its label: its use
    # counts for the account, but only sabot's own tokens are offered for revoking.
    live = [t for t in rows if t.state in (TokenState.DELIVERED, TokenState.MANUAL)]
    seen: list[_Seen] = []
    if live:
        remote = await remote_tokens(runtime, account)
        if remote is None:
            return  # unknown today: nobody is asked on a guess
        seen = await _record_use(runtime, account, live, remote, now)
        if not seen:
            return  # its live tokens are not at Atlassian: drift, for the reconcile report
    idle_days = _account_idle_days(account, rows, seen, now)
    if idle_days >= lifecycle.idle_account_days and await _propose(
        runtime, account, idle_days, len(seen), now
    ):
        return  # the account question covers its tokens
    for item in seen:
        askable = item.token.state == TokenState.DELIVERED and item.token.revoke_after is None
        if askable and item.use.idle_days >= lifecycle.idle_token_days:
            await _ask(runtime, account, item, now)


async def _record_use(
    runtime: Runtime,
    account: ServiceAccount,
    live: list[ApiToken],
    remote: list[RemoteToken],
    now: datetime,
) -> list[_Seen]:
    """Store each live token's last use as Atlassian gives it; a token Atlassian does not
    list is left to the reconcile report."""
    seen = []
    async with runtime.db.transaction() as session:
        for token in live:
            found = match(token, remote)
            if found is None:
                continue
            last_used = moment(found.last_used)
            await session.execute(
                update(ApiToken)
                .where(col(ApiToken.id) == token.id)
                .values(last_used_at=last_used, use_checked_at=now)
            )
            if token.state == TokenState.MANUAL:
                await _seen_made(session, runtime, account, token, found, now)
            seen.append(_Seen(token, use_of(now, last_used, made(token, found))))
    return seen


async def _seen_made(
    session: AsyncSession,
    runtime: Runtime,
    account: ServiceAccount,
    token: ApiToken,
    found: RemoteToken,
    now: datetime,
) -> None:
    """A hand-made token Atlassian lists: the first sight schedules its expiry warnings (a
    token never made gets none), and an expiry other than the one asked for (the admin chose
    it) replaces it; the old schedule's jobs then find they are stale."""
    actual = _other_expiry(token, found)
    if actual is not None:
        await session.execute(
            update(ApiToken).where(col(ApiToken.id) == token.id).values(expires_at=actual)
        )
        audit.record(
            session,
            at=now,
            actor="sabot",
            action="token_expiry_seen",
            request_id=account.request_id,
            label=token.label,
            expires_at=actual.isoformat(),
            asked=token.expires_at.isoformat() if token.expires_at else None,
        )
        token.expires_at = actual
    if actual is not None or token.use_checked_at is None:
        schedule_expiry(session, runtime.policy, token, account.request_id, now)


def _other_expiry(token: ApiToken, found: RemoteToken) -> datetime | None:
    """Atlassian's expiry of the token when it is not the one sabot has (an hour's leeway)."""
    actual = moment(found.expiry)
    if actual is None or token.expires_at is None:
        return None
    return actual if abs(actual - token.expires_at) >= timedelta(hours=1) else None


def _account_idle_days(
    account: ServiceAccount, rows: list[ApiToken], seen: list[_Seen], now: datetime
) -> int:
    """Days since any live token was used (or made); with none live, since the last one
    ended or, if it never had one, since the account was made."""
    if seen:
        return min(item.use.idle_days for item in seen)
    ends = [account.created_at]
    for token in rows:
        ends += [t for t in (token.last_used_at, token.revoked_at) if t is not None]
        if token.state == TokenState.EXPIRED and token.expires_at is not None:
            ends.append(token.expires_at)
    return max((now - max(ends)).days, 0)


def _not_since(column: Any, cutoff: datetime) -> Any:
    return or_(col(column).is_(None), col(column) <= cutoff)


async def _ask(runtime: Runtime, account: ServiceAccount, item: _Seen, now: datetime) -> None:
    """Mark the token asked (unless asked or kept within N days) and queue the owner's DM,
    in one transaction: a check run twice asks once."""
    cutoff = now - timedelta(days=runtime.policy.rules.lifecycle.idle_token_days)
    async with runtime.db.transaction() as session:
        asked = await session.execute(
            update(ApiToken)
            .where(
                col(ApiToken.id) == item.token.id,
                col(ApiToken.state) == TokenState.DELIVERED,
                _not_since(ApiToken.idle_asked_at, cutoff),
                _not_since(ApiToken.idle_kept_at, cutoff),
            )
            .values(idle_asked_at=now)
        )
        if not rowcount(asked):
            return
        audit.record(
            session,
            at=now,
            actor="sabot",
            action="idle_token_flagged",
            request_id=account.request_id,
            label=item.token.label,
            idle_days=item.use.idle_days,
            never_used=item.use.never_used,
        )
        queue.enqueue(
            session,
            JobKind.ASK_IDLE_TOKEN,
            now=now,
            request_id=account.request_id,
            payload={
                "token_id": item.token.id,
                "idle_days": item.use.idle_days,
                "never_used": item.use.never_used,
            },
        )


async def _propose(
    runtime: Runtime, account: ServiceAccount, idle_days: int, live_tokens: int, now: datetime
) -> bool:
    """Mark the account proposed (unless proposed or kept within N days) and queue the DMs.
    True when it is proposed now or still waiting on an answer (no token questions then)."""
    cutoff = now - timedelta(days=runtime.policy.rules.lifecycle.idle_account_days)
    async with runtime.db.transaction() as session:
        proposed = await session.execute(
            update(ServiceAccount)
            .where(
                col(ServiceAccount.id) == account.id,
                _not_since(ServiceAccount.idle_proposed_at, cutoff),
                _not_since(ServiceAccount.idle_kept_at, cutoff),
            )
            .values(idle_proposed_at=now)
        )
        if not rowcount(proposed):
            kept = account.idle_kept_at is not None and account.idle_kept_at > cutoff
            return not kept
        audit.record(
            session,
            at=now,
            actor="sabot",
            action="idle_account_flagged",
            request_id=account.request_id,
            idle_days=idle_days,
            live_tokens=live_tokens,
        )
        queue.enqueue(
            session,
            JobKind.PROPOSE_DELETION,
            now=now,
            request_id=account.request_id,
            payload={"idle_days": idle_days, "live_tokens": live_tokens},
        )
    return True


# -- the DMs -------------------------------------------------------------------------------------


async def _token_and_account(
    session: AsyncSession, token_id: int
) -> tuple[ApiToken, ServiceAccount]:
    token = await session.get(ApiToken, token_id)
    account = await session.get(ServiceAccount, token.account_id) if token else None
    if token is None or account is None:
        raise NotFound("That button does not point at a token I know.")
    return token, account


async def ask_idle_token(runtime: Runtime, job: Job) -> None:
    async with runtime.db.reading() as session:
        token, account = await _token_and_account(session, int(job.payload["token_id"]))
    if token.state != TokenState.DELIVERED or token.revoke_after is not None:
        return  # revoked or rotated out since: nothing to ask
    use = TokenUse(int(job.payload["idle_days"]), bool(job.payload["never_used"]))
    await runtime.notifier.ask_idle_token(
        IdleToken(
            account.request_id,
            account.name,
            account.owner_id,
            token.id or 0,
            token.label,
            use,
            token.expires_at,
        )
    )


async def propose_deletion(runtime: Runtime, job: Job) -> None:
    assert job.request_id is not None
    async with runtime.db.reading() as session:
        account = (
            await session.execute(
                select(ServiceAccount).where(col(ServiceAccount.request_id) == job.request_id)
            )
        ).scalar_one()
    idle = IdleAccount(
        job.request_id,
        account.name,
        account.owner_id,
        int(job.payload["idle_days"]),
        int(job.payload["live_tokens"]),
    )
    admins = await runtime.policy.people(runtime.policy.rules.admins)
    for user in sorted({account.owner_id, *admins}):
        await runtime.notifier.propose_deletion(user, idle, user in admins)


# -- what the buttons do -------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    request_id: int
    account_name: str
    label: str


async def _allowed_token(runtime: Runtime, token_id: int, user: str, action: str) -> ApiToken:
    """The token, if `user` owns its account or is an admin (a refusal is audited)."""
    async with runtime.db.reading() as session:
        token, account = await _token_and_account(session, token_id)
    await accounts.check_allowed(runtime, f"SA-{account.request_id}", user, action)
    return token


async def _account_of(runtime: Runtime, token: ApiToken) -> ServiceAccount:
    async with runtime.db.reading() as session:
        return (await _token_and_account(session, token.id or 0))[1]


async def keep_token(runtime: Runtime, token_id: int, user: str) -> Decided:
    """Keep: not asked about this token again until it has been idle another N days."""
    token = await _allowed_token(runtime, token_id, user, "keep")
    account = await _account_of(runtime, token)
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        kept = await session.execute(
            update(ApiToken)
            .where(col(ApiToken.id) == token_id, col(ApiToken.state) == TokenState.DELIVERED)
            .values(idle_kept_at=now)
        )
        if not rowcount(kept):
            raise Conflict(
                "The token {} is {}: there is nothing to keep.", token.label, token.state
            )
        audit.record(
            session,
            at=now,
            actor=user,
            action="idle_token_kept",
            request_id=account.request_id,
            label=token.label,
        )
    return Decided(account.request_id, account.name, token.label)


async def revoke_token(runtime: Runtime, token_id: int, user: str) -> Decided:
    """Revoke: through the revocation job rotated-out tokens use (revoke at Atlassian, then
    the row and the trail), due now."""
    token = await _allowed_token(runtime, token_id, user, "revoke")
    account = await _account_of(runtime, token)
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        due = await session.execute(
            update(ApiToken)
            .where(
                col(ApiToken.id) == token_id,
                col(ApiToken.state) == TokenState.DELIVERED,
                or_(col(ApiToken.revoke_after).is_(None), col(ApiToken.revoke_after) > now),
            )
            .values(revoke_after=now)
        )
        if not rowcount(due):
            raise Conflict(
                "The token {} is {}: there is nothing to revoke.", token.label, token.state
            )
        audit.record(
            session,
            at=now,
            actor=user,
            action="idle_token_revoke_requested",
            request_id=account.request_id,
            label=token.label,
        )
        queue.enqueue(
            session,
            JobKind.REVOKE_TOKEN,
            now=now,
            request_id=account.request_id,
            payload={"token_id": token_id, "why": REVOKED_WHY},
        )
    runtime.jobs_queued()
    return Decided(account.request_id, account.name, token.label)


async def keep_account(runtime: Runtime, ref: str, user: str) -> Decided:
    """Keep an account proposed for deletion: not proposed again for another N days, and
    its live tokens count as kept too (the owner just said they are needed)."""
    row = await accounts.check_allowed(runtime, ref, user, "keep")
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        account_id = (
            await session.execute(
                update(ServiceAccount)
                .where(col(ServiceAccount.request_id) == row.request_id)
                .values(idle_kept_at=now)
                .returning(col(ServiceAccount.id))
            )
        ).scalar_one()
        await session.execute(
            update(ApiToken)
            .where(
                col(ApiToken.account_id) == account_id,
                col(ApiToken.state) == TokenState.DELIVERED,
            )
            .values(idle_kept_at=now)
        )
        audit.record(
            session, at=now, actor=user, action="idle_account_kept", request_id=row.request_id
        )
    return Decided(row.request_id, row.name, "")
