"""DMs of a replacement: the offer to the person, the confirmations, the revoked old token."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, SectionBlock

from bot.slack.ids import ActionId
from bot.slack.views.text import SECTION_MAX, clip, escape, mention
from workflows.discovery.replacement import Confirmed
from workflows.models import Finding
from workflows.ports import Replacement

DECLINED = "Understood: no service account for now. The admin who offered it is told."


def _account(replacement: Replacement) -> str:
    return escape(replacement.email or replacement.account_id)


def offer_message(offer: Replacement) -> tuple[str, list[Block]]:
    """To the person. The buttons carry the finding's account: each click is checked."""
    label = escape(offer.token_label)
    text = (
        f":wave: {mention(offer.offered_by)} offers you a service account in place of your API "
        f"token `{label}` on your Atlassian account ({_account(offer)}). Discovery found "
        f"automation using it ({', '.join(offer.reasons)}). Atlassian's terms keep a person's "
        "account for that person: a service account has its own identity and scoped, expiring "
        "tokens, and takes no licence seat.\n*Open the request form*: it starts filled in; the "
        "usual approvals follow. Once you have the new token, you and an admin confirm, and "
        f"then `{label}` is revoked."
    )
    value = offer.account_id
    return f"A service account in place of your API token {label}?", [
        SectionBlock(text=clip(text, SECTION_MAX)),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Open the request form",
                    action_id=ActionId.REPLACEMENT_FORM,
                    value=value,
                    style="primary",
                ),
                ButtonElement(
                    text="Not automation", action_id=ActionId.REPLACEMENT_DECLINE, value=value
                ),
            ]
        ),
    ]


def confirm_message(replacement: Replacement, as_admin: bool) -> tuple[str, list[Block]]:
    """To the person, and to each admin: the old token goes once both have confirmed."""
    label = escape(replacement.token_label)
    new = (
        f"`{escape(replacement.service_account or '')}` ({replacement.request_ref})"
        if replacement.request_ref
        else "the new service account"
    )
    if as_admin:
        ask = (
            f":white_check_mark: {mention(replacement.person_id)} has revealed the token of "
            f"{new}, which replaces their API token `{label}` ({_account(replacement)}). "
            "Confirm as an admin that the old token may be revoked; the person confirms too."
        )
    else:
        ask = (
            f":white_check_mark: You have the token of {new}. Move what used `{label}` over to "
            "it, then confirm: the old token is revoked once an admin has confirmed as well."
        )
    return f"Revoke the old API token {label}?", [
        SectionBlock(text=clip(ask, SECTION_MAX)),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Revoke the old token",
                    action_id=ActionId.REPLACEMENT_CONFIRM,
                    value=replacement.account_id,
                    style="danger",
                )
            ]
        ),
    ]


def revoked_text(replacement: Replacement) -> str:
    return (
        f":lock: The API token `{escape(replacement.token_label)}` on {_account(replacement)}'s "
        "Atlassian account is revoked: whatever still used it stops working now."
    )


def offered_text(finding: Finding) -> str:
    return (
        f"Offered a service account to {mention(finding.slack_user_id or '')} in place of the "
        f"token `{escape(finding.replaced_token_label or '')}`: they have a DM with the "
        "request form, filled in. `findings offered` follows it."
    )


def confirmed_text(done: Confirmed) -> str:
    label = escape(done.finding.replaced_token_label or "")
    if done.both:
        return f"Confirmed: the old token `{label}` is being revoked now."
    awaited = "the person" if done.as_admin else "an admin"
    return f"Confirmed. The old token `{label}` is revoked once {awaited} confirms too."
