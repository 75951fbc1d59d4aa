"""Buttons: Approve, Deny, Reveal token."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import ActionId
from bot.services import Services, answering_errors, services_of
from bot.views.deny_modal import deny_modal
from workflows import requests, reveal
from workflows.errors import Conflict, NotFound
from workflows.ports import ReplyTarget


def request_id_of(action: dict[str, Any]) -> int:
    """The request a button points at. Values are forgeable: a bad one is just 'not found'."""
    value = str(action.get("value") or "")
    if not value.isdigit() or len(value) > 12:
        raise NotFound("That button does not point at a request I know.")
    return int(value)


def _ephemeral(respond: AsyncRespond) -> Any:
    async def say(text: str) -> None:
        await respond(text=text, response_type="ephemeral", replace_original=False)

    return say


async def approve(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    work = _approve(services, action, body["user"]["id"])
    services.background.spawn(answering_errors(work, _ephemeral(respond)))


async def _approve(services: Services, action: dict[str, Any], user_id: str) -> None:
    await requests.decide(services.runtime, request_id_of(action), user_id, requests.APPROVE)


async def deny(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    work = _ask_deny_reason(services, client, action, body["user"]["id"], body["trigger_id"])
    services.background.spawn(answering_errors(work, _ephemeral(respond)))


async def _ask_deny_reason(
    services: Services,
    client: AsyncWebClient,
    action: dict[str, Any],
    user_id: str,
    trigger_id: str,
) -> None:
    request = await requests.ensure_may_decide(
        services.runtime, request_id_of(action), user_id, requests.DENY
    )
    if request.status != "pending":
        raise Conflict(f"{request.short_id} is already {request.status}.")
    assert request.id is not None
    await client.views_open(trigger_id=trigger_id, view=deny_modal(request.id, request.short_id))


async def reveal_token(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    await ack()
    services = services_of(context)
    target = ReplyTarget(
        user_id=body["user"]["id"],
        channel_id=(body.get("channel") or {}).get("id"),
        response_url=body.get("response_url"),
    )
    work = _reveal(services, action, target)
    services.background.spawn(answering_errors(work, _ephemeral(respond)))


async def _reveal(services: Services, action: dict[str, Any], target: ReplyTarget) -> None:
    await reveal.request_reveal(services.runtime, request_id_of(action), target)


def register(app: AsyncApp) -> None:
    app.action(ActionId.APPROVE.value)(approve)
    app.action(ActionId.DENY.value)(deny)
    app.action(ActionId.REVEAL.value)(reveal_token)
