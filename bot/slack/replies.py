"""Answers more than one kind of listener gives (a command, a button in a DM, a button in Home)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_sdk.models.blocks import Block, SectionBlock
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.services import Services
from bot.slack.views import accounts as views
from bot.slack.views.home import home_view
from bot.slack.views.request_modal import request_modal
from bot.slack.views.text import escape
from workflows.account import accounts
from workflows.account.home import home_for
from workflows.discovery.replacement import Prefill

# Show the person who asked a message (text, and blocks or nothing), wherever they asked from.
Show = Callable[[str, Sequence[Block]], Awaitable[Any]]


async def rotate_and_tell(
    services: Services, ref: str, user: str, show: Show, revoke_now: bool
) -> None:
    """A new token always goes to the owner; an admin who asked is told so."""
    done = await accounts.rotate(services.runtime, ref, user, revoke_now=revoke_now)
    which = f"`{escape(done.name)}` (SA-{done.request_id})"
    old = (
        f" {done.old_tokens} previous token(s) will be revoked at "
        f"{done.revoke_after:%Y-%m-%d %H:%M} UTC."
        if done.old_tokens
        else ""
    )
    if user == done.owner_id:  # the owner asked: the Reveal button right here, too
        text = f"A new token for {which} is ready to reveal.{old}"
        await show(text, [SectionBlock(text=text), views.reveal_here(done.request_id)])
    else:
        owner = f"<@{done.owner_id}>"
        text = f"The new token for {which} went to its owner, {owner}, never to you.{old}"
        await show(text, ())


async def publish_home(services: Services, client: AsyncWebClient, user_id: str) -> None:
    """The App Home tab, rebuilt from the database."""
    home = await home_for(services.runtime, user_id)
    await client.views_publish(user_id=user_id, view=home_view(home))


async def open_request_form(
    services: Services,
    client: AsyncWebClient,
    trigger_id: str,
    channel: str | None,
    prefill: Prefill | None = None,
) -> None:
    """The request form, with how many of the organisation's service accounts are in use (the
    last count, a few seconds old at most: the trigger lives three seconds); `prefill` when it
    answers an offer."""
    runtime = services.runtime
    seats = await runtime.quota_usage(fresh=False)
    if prefill is None:
        view = services.forms.form(runtime.policy, channel, seats)
    else:
        view = request_modal(channel, runtime.policy.offer, seats, prefill).to_dict()
    await client.views_open(trigger_id=trigger_id, view=view)
