"""The append-only audit trail. Callers pass labels and expiries, never token values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import AuditEvent


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    request_id: int | None = None,
    **detail: Any,
) -> None:
    """Add one event to the trail, in the caller's transaction."""
    session.add(
        AuditEvent(at=at, actor_id=actor, action=action, request_id=request_id, detail=detail)
    )
