"""What the admin commands show: account lists, details, history, confirmations."""

from __future__ import annotations

import json
from datetime import timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.views.request_messages import details as request_details
from bot.slack.views.request_messages import every_scope
from bot.slack.views.text import clip, escape, mention, when
from workflows.account.accounts import AccountDetails, AccountFilter, AccountPage, AccountRow
from workflows.catalog import Product
from workflows.models import ServiceAccountRequest
from workflows.ports import RequestSnapshot, TokenUse
from workflows.states import LIVE_TOKENS

HISTORY_SHOWN = 40


def filter_value(flt: AccountFilter, offset: int) -> str:
    """A page button's value: the filters and where the page starts (kept under 2,000 chars)."""
    days = flt.expiring_within.days if flt.expiring_within is not None else None
    return json.dumps(
        {"o": offset, "w": flt.owner, "p": flt.product, "s": flt.status, "e": days, "t": flt.text}
    )


def filter_of(value: str) -> tuple[AccountFilter, int]:
    data = json.loads(value)
    days = data.get("e")
    return AccountFilter(
        data.get("w"),
        data.get("p"),
        data.get("s"),
        timedelta(days=int(days)) if days is not None else None,
        data.get("t"),
    ), int(data["o"])


def _row(row: AccountRow) -> SectionBlock:
    products = ", ".join(Product(p).label for p in row.products)
    expiry = (
        f"token expires {when(row.token_expires_at)}" if row.token_expires_at else "no live token"
    )
    orphan = " · :warning: owner left" if row.orphaned else ""
    return SectionBlock(
        text=f"*{escape(row.name)}* · {mention(row.owner_id)} · {products} · "
        f"{expiry} · {row.status}{orphan}"
    )


def account_list(page: AccountPage, flt: AccountFilter) -> tuple[str, list[Block]]:
    if not page.rows:
        return "No service accounts match.", [SectionBlock(text="No service accounts match.")]
    last = page.offset + len(page.rows)
    blocks: list[Block] = [
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Service accounts {page.offset + 1}-{last} of {page.total}, by name"
                )
            ]
        ),
        *[_row(row) for row in page.rows],
    ]
    buttons = []
    if page.offset > 0:
        buttons.append(
            ButtonElement(
                text="Previous",
                action_id=f"{ActionId.ACCOUNTS_PAGE}_prev",
                value=filter_value(flt, max(page.offset - page.page_size, 0)),
            )
        )
    if page.has_next:
        buttons.append(
            ButtonElement(
                text="Next",
                action_id=f"{ActionId.ACCOUNTS_PAGE}_next",
                value=filter_value(flt, last),
            )
        )
    if buttons:
        blocks.append(ActionsBlock(block_id=BlockId.PAGES, elements=buttons))
    return f"Service accounts {page.offset + 1}-{last} of {page.total}", blocks


def _ids(details: AccountDetails) -> str:
    account = details.snapshot.account
    if account is None:
        return "Not created at Atlassian."
    return (
        f"*Email* `{escape(account.email or '-')}`\n*Atlassian ids* admin `"
        f"{escape(account.atlassian_id or '-')}`, account `"
        f"{escape(account.atlassian_account_id or '-')}`"
    )


def _people(snap: RequestSnapshot) -> str:
    verdicts = [f"{mention(d.approver_id)} ({d.verdict})" for d in snap.decisions]
    return f"*Status* {snap.request.status} · *Decided by* {', '.join(verdicts) or 'nobody yet'}"


def _tokens(details: AccountDetails) -> str:
    lines = [
        f"• `{escape(t.label)}` {t.state}, expires "
        f"{when(t.expires_at) if t.expires_at else '?'}"
        + (
            f", revoked after {when(t.revoke_after)}"
            if t.revoke_after and t.state in LIVE_TOKENS
            else ""
        )
        for t in details.tokens
    ]
    return "*Tokens*\n" + ("\n".join(lines[-10:]) or "none yet")


def history_lines(details: AccountDetails) -> list[str]:
    return [
        f"{when(e.at)} · {mention(e.actor_id) if e.actor_id.startswith(('U', 'W')) else e.actor_id}"
        f" · {e.action.replace('_', ' ')}"
        for e in details.history[-HISTORY_SHOWN:]
    ]


def account_details(details: AccountDetails) -> tuple[str, list[Block]]:
    snap = details.snapshot
    blocks: list[Block] = [
        *request_details(snap),
        *every_scope(snap),
        SectionBlock(text=_ids(details)),
        SectionBlock(text=_people(snap)),
        SectionBlock(text=clip(_tokens(details), 2900)),
        SectionBlock(text=clip("*History*\n" + "\n".join(history_lines(details)[-15:]), 2900)),
    ]
    return f"Service account {escape(snap.request.name)}", blocks


def account_audit(details: AccountDetails) -> tuple[str, list[Block]]:
    name = escape(details.snapshot.request.name)
    lines = history_lines(details) or ["nothing recorded"]
    return f"History of {name}", [
        HeaderBlock(text=clip(f"History of {details.snapshot.request.name}", 150)),
        SectionBlock(text=clip("\n".join(lines), 2900)),
    ]


def confirm(action: str, row: AccountRow) -> tuple[str, list[Block]]:
    """Revoke and delete ask first: the click that follows is the decision. The buttons carry
    the request id, so they act on this account even if another one takes its name."""
    name, ref = escape(row.name), f"SA-{row.request_id}"
    which = f"`{name}` ({ref}, owner {mention(row.owner_id)}, {row.status})"
    questions = {
        "revoke": (
            f"Revoke *every* token of {which}? Automation using them stops "
            "at once. The account stays; a new token can be asked for later.",
            ActionId.CONFIRM_REVOKE,
            "Revoke tokens",
        ),
        "delete": (
            f"Delete {which} at Atlassian? Its tokens are revoked first. "
            "Atlassian keeps a deleted account for 14 days.",
            ActionId.CONFIRM_DELETE,
            "Delete account",
        ),
    }
    text, action_id, label = questions[action]
    return text, [
        SectionBlock(text=text),
        ActionsBlock(
            block_id=BlockId.CONFIRM,
            elements=[
                ButtonElement(text=label, action_id=action_id, value=ref, style="danger"),
                ButtonElement(text="Never mind", action_id=ActionId.DISMISS, value="dismiss"),
            ],
        ),
    ]


def new_token_offer(snap: RequestSnapshot) -> tuple[str, list[Block]]:
    from bot.slack.views.request_messages import reveal_button

    text = (
        f":arrows_counterclockwise: A new token for `{escape(snap.request.name)}` is ready "
        "to reveal. Click *Reveal token* when you can copy it; the previous token stops "
        "working when its grace period ends."
    )
    return f"A new token for {escape(snap.request.name)} is ready", [
        SectionBlock(text=text),
        reveal_button(snap),
    ]


def expiry_warning(
    snap: RequestSnapshot, label: str, expires_at: object, days: int, use: TokenUse | None = None
) -> tuple[str, list[Block]]:
    """`use`: the token is unused (for long, or ever): letting it lapse is the likely answer."""
    name = escape(snap.request.name)
    expiry = (
        f"The token `{escape(label)}` of `{name}` expires in "
        f"{days} day{'s' if days != 1 else ''} ({expires_at:%Y-%m-%d %H:%M} UTC)."
    )
    if use is None:
        text = (
            f":hourglass_flowing_sand: {expiry} Rotate it to get a new one; the old one keeps "
            "working for the grace period."
        )
        return f"The token of {name} expires in {days} days", [
            SectionBlock(text=text),
            _rotate(snap),
        ]
    unused = unused_text(use)
    text = (
        f":hourglass_flowing_sand: {expiry} {unused.capitalize()}: let it lapse? Nothing "
        "needs doing for that; rotate it only if something still needs it."
    )
    return f"The token of {name} expires in {days} days; {unused}: let it lapse?", [
        SectionBlock(text=text),
        _rotate(snap),
    ]


def unused_text(use: TokenUse) -> str:
    """E.g. "unused for 120 days", or "never used since it was made 40 days ago"."""
    plural = "s" if use.idle_days != 1 else ""
    if use.never_used:
        return f"never used since it was made {use.idle_days} day{plural} ago"
    return f"unused for {use.idle_days} day{plural}"


def _rotate(snap: RequestSnapshot) -> ActionsBlock:
    return ActionsBlock(
        elements=[
            ButtonElement(
                text="Rotate",
                action_id=ActionId.ROTATE,
                value=snap.request.short_id,
                style="primary",
            )
        ]
    )


def orphan_alert(snap: RequestSnapshot) -> tuple[str, list[Block]]:
    """To each admin: an account whose owner's Slack account was deactivated."""
    r = snap.request
    text = (
        f":warning: The owner of `{escape(r.name)}` ({r.short_id}), {mention(r.requester_id)}, "
        "has left "
        "(their Slack account is deactivated). Give the account a new owner, or revoke its "
        "tokens."
    )
    revoke = ButtonElement(
        text="Revoke tokens",
        action_id=ActionId.CONFIRM_REVOKE,
        value=r.short_id,
        style="danger",
        confirm=ConfirmObject(
            title="Revoke every token?",
            confirm="Revoke",
            deny="Back",
            text=PlainTextObject(text=f"Automation using {r.name} stops at once."),
        ),
    )
    return f"The owner of {escape(r.name)} has left", [
        SectionBlock(text=text),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Reassign", action_id=ActionId.REASSIGN, value=r.short_id, style="primary"
                ),
                revoke,
            ]
        ),
    ]


def reassign_modal(ref: str) -> View:
    """`ref` is the account the alert's button named (its request id, or a name in alerts
    sent before ids were used); it is checked when the modal is submitted."""
    return View(
        type="modal",
        callback_id=CallbackId.REASSIGN,
        title="New owner",
        submit="Reassign",
        close="Back",
        private_metadata=json.dumps({"ref": ref}),
        blocks=[
            SectionBlock(
                text=f"Who owns `{escape(ref)}` from now on? They get "
                "its tokens from now on; the history stays."
            ),
            InputBlock(
                block_id=BlockId.NEW_OWNER,
                label="New owner",
                element=UserSelectElement(action_id=BlockId.NEW_OWNER),
            ),
        ],
    )


def reveal_here(request_id: int) -> ActionsBlock:
    """A Reveal button for the owner's own ephemeral answer to `rotate`."""
    return ActionsBlock(
        elements=[
            ButtonElement(
                text="Reveal token",
                action_id=ActionId.REVEAL,
                value=str(request_id),
                style="primary",
            )
        ]
    )


def revoking_text(request: ServiceAccountRequest) -> str:
    return f"Revoking every token of `{escape(request.name)}` ({request.short_id})."


def deleting_text(request: ServiceAccountRequest) -> str:
    return (
        f"Deleting `{escape(request.name)}` ({request.short_id}): its tokens are revoked first; "
        "Atlassian keeps it for 14 days."
    )
