"""Engines, sessions and transactions for SQLite (a laptop) and PostgreSQL (production)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_

SQLITE_BUSY_TIMEOUT_S = 30
LOCK_TRY_MS = 100  # one try of `sqlite_write_lock`
# Execution option of the engine behind `Database.reading()`: on SQLite, a plain (deferred) BEGIN.
SNAPSHOT_READ = "sabot_snapshot_read"

log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """The URL as written by a person, with the async driver this app uses."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names (resolved), None for another database or an in-memory one.
    Commands that only read check it exists first: opening a missing one would create it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own BEGIN is deferred: two readers upgrading to writers fail at once with
    # "database is locked" instead of waiting. BEGIN IMMEDIATE takes the write lock up front,
    # so concurrent transactions queue on busy_timeout. (SQLAlchemy's documented recipe.)
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # A read-only snapshot needs no write lock: in WAL mode it reads while another writes.
        snapshot = conn.get_execution_options().get(SNAPSHOT_READ, False)
        # Straight to aiosqlite: one round trip to its thread, where a statement through
        # SQLAlchemy's cursor adapter takes three (make the cursor, execute, close it).
        driver = conn.connection.driver_connection
        if driver.in_transaction:
            return  # begun already, holding the write lock (sqlite_write_lock)
        await_(driver.execute("BEGIN" if snapshot else "BEGIN IMMEDIATE"))

    @event.listens_for(engine.sync_engine, "reset")
    def _reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
        # With the engine's pool_reset_on_return=None: a connection goes back to the pool
        # rolled back only if it is still inside a transaction. After a commit, the pool's own
        # rollback was a round trip to aiosqlite's thread for nothing, on every transaction.
        if state.asyncio_safe and record.driver_connection.in_transaction:
            dbapi_connection.rollback()


async def sqlite_write_lock(conn: AsyncConnection) -> None:
    """Begin `conn`'s transaction holding SQLite's write lock, waited for in tries of 100 ms,
    for as long as busy_timeout would wait. SQLite's own wait cannot be interrupted: a process
    told to stop while another holds the lock (a replica migrating) would sit it out; between
    two tries it can be cancelled."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SQLITE_BUSY_TIMEOUT_S
    await driver.execute(f"PRAGMA busy_timeout={LOCK_TRY_MS}")
    try:
        for tried in range(SQLITE_BUSY_TIMEOUT_S * 1000 // LOCK_TRY_MS + 1):
            try:
                await driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or loop.time() >= deadline:
                    raise
                if not tried:
                    log.info("waiting for the database's write lock: another process holds it")
    finally:
        await driver.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")


def rowcount(result: Any) -> int:
    """Rows an UPDATE matched (the async Result type does not declare the attribute)."""
    return int(getattr(result, "rowcount", 0))


class Database:
    """One engine and its session factories.

    On SQLite only one transaction writes at a time, and every `transaction()` takes the write
    lock up front (BEGIN IMMEDIATE). Transactions of this process take turns on an asyncio lock
    before that: a waiter then costs nothing until its turn, where waiting in SQLite's busy
    handler would hold a pooled connection and sleep in growing steps (up to 100 ms) between
    retries, which under a burst made a queue of connections that mostly slept. Other processes
    on the same file still wait on `busy_timeout`.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = async_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": not self.is_sqlite}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
            kwargs["pool_reset_on_return"] = None  # see _reset
        else:
            kwargs.update(pool_size=10, max_overflow=20)
        self.engine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        snapshots = self.engine.execution_options(
            **({SNAPSHOT_READ: True} if self.is_sqlite else {"postgresql_readonly": True})
        )
        self._snapshots = async_sessionmaker(snapshots, expire_on_commit=False)
        self._write_turn = asyncio.Lock() if self.is_sqlite else None
        # Transactions this process committed: what a cache of a query's answer compares, to
        # know that nothing this process wrote since can have changed it.
        self.commits = 0

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        turn = self._write_turn
        if turn is None:
            yield
            return
        if turn.locked():
            async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_S):  # as long as SQLite would wait
                await turn.acquire()
        else:
            await turn.acquire()
        try:
            yield
        finally:
            turn.release()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self._turn(), self._sessions() as session, session.begin():
            yield session
        self.commits += 1

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction: one consistent snapshot, no write lock (SQLite) and no
        writes allowed (PostgreSQL's READ ONLY). For queries that change nothing."""
        async with self._snapshots() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self.reading() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
