"""Buttons: Approve, Deny, Reveal token, Cancel request, Break glass."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import ActionId, routes
from bot.listeners.events import publish_home
from bot.replies import open_request_form, rotate_and_tell
from bot.services import Say, Services, answering_errors, services_of
from bot.views import accounts as account_views
from bot.views.reason_modals import break_glass_modal, deny_modal
from workflows import accounts, decisions, requests, reveal
from workflows.errors import NotFound
from workflows.ports import ReplyTarget


def request_id_of(action: dict[str, Any]) -> int:
    """The request a button points at. Values are forgeable: a bad one is just 'not found'."""
    value = str(action.get("value") or "")
    if not value.isdigit() or len(value) > 12:
        raise NotFound("That button does not point at a request I know.")
    return int(value)


class Click:
    """Follow-up work of one button click, answered to the clicker alone."""

    def __init__(
        self,
        services: Services,
        body: dict[str, Any],
        respond: AsyncRespond | None,
        client: AsyncWebClient,
    ) -> None:
        self.services, self.body, self.respond, self.client = services, body, respond, client

    @property
    def from_home(self) -> bool:
        container = self.body.get("container") or {}
        return (
            container.get("type") == "view" and (self.body.get("view") or {}).get("type") == "home"
        )

    async def say(self, text: str) -> None:
        await self.show(text, ())

    async def show(self, text: str, blocks: Sequence[Block]) -> None:
        shown = [b.to_dict() for b in blocks] or None
        if self.body.get("response_url") and self.respond is not None:
            await self.respond(
                text=text, blocks=shown, response_type="ephemeral", replace_original=False
            )
        else:  # a click in the Home tab has no response_url: answer in our DM
            await self.client.chat_postMessage(channel=_user(self.body), text=text, blocks=shown)

    def later(self, work: Coroutine[Any, Any, Any], *, urgent: bool = False) -> None:
        """After the ack; `urgent` (a modal to open: its trigger_id lives 3 s) skips the queue."""
        self.services.background.spawn(self._then_home(work), urgent=urgent)

    async def _then_home(self, work: Coroutine[Any, Any, Any]) -> None:
        await answering_errors(work, self.say)
        if self.from_home:
            await answering_errors(
                publish_home(self.services, self.client, _user(self.body)), self.say
            )


def _user(body: dict[str, Any]) -> str:
    return str(body["user"]["id"])


async def approve(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    work = _approve(services, action, _user(body))
    Click(services, body, respond, client).later(work)


async def deny(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    """Ask for a reason; who may deny is checked when the reason is submitted."""
    await _ask_reason(
        ack, body, respond, client, context, lambda: deny_modal(request_id_of(action))
    )


async def break_glass(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await _ask_reason(
        ack, body, respond, client, context, lambda: break_glass_modal(request_id_of(action))
    )


async def _ask_reason(
    ack: AsyncAck,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
    build: Callable[[], View],
) -> None:
    await ack()
    services = services_of(context)
    # The trigger_id expires 3 s after the click: open the modal before any database work.
    Click(services, body, respond, client).later(
        _open(client, body["trigger_id"], build), urgent=True
    )


async def cancel(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    click = Click(services, body, respond, client)
    click.later(_cancel(services, action, _user(body), click.say))


async def _open(client: AsyncWebClient, trigger_id: str, build: Callable[[], View]) -> None:
    """Open a modal; the view is built here, so a forged button value is answered, not a 500."""
    await client.views_open(trigger_id=trigger_id, view=build())


async def _approve(services: Services, action: dict[str, Any], user_id: str) -> None:
    await decisions.decide(services.runtime, request_id_of(action), user_id, decisions.APPROVE)


async def _reveal(services: Services, action: dict[str, Any], target: ReplyTarget) -> None:
    await reveal.request_reveal(services.runtime, request_id_of(action), target)


async def _cancel(services: Services, action: dict[str, Any], user_id: str, say: Say) -> None:
    request = await requests.cancel(services.runtime, request_id_of(action), user_id)
    await say(f"{request.short_id} is cancelled.")


async def reveal_token(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    target = ReplyTarget(
        user_id=_user(body),
        channel_id=(body.get("channel") or {}).get("id"),
        response_url=body.get("response_url"),
    )
    work = _reveal(services, action, target)
    Click(services, body, respond, client).later(work)


async def accounts_page(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    """Next/Previous on an account list: the same filters, another page, in place."""
    await ack()
    services = services_of(context)

    async def work() -> None:
        try:
            flt, offset = account_views.filter_of(str(action.get("value") or ""))
        except (ValueError, KeyError, TypeError):
            raise NotFound("That page button is not one I made.") from None
        page = await accounts.list_accounts(services.runtime, _user(body), flt, offset)
        text, blocks = account_views.account_list(page, flt)
        await respond(text=text, blocks=[b.to_dict() for b in blocks], replace_original=True)

    Click(services, body, respond, client).later(work())


async def confirm_revoke(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)

    async def work() -> None:
        ref = str(action.get("value") or "")[:60]
        request = await accounts.revoke_all(services.runtime, ref, _user(body))
        await respond(
            text=f"Revoking every token of `{request.name}` ({request.short_id}).",
            replace_original=True,
        )

    Click(services, body, respond, client).later(work())


async def confirm_delete(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)

    async def work() -> None:
        ref = str(action.get("value") or "")[:60]
        request = await accounts.delete(services.runtime, ref, _user(body))
        await respond(
            text=f"Deleting `{request.name}` ({request.short_id}): its tokens are revoked "
            "first; Atlassian keeps it for 14 days.",
            replace_original=True,
        )

    Click(services, body, respond, client).later(work())


async def dismiss(ack: AsyncAck, respond: AsyncRespond, context: AsyncBoltContext) -> None:
    await ack()
    services_of(context).background.spawn(respond(delete_original=True))


async def rotate(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    """Rotate from an expiry warning or the Home tab (which gives no response_url)."""
    await ack()
    services = services_of(context)
    ref = str(action.get("value") or "")[:60]
    click = Click(services, body, respond, client)
    click.later(rotate_and_tell(services, ref, _user(body), click.show, False))


async def home_request(
    ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    """The Home tab's "Request a service account": the same modal as the command."""
    await ack()
    services = services_of(context)
    form = open_request_form(services, client, body["trigger_id"], None)
    Click(services, body, None, client).later(form, urgent=True)


async def reassign(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    """From an orphan alert: ask the admin for the new owner (checked at submit)."""
    await ack()
    services = services_of(context)
    view = account_views.reassign_modal(str(action.get("value") or "")[:60])
    Click(services, body, respond, client).later(
        client.views_open(trigger_id=body["trigger_id"], view=view), urgent=True
    )


def register(app: AsyncApp) -> None:
    app.action(ActionId.REASSIGN.value)(reassign)
    app.action(ActionId.HOME_REQUEST.value)(home_request)
    app.action(re.compile(f"^{ActionId.ACCOUNTS_PAGE.value}_"))(accounts_page)
    app.action(ActionId.CONFIRM_REVOKE.value)(confirm_revoke)
    app.action(ActionId.CONFIRM_DELETE.value)(confirm_delete)
    app.action(ActionId.DISMISS.value)(dismiss)
    app.action(routes(ActionId.ROTATE))(rotate)
    app.action(routes(ActionId.APPROVE))(approve)
    app.action(routes(ActionId.DENY))(deny)
    app.action(ActionId.REVEAL.value)(reveal_token)
    app.action(ActionId.CANCEL.value)(cancel)
    app.action(ActionId.BREAK_GLASS.value)(break_glass)
