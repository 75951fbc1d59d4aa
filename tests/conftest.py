"""Fixtures that run the real thing: stand-ins on local ports, `sabot serve` as a process,
a real SQLite file or a throwaway PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.runner import Sandbox, free_port, start_sandbox
from sandbox.slack_client import SlackSandbox

ROOT = Path(__file__).resolve().parent.parent

# Fast timings: the same retry logic as production, in milliseconds instead of seconds.
FAST_SETTINGS = {
    "ATLASSIAN_RETRY_ATTEMPTS": "3",
    "ATLASSIAN_RETRY_BASE_SECONDS": "0.05",
    "ATLASSIAN_RETRY_MAX_SECONDS": "0.5",
    "ATLASSIAN_PROPAGATION_BASE_SECONDS": "0.1",
    "ATLASSIAN_PROPAGATION_ATTEMPTS": "6",
    "ATLASSIAN_TIMEOUT_SECONDS": "2",
    "SLACK_RETRY_MAX_WAIT_SECONDS": "2",
    "WORKER_POLL_SECONDS": "0.2",
    "LOG_LEVEL": "DEBUG",
}


def _pg_admin_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


async def _pg(admin_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def throwaway_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a PostgreSQL database created from TEST_DATABASE_URL and dropped
    after; PostgreSQL is skipped (visibly) where that variable is not set."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'sabot.db'}"
        return
    admin = _pg_admin_url()
    if admin is None:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    name = f"sabot_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_pg(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes it runs on both engines."""
    with throwaway_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """For what only PostgreSQL supports: several processes on one database."""
    with throwaway_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    stand_ins = start_sandbox()
    yield stand_ins
    stand_ins.stop()


@pytest.fixture
def slack(sandbox: Sandbox) -> Iterator[SlackSandbox]:
    with SlackSandbox(sandbox.slack_url) as client:
        yield client


@dataclass
class BotProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    database_url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# Every bot a test started, with its stand-ins: checked for leaked secrets when the test ends.
STARTED: list[tuple[BotProcess, Sandbox]] = []


@pytest.fixture(autouse=True)
def no_secret_leaks() -> Iterator[None]:
    """After every test that ran a bot: no minted token and no credential in its log (DEBUG
    on), and no token in any Slack call but the ephemeral replies to the requester."""
    STARTED.clear()
    yield
    for bot, sandbox in STARTED:
        bot.stop()
        tokens = sandbox.atlassian.minted_values()
        credentials = [
            sandbox.slack.bot_token,
            sandbox.slack.signing_secret,
            sandbox.atlassian.api_key,
        ]
        log = bot.log()
        assert not [s for s in tokens + credentials if s in log], "a secret is in the log"
        for call in sandbox.slack.calls:
            text = json.dumps(call, default=str)
            if call["method"] == "response_url" and call["args"].get("response_type") in (
                None,
                "ephemeral",
            ):
                continue  # the one place a token may go: the ephemeral reply to a click
            assert not [t for t in tokens if t in text], f"a token in {call['method']}"


def bot_environment(
    sandbox: Sandbox, database_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """This process's environment without our settings, plus the stand-ins' and fast timings."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_", "ATLASSIAN_"))
    }
    return {
        **env,
        **sandbox.bot_env(),
        **FAST_SETTINGS,
        "DATABASE_URL": database_url,
        **(extra or {}),
    }


def start_bot(
    sandbox: Sandbox,
    database_url: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> BotProcess:
    """`sabot serve` as its own process, pointed at the stand-ins; returns once healthy."""
    port = free_port()
    env = bot_environment(sandbox, database_url, extra_env)
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port), *args],
        cwd=log_path.parent,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    bot = BotProcess(f"http://127.0.0.1:{port}", process, log_path, database_url)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"sabot serve exited {process.returncode}:\n{bot.log()}")
        try:
            if httpx.get(f"{bot.url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            bot.stop()
            raise RuntimeError(f"sabot serve did not become healthy:\n{bot.log()}")
        time.sleep(0.05)
    sandbox.slack.bot_url = bot.url
    STARTED.append((bot, sandbox))
    return bot


@pytest.fixture
def bot(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[BotProcess]:
    process = start_bot(sandbox, database_url, tmp_path / "sabot.log")
    yield process
    process.stop()


def rows(database_url: str, sql: str) -> list[dict[str, Any]]:
    """Read the bot's database directly, as an operator would."""
    if database_url.startswith("postgresql"):
        return asyncio.run(_pg_rows(database_url, sql))
    return _query(database_url, sql)


def _query(url: str, sql: str) -> list[dict[str, Any]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)  # sqlite:///path, read with the standard library driver
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


async def _pg_rows(url: str, sql: str) -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [dict(record) for record in await conn.fetch(sql)]
    finally:
        await conn.close()


def dump_database(database_url: str) -> str:
    """Every row of every table as text: what a secret search looks through."""
    tables = [
        "service_account_request",
        "service_account",
        "api_token",
        "decision",
        "slack_message",
        "audit_event",
        "job",
        "alembic_version",
    ]
    return "\n".join(repr(rows(database_url, f"SELECT * FROM {t}")) for t in tables)
