"""Events: the App Home tab, rebuilt from the database each time it is opened, and a person's
Slack account being deactivated."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.command_args import USER_ID
from bot.slack.replies import publish_home
from bot.slack.services import services_of
from workflows.account.owners import owner_deactivated

EVENT_ID = re.compile(r"^Ev[A-Za-z0-9]{4,60}$")


async def app_home_opened(
    event: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    # Publishing is idempotent, so a retried delivery only publishes the same view again.
    if event.get("tab", "home") != "home":
        return
    services = services_of(context)
    services.background.spawn(publish_home(services, client, str(event["user"])))


async def user_change(
    event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
) -> None:
    """A deactivated person's accounts are flagged for the admins at once. This runs before the
    acknowledgement (process_before_response), so the event is recorded before Slack hears 200;
    its retries, even concurrent ones, are recognised by event id and queue nothing."""
    person = event.get("user") or {}
    user_id, event_id = str(person.get("id", "")), str(body.get("event_id", ""))
    if person.get("deleted") is not True or not USER_ID.match(user_id):
        return
    if not EVENT_ID.match(event_id):
        return
    await owner_deactivated(services_of(context).runtime, event_id=event_id, owner=user_id)


def register(app: AsyncApp) -> None:
    app.event("app_home_opened")(app_home_opened)
    app.event("user_change")(user_change)
