"""The Bolt app: listeners, the services they share, and one error handler."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners import register_listeners
from bot.services import Services, problem_text

log = logging.getLogger(__name__)


def build_app(services: Services, client: AsyncWebClient, *, socket_mode: bool = False) -> AsyncApp:
    """A Bolt AsyncApp whose listeners ack first and leave slow work to jobs.

    process_before_response=True makes Bolt await the ack listener instead of polling for
    `ack()` every 10 ms, so an acknowledgement costs about a millisecond.
    """
    settings = services.settings
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client,
        signing_secret=None if socket_mode or secret is None else secret.get_secret_value(),
        request_verification_enabled=not socket_mode,
        process_before_response=not socket_mode,
        raise_error_for_unhandled_request=False,
    )

    @app.middleware
    async def attach_services(
        context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        context["services"] = services
        return await next()

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: Any) -> None:
        text = problem_text(error)
        if body.get("response_url"):
            await respond(text=text, response_type="ephemeral", replace_original=False)

    register_listeners(app, settings.sabot_command)
    return app
