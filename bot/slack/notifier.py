"""The domain's `Notifier`, spoken through the Slack Web API."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.process.logs import secret_in_flight
from bot.slack.views import accounts as accounts_views
from bot.slack.views import idle as idle_views
from bot.slack.views import replacement as replacement_views
from bot.slack.views import request_messages as views
from bot.slack.views.manual_token import manual_token_request
from bot.slack.views.text import escape
from bot.slack.views.token_delivery import token_message
from workflows.ports import (
    IdleAccount,
    IdleToken,
    ManualToken,
    MessageRef,
    Replacement,
    ReplyTarget,
    RequestSnapshot,
    TokenDelivery,
    TokenUse,
)

log = logging.getLogger(__name__)

# Where Slack will not show an ephemeral to this person; the DM card still has the button.
UNREACHABLE = frozenset(
    {"user_not_in_channel", "channel_not_found", "not_in_channel", "is_archived", "no_permission"}
)


def _renderer(kind: str) -> Callable[[RequestSnapshot], tuple[str, list[Block]]]:
    """The requester's card, or the approvers' copy (channel message or an approver's DM)."""
    return views.requester_card if kind == "requester_card" else views.approval_message


def _dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


class DeliveryFailed(Exception):
    """Slack did not accept an ephemeral reply (the text never holds its content)."""


class SlackNotifier:
    def __init__(self, client: AsyncWebClient, approval_channel: str) -> None:
        self.client = client
        self.approval_channel = approval_channel

    async def post_approval_request(self, snapshot: RequestSnapshot) -> MessageRef:
        text, blocks = views.approval_message(snapshot)
        answer = await self.client.chat_postMessage(
            channel=self.approval_channel, text=text, blocks=_dicts(blocks)
        )
        return MessageRef(answer["channel"], answer["ts"])

    async def post_requester_card(self, snapshot: RequestSnapshot) -> MessageRef:
        return await self._dm(snapshot.request.requester_id, *views.requester_card(snapshot))

    async def post_approval_dm(self, user_id: str, snapshot: RequestSnapshot) -> MessageRef:
        return await self._dm(user_id, *views.approval_message(snapshot))

    async def remind(self, ref: MessageRef, snapshot: RequestSnapshot) -> None:
        await self.client.chat_postMessage(
            channel=ref.channel_id, thread_ts=ref.ts, text=views.reminder(snapshot)
        )

    async def escalate(
        self, ref: MessageRef, snapshot: RequestSnapshot, users: list[str], groups: list[str]
    ) -> None:
        await self.client.chat_postMessage(
            channel=ref.channel_id,
            thread_ts=ref.ts,
            text=views.escalation(snapshot, users, groups),
            reply_broadcast=True,
        )

    async def alert_break_glass(self, snapshot: RequestSnapshot) -> None:
        text, blocks = views.break_glass_alert(snapshot)
        await self.client.chat_postMessage(
            channel=self.approval_channel, text=text, blocks=_dicts(blocks)
        )

    async def offer_new_token(self, snapshot: RequestSnapshot) -> None:
        await self._dm(snapshot.request.requester_id, *accounts_views.new_token_offer(snapshot))

    async def warn_expiry(
        self,
        snapshot: RequestSnapshot,
        label: str,
        expires_at: datetime,
        days: int,
        use: TokenUse | None = None,
    ) -> None:
        text, blocks = accounts_views.expiry_warning(snapshot, label, expires_at, days, use)
        await self._dm(snapshot.request.requester_id, text, blocks)

    async def ask_idle_token(self, idle: IdleToken) -> None:
        await self._dm(idle.owner_id, *idle_views.idle_token_question(idle))

    async def propose_deletion(self, user_id: str, idle: IdleAccount, can_delete: bool) -> None:
        await self._dm(user_id, *idle_views.deletion_proposal(idle, can_delete))

    async def offer_replacement(self, offer: Replacement) -> None:
        await self._dm(offer.person_id, *replacement_views.offer_message(offer))

    async def ask_to_revoke_old_token(
        self, user_id: str, replacement: Replacement, as_admin: bool
    ) -> None:
        await self._dm(user_id, *replacement_views.confirm_message(replacement, as_admin))

    async def tell_old_token_revoked(self, user_id: str, replacement: Replacement) -> None:
        text = replacement_views.revoked_text(replacement)
        await self._dm(user_id, text, [SectionBlock(text=text)])

    async def alert_orphan(self, admin_id: str, snapshot: RequestSnapshot) -> None:
        await self._dm(admin_id, *accounts_views.orphan_alert(snapshot))

    async def tell(self, user_id: str, text: str) -> None:
        safe = escape(text)
        await self._dm(user_id, safe, [SectionBlock(text=safe[:2900])])

    async def tell_approvers(self, text: str) -> None:
        # The domain writes mentions as <@U...>: shown as mentions; nothing else is markup.
        await self.client.chat_postMessage(
            channel=self.approval_channel, text=text, blocks=[SectionBlock(text=text).to_dict()]
        )

    async def ask_for_manual_token(self, admins: list[str], manual: ManualToken) -> None:
        text, blocks = manual_token_request(manual)
        if not admins:  # nobody named admin: the approvers' channel is who runs sabot
            await self.client.chat_postMessage(
                channel=self.approval_channel, text=text, blocks=_dicts(blocks)
            )
        for admin in admins:
            await self._dm(admin, text, blocks)

    async def _dm(self, user_id: str, text: str, blocks: list[Block]) -> MessageRef:
        dm = await self.client.conversations_open(users=user_id)
        answer = await self.client.chat_postMessage(
            channel=dm["channel"]["id"], text=text, blocks=_dicts(blocks)
        )
        return MessageRef(answer["channel"], answer["ts"])

    async def update_message(self, kind: str, ref: MessageRef, snapshot: RequestSnapshot) -> None:
        text, blocks = _renderer(kind)(snapshot)
        await self.client.chat_update(
            channel=ref.channel_id, ts=ref.ts, text=text, blocks=_dicts(blocks)
        )

    async def post_in_thread(self, ref: MessageRef, text: str) -> None:
        await self.client.chat_postMessage(
            channel=ref.channel_id, thread_ts=ref.ts, text=escape(text)
        )

    async def tell_account_ready(self, snapshot: RequestSnapshot) -> None:
        channel = snapshot.request.origin_channel_id
        if not channel or channel.startswith("D"):
            return  # asked from a DM: the card there already says so
        text, blocks = views.account_ready(snapshot)
        try:
            await self.client.chat_postEphemeral(
                channel=channel,
                user=snapshot.request.requester_id,
                text=text,
                blocks=_dicts(blocks),
            )
        except SlackApiError as error:
            if error.response.get("error") not in UNREACHABLE:
                raise
            log.info(
                "no ephemeral for %s in %s (%s); the DM card has the button",
                snapshot.request.short_id,
                channel,
                error.response.get("error"),
            )

    async def deliver_token(self, target: ReplyTarget, delivery: TokenDelivery) -> None:
        text, blocks = token_message(delivery)
        with secret_in_flight(delivery.token.get_secret_value()):
            await self._ephemeral(target, text, blocks)

    async def reply(self, target: ReplyTarget, text: str) -> None:
        # Domain texts may quote Atlassian's error messages: shown as text, never as markup.
        safe = escape(text)
        await self._ephemeral(target, safe, [SectionBlock(text=safe)])

    async def _ephemeral(self, target: ReplyTarget, text: str, blocks: list[Block]) -> None:
        """Answer the clicker alone: the click's response_url, else chat.postEphemeral."""
        if target.response_url:
            answer = await AsyncWebhookClient(target.response_url, timeout=10).send(
                text=text, blocks=_dicts(blocks), response_type="ephemeral", replace_original=False
            )
            if answer.status_code == 200:
                return
            log.warning(
                "response_url answered HTTP %s; falling back to chat.postEphemeral",
                answer.status_code,
            )
        if not target.channel_id:
            raise DeliveryFailed("no response_url and no channel to answer in")
        await self.client.chat_postEphemeral(
            channel=target.channel_id, user=target.user_id, text=text, blocks=_dicts(blocks)
        )
