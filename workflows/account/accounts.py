"""Service accounts after they exist: find, list, inspect, rotate, revoke, delete.

The request's status is the account's status (active, revoked, deleted, failed); the slow
Atlassian work of revoking and deleting runs as jobs after the person's click.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, cast, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import String
from sqlmodel import col

from workflows import audit
from workflows.account.reveal import token_lifetime
from workflows.db import rowcount
from workflows.errors import Conflict, NotAllowed, NotFound, UserError
from workflows.jobs import queue
from workflows.models import (
    ApiToken,
    AuditEvent,
    ServiceAccount,
    ServiceAccountRequest,
    UTCDateTime,
)
from workflows.ports import RequestSnapshot
from workflows.request.requests import locked_request, refuse, snapshot
from workflows.request.validation import SHORT_ID
from workflows.runtime import Runtime
from workflows.states import (
    LIVE_TOKENS,
    Event,
    JobKind,
    RequestStatus,
    RevealStatus,
    TokenState,
    transition,
)

S = RequestStatus
LISTED = (S.ACTIVE, S.REVOKED, S.DELETED, S.FAILED)  # an account exists, or did
PAGE_SIZE = 20


@dataclass(frozen=True)
class AccountFilter:
    owner: str | None = None
    product: str | None = None
    status: str | None = None
    expiring_within: timedelta | None = None
    text: str | None = None


@dataclass(frozen=True)
class AccountRow:
    request_id: int
    name: str
    owner_id: str
    products: list[str]
    status: str
    token_expires_at: datetime | None
    orphaned: bool


@dataclass(frozen=True)
class AccountPage:
    rows: list[AccountRow]
    offset: int
    total: int
    page_size: int = PAGE_SIZE

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total


@dataclass(frozen=True)
class AccountDetails:
    snapshot: RequestSnapshot
    tokens: list[ApiToken] = field(default_factory=list)
    history: list[AuditEvent] = field(default_factory=list)


def live_token() -> ColumnElement[bool]:
    """A token that works at Atlassian: delivered by sabot, or made by hand and seen there by
    a daily check (an admin may not have made it yet)."""
    t = ApiToken
    return or_(
        col(t.state) == TokenState.DELIVERED,
        and_(col(t.state) == TokenState.MANUAL, col(t.use_checked_at).is_not(None)),
    )


def _live_token_expiry() -> Any:
    """The latest expiry among an account's live tokens, looked up for each account row (by
    the index on api_token.account_id): only the rows a page shows pay for it, where a join
    with every account's expiry aggregated the whole token table for each page."""
    t = ApiToken
    return (
        select(func.max(col(t.expires_at)))
        .where(col(t.account_id) == col(ServiceAccount.id), live_token())
        .correlate(ServiceAccount)
        .scalar_subquery()
    )


@dataclass(frozen=True)
class _Shape:
    """Which filters a list uses; their values are bound when the query runs."""

    owner: bool
    product: bool
    status: bool
    expiring: bool
    text: bool


@cache
def _list_queries(shape: _Shape) -> tuple[Select[Any], Select[Any]]:
    """The count and the page query for one shape of filters, built once: building a statement
    and its cache key cost about as much as running it."""
    r, a, expiry = ServiceAccountRequest, ServiceAccount, _live_token_expiry()
    where: list[ColumnElement[bool]] = [col(r.status).in_([s.value for s in LISTED])]
    if shape.owner:
        where.append(col(r.requester_id) == bindparam("owner"))
    if shape.status:
        where.append(col(r.status) == bindparam("status"))
    if shape.product:  # products is a JSON list; its text holds "jira" with the quotes
        where.append(cast(col(r.products), String).like(bindparam("product")))
    if shape.expiring:  # from now on: a token past its expiry is not "expiring"
        where.append(expiry > bindparam("now", type_=UTCDateTime()))
        where.append(expiry <= bindparam("expires_before", type_=UTCDateTime()))
    if shape.text:
        where.append(func.lower(col(r.name)).contains(bindparam("text")))
    joined = col(a.request_id) == col(r.id)
    counted = select(func.count()).select_from(r).join(a, joined).where(*where)
    page = (
        select(r, a, expiry.label("expires_at"))
        .join(a, joined)
        .where(*where)
        .order_by(col(r.name), col(r.id))
        .offset(bindparam("offset"))
        .limit(PAGE_SIZE)
    )
    return counted, page


async def list_accounts(
    runtime: Runtime, viewer: str, flt: AccountFilter, offset: int = 0
) -> AccountPage:
    """One page, sorted by name. A requester sees their own accounts; an admin sees all."""
    if not await runtime.policy.is_admin(viewer):
        if flt.owner and flt.owner != viewer:
            raise NotAllowed("Only admins can list other people's accounts.")
        flt = AccountFilter(viewer, flt.product, flt.status, flt.expiring_within, flt.text)
    start = max(offset, 0)
    within = flt.expiring_within
    counted, page = _list_queries(
        _Shape(
            bool(flt.owner), bool(flt.product), bool(flt.status), within is not None, bool(flt.text)
        )
    )
    values: dict[str, Any] = {
        "owner": flt.owner,
        "status": flt.status,
        "product": f'%"{flt.product}"%',
        "now": runtime.clock(),
        "expires_before": runtime.clock() + within if within is not None else None,
        "text": (flt.text or "").lower(),
    }
    async with runtime.db.reading() as session:  # one snapshot: the count matches the page
        found = (await session.execute(page, {**values, "offset": start})).all()
        if 0 < len(found) < PAGE_SIZE or (not found and start == 0):
            total = start + len(found)  # the list ends on this page: nothing left to count
        else:
            total = int((await session.execute(counted, values)).scalar_one())
    rows = [
        AccountRow(
            req.id or 0,
            req.name,
            req.requester_id,
            list(req.products),
            req.status,
            expires,
            acc.orphaned_at is not None,
        )
        for req, acc, expires in found
    ]
    return AccountPage(rows, start, total)


class Ambiguous(UserError):
    """A name several accounts share: the person must say which, by its request id."""


async def find(session: AsyncSession, ref: str) -> tuple[ServiceAccountRequest, ServiceAccount]:
    """The account `ref` names: a request id (`SA-12`), or a name that only one account that
    exists (or may exist) at Atlassian has; else the newest of that name (deleted, or failed
    before anything was made). A name two such accounts share is refused, naming both."""
    r, a = ServiceAccountRequest, ServiceAccount
    joined = select(r, a).join(a, col(a.request_id) == col(r.id))
    short = SHORT_ID.fullmatch(ref.strip())
    if short:
        found = (await session.execute(joined.where(col(r.id) == int(short.group(1))))).first()
        if found is None:
            raise NotFound("There is no service account {}.", ref.strip().upper())
        return found[0], found[1]
    candidates = [
        (row[0], row[1])
        for row in (
            await session.execute(joined.where(col(r.name) == ref).order_by(col(r.id).desc()))
        ).all()
    ]
    if not candidates:
        raise NotFound("There is no service account named {}.", ref)
    held = [(req, acc) for req, acc in candidates if _may_exist(req, acc)]
    if len(held) > 1:
        which = "; ".join(
            f"{req.short_id} ({req.status}, owner <@{acc.owner_id}>)" for req, acc in held
        )
        raise Ambiguous(
            f"{len(held)} accounts are named `{ref}`: {which}. "
            f"Say which one by its id, for example `{held[-1][0].short_id}`."
        )
    return held[0] if held else candidates[0]


def _may_exist(request: ServiceAccountRequest, account: ServiceAccount) -> bool:
    """Whether an account of this request exists at Atlassian, or may (a failed request's
    create may have happened): such accounts must stay reachable by name."""
    if request.status == S.DELETED:
        return False
    if request.status == S.FAILED:
        return account.create_started_at is not None or account.atlassian_account_id is not None
    return True


async def _owned(
    runtime: Runtime, ref: str, user: str, action: str, *, admin_only: bool = False
) -> tuple[ServiceAccountRequest, ServiceAccount, bool]:
    """The account, if `user` owns it (unless admin_only) or is an admin; else refused."""
    async with runtime.db.reading() as session:
        request, account = await find(session, ref)
    admin = await runtime.policy.is_admin(user)
    if admin or (not admin_only and user == account.owner_id):
        return request, account, admin
    await refuse(runtime, request, user, f"{action}_refused", "not owner or admin")
    who = "an admin" if admin_only else "its owner or an admin"
    raise NotAllowed(f"Only {who} can {action} {request.name} ({request.short_id}).")


async def check_allowed(runtime: Runtime, ref: str, user: str, action: str) -> AccountRow:
    """Before asking "are you sure?": the account exists and `user` may `action` it."""
    request, account, _ = await _owned(runtime, ref, user, action, admin_only=action == "delete")
    return AccountRow(
        request.id or 0,
        request.name,
        account.owner_id,
        list(request.products),
        request.status,
        None,
        account.orphaned_at is not None,
    )


async def details(runtime: Runtime, ref: str, viewer: str) -> AccountDetails:
    request, account, _ = await _owned(runtime, ref, viewer, "see")
    assert request.id is not None
    async with runtime.db.transaction() as session:
        tokens = (
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
        history = (
            (
                await session.execute(
                    select(AuditEvent)
                    .where(col(AuditEvent.request_id) == request.id)
                    .order_by(col(AuditEvent.id))
                )
            )
            .scalars()
            .all()
        )
    return AccountDetails(await snapshot(runtime, request.id), list(tokens), list(history))


@dataclass(frozen=True)
class Rotation:
    request_id: int
    name: str
    owner_id: str
    revoke_after: datetime
    old_tokens: int


async def rotate(runtime: Runtime, ref: str, user: str, *, revoke_now: bool = False) -> Rotation:
    """Offer the owner a new token (Reveal); the old ones are revoked after the grace period.
    Today's policy applies to the new token (reveal.token_lifetime), and an admin's revoke is
    undone only by an admin."""
    request, account, admin = await _owned(runtime, ref, user, "rotate")
    await token_lifetime(runtime, request, account)
    now = runtime.clock()
    revoke_after = now if revoke_now else now + runtime.policy.rules.lifecycle.rotation_grace
    async with runtime.db.transaction() as session:
        restored = await _reopen_reveal(session, request.id or 0, user, admin, now)
        old = await _schedule_revocations(session, account, revoke_after, now)
        audit.record(
            session,
            at=now,
            actor=user,
            action="rotation_started",
            request_id=request.id,
            old_tokens=old,
            revoke_after=revoke_after.isoformat(),
        )
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=request.id)
        queue.enqueue(session, JobKind.OFFER_TOKEN, now=now, request_id=request.id)
        if restored is not None:
            queue.enqueue(
                session,
                JobKind.TELL_APPROVERS,
                now=now,
                request_id=request.id,
                payload={"text": restored},
            )
    runtime.jobs_queued()
    return Rotation(request.id or 0, request.name, account.owner_id, revoke_after, old)


async def _reopen_reveal(
    session: AsyncSession, request_id: int, user: str, admin: bool, now: datetime
) -> str | None:
    """Open Reveal for a new token, deciding on the request as it is now (its row locked, as a
    revoke locks it). A revoked account is restored first; what the approvers are told of
    that, when an admin had revoked it, is returned."""
    request = await locked_request(session, request_id)
    account = (
        await session.execute(
            select(ServiceAccount)
            .where(col(ServiceAccount.request_id) == request_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    restored = None
    if request.status == S.REVOKED:
        restored = await _restore(session, request, account, user, admin, now)
    elif request.status != S.ACTIVE:
        raise Conflict(
            f"{request.name} ({request.short_id}) is {request.status}: it cannot get a new token."
        )
    reopened = await session.execute(
        update(ServiceAccount)
        .where(
            col(ServiceAccount.id) == account.id,
            col(ServiceAccount.reveal_status) != RevealStatus.REVEALING,
        )
        .values(reveal_status=RevealStatus.READY)
    )
    if not rowcount(reopened):
        raise Conflict("A token is being revealed right now; try again in a moment.")
    return restored


async def _restore(
    session: AsyncSession,
    request: ServiceAccountRequest,
    account: ServiceAccount,
    user: str,
    admin: bool,
    now: datetime,
) -> str | None:
    """Reactivate a revoked account. An admin's revoke is not the owner's to undo."""
    by_admin = account.revoked_by_admin
    if by_admin and not admin:
        raise NotAllowed(
            f"`{request.name}` ({request.short_id}) was revoked by an admin, "
            f"<@{account.revoked_by}>; only an admin can give it a new token."
        )
    await transition(session, request.id or 0, Event.REACTIVATE, now)
    audit.record(
        session,
        at=now,
        actor=user,
        action="account_reactivated",
        request_id=request.id,
        revoked_by=account.revoked_by,
        revoked_by_admin=by_admin,
    )
    if not by_admin:
        return None
    return (
        f":unlock: <@{user}> restored `{request.name}` ({request.short_id}), whose tokens the "
        f"admin <@{account.revoked_by}> had revoked; a new token goes to its owner, "
        f"<@{account.owner_id}>."
    )


async def _schedule_revocations(
    session: AsyncSession, account: ServiceAccount, revoke_after: datetime, now: datetime
) -> int:
    live = (
        (
            await session.execute(
                select(ApiToken).where(
                    col(ApiToken.account_id) == account.id,
                    col(ApiToken.state).in_(LIVE_TOKENS),
                    or_(
                        col(ApiToken.revoke_after).is_(None),
                        col(ApiToken.revoke_after) > revoke_after,
                    ),
                )
            )
        )
        .scalars()
        .all()
    )
    for token in live:
        token.revoke_after = revoke_after
        queue.enqueue(
            session,
            JobKind.REVOKE_TOKEN,
            now=now,
            request_id=account.request_id,
            payload={"token_id": token.id},
            delay=max(revoke_after - now, timedelta(0)),
        )
    return len(live)


async def revoke_all(runtime: Runtime, ref: str, user: str) -> ServiceAccountRequest:
    """Every token of the account is revoked; the account stays (a new token reactivates it)."""
    request, account, admin = await _owned(runtime, ref, user, "revoke")
    return await _retire(
        runtime,
        request,
        user,
        Event.REVOKE,
        JobKind.REVOKE_ALL,
        f"{request.name} ({request.short_id}) is {request.status}: there are no tokens to revoke.",
        as_admin=admin and user != account.owner_id,
    )


async def delete(runtime: Runtime, ref: str, user: str) -> ServiceAccountRequest:
    """Admins only: revoke the tokens and delete the account at Atlassian (kept 14 days)."""
    request, _, _ = await _owned(runtime, ref, user, "delete", admin_only=True)
    return await _retire(
        runtime,
        request,
        user,
        Event.DELETE,
        JobKind.DELETE_ACCOUNT,
        f"{request.name} ({request.short_id}) is {request.status}: it cannot be deleted.",
        as_admin=True,
    )


async def _retire(
    runtime: Runtime,
    request: ServiceAccountRequest,
    user: str,
    event: Event,
    job: JobKind,
    refusal: str,
    *,
    as_admin: bool,
) -> ServiceAccountRequest:
    """Move the request on, lock Reveal, and leave the Atlassian work to a job. A mint in
    flight is marked unwanted in the same transaction: when it lands, it is revoked."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        assert request.id is not None
        if not await transition(session, request.id, event, now, decided_by=user):
            raise Conflict(refusal)
        await session.execute(
            update(ServiceAccount)
            .where(col(ServiceAccount.request_id) == request.id)
            .values(reveal_status=RevealStatus.LOCKED, revoked_by=user, revoked_by_admin=as_admin)
        )
        await session.execute(
            update(ApiToken)
            .where(
                col(ApiToken.account_id)
                == select(col(ServiceAccount.id))
                .where(col(ServiceAccount.request_id) == request.id)
                .scalar_subquery(),
                col(ApiToken.state) == TokenState.MINTING,
            )
            .values(state=TokenState.UNWANTED)
        )
        audit.record(
            session, at=now, actor=user, action=f"{event.value}_requested", request_id=request.id
        )
        queue.enqueue(session, job, now=now, request_id=request.id)
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=request.id)
    runtime.jobs_queued()
    return request


async def reassign(runtime: Runtime, ref: str, admin: str, new_owner: str) -> None:
    """Admins only, while the account is orphaned (its owner left): a new owner; the history
    stays and the approvers are told."""
    request, account, _ = await _owned(runtime, ref, admin, "reassign", admin_only=True)
    if new_owner == account.owner_id:
        raise Conflict(f"<@{new_owner}> already owns {request.name} ({request.short_id}).")
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        moved = await session.execute(
            update(ServiceAccount)
            .where(
                col(ServiceAccount.id) == account.id, col(ServiceAccount.orphaned_at).isnot(None)
            )
            .values(owner_id=new_owner, orphaned_at=None)
        )
        if not rowcount(moved):
            raise Conflict(
                f"{request.name} ({request.short_id}) is not orphaned now (its owner is "
                f"<@{account.owner_id}>): this Reassign button is out of date."
            )
        # The requester is whose card follows the account.
        await session.execute(
            update(ServiceAccountRequest)
            .where(col(ServiceAccountRequest.id) == request.id)
            .values(requester_id=new_owner, updated_at=now)
        )
        audit.record(
            session,
            at=now,
            actor=admin,
            action="owner_reassigned",
            request_id=request.id,
            previous=account.owner_id,
            owner=new_owner,
        )
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=request.id)
        text = (
            f":busts_in_silhouette: <@{admin}> reassigned `{request.name}` ({request.short_id}) "
            f"from <@{account.owner_id}>, who left, to <@{new_owner}>."
        )
        queue.enqueue(
            session, JobKind.TELL_APPROVERS, now=now, request_id=request.id, payload={"text": text}
        )
    runtime.jobs_queued()
