"""The slash command: `help`, `request`, and a clear answer to anything else."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services, answering_errors, services_of
from bot.views.help import unknown_subcommand, usage
from bot.views.request_modal import request_modal
from workflows import requests


async def service_account(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    """`/service-account [help | request]`."""
    words = (command.get("text") or "").split()
    name = command.get("command") or services_of(context).settings.sabot_command
    subcommand = words[0].lower() if words else "help"
    if subcommand == "help":
        await ack(text=usage(name))
    elif subcommand == "request":
        await ack()
        # trigger_id lives 3 seconds: open the modal right after the ack, before anything slow.
        services = services_of(context)
        view = request_modal(command.get("channel_id"), services.runtime.policy.offer)
        opening = client.views_open(trigger_id=command["trigger_id"], view=view)
        services.background.spawn(answering_errors(opening, respond))
    elif subcommand == "cancel" and len(words) != 2:
        await ack(text=f"Usage: `{name} cancel SA-12`")
    elif subcommand == "cancel":
        await ack()
        services = services_of(context)
        work = _cancel(services, words[1], command["user_id"], respond)
        services.background.spawn(answering_errors(work, respond))
    else:
        await ack(text=unknown_subcommand(name, subcommand))


async def _cancel(services: Services, typed_id: str, user_id: str, respond: AsyncRespond) -> None:
    request = await requests.cancel(services.runtime, requests.parse_short_id(typed_id), user_id)
    await respond(f"{request.short_id} is cancelled.")


def register(app: AsyncApp, command_name: str) -> None:
    app.command(command_name)(service_account)
