"""Where each copy of a request's message lives in Slack (channel and ts)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from workflows.models import SlackMessage
from workflows.ports import MessageRef
from workflows.runtime import Runtime

APPROVAL_MESSAGE, REQUESTER_CARD, APPROVER_DM = "approval", "requester_card", "approver_dm:"


async def message_ref(runtime: Runtime, request_id: int | None, kind: str) -> MessageRef | None:
    async with runtime.db.transaction() as session:
        row = (
            await session.execute(
                select(SlackMessage).where(
                    col(SlackMessage.request_id) == request_id, col(SlackMessage.kind) == kind
                )
            )
        ).scalar_one_or_none()
    return MessageRef(row.channel_id, row.ts) if row else None


async def all_messages(runtime: Runtime, request_id: int) -> list[tuple[str, MessageRef]]:
    async with runtime.db.transaction() as session:
        rows = (
            (
                await session.execute(
                    select(SlackMessage)
                    .where(col(SlackMessage.request_id) == request_id)
                    .order_by(col(SlackMessage.id))
                )
            )
            .scalars()
            .all()
        )
    return [(row.kind, MessageRef(row.channel_id, row.ts)) for row in rows]
