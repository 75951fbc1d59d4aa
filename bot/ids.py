"""Every action, block and callback id the app sends to Slack and routes on."""

from __future__ import annotations

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
    INPUT = "value"  # the one element of each input block


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


class CallbackId(StrEnum):
    REQUEST = "request_submit"
    DENY = "deny_submit"
    BREAK_GLASS = "break_glass_submit"
    REASSIGN = "reassign_submit"
