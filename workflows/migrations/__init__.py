"""Alembic migrations, shipped inside the package so `sabot db upgrade` works from a wheel."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from workflows.db import Database, sqlite_write_lock

if TYPE_CHECKING:
    from alembic.config import Config

VERSIONS = Path(__file__).parent / "versions"

# Any constant works; it only has to be the same for every replica of this app.
MIGRATION_LOCK_KEY = 0x5AB07


def _config(connection: Connection) -> Config:
    from alembic.config import Config  # alembic costs ~0.1 s of start-up: only when migrating

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of the app."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return str(ScriptDirectory.from_config(config).get_current_head())


def shipped_head() -> str:
    """The newest revision, read from the file names (`0005_...py`) without importing alembic;
    a test holds it equal to alembic's own `head_revision()`."""
    return max(path.name.split("_", 1)[0] for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_config(connection), "head")


def _create(connection: Connection) -> None:
    """A database with no tables yet: the models' tables as they are now, stamped with the
    newest revision (as `alembic stamp head` writes it). Alembic's advice for a database built
    from scratch: replaying every migration makes the same schema, in ten times the time and an
    import of alembic (tests/test_processes.py holds the two equal)."""
    from sqlmodel import SQLModel

    import workflows.models  # noqa: F401  (registers the tables on the metadata)

    SQLModel.metadata.create_all(connection)
    connection.execute(
        text(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
    )
    connection.execute(
        text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": shipped_head()}
    )


def _build(connection: Connection, from_scratch: bool) -> str:
    if from_scratch and not inspect(connection).get_table_names():
        _create(connection)
        return "made"
    _upgrade(connection)
    return "migrated"


async def _up_to_date(db: Database) -> bool:
    try:  # a read: on SQLite it takes no write lock, so a replica migrating does not hold it up
        async with db.reading() as session:
            found = (await session.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:
        return False  # a new database: no version table yet
    return [row[0] for row in found] == [shipped_head()]


async def upgrade(db: Database, *, from_scratch: bool = True) -> str:
    """Bring the schema to the newest revision, safely from several processes at once; a
    database with no tables is made from the models at once (`from_scratch=False` replays
    every migration instead).

    Replicas starting together queue on a transaction-scoped advisory lock (SQLite: its write
    lock, BEGIN IMMEDIATE): it is released by the commit that makes the schema visible (or by
    the rollback of a failed one), so the next replica can only look at the schema once it is
    complete, and finds nothing to do.

    Returns what it did: "current" (nothing to do), "made" or "migrated".
    """
    if await _up_to_date(db):
        return "current"  # the usual restart: nothing to migrate, and no alembic to import
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            await sqlite_write_lock(conn)
        else:
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        done = await conn.run_sync(_build, from_scratch)
        await conn.commit()
    return done
