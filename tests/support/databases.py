"""The bot's database as an operator sees it: read directly, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

# Jobs still to run now (timers such as expiry warnings are due in days, not now).
PENDING_WORK = (
    "SELECT id FROM job WHERE status = 'running' "
    "OR (status = 'queued' AND run_after <= CURRENT_TIMESTAMP)"
)


def pg_admin_url() -> str | None:
    """TEST_DATABASE_URL: a PostgreSQL server the tests may create databases on, or None."""
    return os.environ.get("TEST_DATABASE_URL") or None


async def pg_execute(admin_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


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


def database_tables(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table the live schema has (not a list kept here, so a new table is
    never missed); {} when the database does not exist (any more)."""
    if database_url.startswith("postgresql"):
        return asyncio.run(_pg_tables(database_url))
    from sqlalchemy.engine import make_url

    path = make_url(database_url).database
    if not path or not Path(path).exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # read only: never creates it
    conn.row_factory = sqlite3.Row
    try:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        ]
        return {n: [dict(r) for r in conn.execute(f'SELECT * FROM "{n}"')] for n in names}
    finally:
        conn.close()


async def _pg_tables(url: str) -> dict[str, list[dict[str, Any]]]:
    import asyncpg

    try:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    except asyncpg.InvalidCatalogNameError:
        return {}
    try:
        names = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for schema, table in names:
            label = table if schema == "public" else f"{schema}.{table}"
            rows = await conn.fetch(f'SELECT * FROM "{schema}"."{table}"')
            out[label] = [dict(r) for r in rows]
        return out
    finally:
        await conn.close()


def dump_database(database_url: str) -> str:
    """Every row of every table as text: what a secret search looks through."""
    return "\n".join(f"{t}: {rows!r}" for t, rows in database_tables(database_url).items())


def execute(database_url: str, sql: str) -> None:
    """Change the bot's database directly (committed), as a test's way to set a scene."""
    if database_url.startswith("postgresql"):
        asyncio.run(pg_execute(database_url, sql))
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()
