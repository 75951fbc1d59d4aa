"""The ways to run sabot: a separate worker, several replicas, migrations, the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import workflows.models  # noqa: F401 (the tables register on SQLModel.metadata)
from sandbox.bot_process import BotProcess, bot_environment, start_bot, start_worker
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    approval_message,
    reveal_offer,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox, free_port
from sandbox.slack_client import SlackSandbox
from tests.support.databases import PENDING_WORK, rows
from tests.support.reliability import engine_of, record
from tests.support.throwaway import throwaway_database
from workflows.db import Database
from workflows.migrations import head_revision, shipped_head, upgrade


def posted_to(slack: SlackSandbox, channel: str) -> list[dict[str, object]]:
    """Top-level messages that reached `channel` (a rate-limited attempt is not one)."""
    return [
        c
        for c in slack.calls("chat.postMessage")
        if c["args"].get("channel") == channel
        and not c["args"].get("thread_ts")
        and not c.get("error")
    ]


def test_server_without_worker_plus_a_worker_process(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_bot(sandbox, database_url, tmp_path / "serve.log", args=("--no-worker",))
    metrics_port = str(free_port())
    worker = start_worker(
        sandbox, database_url, tmp_path / "worker.log", {"WORKER_METRICS_PORT": metrics_port}
    )
    try:
        submit_request(slack)
        slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
        slack.click(ALICE, GENERAL, reveal_offer(slack)["ts"], "token_reveal")
        slack.wait_for(lambda: token_replies(slack), what="the token, via the worker")
        slack.wait_for(
            lambda: not rows(database_url, PENDING_WORK),
            what="every job done",
        )
        claims = rows(database_url, "SELECT locked_by FROM job WHERE status = 'done'")
        workers = {c["locked_by"].rsplit("/", 1)[0] for c in claims}  # worker id / claim id
        assert len(workers) == 1  # every job was run by the worker process, none by serve
        # the worker's own metrics: its job runs, which the servers never see
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/", timeout=5).text
        assert 'sabot_job_run_seconds_count{kind="provision"' in scraped
    finally:
        worker.terminate()
        assert worker.wait(timeout=20) == 0  # SIGTERM: a clean stop
        bot.stop()


def test_slack_rate_limits_are_honoured_and_the_flow_completes(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    for method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
        slack.fault(method, count=1, retry_after=1)
    started = time.monotonic()
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    reveal_offer(slack)
    waited = time.monotonic() - started
    limited = [c for c in slack.calls() if c.get("error") == "ratelimited"]
    record(
        "Slack 429 with Retry-After on postMessage, update, postEphemeral",
        "one 429 queued on each method at the Slack stand-in, then the whole flow",
        runs=len(limited),
        duplicates=len(posted_to(slack, APPROVALS)) - 1,
        lost=int(not slack.messages(GENERAL, user=ALICE)),
        engine=engine_of(bot.database_url),
        note=f"flow done in {waited:.1f} s (Retry-After: 1 s each)",
    )
    assert waited >= 1.0  # it waited as Slack asked
    assert {c["method"] for c in limited} == {
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
    }


def db_upgrade(database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=cwd,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_db_upgrade_is_repeatable(database_url: str, tmp_path: Path) -> None:
    said = []
    for _ in range(2):
        done = db_upgrade(database_url, tmp_path)
        assert done.returncode == 0, done.stderr
        said.append(done.stdout.strip())
    # Each run says what it did: the operator can tell a first run from a repeat.
    assert said == [
        f"the database's tables were made, at the newest schema ({head_revision()})",
        f"the database was already at the newest schema ({head_revision()})",
    ]
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [
        {"version_num": head_revision()}
    ]
    # the start-up shortcut (no alembic import when up to date) reads the same head
    assert shipped_head() == head_revision()


def test_db_upgrade_on_a_database_it_cannot_reach_says_so_in_one_line(tmp_path: Path) -> None:
    done = db_upgrade("postgresql://sabot@127.0.0.1:1/sabot", tmp_path)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "sabot: cannot migrate the database: ConnectionRefusedError: [Errno 111] Connect call "
        "failed ('127.0.0.1', 1)"
    ]


def test_migrated_schema_is_the_models_schema(database_url: str, tmp_path: Path) -> None:
    """What `sabot db upgrade` makes is what the models say (tables, columns, nullability,
    indexes): a column added to a model without its migration fails here, not at a user's."""

    async def differences() -> list[object]:
        db = Database(database_url)
        try:
            await upgrade(db)
            async with db.engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync), SQLModel.metadata
                    )
                )
        finally:
            await db.dispose()

    assert asyncio.run(differences()) == []


def _schema(sync: Any) -> dict[str, Any]:
    """Every table as the database reports it: columns with their server defaults, keys,
    foreign keys, indexes (partial ones with their WHERE), unique and check constraints."""
    seen = inspect(sync)

    def index(ix: dict[str, Any]) -> tuple[Any, ...]:
        where = {k: str(v) for k, v in (ix.get("dialect_options") or {}).items()}
        return (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]), sorted(where.items()))

    return {
        table: {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in seen.get_columns(table)
            ),
            "key": seen.get_pk_constraint(table),
            "foreign": sorted(str(f) for f in seen.get_foreign_keys(table)),
            "indexes": sorted(index(ix) for ix in seen.get_indexes(table)),
            "unique": sorted(str(u) for u in seen.get_unique_constraints(table)),
            "checks": sorted(str(c) for c in seen.get_check_constraints(table)),
        }
        for table in sorted(seen.get_table_names())
    }


def test_a_new_database_is_made_as_the_migrations_would_make_it(
    database_url: str, tmp_path: Path
) -> None:
    """A database with no tables is made from the models and stamped (no alembic import, a
    tenth of the time); it must be the very schema that replaying every migration makes, and
    alembic must take it as being at the head."""

    async def build(url: str, from_scratch: bool) -> tuple[dict[str, Any], str | None]:
        db = Database(url)
        try:
            await upgrade(db, from_scratch=from_scratch)
            await upgrade(db, from_scratch=False)  # alembic finds nothing to do
            async with db.engine.connect() as conn:
                schema = await conn.run_sync(_schema)
                head = await conn.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision()
                )
        finally:
            await db.dispose()
        return schema, head

    engine = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    (tmp_path / "replayed").mkdir()
    with throwaway_database(engine, tmp_path / "replayed") as replayed_url:
        made, made_head = asyncio.run(build(database_url, True))
        replayed, replayed_head = asyncio.run(build(replayed_url, False))
    assert made_head == replayed_head == head_revision()
    assert "alembic_version" in made and len(made) == len(SQLModel.metadata.tables) + 1
    assert made == replayed


def test_replicas_starting_at_once_migrate_once(
    sandbox: Sandbox, postgres_url: str, tmp_path: Path
) -> None:
    database_url = postgres_url
    with ThreadPoolExecutor(max_workers=3) as pool:
        bots = list(
            pool.map(lambda i: start_bot(sandbox, database_url, tmp_path / f"r{i}.log"), range(3))
        )
    for bot in bots:
        bot.stop()
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [
        {"version_num": head_revision()}
    ]


def test_sandbox_command_prints_the_settings(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(14)]
    finally:
        process.terminate()
        process.wait(timeout=10)
    printed = "".join(lines)
    for key in (
        "SLACK_API_URL=http://127.0.0.1:",
        "ATLASSIAN_API_URL=http://127.0.0.1:",
        "SLACK_SIGNING_SECRET=",
        "SABOT_APPROVAL_CHANNEL=C0APPROVALS",
    ):
        assert key in printed


def test_a_slack_outage_past_the_retry_bound_is_recovered_later(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    # Slack asks to wait longer than the bot will: the job fails, and the job queue tries again
    # later; nothing is lost. The bound is what this tests, so it is set (2 s, where 30 s ships)
    # below a Retry-After of 5 s, instead of waiting out a 30 s one.
    bot = start_bot(
        sandbox, database_url, tmp_path / "sabot.log", {"SLACK_RETRY_MAX_WAIT_SECONDS": "2"}
    )
    slack.fault("chat.postMessage", count=2, retry_after=5)
    submit_request(slack)
    message = slack.wait_for(
        lambda: slack.messages(APPROVALS), what="the request, eventually", timeout=90
    )[0]
    limited = [c for c in slack.calls("chat.postMessage") if c.get("error") == "ratelimited"]
    record(
        "Slack outage longer than the retry bound",
        "postMessage answers 429 (Retry-After 5 s, over a 2 s bound) twice; the job queue "
        "retries later",
        runs=1,
        duplicates=len(posted_to(slack, APPROVALS)) - 1,
        lost=int("ci-release-bot" not in json.dumps(message["blocks"])),
        engine=engine_of(bot.database_url),
        note=f"{len(limited)} rate-limited calls before the message went out",
    )
    assert "ci-release-bot" in json.dumps(message["blocks"])
    assert len(limited) == 2
    errors = rows(bot.database_url, "SELECT last_error FROM job WHERE kind = 'announce'")
    assert "ratelimited" in (errors[0]["last_error"] or "")


def site_lookups(sandbox: Sandbox) -> int:
    return sum(1 for c in sandbox.atlassian.calls if c["path"].endswith("/workspaces"))


def wait_for(seen: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not seen() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen(), what


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process's migration, as SQLite sees it: the write lock of a WAL database (one
    that has something in it: it was there before)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE made_before (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.close()


@pytest.mark.parametrize(
    ("mode", "sig", "waiting_on"),
    [
        ("serve", signal.SIGTERM, "site lookup"),
        ("serve", signal.SIGINT, "site lookup"),
        ("worker", signal.SIGTERM, "site lookup"),
        ("socket", signal.SIGTERM, "site lookup"),
        ("serve", signal.SIGTERM, "migration lock"),
        ("worker", signal.SIGTERM, "migration lock"),
    ],
)
def test_a_signal_during_start_up_stops_it_at_once(
    sandbox: Sandbox, tmp_path: Path, mode: str, sig: signal.Signals, waiting_on: str
) -> None:
    """Start-up waits on Atlassian (the site lookup hangs, a minute each try) or on another
    replica's migration (SQLite waits 30 s for its write lock): a rollout's SIGTERM, or Ctrl-C,
    ends it there, with one line and no traceback, as it would once up."""
    if waiting_on == "site lookup":
        sandbox.atlassian.add_fault("workspaces", "hang", count=5)
    database = tmp_path / "sabot.db"
    env = bot_environment(
        sandbox, f"sqlite:///{database}", {"SLACK_APP_TOKEN": sandbox.slack.app_token}
    )
    port = ("--port", str(free_port())) if mode == "serve" else ()
    log = tmp_path / "sabot.log"
    with write_lock_held(database) if waiting_on == "migration lock" else nullcontext():
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", mode, *port], env=env, stdout=out, stderr=out
            )
        try:
            if waiting_on == "site lookup":
                wait_for(lambda: site_lookups(sandbox) > 0, f"a site lookup: {log.read_text()}")
                time.sleep(0.5)  # well into the hung lookup
            else:
                wait_for(lambda: "write lock" in log.read_text(), f"the wait: {log.read_text()}")
            process.send_signal(sig)
            code = process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
    # uvicorn re-raises a SIGTERM once it has stopped (at any stop): the exit a rollout expects.
    assert code == (-signal.SIGTERM if (mode, sig) == ("serve", signal.SIGTERM) else 0)
    text = log.read_text()
    assert "sabot stopped before it was ready" in text and "Traceback" not in text
    assert "sabot ready" not in text and "startup failed" not in text.lower()


def test_a_second_worker_on_the_metrics_port_stops_with_one_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Two workers on one host with the default metrics port: the second says which setting
    to change, before touching the database."""
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    port = taken.getsockname()[1]
    database = tmp_path / "sabot.db"
    env = bot_environment(sandbox, f"sqlite:///{database}", {"WORKER_METRICS_PORT": str(port)})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        taken.close()
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "WORKER_METRICS_PORT" in line]
    assert f"cannot listen on port {port}" in line and "Traceback" not in done.stderr
    assert not database.exists()
