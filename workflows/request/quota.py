"""The organisation's service-account quota at Atlassian, checked before a request can exceed it.

Atlassian reports no quota (5 free, 250 with Guard Standard, 1,000 on Enterprise: the policy's
`service_account_limit` says which) and counts every service account of the organisation, made
by sabot or by hand. Listing them all takes a call per page, too slow for the three seconds Slack
gives a form's answer, so the count at Atlassian is the one the daily reconcile recorded (its
audit event); sabot's own accounts and the requests still waiting for a decision or a create come
from the database at the moment of asking, so what sabot did since is never missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from workflows.db import Database
from workflows.models import AuditEvent, ServiceAccount, ServiceAccountRequest
from workflows.states import RequestStatus

S = RequestStatus
COUNTED_BY = "reconcile_checked"  # the audit event whose `in_use` is the count at Atlassian
# Will take a seat once approved and created.
WAITING = (S.SUBMITTED, S.PENDING, S.APPROVED, S.PROVISIONING)
# Hold a seat: created, or may have been (a failed request whose create was sent).
HOLDING = (S.ACTIVE, S.REVOKED, S.PROVISIONING, S.FAILED)


@dataclass(frozen=True)
class Usage:
    limit: int
    at_atlassian: int | None  # in use there at the last reconcile; None: never counted yet
    counted_at: datetime | None
    recorded: int  # sabot's accounts that exist (or may) at Atlassian
    waiting: int  # sabot's requests not yet created there

    @property
    def used(self) -> int:
        # The larger of the two: accounts sabot made since the count are in `recorded`.
        return max(self.at_atlassian or 0, self.recorded) + self.waiting

    @property
    def full(self) -> bool:
        return self.used >= self.limit

    def line(self) -> str:
        waiting = f", {self.waiting} of them requested" if self.waiting else ""
        return f"{self.used} of the organisation's {self.limit} service accounts in use{waiting}"


async def _count_at_atlassian(session: AsyncSession) -> tuple[int | None, datetime | None]:
    last = (
        await session.execute(
            select(AuditEvent)
            .where(col(AuditEvent.action) == COUNTED_BY)
            .order_by(col(AuditEvent.id).desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if last is None or not isinstance(last.detail.get("in_use"), int):
        return None, None
    return int(last.detail["in_use"]), last.at


async def usage(db: Database, limit: int) -> Usage:
    r, a = ServiceAccountRequest, ServiceAccount
    created = or_(col(a.atlassian_account_id).is_not(None), col(a.create_started_at).is_not(None))
    async with db.reading() as session:
        at_atlassian, counted_at = await _count_at_atlassian(session)
        recorded = (
            await session.execute(
                select(func.count())
                .select_from(r)
                .join(a, col(a.request_id) == col(r.id))
                .where(col(r.status).in_(HOLDING), created)
            )
        ).scalar_one()
        waiting = (
            await session.execute(
                select(func.count())
                .select_from(r)
                .outerjoin(a, col(a.request_id) == col(r.id))
                .where(
                    col(r.status).in_(WAITING),
                    col(a.atlassian_account_id).is_(None),
                    col(a.create_started_at).is_(None),
                )
            )
        ).scalar_one()
    return Usage(limit, at_atlassian, counted_at, int(recorded), int(waiting))
