"""Buttons of the idle check's DMs: Keep / Revoke an unused token, Delete / Keep an idle account.

Each button is checked against its clicker (the owner, or an admin): a DM can be forwarded,
and a value forged."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import ActionId
from bot.listeners.actions import Click
from bot.services import services_of
from bot.views import accounts as account_views
from bot.views.text import escape
from workflows import accounts, idle
from workflows.errors import NotFound


def _token_id(action: dict[str, Any]) -> int:
    value = str(action.get("value") or "")
    if not value.isdigit() or len(value) > 12:
        raise NotFound("That button does not point at a token I know.")
    return int(value)


def _clicker(body: dict[str, Any]) -> str:
    return str(body["user"]["id"])


async def keep_token(
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
        done = await idle.keep_token(services.runtime, _token_id(action), _clicker(body))
        days = services.runtime.policy.rules.lifecycle.idle_token_days
        await respond(
            text=f":ok_hand: Kept the token `{escape(done.label)}` of "
            f"`{escape(done.account_name)}` (SA-{done.request_id}). I will not ask again "
            f"unless it goes unused for another {days} days.",
            replace_original=True,
        )

    Click(services, body, respond, client).later(work())


async def revoke_token(
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
        done = await idle.revoke_token(services.runtime, _token_id(action), _clicker(body))
        await respond(
            text=f":no_entry: Revoking the token `{escape(done.label)}` of "
            f"`{escape(done.account_name)}` (SA-{done.request_id}) at Atlassian now; whatever "
            "still used it stops working. The account stays: `token` gets a new one.",
            replace_original=True,
        )

    Click(services, body, respond, client).later(work())


async def keep_account(
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
        done = await idle.keep_account(services.runtime, ref, _clicker(body))
        days = services.runtime.policy.rules.lifecycle.idle_account_days
        await respond(
            text=f":ok_hand: Kept `{escape(done.account_name)}` (SA-{done.request_id}). It is "
            f"not proposed for deletion again for {days} days.",
            replace_original=True,
        )

    Click(services, body, respond, client).later(work())


async def delete_account(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    context: AsyncBoltContext,
) -> None:
    """The usual "are you sure?" of `delete`, whose confirm button deletes (admins only)."""
    await ack()
    services = services_of(context)
    click = Click(services, body, respond, client)

    async def work() -> None:
        ref = str(action.get("value") or "")[:60]
        row = await accounts.check_allowed(services.runtime, ref, _clicker(body), "delete")
        await click.show(*account_views.confirm("delete", row))

    click.later(work())


def register(app: AsyncApp) -> None:
    app.action(ActionId.IDLE_TOKEN_KEEP.value)(keep_token)
    app.action(ActionId.IDLE_TOKEN_REVOKE.value)(revoke_token)
    app.action(ActionId.IDLE_ACCOUNT_KEEP.value)(keep_account)
    app.action(ActionId.IDLE_ACCOUNT_DELETE.value)(delete_account)
