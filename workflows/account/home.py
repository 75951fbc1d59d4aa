"""What one person's App Home shows: their accounts and requests, what waits for them, and
for admins the state of every account."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import col

from workflows.account.accounts import AccountFilter, AccountPage, list_accounts
from workflows.models import Decision, ServiceAccount, ServiceAccountRequest
from workflows.request.quota import Usage
from workflows.runtime import Runtime
from workflows.states import RequestStatus

SHOWN = 10
EXPIRING_WITHIN = timedelta(days=14)


@dataclass(frozen=True)
class AdminView:
    counts: dict[str, int]
    expiring: AccountPage
    orphans: list[ServiceAccount]


@dataclass(frozen=True)
class Home:
    accounts: AccountPage
    requests: list[ServiceAccountRequest]
    waiting_for_me: list[ServiceAccountRequest] = field(default_factory=list)
    admin: AdminView | None = None
    seats: Usage | None = None  # the organisation's service accounts against its limit


async def home_for(runtime: Runtime, user: str) -> Home:
    mine = await list_accounts(runtime, user, AccountFilter(owner=user))
    admin = await _admin_view(runtime, user) if await runtime.policy.is_admin(user) else None
    return Home(
        mine,
        await _my_requests(runtime, user),
        await _waiting_for(runtime, user),
        admin,
        await runtime.quota_usage(fresh=False),
    )


async def _my_requests(runtime: Runtime, user: str) -> list[ServiceAccountRequest]:
    async with runtime.db.transaction() as session:
        return list(
            (
                await session.execute(
                    select(ServiceAccountRequest)
                    .where(col(ServiceAccountRequest.requester_id) == user)
                    .order_by(col(ServiceAccountRequest.id).desc())
                    .limit(SHOWN)
                )
            )
            .scalars()
            .all()
        )


async def _waiting_for(runtime: Runtime, user: str) -> list[ServiceAccountRequest]:
    """Pending requests this person may approve and has not decided on yet."""
    r = ServiceAccountRequest
    decided = select(col(Decision.request_id)).where(col(Decision.approver_id) == user)
    async with runtime.db.transaction() as session:
        pending = (
            (
                await session.execute(
                    select(r)
                    .where(
                        col(r.status) == RequestStatus.PENDING.value,
                        col(r.requester_id) != user,
                        col(r.id).not_in(decided),
                    )
                    .order_by(col(r.id))
                    .limit(50)
                )
            )
            .scalars()
            .all()
        )
    waiting = []
    for request in pending:
        eligible = await runtime.policy.eligibility(
            request.requester_id, request.products, request.scopes
        )
        if user in eligible.approvers:
            waiting.append(request)
    return waiting[:SHOWN]


async def _admin_view(runtime: Runtime, user: str) -> AdminView:
    r = ServiceAccountRequest
    async with runtime.db.transaction() as session:
        counts = dict(
            (await session.execute(select(col(r.status), func.count()).group_by(col(r.status))))
            .tuples()
            .all()
        )
        orphans = list(
            (
                await session.execute(
                    select(ServiceAccount)
                    .where(col(ServiceAccount.orphaned_at).is_not(None))
                    .order_by(col(ServiceAccount.name))
                    .limit(SHOWN)
                )
            )
            .scalars()
            .all()
        )
    expiring = await list_accounts(
        runtime,
        user,
        AccountFilter(status=RequestStatus.ACTIVE.value, expiring_within=EXPIRING_WITHIN),
    )
    return AdminView({str(k): int(v) for k, v in counts.items()}, expiring, orphans)
