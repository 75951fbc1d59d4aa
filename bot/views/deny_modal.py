"""The small modal that asks an approver why they deny."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import InputBlock, PlainTextInputElement
from slack_sdk.models.views import View

from bot.ids import ActionId, BlockId, CallbackId


def deny_modal(request_id: int, short_id: str) -> View:
    return View(
        type="modal",
        callback_id=CallbackId.DENY,
        title=f"Deny {short_id}"[:24],
        submit="Deny",
        close="Back",
        private_metadata=json.dumps({"request_id": request_id}),
        blocks=[
            InputBlock(
                block_id=BlockId.DENY_REASON,
                label="Reason (shown to the requester)",
                element=PlainTextInputElement(
                    action_id=ActionId.INPUT, multiline=True, max_length=500
                ),
            )
        ],
    )
