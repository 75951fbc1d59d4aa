"""The Bolt app: listeners, the services they share, and one error handler."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient, WebhookResponse

from bot.slack.listeners import register_listeners
from bot.slack.services import Services, problem_text

log = logging.getLogger(__name__)


class _TokenGivenTwice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and then warns that it "will be unused" because a
    client is given too; the client is built from that very token, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


logging.getLogger("slack_bolt.AsyncApp").addFilter(_TokenGivenTwice())


class PooledRespond(AsyncRespond):
    """Bolt's `respond()` over the process's HTTP session (its connection pool): Bolt's own
    opens a new session, and a new connection with a TLS handshake, for every answer. Same
    arguments, same message (Bolt's `_build_message`), same retries."""

    def __init__(self, *, response_url: str, session: ClientSession) -> None:
        super().__init__(response_url=response_url)
        self.session = session

    async def __call__(
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[dict[str, Any] | Block] | None = None,
        attachments: Sequence[dict[str, Any] | Attachment] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        assert self.response_url is not None
        if isinstance(text, dict):
            message = _build_message(**text)
        else:
            message = _build_message(
                text=text,
                blocks=blocks,
                attachments=attachments,
                response_type=response_type,
                replace_original=replace_original,
                delete_original=delete_original,
                unfurl_links=unfurl_links,
                unfurl_media=unfurl_media,
                thread_ts=thread_ts,
                metadata=metadata,
            )
        client = AsyncWebhookClient(url=self.response_url, session=self.session)
        return await client.send_dict(message)


@dataclass
class SlackEdge:
    """The Bolt app, and what every listener finds on Bolt's context: the services, and
    `respond()` over the process's HTTP session. Put on each request before Bolt dispatches it,
    by both front doors (HTTP, Socket Mode): a Bolt middleware doing this cost a tenth of an
    acknowledgement, as Bolt builds every argument a middleware could ask for (some thirty) at
    each call."""

    app: AsyncApp
    services: Services
    client: AsyncWebClient

    async def dispatch(self, request: AsyncBoltRequest) -> BoltResponse:
        context = request.context
        context["services"] = self.services
        session = self.client.session
        if context.response_url and session is not None:
            context["respond"] = PooledRespond(response_url=context.response_url, session=session)
        return await self.app.async_dispatch(request)


def build_app(
    services: Services, client: AsyncWebClient, *, socket_mode: bool = False
) -> SlackEdge:
    """A Bolt AsyncApp whose listeners ack first and leave slow work to jobs.

    process_before_response=True makes Bolt await the ack listener instead of polling for
    `ack()` every 10 ms, so an acknowledgement costs about a millisecond.
    """
    settings = services.settings
    secret = settings.slack_signing_secret
    app = AsyncApp(
        name="sabot",  # without a name Bolt calls inspect.stack(), which reads source files
        client=client,
        signing_secret=None if socket_mode or secret is None else secret.get_secret_value(),
        request_verification_enabled=not socket_mode,
        process_before_response=not socket_mode,
        raise_error_for_unhandled_request=False,
    )

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: Any) -> None:
        text = problem_text(error)
        if body.get("response_url"):
            await respond(text=text, response_type="ephemeral", replace_original=False)

    register_listeners(app, settings.sabot_command)
    return SlackEdge(app, services, client)
