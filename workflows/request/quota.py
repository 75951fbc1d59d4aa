"""The organisation's service-account quota at Atlassian, checked before a request can exceed it.

Atlassian reports no quota (5 free, 250 with Guard Standard, 1,000 on Enterprise: the policy's
`service_account_limit` says which) and counts every service account of the organisation, made
by sabot or by hand. Listing them all takes a call per page, too slow for the three seconds Slack
gives a form's answer, so the count at Atlassian is the one the daily reconcile recorded (its
audit event); sabot's own accounts and the requests still waiting for a decision or a create come
from the database. A submit counts at the moment of asking, so what sabot did since is never
missed; the lines that only inform may be a few seconds old (`UsageCache`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_
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


def _last_count(column: Any) -> Any:
    """`column` of the newest reconcile count's audit event (NULL when there is none)."""
    e = AuditEvent
    latest = select(column).where(col(e.action) == COUNTED_BY).order_by(col(e.id).desc())
    return latest.limit(1).scalar_subquery()


async def usage(db: Database, limit: int) -> Usage:
    """In one round trip: the request form asks this while its trigger's three seconds run,
    and every command must be answered before the next arrives."""
    r, a = ServiceAccountRequest, ServiceAccount
    created = or_(col(a.atlassian_account_id).is_not(None), col(a.create_started_at).is_not(None))
    recorded = (
        select(func.count())
        .select_from(r)
        .join(a, col(a.request_id) == col(r.id))
        .where(col(r.status).in_(HOLDING), created)
        .scalar_subquery()
    )
    waiting = (
        select(func.count())
        .select_from(r)
        .outerjoin(a, col(a.request_id) == col(r.id))
        .where(
            col(r.status).in_(WAITING),
            col(a.atlassian_account_id).is_(None),
            col(a.create_started_at).is_(None),
        )
        .scalar_subquery()
    )
    query = select(recorded, waiting, _last_count(AuditEvent.detail), _last_count(AuditEvent.at))
    async with db.reading() as session:
        held, asked, detail, at = (await session.execute(query)).one()
    in_use = detail.get("in_use") if isinstance(detail, dict) else None
    if not isinstance(in_use, int):
        return Usage(limit, None, None, int(held), int(asked))
    return Usage(limit, in_use, at, int(held), int(asked))


class UsageCache:
    """The last `usage` answer, for the lines that only inform (the request form opens while
    its trigger's three seconds run, and a burst of `request` commands each asking the
    database made the forms wait for CPU). It is asked again once this process has committed
    anything since, or after `MAX_AGE_SECONDS` (other replicas' requests), and by one caller
    at a time: the others share that answer. A submit always counts afresh, so a stale line
    can never let a request past the limit."""

    MAX_AGE_SECONDS = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        # (limit, commits, when) the answer was asked for, and the answer (maybe still coming)
        self._seen: tuple[tuple[int, int, float], asyncio.Future[Usage]] | None = None

    async def get(self, db: Database, limit: int) -> Usage:
        now = self.clock()
        if self._seen is not None:
            (seen_limit, commits, at), answer = self._seen
            fresh = (seen_limit, commits) == (limit, db.commits) and now - at < self.MAX_AGE_SECONDS
            if fresh and not (answer.done() and answer.exception() is not None):
                return await asyncio.shield(answer)
        # The commit count before the read: a commit during it makes the next caller ask afresh.
        answer = asyncio.ensure_future(usage(db, limit))
        self._seen = ((limit, db.commits, now), answer)
        return await asyncio.shield(answer)
