"""Writing the append-only audit trail out, oldest first, as CSV or JSON.

The trail is read in batches by keyset (`at`, `id`), each batch in its own short transaction, so a
trail of any length neither sits in memory nor holds a database lock for the whole export.
The table has no column for a token value, so none can be written here.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from sqlalchemy import and_, or_, select
from sqlmodel import col

from workflows.db import Database
from workflows.models import AuditEvent, ServiceAccountRequest

Format = Literal["csv", "json"]
FIELDS = ("at", "actor", "action", "request", "account", "detail")
BATCH_SIZE = 1000


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, e.g. 2024-05-01T12:00:00.123456Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def audit_records(
    db: Database, *, since: datetime | None = None, batch_size: int = BATCH_SIZE
) -> AsyncIterator[dict[str, Any]]:
    """Every audit event at or after `since`, oldest first, as plain records."""
    after: tuple[datetime, int] | None = None
    while True:
        batch = await _batch(db, since, after, batch_size)
        for row in batch:
            yield _record(row)
        if len(batch) < batch_size:
            return
        after = (batch[-1].at, batch[-1].id)


async def _batch(
    db: Database, since: datetime | None, after: tuple[datetime, int] | None, size: int
) -> list[Any]:
    event, request = AuditEvent, ServiceAccountRequest
    query = (
        select(
            col(event.id),
            col(event.at),
            col(event.actor_id),
            col(event.action),
            col(event.request_id),
            col(event.detail),
            col(request.name),
        )
        .outerjoin(request, col(request.id) == col(event.request_id))
        .order_by(col(event.at), col(event.id))
        .limit(size)
    )
    if since is not None:
        query = query.where(col(event.at) >= since)
    if after is not None:
        # Events can share a timestamp, so the id breaks ties and none is skipped or repeated.
        at, last_id = after
        query = query.where(
            or_(col(event.at) > at, and_(col(event.at) == at, col(event.id) > last_id))
        )
    async with db.reading() as session:  # no write lock: the service goes on while it reads
        return list((await session.execute(query)).all())


def _record(row: Any) -> dict[str, Any]:
    return {
        "at": iso_utc(row.at),
        "actor": row.actor_id,
        "action": row.action,
        "request": f"SA-{row.request_id}" if row.request_id is not None else "",
        "account": row.name or "",
        "detail": row.detail or {},
    }


class _CsvWriter:
    def __init__(self, out: TextIO) -> None:
        self._writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        self._writer.writeheader()

    def write(self, record: dict[str, Any]) -> None:
        detail = json.dumps(record["detail"], sort_keys=True, ensure_ascii=False)
        self._writer.writerow({**record, "detail": detail})

    def close(self) -> None:
        pass


class _JsonWriter:
    """One JSON array, written an element at a time (one per line) instead of built whole."""

    def __init__(self, out: TextIO) -> None:
        self._out, self._first = out, True
        out.write("[")

    def write(self, record: dict[str, Any]) -> None:
        self._out.write("\n" if self._first else ",\n")
        self._out.write(json.dumps(record, sort_keys=False, ensure_ascii=False))
        self._first = False

    def close(self) -> None:
        self._out.write("]\n" if self._first else "\n]\n")


async def export_audit(
    db: Database,
    *,
    since: datetime | None,
    fmt: Format,
    out: TextIO,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Write the audit trail (from `since`, oldest first) to `out`; return how many events."""

    def opened() -> _CsvWriter | _JsonWriter:
        return _CsvWriter(out) if fmt == "csv" else _JsonWriter(out)

    # Nothing is written until the first read has answered: a database that cannot be read
    # leaves no header behind (on stdout, a `> audit.csv` that looks like an empty trail).
    writer = None
    count = 0
    async for record in audit_records(db, since=since, batch_size=batch_size):
        writer = writer or opened()
        writer.write(record)
        count += 1
    (writer or opened()).close()
    return count
