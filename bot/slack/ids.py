"""Every action, block and callback id the app sends to Slack and routes on."""

from __future__ import annotations

import re
from enum import StrEnum


class ActionId(StrEnum):
    APPROVE = "request_approve"
    DENY = "request_deny"
    REVEAL = "token_reveal"
    CANCEL = "request_cancel"
    ACCOUNTS_PAGE = "accounts_page"
    CONFIRM_REVOKE = "confirm_revoke"
    CONFIRM_DELETE = "confirm_delete"
    DISMISS = "dismiss"
    ROTATE = "token_rotate"
    HOME_REQUEST = "home_request"
    REASSIGN = "owner_reassign"
    BREAK_GLASS = "request_break_glass"
    # The daily idle check's questions: an unused token, an idle account.
    IDLE_TOKEN_KEEP = "idle_token_keep"
    IDLE_TOKEN_REVOKE = "idle_token_revoke"
    IDLE_ACCOUNT_KEEP = "idle_account_keep"
    IDLE_ACCOUNT_DELETE = "idle_account_delete"
    # Replacing a discovery finding's token with a service account.
    FINDING_OFFER = "finding_offer"
    FINDING_DISMISS = "finding_dismiss"
    REPLACEMENT_FORM = "replacement_form"
    REPLACEMENT_DECLINE = "replacement_decline"
    REPLACEMENT_CONFIRM = "replacement_confirm"


class BlockId(StrEnum):
    NAME = "name"
    JUSTIFICATION = "justification"
    PRODUCTS = "products"
    SCOPES = "scopes"
    LIFETIME = "lifetime_days"
    DENY_REASON = "deny_reason"
    DECISION_BUTTONS = "decision_buttons"
    REVEAL_BUTTON = "reveal_button"
    REQUESTER_BUTTONS = "requester_buttons"
    PAGES = "pages"
    CONFIRM = "confirm"
    BREAK_GLASS_REASON = "break_glass_reason"
    NEW_OWNER = "new_owner"
    DISMISS_REASON = "dismiss_reason"


class CallbackId(StrEnum):
    REQUEST = "request_submit"
    DENY = "deny_submit"
    BREAK_GLASS = "break_glass_submit"
    REASSIGN = "reassign_submit"
    FINDING_DISMISS = "finding_dismiss_submit"


def one_of_many(action: ActionId, key: object) -> str:
    """The action id of one of several like buttons in a view (an approve button per waiting
    request in Home): Slack wants every action id of a view or message to be unique."""
    return f"{action.value}.{key}"


def routes(action: ActionId) -> re.Pattern[str]:
    """What a listener for `action` matches: the bare id and each `one_of_many` form of it."""
    return re.compile(rf"^{re.escape(action.value)}(\.[\w-]+)?$")
