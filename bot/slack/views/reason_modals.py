"""Small modals that ask for a reason: denying, breaking glass, dismissing a finding."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import (
    InputBlock,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack.ids import BlockId, CallbackId


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


def dismiss_finding_modal(account_id: str) -> View:
    """Why an admin judges a discovery finding fine (kept in the audit trail)."""
    return View(
        type="modal",
        callback_id=CallbackId.FINDING_DISMISS,
        title="Dismiss finding",
        submit="Dismiss",
        close="Back",
        private_metadata=json.dumps({"account_id": account_id}),
        blocks=[
            SectionBlock(
                text=PlainTextObject(
                    text="The person stays as they are; a later discovery run keeps the "
                    "finding dismissed. The reason is kept in the audit trail."
                )
            ),
            _reason_input(BlockId.DISMISS_REASON, "Why is this fine?"),
        ],
    )
