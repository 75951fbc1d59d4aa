"""The Slack Web API client: slack_sdk's, pointed at the configured base URL, with 429 retries.

slack_sdk installs no rate-limit retry by default, and its handler sleeps whatever Retry-After
says; this one honours Retry-After but never waits longer than the cap, so a long Slack outage
fails the job (which is retried later from the database) instead of hanging a worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings

log = logging.getLogger(__name__)


def _retry_after(response: HttpResponse) -> float:
    for key, values in response.headers.items():
        if key.lower() == "retry-after" and values:
            try:
                return float(values[0])
            except ValueError:
                break
    return 1.0


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
        assert response is not None
        wait = _retry_after(response)
        log.info("slack answered 429; retrying in %.1fs", wait)
        state.next_attempt_requested = True
        await asyncio.sleep(wait + random.uniform(0, 0.1))
        state.increment_current_attempt()


def web_client(settings: Settings, **kwargs: Any) -> AsyncWebClient:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    handlers: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        CappedRateLimitRetryHandler(
            settings.slack_retry_attempts, settings.slack_retry_max_wait_seconds
        ),
    ]
    return AsyncWebClient(
        token=token, base_url=settings.slack_api_url, retry_handlers=handlers, timeout=15, **kwargs
    )
