"""Alembic migrations, shipped inside the package so `sabot db upgrade` works from a wheel."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

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


async def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision, safely from several processes at once.

    Replicas starting together queue on a transaction-scoped advisory lock: it is released by
    the commit that makes the migrated schema visible (or by the rollback of a failed one), so
    the next replica can only look at the schema once it is complete, and finds nothing to do.
    """
    async with db.engine.connect() as conn:
        if not db.is_sqlite:
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        await conn.run_sync(_upgrade)
        await conn.commit()
