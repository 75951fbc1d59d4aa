"""Events from Slack that change something, taken once however often they are delivered.

Slack re-delivers an event it thinks was not acknowledged (up to three retries, sometimes while
the first delivery is still being handled), and Bolt does not de-duplicate. The event's id is
recorded in the same transaction that queues its work: a repeat fails on the primary key and
queues nothing, and a crash before the commit records nothing, so Slack's retry is then taken.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from workflows.db import Database
from workflows.jobs import queue
from workflows.models import InboundEvent, Job
from workflows.runtime import Runtime
from workflows.states import JobKind

# Slack's retries come within minutes; a day of ids is plenty and keeps the table small.
REMEMBERED_FOR = timedelta(days=1)


async def take_once(
    db: Database, *, event_id: str, kind: str, now: datetime, job: JobKind, payload: dict[str, Any]
) -> bool:
    """Record the event and queue `job` for it; False (and nothing queued) for a repeat."""
    try:
        async with db.transaction() as session:
            session.add(InboundEvent(event_id=event_id, kind=kind, received_at=now))
            queue.enqueue(session, job, now=now, payload=payload)
    except IntegrityError:
        return False
    return True


async def forget_old_events(runtime: Runtime, job: Job) -> None:
    """Daily: drop ids older than any retry Slack could still send."""
    async with runtime.db.transaction() as session:
        await session.execute(
            delete(InboundEvent).where(
                col(InboundEvent.received_at) < runtime.clock() - REMEMBERED_FOR
            )
        )
