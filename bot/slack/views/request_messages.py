"""The messages about one request: the approvers' copy and the requester's card.

Both are pure functions of a `RequestSnapshot`, re-rendered from the database on every change.
"""

from __future__ import annotations

import hashlib

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.slack.ids import ActionId, BlockId
from bot.slack.views.text import (
    FIELD_MAX,
    SECTION_MAX,
    as_typed,
    chunks,
    escape,
    listed,
    mention,
    when,
)
from workflows.catalog import Product
from workflows.models import Decision
from workflows.ports import RequestSnapshot
from workflows.states import RequestStatus, RevealStatus, Verdict

S = RequestStatus


def revision(snap: RequestSnapshot, block: BlockId) -> str:
    """A block id that changes whenever what the message shows changes: Slack's clients keep a
    block whose id they already know as it was (a button's spinner, a chosen option), so an
    update that reused the id could show yesterday's state under today's text."""
    digest = hashlib.blake2s(repr(snap.fingerprint()).encode(), digest_size=4).hexdigest()
    return f"{block.value}.{digest}"


def _all_scopes(snap: RequestSnapshot) -> str:
    return f"`show {snap.request.short_id}` lists them all"


def every_scope(snap: RequestSnapshot) -> list[Block]:
    """The whole list of scopes, for `show`, when `details` had to shorten it."""
    scopes = snap.request.scopes
    if len(", ".join(map(escape, scopes))) <= FIELD_MAX - 10:
        return []
    blocks: list[Block] = [SectionBlock(text=f"*All {len(scopes)} scopes*")]
    return blocks + [SectionBlock(text=part) for part in chunks(scopes, SECTION_MAX)]


def _products(snap: RequestSnapshot) -> str:
    return ", ".join(Product(p).label for p in snap.request.products)


def details(snap: RequestSnapshot) -> list[Block]:
    r = snap.request
    fields = [
        f"*Requested by*\n{mention(r.requester_id)}",
        f"*Account name*\n`{escape(r.name)}`",
        f"*Products*\n{_products(snap)}",
        f"*Token lifetime*\n{r.lifetime_days} days",
        f"*Scopes*\n{listed(r.scopes, FIELD_MAX - 10, _all_scopes(snap))}",
    ]
    return [
        HeaderBlock(text=f"Service account request {r.short_id}"),
        SectionBlock(fields=[MarkdownTextObject(text=f) for f in fields]),
        SectionBlock(text="*What it is for*, in the requester's words:"),
        # Plain text on one line, emoji codes as typed: the requester's words can neither
        # format nor break into lines that would pass for this message's own status lines.
        SectionBlock(text=PlainTextObject(text=as_typed(r.justification), emoji=False)),
    ]


def _approved_by(snap: RequestSnapshot) -> str:
    glass = [d for d in snap.decisions if d.verdict == Verdict.BREAK_GLASS]
    if glass:
        return (
            f" by {mention(glass[0].approver_id)} with BREAK-GLASS: {escape(_glass_reason(snap))}"
        )
    approvers = [mention(d.approver_id) for d in _approvals(snap, counted=True)]
    return f" by {', '.join(approvers)}" if approvers else ""


def _approvals(snap: RequestSnapshot, *, counted: bool) -> list[Decision]:
    return [d for d in snap.decisions if d.verdict == Verdict.APPROVE and d.counts == counted]


def _pending_line(snap: RequestSnapshot) -> str:
    approvers = [mention(d.approver_id) for d in _approvals(snap, counted=True)]
    line = f":hourglass: Waiting for approval: {len(approvers)} of {snap.quorum} approvals"
    line += f" ({', '.join(approvers)})" if approvers else ""
    void = [mention(d.approver_id) for d in _approvals(snap, counted=False)]
    if void:
        line += f"; not counted, no longer approvers: {', '.join(void)}"
    return line


def status_line(snap: RequestSnapshot) -> str:
    r, account = snap.request, snap.account
    by, approved = (f" by {mention(r.decided_by)}" if r.decided_by else ""), _approved_by(snap)
    lines = {
        S.SUBMITTED: ":hourglass: Submitted",
        S.PENDING: _pending_line(snap),
        S.APPROVED: f":white_check_mark: Approved{approved}; creating the account",
        S.PROVISIONING: f":white_check_mark: Approved{approved}; creating the account",
        S.ACTIVE: f":white_check_mark: Approved{approved}; the account is ready",
        S.DENIED: f":no_entry: Denied{by}: {escape(r.status_reason or 'no reason given')}",
        S.CANCELLED: f":heavy_multiplication_x: Cancelled{by}",
        S.EXPIRED: ":alarm_clock: Expired without a decision",
        S.FAILED: f":x: Approved{approved}, but provisioning failed: "
        f"{escape(r.status_reason or 'unknown reason')}",
        S.REVOKED: ":lock: Tokens revoked" + _revoked_by(snap),
        S.DELETED: ":wastebasket: Account deleted",
    }
    line = lines[S(r.status)]
    if account is not None and account.revealed_at is not None:
        line += f"\n:key: Token revealed at {when(account.revealed_at)}"
    if account is not None and account.reveal_status == RevealStatus.MANUAL:
        line += "\n:wrench: Atlassian refused the token mint: an admin is making it by hand"
    return line


def _revoked_by(snap: RequestSnapshot) -> str:
    account = snap.account
    if account is None or not account.revoked_by:
        return ""
    return f" by {'the admin ' if account.revoked_by_admin else ''}{mention(account.revoked_by)}"


def _account_line(snap: RequestSnapshot) -> list[Block]:
    account = snap.account
    if account is None or not account.email:
        return []
    return [SectionBlock(text=f"*Account email*\n`{escape(account.email)}`")]


def approval_message(snap: RequestSnapshot) -> tuple[str, list[Block]]:
    """The approvers' copy: details, status, and Approve/Deny while it is pending."""
    r = snap.request
    blocks = [*details(snap), ContextBlock(elements=[MarkdownTextObject(text=status_line(snap))])]
    if r.status == S.PENDING:
        blocks.append(
            ActionsBlock(
                block_id=revision(snap, BlockId.DECISION_BUTTONS),
                elements=[
                    ButtonElement(
                        text="Approve", action_id=ActionId.APPROVE, value=str(r.id), style="primary"
                    ),
                    ButtonElement(
                        text="Deny", action_id=ActionId.DENY, value=str(r.id), style="danger"
                    ),
                ],
            )
        )
    fallback = f"Service account request {r.short_id} from {mention(r.requester_id)}: {r.status}"
    return fallback, blocks


def reveal_button(snap: RequestSnapshot) -> ActionsBlock:
    return ActionsBlock(
        block_id=revision(snap, BlockId.REVEAL_BUTTON),
        elements=[
            ButtonElement(
                text="Reveal token",
                action_id=ActionId.REVEAL,
                value=str(snap.request.id),
                style="primary",
            )
        ],
    )


def _requester_buttons(snap: RequestSnapshot) -> list[Block]:
    r = snap.request
    if snap.account is not None and snap.account.reveal_status == RevealStatus.READY:
        return [reveal_button(snap)]
    if r.status not in (S.SUBMITTED, S.PENDING):
        return []
    buttons = [ButtonElement(text="Cancel request", action_id=ActionId.CANCEL, value=str(r.id))]
    if snap.break_glass_allowed and r.status == S.PENDING:
        buttons.append(
            ButtonElement(
                text="Break glass", action_id=ActionId.BREAK_GLASS, value=str(r.id), style="danger"
            )
        )
    return [ActionsBlock(block_id=revision(snap, BlockId.REQUESTER_BUTTONS), elements=buttons)]


def requester_card(snap: RequestSnapshot) -> tuple[str, list[Block]]:
    """The requester's DM card, updated as the request moves on."""
    r = snap.request
    blocks = [
        *details(snap),
        *_account_line(snap),
        ContextBlock(elements=[MarkdownTextObject(text=status_line(snap))]),
        *_requester_buttons(snap),
    ]
    return f"Your service account request {r.short_id}: {r.status}", blocks


def account_ready(snap: RequestSnapshot) -> tuple[str, list[Block]]:
    """Told ephemerally in the channel where the request was made."""
    r = snap.request
    text = (
        f":white_check_mark: Your service account `{escape(r.name)}` ({r.short_id}) is "
        "ready. Click *Reveal token* when you are ready to copy it: it is shown once, "
        "only to you."
    )
    return f"Your service account {escape(r.name)} is ready", [
        SectionBlock(text=text),
        reveal_button(snap),
    ]


def reminder(snap: RequestSnapshot) -> str:
    return f":bell: Reminder: {snap.request.short_id} is still waiting. {_pending_line(snap)}."


def escalation(snap: RequestSnapshot, users: list[str], groups: list[str]) -> str:
    people = [mention(u) for u in users] + [f"<!subteam^{g}>" for g in groups]
    return (
        f":rotating_light: {' '.join(people)}: {snap.request.short_id} from "
        f"{mention(snap.request.requester_id)} has had no decision for a while. "
        f"{_pending_line(snap)}."
    )


def _glass_reason(snap: RequestSnapshot) -> str:
    return next((d.reason or "" for d in snap.decisions if d.verdict == Verdict.BREAK_GLASS), "")


def break_glass_alert(snap: RequestSnapshot) -> tuple[str, list[Block]]:
    r = snap.request
    head = (
        f":rotating_light: <!here> *Break-glass*: {mention(r.requester_id)} approved their "
        f"own request {r.short_id} for `{escape(r.name)}` ("
    )
    tail = (
        f").\n*Reason:* {escape(_glass_reason(snap))}"
        "\nReview it now; an admin can revoke the account."
    )
    scopes = listed(r.scopes, SECTION_MAX - len(head) - len(tail), _all_scopes(snap))
    text = head + scopes + tail
    return f"Break-glass self-approval of {r.short_id}", [SectionBlock(text=text)]
