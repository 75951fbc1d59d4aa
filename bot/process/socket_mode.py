"""`sabot socket`: the Bolt app over Socket Mode, stoppable at any moment.

Left to itself slack_sdk's Socket Mode client retries every failure for ever, a refused app
token included (a traceback every ten seconds), and Bolt's `connect_async` returns only once
connected: a process with a revoked token, or one that cannot reach Slack, would never stop,
nor answer SIGTERM. Here a refused app token ends the process with one line naming
SLACK_APP_TOKEN, and connecting is raced against the stop signal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from slack_bolt.adapter.socket_mode.async_base_handler import AsyncBaseSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import send_async_response
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.process.signals import until_stopped
from bot.slack.app import SlackEdge

# What Slack answers apps.connections.open when retrying cannot help, and what it means.
REFUSALS = {
    "invalid_auth": "is wrong or has been revoked",
    "not_authed": "is empty",
    "token_revoked": "has been revoked",
    "account_inactive": "belongs to an app that was deleted or uninstalled",
    "not_allowed_token_type": "is not an app-level token (xapp-...)",
    "missing_scope": "lacks the connections:write scope",
}
FIX = (
    "make one in the app's settings under Basic Information > App-Level Tokens "
    "with the connections:write scope"
)
PING_INTERVAL_SECONDS = 10.0  # Bolt's default
CLOSE_TIMEOUT_SECONDS = 5.0
SDK_LOG = logging.getLogger("slack_sdk.socket_mode")


class AppTokenRefusingClient(SocketModeClient):
    """slack_sdk's aiohttp client, except that a refused app token closes it for good."""

    refused: str | None = None
    on_refused: Callable[[], None] = staticmethod(lambda: None)

    async def issue_new_wss_url(self) -> str:
        try:
            response = await self.web_client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as error:
            code = str(error.response.get("error"))
            if code == "ratelimited":
                return await super().issue_new_wss_url()  # it waits Retry-After, then asks again
            if code in REFUSALS:
                # Closed first: slack_sdk's connect loop then returns instead of retrying.
                self.refused, self.closed, self.auto_reconnect_enabled = code, True, False
                self.on_refused()
            raise
        return str(response["url"])


class QuietOnceRefused(logging.Filter):
    """After a refusal the client's own reports (from each task it runs) repeat the one line
    the process ends with; they are dropped."""

    def __init__(self, client: AppTokenRefusingClient) -> None:
        super().__init__()
        self.client = client

    def filter(self, record: logging.LogRecord) -> bool:
        return self.client.refused is None


class SocketModeLink(AsyncBaseSocketModeHandler):
    """Bolt's Socket Mode handler (the same dispatch and acks as its AsyncSocketModeHandler)
    over that client, with the process's Web API client: on SLACK_API_URL, its pool, its
    rate-limit handling."""

    app: AsyncApp
    client: AppTokenRefusingClient

    def __init__(
        self,
        edge: SlackEdge,
        app_token: str,
        web_client: AsyncWebClient,
        on_refused: Callable[[], None],
    ) -> None:
        self.app, self.edge = edge.app, edge
        self.client = client = AppTokenRefusingClient(
            app_token=app_token,
            logger=SDK_LOG,
            web_client=web_client,
            ping_interval=PING_INTERVAL_SECONDS,
        )
        client.on_refused = on_refused
        SDK_LOG.addFilter(QuietOnceRefused(client))
        client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]

    async def handle(self, client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        """As Bolt's `run_async_bolt_app`, through the edge (what listeners find on the
        context)."""
        started = time.time()
        request = AsyncBoltRequest(mode="socket_mode", body=req.payload, headers=build_headers(req))
        response = await self.edge.dispatch(request)
        await send_async_response(client, req, response, started)

    @property
    def refusal(self) -> str | None:
        """The one line to end with when Slack refused the app token, else None."""
        code = self.client.refused
        if code is None:
            return None
        return f"SLACK_APP_TOKEN {REFUSALS[code]} (Slack answered {code}): {FIX}"

    async def connect_until(self, stop: asyncio.Event) -> bool:
        """Connect, unless `stop` is set first (a signal, or a refusal); True once connected."""
        await until_stopped(self.connect_async(), stop)
        return not stop.is_set() and await self.client.is_connected()

    async def close(self) -> None:
        """Stop reconnecting and close the socket, whatever state it is in, in bounded time."""
        self.client.closed = True
        self.client.auto_reconnect_enabled = False
        try:
            await asyncio.wait_for(self.close_async(), CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            SDK_LOG.warning("the Socket Mode connection did not close in time; leaving it")
