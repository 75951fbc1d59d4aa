"""Baseline: a bare Bolt AsyncApp in its default configuration that only acknowledges, except
`/... request`, which it acknowledges and then answers by opening a one-input modal.

Served with Bolt's Starlette adapter; `process_before_response` is left at its default
(False), so Bolt's runner polls for `ack()` (see DESIGN.md, Speed) and the listener goes on to
`views.open` after the acknowledgement has been sent. Settings come from the environment:
SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL.
"""

from __future__ import annotations

import os
import re
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

bolt = AsyncApp(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    client=AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    ),
)


MODAL = {
    "type": "modal",
    "callback_id": "bench_request",
    "title": {"type": "plain_text", "text": "Service account"},
    "submit": {"type": "plain_text", "text": "Request"},
    "blocks": [
        {
            "type": "input",
            "block_id": "name",
            "label": {"type": "plain_text", "text": "Account name"},
            "element": {"type": "plain_text_input", "action_id": "input"},
        }
    ],
}


@bolt.command(re.compile(".*"))
async def command(ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
    await ack()
    if command.get("text") == "request":
        await client.views_open(trigger_id=command["trigger_id"], view=MODAL)


@bolt.action(re.compile(".*"))
async def action(ack: Any) -> None:
    await ack()


handler = AsyncSlackRequestHandler(bolt)


async def events(request: Request) -> Response:
    return await handler.handle(request)


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/slack/events", events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
