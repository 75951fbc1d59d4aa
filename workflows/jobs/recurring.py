"""Periodic work (owner check, reconcile): due once per interval across every replica.

A row per task holds when it is next due; the worker that moves that time forward first (a
conditional update) queues the job, so several replicas never run the same round twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from workflows.db import Database, rowcount
from workflows.jobs import queue
from workflows.models import RecurringTask
from workflows.states import JobKind


async def _ensure_row(db: Database, name: JobKind, now: datetime) -> None:
    try:
        async with db.transaction() as session:
            if await session.get(RecurringTask, name) is None:
                session.add(RecurringTask(name=name, next_run_at=now))
    except IntegrityError:
        pass  # another replica inserted it first


async def queue_due(
    db: Database, now: datetime, *, tasks: Mapping[JobKind, timedelta]
) -> list[JobKind]:
    """Queue each task whose time has come; return the ones this caller queued."""
    queued = []
    for name, interval in tasks.items():
        await _ensure_row(db, name, now)
        async with db.transaction() as session:
            claimed = await session.execute(
                update(RecurringTask)
                .where(col(RecurringTask.name) == name, col(RecurringTask.next_run_at) <= now)
                .values(next_run_at=now + interval)
            )
            if rowcount(claimed):
                queue.enqueue(session, name, now=now)
                queued.append(name)
    return queued
