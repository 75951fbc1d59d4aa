"""Events: the App Home tab, rebuilt from the database each time it is opened."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services, services_of
from bot.views.home import home_view
from workflows.home import home_for


async def publish_home(services: Services, client: AsyncWebClient, user_id: str) -> None:
    home = await home_for(services.runtime, user_id)
    await client.views_publish(user_id=user_id, view=home_view(home))


async def app_home_opened(
    event: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
) -> None:
    # Events are acknowledged by Bolt before this runs; publishing is idempotent, so a
    # retried delivery only publishes the same view again.
    if event.get("tab", "home") != "home":
        return
    services = services_of(context)
    services.background.spawn(publish_home(services, client, str(event["user"])))


def register(app: AsyncApp) -> None:
    app.event("app_home_opened")(app_home_opened)
