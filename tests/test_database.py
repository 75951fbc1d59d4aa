"""How the process holds its SQLite connections: a transaction that may write takes the write
lock from its start, a read takes none, and a pooled connection never keeps the lock once its
work is over, whichever way that work ended."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from workflows.db import SQLITE_BUSY_TIMEOUT_S, Database
from workflows.migrations import shipped_head, upgrade


def another_process_can_write(path: Path) -> bool:
    """What a `sabot worker` beside this process would find: the write lock free at once."""
    outside = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        outside.execute("BEGIN IMMEDIATE")
        outside.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        outside.close()


async def test_pooled_connections_give_the_write_lock_back(tmp_path: Path) -> None:
    path = tmp_path / "sabot.db"
    db = Database(f"sqlite:///{path}")
    try:
        await upgrade(db)
        async with db.reading() as session:  # a snapshot: no write lock
            await session.execute(text("SELECT 1"))
            assert another_process_can_write(path)
        async with db.transaction() as session:  # BEGIN IMMEDIATE: the write lock from the start
            await session.execute(text("SELECT 1"))
            assert not another_process_can_write(path)
        assert another_process_can_write(path)  # committed

        with pytest.raises(RuntimeError):  # rolled back by the failure
            async with db.transaction() as session:
                await session.execute(text("SELECT 1"))
                raise RuntimeError("a step failed")
        assert another_process_can_write(path)

        # A transaction SQLAlchemy did not see begin (the driver's own BEGIN): the pool rolls
        # it back when the connection comes back.
        async with db.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute("BEGIN IMMEDIATE")
            assert not another_process_can_write(path)
        assert another_process_can_write(path)
    finally:
        await db.dispose()


async def test_a_migration_waits_for_another_process_and_can_be_stopped_meanwhile(
    tmp_path: Path,
) -> None:
    """SQLite's own wait for the write lock (busy_timeout, 30 s) cannot be interrupted: start-up
    waits in short tries instead, so a signal stops it, and it still migrates once the lock is
    free."""
    path = tmp_path / "sabot.db"
    holder = sqlite3.connect(path, isolation_level=None)  # another process, mid-migration
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE made_before (x)")
    holder.execute("BEGIN IMMEDIATE")
    db = Database(f"sqlite:///{path}")
    try:
        waiting = asyncio.ensure_future(upgrade(db))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # it waits for the lock
        waiting.cancel()  # what a signal during start-up does
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 2)

        waiting = asyncio.ensure_future(upgrade(db))
        await asyncio.sleep(0.3)
        holder.execute("COMMIT")  # the other process is done
        await asyncio.wait_for(waiting, 5)
        async with db.reading() as session:
            found = (await session.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [row[0] for row in found] == [shipped_head()]
        async with db.engine.connect() as conn:  # SQLite's own wait is back for everything else
            waits = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        assert waits == SQLITE_BUSY_TIMEOUT_S * 1000
    finally:
        holder.close()
        await db.dispose()
