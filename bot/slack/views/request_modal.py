"""The modal in which an engineer asks for a service account, and what it says after."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    OptionGroup,
    PlainTextInputElement,
    SectionBlock,
    StaticMultiSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.ids import BlockId, CallbackId
from bot.slack.views.text import escape
from workflows.catalog import MIN_LIFETIME_DAYS, SCOPES_BY_NAME
from workflows.discovery.replacement import Prefill
from workflows.models import ServiceAccountRequest
from workflows.policy import Offer, Policy
from workflows.request.quota import Usage
from workflows.request.validation import JUSTIFICATION_MAX

FIELD_BLOCKS = {
    "name": BlockId.NAME,
    "justification": BlockId.JUSTIFICATION,
    "products": BlockId.PRODUCTS,
    "scopes": BlockId.SCOPES,
    "lifetime_days": BlockId.LIFETIME,
}


def _input(block_id: BlockId, label: str, element: Any, hint: str | None = None) -> InputBlock:
    return InputBlock(block_id=block_id, label=label, element=element, hint=hint)


def _scope_groups(offer: Offer) -> list[OptionGroup]:
    groups = []
    for product, scopes in offer.scopes.items():
        options = []
        for scope in scopes:
            known = SCOPES_BY_NAME.get(scope)
            description = known.description[:75] if known else None
            options.append(Option(value=scope, text=scope, description=description))
        groups.append(OptionGroup(label=product.label, options=options))
    return groups


def _seats(seats: Usage | None) -> list[Block]:
    if seats is None:
        return []
    note = " Ask an admin first: a new one is refused." if seats.full else ""
    return [ContextBlock(elements=[MarkdownTextObject(text=f"{seats.line()}.{note}")])]


def request_modal(
    origin_channel_id: str | None,
    offer: Offer,
    seats: Usage | None = None,
    prefill: Prefill | None = None,
) -> View:
    """The request form, as the policy offers it; the channel it was opened from rides along,
    and the finding it answers when it is filled in from an offer (`prefill`)."""
    longest = max(offer.max_lifetime_days.values())
    metadata: dict[str, str | None] = {"channel": origin_channel_id}
    products = [Option(value=p.value, text=p.label) for p in offer.scopes]
    if prefill is not None:
        metadata["finding"] = prefill.account_id
    ticked = [o for o in products if prefill and o.value in {p.value for p in prefill.products}]
    return View(
        type="modal",
        callback_id=CallbackId.REQUEST,
        title="Service account",
        submit="Request",
        close="Cancel",
        private_metadata=json.dumps(metadata),
        blocks=[
            *_seats(seats),
            _input(
                BlockId.NAME,
                "Account name",
                PlainTextInputElement(
                    action_id=BlockId.NAME,
                    initial_value=(prefill.name or None) if prefill else None,
                    max_length=40,
                    placeholder=f"{offer.names.prefix}ci-release-bot{offer.names.suffix}",
                ),
                offer.name_hint(),
            ),
            _input(
                BlockId.JUSTIFICATION,
                "What is it for?",
                PlainTextInputElement(
                    action_id=BlockId.JUSTIFICATION,
                    initial_value=prefill.justification if prefill else None,
                    multiline=True,
                    max_length=JUSTIFICATION_MAX,
                    placeholder="Which automation, which projects or spaces, and why",
                ),
            ),
            _input(
                BlockId.PRODUCTS,
                "Products",
                CheckboxesElement(
                    action_id=BlockId.PRODUCTS, options=products, initial_options=ticked or None
                ),
            ),
            _input(
                BlockId.SCOPES,
                "Token scopes",
                StaticMultiSelectElement(
                    action_id=BlockId.SCOPES,
                    placeholder="Choose scopes",
                    option_groups=_scope_groups(offer),
                ),
                "Each scope must belong to a chosen product. Scopes cannot be changed later.",
            ),
            _input(
                BlockId.LIFETIME,
                f"Token lifetime (days, at most {longest})",
                NumberInputElement(
                    action_id=BlockId.LIFETIME,
                    is_decimal_allowed=False,
                    initial_value=str(min(offer.default_lifetime_days, longest)),
                    min_value=str(MIN_LIFETIME_DAYS),
                    max_value=str(longest),
                ),
            ),
        ],
    )


class RequestForms:
    """The request form as Slack's JSON, built once per policy. Turning slack_sdk's models
    into a dict checks every field (half a millisecond for this form), which a burst of
    `request` commands paid once each while their triggers' three seconds ran. What differs
    between two forms (the quota line, the channel) is added to a copy."""

    def __init__(self) -> None:
        self._rules: object | None = None
        self._form: dict[str, Any] = {}

    def form(self, policy: Policy, channel: str | None, seats: Usage | None) -> dict[str, Any]:
        """`request_modal(channel, policy.offer, seats).to_dict()`, without a prefill."""
        if self._rules is not policy.rules:  # the rules are read once, at start
            self._form = request_modal(None, policy.offer).to_dict()
            self._rules = policy.rules
        return {
            **self._form,
            "private_metadata": json.dumps({"channel": channel}),
            "blocks": [*(block.to_dict() for block in _seats(seats)), *self._form["blocks"]],
        }


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
