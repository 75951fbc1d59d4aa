"""Alembic migrations, shipped inside the package so `sabot db upgrade` works from a wheel."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from workflows.db import Database

# Any constant works; it only has to be the same for every replica of this app.
MIGRATION_LOCK_KEY = 0x5AB07


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of the app."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return str(ScriptDirectory.from_config(config).get_current_head())


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


async def _locked(conn: AsyncConnection, db: Database) -> None:
    if not db.is_sqlite:
        # Several replicas may start at once: one migrates, the others wait here, then find
        # nothing left to do.
        await conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
    try:
        await conn.run_sync(_upgrade)
    finally:
        if not db.is_sqlite:
            await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")


async def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision, safely from several processes at once."""
    async with db.engine.connect() as conn:
        await _locked(conn, db)
        await conn.commit()
