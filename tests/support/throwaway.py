"""Throwaway databases: a fresh SQLite file, or a PostgreSQL database searched by the secret
sweep and dropped after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.databases import pg_admin_url, pg_execute
from tests.support.sweep import sweep_before_drop


@contextmanager
def throwaway_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a PostgreSQL database created from TEST_DATABASE_URL and dropped
    after; PostgreSQL is skipped (visibly) where that variable is not set."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'sabot.db'}"
        return
    admin = pg_admin_url()
    if admin is None:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    name = f"sabot_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(pg_execute(admin, f'CREATE DATABASE "{name}"'))
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        yield url
    finally:
        try:
            sweep_before_drop(url)  # the last moment its rows can be searched
        finally:
            asyncio.run(pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
