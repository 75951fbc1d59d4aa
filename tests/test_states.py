"""The lifecycles in the database: a request moves only as its table allows, a name is taken
until its request has ended, and a worker knows every kind of job before it starts."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from workflows.clock import system_clock
from workflows.db import Database
from workflows.jobs import queue
from workflows.jobs.handlers import job_handlers
from workflows.jobs.queue import Worker
from workflows.migrations import upgrade
from workflows.models import Job, ServiceAccountRequest
from workflows.policy import Policy
from workflows.request.requests import name_in_use
from workflows.runtime import Runtime
from workflows.states import (
    ENDED,
    TRANSITIONS,
    Event,
    JobKind,
    JobStatus,
    RequestStatus,
    transition,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
R = ServiceAccountRequest


def request(name: str, status: RequestStatus) -> ServiceAccountRequest:
    return R(
        name=name,
        justification="Runs the nightly CI jobs",
        products=["jira"],
        scopes=["read:jira-work"],
        lifetime_days=30,
        requester_id="U0ALICE",
        status=status,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await upgrade(database)
    yield database
    await database.dispose()


def runtime_of(db: Database) -> Runtime:
    return Runtime(
        db=db,
        policy=Policy.from_settings(["U0BOB"], ["U0CAROL"], "C0APPROVALS"),
        atlassian=None,  # type: ignore[arg-type]  # no job runs
        notifier=None,  # type: ignore[arg-type]
        cloud_id="cloud-1",
    )


async def test_each_event_moves_a_request_only_from_the_statuses_the_table_allows(
    db: Database,
) -> None:
    # One request per (status, event): the event is applied to it as a conditional update.
    pairs = list(itertools.product(RequestStatus, Event))
    rows = [request(f"sa-{i}", status) for i, (status, _) in enumerate(pairs)]
    async with db.transaction() as session:
        session.add_all(rows)
    moved, expected = [], {}
    for row, (status, event) in zip(rows, pairs, strict=True):
        async with db.transaction() as session:
            assert row.id is not None
            moved.append(await transition(session, row.id, event, NOW))
        expected[row.id] = TRANSITIONS.get((status, event), status)
    async with db.reading() as session:
        stored = await session.execute(select(col(R.id), col(R.status)))
        after = {id_: status for id_, status in stored}

    assert moved == [pair in TRANSITIONS for pair in pairs]
    assert after == expected


async def test_of_two_approvals_only_the_first_moves_the_request(db: Database) -> None:
    row = request("ci-bot", RequestStatus.PENDING)
    async with db.transaction() as session:
        session.add(row)
    assert row.id is not None
    results = []
    for approver in ("U0BOB", "U0CAROL"):
        async with db.transaction() as session:
            results.append(
                await transition(session, row.id, Event.APPROVE, NOW, decided_by=approver)
            )
    async with db.reading() as session:
        stored = await session.get(R, row.id)

    assert results == [True, False]
    assert stored is not None and (stored.status, stored.decided_by) == ("approved", "U0BOB")


async def test_a_name_is_free_again_exactly_when_its_request_has_ended(db: Database) -> None:
    # Both the check before an insert and the database's unique index say so.
    taken = {}
    for status in RequestStatus:
        name = f"sa-{status.value}"
        async with db.transaction() as session:
            session.add(request(name, status))
        async with db.reading() as session:
            checked = await name_in_use(session, name)
        try:
            async with db.transaction() as session:
                session.add(request(name, RequestStatus.SUBMITTED))
            refused = False
        except IntegrityError:
            refused = True
        taken[status] = (checked, refused)

    assert taken == {status: (status not in ENDED,) * 2 for status in RequestStatus}


async def test_a_worker_will_not_start_without_a_handler_for_every_kind(db: Database) -> None:
    handlers = job_handlers(runtime_of(db))
    del handlers[JobKind.REVEAL], handlers[JobKind.REMIND]
    with pytest.raises(LookupError, match="no handler for job kind\\(s\\): remind, reveal"):
        Worker(db, handlers, system_clock)

    Worker(db, job_handlers(runtime_of(db)), system_clock)  # sabot's own map has them all


async def test_a_job_of_a_kind_this_version_does_not_know_waits_for_one_that_does(
    db: Database,
) -> None:
    # During a rolling deploy a newer replica may queue a kind an older one has never heard of.
    async with db.transaction() as session:
        session.add(Job(kind="from_a_newer_release", run_after=NOW, created_at=NOW))
        queue.enqueue(session, JobKind.FORGET_OLD_EVENTS, now=NOW)
    await Worker(db, job_handlers(runtime_of(db)), system_clock).run_until_idle()
    async with db.reading() as session:
        after = (await session.execute(select(Job).order_by(col(Job.id)))).scalars().all()

    assert [(j.kind, j.status, j.last_error) for j in after] == [
        (
            "from_a_newer_release",
            JobStatus.QUEUED,
            "LookupError: no handler for job kind 'from_a_newer_release'",
        ),
        (JobKind.FORGET_OLD_EVENTS, JobStatus.DONE, None),
    ]
