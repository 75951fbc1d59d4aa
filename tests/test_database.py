"""How the process holds its SQLite connections: a transaction that may write takes the write
lock from its start, a read takes none, and a pooled connection never keeps the lock once its
work is over, whichever way that work ended."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from workflows.db import Database
from workflows.migrations import upgrade


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
