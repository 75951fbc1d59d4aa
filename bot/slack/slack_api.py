"""The Slack Web API client: slack_sdk's, pointed at the configured base URL, with 429 retries.

slack_sdk installs no rate-limit retry by default, and its handler sleeps whatever Retry-After
says; this one honours Retry-After but never waits longer than the cap, so a long Slack outage
fails the job (which is retried later from the database) instead of hanging a worker. How many
tries and how long a wait: `slack_ratelimited` and `slack_connection` in workflows/retries.py.

A 429 speaks for the method, not for the one call: Slack limits each method per workspace.
So after one, no call of that method leaves this process until Retry-After has passed, whichever
task makes it (`RateLimitGate`, on the HTTP session every Slack client of the process shares).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.process.background import view_sent
from bot.process.settings import Settings

log = logging.getLogger(__name__)


def _retry_after(response: HttpResponse) -> float:
    for key, values in response.headers.items():
        if key.lower() == "retry-after" and values:
            return _seconds(values[0])
    return 1.0


def _seconds(value: str) -> float:
    try:
        return max(float(value), 0.0)
    except ValueError:
        return 1.0


class SlackRateLimited(Exception):
    """A call was held back: Slack asked this process to wait longer than it may."""


class RateLimitGate:
    """One gate per Web API method, shared by every task of the process (an aiohttp client
    middleware): closed for Retry-After seconds by a 429, during which calls of that method
    wait here, or fail at once when the wait is past `max_wait`."""

    def __init__(self, max_wait: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_wait, self.clock = max_wait, clock
        self._open_at: dict[str, float] = {}

    async def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        method = api_method(request.url.path)
        if method is not None:
            await self.wait(method)
        response = await handler(request)
        if method is not None and response.status == 429:
            self.close(method, _seconds(response.headers.get("Retry-After", "1")))
        return response

    def close(self, method: str, seconds: float) -> None:
        until = self.clock() + seconds
        if until > self._open_at.get(method, 0.0):
            self._open_at[method] = until
            log.info("slack rate-limited %s: no call of it for %.1fs", method, seconds)

    async def wait(self, method: str) -> None:
        while (left := self._open_at.get(method, 0.0) - self.clock()) > 0:
            if left > self.max_wait:
                raise SlackRateLimited(
                    f"ratelimited: Slack asked to wait {left:.0f}s more before {method}"
                )
            # A little jitter, so the calls that waited do not all go in the same instant.
            await asyncio.sleep(left + random.uniform(0, 0.1))


def api_method(path: str) -> str | None:
    """`chat.postMessage` of `/api/chat.postMessage` (Web API calls only, not response_urls)."""
    _, sep, method = path.rpartition("/api/")
    return method if sep and method and "/" not in method else None


class CappedRateLimitRetryHandler(AsyncRetryHandler):
    """Retry a 429 after Retry-After seconds, unless that is longer than `max_wait`."""

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and _retry_after(response) <= self.max_wait
        )

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        # No sleep here: the retry waits at the method's RateLimitGate, with every other call
        # of that method.
        assert response is not None
        log.info("slack answered 429; retrying after %.1fs", _retry_after(response))
        state.next_attempt_requested = True
        state.increment_current_attempt()


def slack_session(
    settings: Settings,
    *,
    timeout: float,
    middlewares: tuple[aiohttp.ClientMiddlewareType, ...] = (),
) -> aiohttp.ClientSession:
    """The one HTTP session (connection pool) of this process's Slack calls, gated per method.
    `middlewares` see each request before the gate, so also the calls it holds back."""
    gate = RateLimitGate(settings.failure_policy().slack_ratelimited.cap)
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),  # no cookies kept, as with a session per call
        middlewares=(*middlewares, gate),
        trace_configs=[_views_open_sent()],
    )


def _views_open_sent() -> aiohttp.TraceConfig:
    """Tells `Background.open_modal` when a views.open goes out (its body is being written)."""

    async def on_body(
        _session: Any, _context: Any, sent: aiohttp.TraceRequestChunkSentParams
    ) -> None:
        if sent.url.path.endswith("/views.open"):
            view_sent()

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_body)
    return trace


def web_client(settings: Settings, **kwargs: Any) -> AsyncWebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    policy = settings.failure_policy()
    ratelimited = policy.slack_ratelimited
    handlers: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=policy.slack_connection.attempts - 1),
        CappedRateLimitRetryHandler(ratelimited.attempts - 1, ratelimited.cap),
    ]
    return AsyncWebClient(
        token=token, base_url=settings.slack_api_url, retry_handlers=handlers, timeout=15, **kwargs
    )
