"""HTTP mode: `POST /slack/events` for everything Slack sends, and `GET /healthz`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import build_app
from bot.assembly import Assembly, assemble
from bot.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Slack's payloads are far smaller; refuse anything past 1 MiB


async def _bounded_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Bolt's adapter reads request.body(): hand it what was read
    return body


def create_server(
    settings: Settings, *, run_worker: bool = True, migrate: bool = True
) -> Starlette:
    state: dict[str, Assembly | AsyncSlackRequestHandler] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        assembly = await assemble(settings, migrate=migrate)
        state["assembly"] = assembly
        state["handler"] = AsyncSlackRequestHandler(build_app(assembly.services, assembly.client))
        if run_worker:
            assembly.start_worker()
        log.info("sabot ready (worker %s)", "in-process" if run_worker else "off")
        try:
            yield
        finally:
            await assembly.close()

    async def slack_events(request: Request) -> Response:
        if await _bounded_body(request) is None:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        handler = state["handler"]
        assert isinstance(handler, AsyncSlackRequestHandler)
        response = await handler.handle(request)
        if response.status_code == 401:
            # One line, never the body: Bolt's own log of this holds the whole payload.
            log.warning("refused a request with a bad or stale Slack signature")
        return response

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
