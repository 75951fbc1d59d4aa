"""Small modals that ask for a reason: denying, and breaking glass."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import InputBlock, PlainTextInputElement, SectionBlock
from slack_sdk.models.views import View

from bot.ids import BlockId, CallbackId


def _reason_input(block_id: BlockId, label: str) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=label,
        element=PlainTextInputElement(action_id=block_id, multiline=True, max_length=500),
    )


def deny_modal(request_id: int) -> View:
    return View(
        type="modal",
        callback_id=CallbackId.DENY,
        title=f"Deny SA-{request_id}"[:24],
        submit="Deny",
        close="Back",
        private_metadata=json.dumps({"request_id": request_id}),
        blocks=[_reason_input(BlockId.DENY_REASON, "Reason (shown to the requester)")],
    )


def break_glass_modal(request_id: int) -> View:
    warning = (
        ":rotating_light: *Break glass* approves your own request without an approver. "
        "The approvers' channel is told at once, and the reason is kept in the audit "
        "trail. Use it only when this cannot wait."
    )
    return View(
        type="modal",
        callback_id=CallbackId.BREAK_GLASS,
        title="Break glass",
        submit="Approve it myself",
        close="Back",
        private_metadata=json.dumps({"request_id": request_id}),
        blocks=[
            SectionBlock(text=warning),
            _reason_input(BlockId.BREAK_GLASS_REASON, "Why can this not wait?"),
        ],
    )
