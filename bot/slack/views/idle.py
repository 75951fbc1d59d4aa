"""The idle check's DMs: an unused token (Keep / Revoke), an idle account (Delete / Keep)."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, SectionBlock

from bot.slack.ids import ActionId
from bot.slack.views.accounts import unused_text
from bot.slack.views.text import clip, escape, mention
from workflows.account.idle import Decided
from workflows.policy import Lifecycle
from workflows.ports import IdleAccount, IdleToken

SECTION_MAX = 3000


def idle_token_question(idle: IdleToken) -> tuple[str, list[Block]]:
    """To the owner. The buttons carry sabot's token id: the click is checked against it."""
    name, label = escape(idle.account_name), escape(idle.label)
    expires = f" It expires {idle.expires_at:%Y-%m-%d}." if idle.expires_at else ""
    unused = unused_text(idle.use)
    text = (
        f":zzz: The token `{label}` of `{name}` (SA-{idle.request_id}): {unused}.{expires} "
        "If nothing uses it any more, revoke it: an unused credential is only a risk. *Keep* "
        "it and I will not ask again until it has been unused that long once more."
    )
    value = str(idle.token_id)
    return f"The token {label} of {name}: {unused}. Keep or revoke it?", [
        SectionBlock(text=clip(text, SECTION_MAX)),
        ActionsBlock(
            elements=[
                ButtonElement(text="Keep", action_id=ActionId.IDLE_TOKEN_KEEP, value=value),
                ButtonElement(
                    text="Revoke",
                    action_id=ActionId.IDLE_TOKEN_REVOKE,
                    value=value,
                    style="danger",
                ),
            ]
        ),
    ]


def deletion_proposal(idle: IdleAccount, can_delete: bool) -> tuple[str, list[Block]]:
    """To the owner and each admin. Delete leads to the usual "are you sure?" (admins only);
    an owner who is no admin is told an admin was asked."""
    name, ref = escape(idle.account_name), f"SA-{idle.request_id}"
    plural = "s" if idle.idle_days != 1 else ""
    why = (
        f"none of its {idle.live_tokens} token(s) has been used for {idle.idle_days} day{plural}"
        if idle.live_tokens
        else f"it has had no live token for {idle.idle_days} day{plural}"
    )
    ask = (
        "Delete it (you are asked to confirm), or *Keep* it if something still needs it."
        if can_delete
        else "The admins were asked whether to delete it. *Keep* it if something still needs it."
    )
    text = (
        f":wastebasket: `{name}` ({ref}, owner {mention(idle.owner_id)}) looks unused: {why}. {ask}"
    )
    buttons = [ButtonElement(text="Keep", action_id=ActionId.IDLE_ACCOUNT_KEEP, value=ref)]
    if can_delete:
        delete = ButtonElement(
            text="Delete", action_id=ActionId.IDLE_ACCOUNT_DELETE, value=ref, style="danger"
        )
        buttons.insert(0, delete)
    return f"{name} ({ref}) looks unused: delete it?", [
        SectionBlock(text=clip(text, SECTION_MAX)),
        ActionsBlock(elements=buttons),
    ]


def token_kept(done: Decided, rules: Lifecycle) -> str:
    return (
        f":ok_hand: Kept the token `{escape(done.label)}` of `{escape(done.account_name)}` "
        f"(SA-{done.request_id}). I will not ask again unless it goes unused for another "
        f"{rules.idle_token_days} days."
    )


def token_revoking(done: Decided) -> str:
    return (
        f":no_entry: Revoking the token `{escape(done.label)}` of `{escape(done.account_name)}` "
        f"(SA-{done.request_id}) at Atlassian now; whatever still used it stops working. The "
        "account stays: `token` gets a new one."
    )


def account_kept(done: Decided, rules: Lifecycle) -> str:
    return (
        f":ok_hand: Kept `{escape(done.account_name)}` (SA-{done.request_id}). It is not "
        f"proposed for deletion again for {rules.idle_account_days} days."
    )
