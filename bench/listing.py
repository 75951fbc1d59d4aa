"""The `list` cell: the first page of `/service-account list` with 10,000 accounts in the database.

Seeding goes through the project's own models and `Database` (migrations first, then bulk
INSERTs of whole batches through an ORM session), and the figures are taken two ways:

- `first_page_in_process`: what the bot does after the ack, timed in this process against the
  same database: `workflows.account.accounts.list_accounts` (the count and the page query, in one
  read-only transaction) and the Block Kit page (`bot.slack.views.accounts.account_list`, serialised
  to JSON as it is posted). No HTTP.
- `first_page_end_to_end`: the real path a person hits: a signed `/service-account list` sent by
  the Slack stand-in to `sabot serve`, the ack, then the page posted to the command's
  `response_url`; timed from just before the stand-in sends the command to the stand-in's
  timestamp of the `response_url` post. It includes the stand-in's own work (signing, a new
  HTTP client per delivery) and the bot's `response_url` post, so it is an upper bound.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, insert, select, text
from sqlmodel import col

from sandbox.runner import Sandbox

ADMIN = "U0CAROL"  # the benchmark's bots run with SABOT_ADMINS=U0CAROL: she sees every account
OWNERS = tuple(f"U0OWNER{i:03d}" for i in range(50))  # 200 accounts each
GENERAL = "C0GENERAL"
BATCH = 2000


@dataclass
class Timing:
    runs: list[float]  # ms

    def summary(self) -> str:
        ordered = sorted(self.runs)
        return (
            f"median {statistics.median(ordered):.1f} ms, p90 "
            f"{ordered[int(0.9 * (len(ordered) - 1))]:.1f} ms, max {ordered[-1]:.1f} ms "
            f"({len(ordered)} runs)"
        )


async def _seed(database_url: str, count: int) -> None:
    from workflows import migrations
    from workflows.db import Database
    from workflows.models import ApiToken, ServiceAccount, ServiceAccountRequest

    db = Database(database_url)
    now = datetime.now(UTC)
    shuffled = random.Random(10_000).sample(range(count), count)  # ids not in name order
    statuses = ("active",) * 8 + ("revoked", "deleted")
    try:
        await migrations.upgrade(db)
        async with db.transaction() as session:  # the database may hold a few already
            first_request = await session.scalar(select(func.max(col(ServiceAccountRequest.id))))
            first_account = await session.scalar(select(func.max(col(ServiceAccount.id))))
        skip = max(first_request or 0, first_account or 0)
        for start in range(0, count, BATCH):
            chunk = [
                (skip + start + i + 1, shuffled[start + i])
                for i in range(min(BATCH, count - start))
            ]
            requests = [
                {
                    "id": rid,
                    "name": f"bench-{n:05d}",
                    "justification": "Benchmark account",
                    "products": ["jira", "confluence"] if n % 3 == 0 else ["jira"],
                    "scopes": ["read:jira-work"],
                    "lifetime_days": 30,
                    "required_approvals": 1,
                    "requester_id": OWNERS[n % len(OWNERS)],
                    "status": statuses[n % len(statuses)],
                    "decided_by": "U0BOB",
                    "created_at": now,
                    "updated_at": now,
                }
                for rid, n in chunk
            ]
            accounts = [
                {
                    "id": rid,
                    "request_id": rid,
                    "name": f"bench-{n:05d}",
                    "owner_id": OWNERS[n % len(OWNERS)],
                    "atlassian_id": f"bench-admin-{rid}",
                    "atlassian_account_id": f"712020:bench-{rid}",
                    "email": f"bench-{n:05d}@serviceaccount.atlassian.com",
                    "granted_products": ["jira"],
                    "reveal_status": "revealed",
                    "created_at": now,
                }
                for rid, n in chunk
            ]
            tokens = [
                {
                    "account_id": rid,
                    "label": f"bench-{n:05d}-{uuid.uuid4().hex[:8]}",
                    "scopes": ["read:jira-work"],
                    "state": "delivered",
                    "expires_at": now + timedelta(days=1 + n % 60),
                    "created_at": now,
                    "delivered_at": now,
                }
                for rid, n in chunk
            ]
            async with db.transaction() as session:
                await session.execute(insert(ServiceAccountRequest), requests)
                await session.execute(insert(ServiceAccount), accounts)
                await session.execute(insert(ApiToken), tokens)
        if not db.is_sqlite:  # explicit ids: move the sequences past them, then statistics
            async with db.transaction() as session:
                for table in ("service_account_request", "service_account"):
                    sequence = f"pg_get_serial_sequence('{table}', 'id')"
                    await session.execute(text(f"SELECT setval({sequence}, {skip + count})"))
            async with db.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("ANALYZE")
    finally:
        await db.dispose()


def seed(database_url: str, count: int) -> float:
    """Migrate and insert `count` accounts (owners, products, statuses and a live token each,
    varied); returns the seconds it took."""
    started = time.monotonic()
    asyncio.run(_seed(database_url, count))
    return time.monotonic() - started


async def _in_process(database_url: str, runs: int) -> list[float]:
    from bot.slack.views.accounts import account_list
    from workflows.account.accounts import AccountFilter, list_accounts
    from workflows.db import Database
    from workflows.policy import Policy
    from workflows.runtime import Runtime

    db = Database(database_url)
    policy = Policy.from_settings(["U0BOB"], [ADMIN], "C0APPROVALS")
    runtime = Runtime(
        db=db, policy=policy, atlassian=cast(Any, None), notifier=cast(Any, None), cloud_id=""
    )
    flt = AccountFilter()
    times = []
    try:
        for _ in range(runs + 3):  # the first three warm the connection pool and caches
            started = time.perf_counter()
            page = await list_accounts(runtime, ADMIN, flt)
            text, blocks = account_list(page, flt)
            json.dumps({"text": text, "blocks": [b.to_dict() for b in blocks]})
            times.append((time.perf_counter() - started) * 1000)
            assert page.total > 0 and len(page.rows) == page.page_size, page
    finally:
        await db.dispose()
    return times[3:]


def first_page_in_process(database_url: str, runs: int = 30) -> Timing:
    """`list_accounts` + the Block Kit page, for an admin (all accounts), in this process."""
    return Timing(asyncio.run(_in_process(database_url, runs)))


def first_page_end_to_end(sandbox: Sandbox, runs: int = 20) -> Timing:
    """Command sent by the Slack stand-in to the page at its response_url, for an admin."""
    from sandbox.slack_client import SlackSandbox

    times = []
    with SlackSandbox(sandbox.slack_url) as slack:
        for _ in range(runs + 2):
            started = time.time()
            answer = slack.command(ADMIN, GENERAL, "list")
            assert answer["status"] == 200, answer
            rid = str(answer["response_url"]).rsplit("/", 1)[-1]
            posted = _wait_response(sandbox, rid)
            text = json.dumps(posted.get("args", {}))
            assert "Service accounts 1-20 of" in text, text[:300]
            times.append((float(posted["at"]) - started) * 1000)
    return Timing(times[2:])


def _wait_response(sandbox: Sandbox, rid: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in reversed(sandbox.slack.calls):  # in-process: the stand-in's own record
            if call["method"] == "response_url" and call["args"].get("rid") == rid:
                return cast(dict[str, Any], call)
        time.sleep(0.002)
    raise RuntimeError(f"no response_url post for {rid} within {timeout:g} s")


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the server of `admin_url`, dropped afterwards (as the tests'
    `throwaway_database` does)."""
    import asyncpg

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    name = f"sabot_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_answers(admin_url: str) -> bool:
    import asyncpg

    async def ping() -> None:
        conn = await asyncpg.connect(admin_url, timeout=3)
        await conn.close()

    try:
        asyncio.run(ping())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True
