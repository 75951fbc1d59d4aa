"""The App Home tab, as a pure function of what `workflows.account.home` found."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.slack.ids import ActionId, one_of_many
from bot.slack.views.text import SECTION_MAX, escape, listed, mention, when
from workflows.account.accounts import AccountRow
from workflows.account.home import Home
from workflows.models import ServiceAccountRequest
from workflows.states import RequestStatus


def _note(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _account(row: AccountRow) -> SectionBlock:
    expiry = when(row.token_expires_at) if row.token_expires_at else "no live token"
    text = f"*{escape(row.name)}* · {row.status} · token: {expiry}"
    rotate = ButtonElement(
        text="Rotate",
        action_id=one_of_many(ActionId.ROTATE, row.request_id),
        value=f"SA-{row.request_id}",
    )
    return SectionBlock(text=text, accessory=rotate if row.status == RequestStatus.ACTIVE else None)


def _request(request: ServiceAccountRequest) -> SectionBlock:
    return SectionBlock(text=f"*{request.short_id}* `{escape(request.name)}` · {request.status}")


def _waiting(request: ServiceAccountRequest) -> list[Block]:
    head = f"*{request.short_id}* `{escape(request.name)}` from {mention(request.requester_id)} · "
    where_all = f"`show {request.short_id}` lists them all"
    text = head + listed(request.scopes, SECTION_MAX - len(head), where_all)
    return [
        SectionBlock(text=text),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Approve",
                    action_id=one_of_many(ActionId.APPROVE, request.id),
                    value=str(request.id),
                    style="primary",
                ),
                ButtonElement(
                    text="Deny",
                    action_id=one_of_many(ActionId.DENY, request.id),
                    value=str(request.id),
                    style="danger",
                ),
            ]
        ),
    ]


def _mine(home: Home) -> list[Block]:
    blocks: list[Block] = [
        HeaderBlock(text="Service accounts"),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Request a service account",
                    action_id=ActionId.HOME_REQUEST,
                    value="request",
                    style="primary",
                )
            ]
        ),
        *([_note(f"{home.seats.line()}.")] if home.seats is not None else []),
        SectionBlock(text="*My accounts*"),
    ]
    blocks += [_account(row) for row in home.accounts.rows[:10]] or [_note("None yet.")]
    blocks.append(SectionBlock(text="*My requests*"))
    blocks += [_request(r) for r in home.requests] or [_note("None yet.")]
    return blocks


def _approver(home: Home) -> list[Block]:
    if not home.waiting_for_me:
        return []
    blocks: list[Block] = [DividerBlock(), SectionBlock(text="*Waiting for my decision*")]
    for request in home.waiting_for_me:
        blocks += _waiting(request)
    return blocks


def _admin(home: Home) -> list[Block]:
    view = home.admin
    if view is None:
        return []
    counts = " · ".join(f"{status} {n}" for status, n in sorted(view.counts.items())) or "none"
    expiring = [
        f"`{escape(r.name)}` {when(r.token_expires_at)}"
        for r in view.expiring.rows
        if r.token_expires_at
    ]
    orphans = [f"`{escape(a.name)}` (owner {mention(a.owner_id)} left)" for a in view.orphans]
    return [
        DividerBlock(),
        SectionBlock(text="*Admin*"),
        _note(f"Requests by status: {counts}"),
        SectionBlock(
            text="*Tokens expiring within 14 days*\n" + ("\n".join(expiring[:10]) or "none")
        ),
        SectionBlock(text="*Orphaned accounts*\n" + ("\n".join(orphans) or "none")),
    ]


def home_view(home: Home) -> View:
    return View(type="home", blocks=[*_mine(home), *_approver(home), *_admin(home)][:100])
