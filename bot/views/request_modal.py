"""The modal in which an engineer asks for a service account, and what it says after."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    CheckboxesElement,
    InputBlock,
    NumberInputElement,
    Option,
    OptionGroup,
    PlainTextInputElement,
    SectionBlock,
    StaticMultiSelectElement,
)
from slack_sdk.models.views import View

from bot.ids import ActionId, BlockId, CallbackId
from bot.views.text import escape
from workflows.catalog import (
    DEFAULT_LIFETIME_DAYS,
    MAX_LIFETIME_DAYS,
    MIN_LIFETIME_DAYS,
    Product,
    scopes_for,
)
from workflows.models import ServiceAccountRequest
from workflows.validation import JUSTIFICATION_MAX

FIELD_BLOCKS = {
    "name": BlockId.NAME,
    "justification": BlockId.JUSTIFICATION,
    "products": BlockId.PRODUCTS,
    "scopes": BlockId.SCOPES,
    "lifetime_days": BlockId.LIFETIME,
}


def _input(block_id: BlockId, label: str, element: Any, hint: str | None = None) -> InputBlock:
    return InputBlock(block_id=block_id, label=label, element=element, hint=hint)


def _scope_groups() -> list[OptionGroup]:
    return [
        OptionGroup(
            label=product.label,
            options=[
                Option(value=scope.name, text=scope.name, description=scope.description[:75])
                for scope in scopes_for(product)
            ],
        )
        for product in Product
    ]


def request_modal(origin_channel_id: str | None) -> View:
    """The request form; the channel it was opened from rides along in private_metadata."""
    return View(
        type="modal",
        callback_id=CallbackId.REQUEST,
        title="Service account",
        submit="Request",
        close="Cancel",
        private_metadata=json.dumps({"channel": origin_channel_id}),
        blocks=[
            _input(
                BlockId.NAME,
                "Account name",
                PlainTextInputElement(
                    action_id=ActionId.INPUT, max_length=40, placeholder="ci-release-bot"
                ),
                "Lower-case letters, digits and dashes, 3 to 40 characters.",
            ),
            _input(
                BlockId.JUSTIFICATION,
                "What is it for?",
                PlainTextInputElement(
                    action_id=ActionId.INPUT,
                    multiline=True,
                    max_length=JUSTIFICATION_MAX,
                    placeholder="Which automation, which projects or spaces, and why",
                ),
            ),
            _input(
                BlockId.PRODUCTS,
                "Products",
                CheckboxesElement(
                    action_id=ActionId.INPUT,
                    options=[Option(value=p.value, text=p.label) for p in Product],
                ),
            ),
            _input(
                BlockId.SCOPES,
                "Token scopes",
                StaticMultiSelectElement(
                    action_id=ActionId.INPUT,
                    placeholder="Choose scopes",
                    option_groups=_scope_groups(),
                ),
                "Each scope must belong to a chosen product. Scopes cannot be changed later.",
            ),
            _input(
                BlockId.LIFETIME,
                "Token lifetime (days)",
                NumberInputElement(
                    action_id=ActionId.INPUT,
                    is_decimal_allowed=False,
                    initial_value=str(DEFAULT_LIFETIME_DAYS),
                    min_value=str(MIN_LIFETIME_DAYS),
                    max_value=str(MAX_LIFETIME_DAYS),
                ),
            ),
        ],
    )


def submitted_modal(request: ServiceAccountRequest) -> View:
    """What the modal turns into once the request is stored."""
    text = (
        f"*{request.short_id}* for `{escape(request.name)}` is waiting for approval.\n"
        "I have sent you a direct message with its card; it will follow the request as it "
        "moves on, and hold the *Reveal token* button once the account is ready."
    )
    return View(type="modal", title="Request sent", close="Done", blocks=[SectionBlock(text=text)])


def field_errors(errors: dict[str, str]) -> dict[str, str]:
    """Domain field names to the modal's block ids, as `response_action: errors` wants."""
    return {
        FIELD_BLOCKS.get(field, BlockId.NAME).value: message for field, message in errors.items()
    }
