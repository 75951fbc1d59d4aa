"""HTTP mode: `POST /slack/events` for everything Slack sends, plus health, readiness, metrics.

- `GET /healthz`: the process answers (liveness); it touches nothing else.
- `GET /readyz`: the database answers (readiness); 503 with a reason that names no URL.
- `GET /metrics`: Prometheus text format (see bot/process/metrics.py for what is per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from time import perf_counter
from types import FrameType
from typing import Any
from urllib.parse import quote

import uvicorn
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.process import logs
from bot.process.assembly import Assembly, assemble, settle_heap
from bot.process.metrics import CONTENT_TYPE, Metrics
from bot.process.settings import Settings
from bot.process.signals import started
from bot.slack.app import SlackEdge, build_app
from bot.slack.request_shape import Refusal, bolt_request, read_body, timestamp_problem
from workflows.db import Database

log = logging.getLogger(__name__)

SLACK_EVENTS = "/slack/events"
READY_TIMEOUT_SECONDS = 3.0
SLOW_ANSWER_SECONDS = 1.0  # a third of the 3 s Slack waits for an acknowledgement


class RequestScope:
    """ASGI middleware: an id per HTTP request on every log line it causes, and for
    /slack/events one log line and the request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = perf_counter()
        # An id for log lines, not a secret: `random` asks the kernel nothing (os.urandom, a
        # system call, cost a tenth of an acknowledgement on a virtual machine).
        with logs.bound(http_request_id=f"{random.getrandbits(48):012x}"):
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                if scope["path"] == SLACK_EVENTS:
                    self._answered(status, perf_counter() - start)

    def _answered(self, status: int, seconds: float) -> None:
        self.metrics.observe_slack_request(status, seconds)
        # Every request is counted and timed in the metrics; the log tells of a slow one. A
        # line per request at INFO cost a tenth of an acknowledgement's time.
        if seconds >= SLOW_ANSWER_SECONDS:
            log.warning(
                "slack request answered %d in %.0f ms (Slack waits 3 s)", status, seconds * 1000
            )
        else:
            log.debug("slack request answered %d in %.1f ms", status, seconds * 1000)


def _sqlite_file_answers(path: str) -> None:
    """Open the file afresh (never creating it) and read its schema: pooled connections keep
    answering from a file that was deleted or replaced underneath them."""
    conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=1)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


async def database_problem(db: Database) -> str | None:
    """None when the database answers; else a short reason that names no URL or password."""

    async def check() -> None:
        await db.ping()
        path = make_url(db.url).database if db.is_sqlite else None
        if path and path != ":memory:":
            await asyncio.to_thread(_sqlite_file_answers, path)

    try:
        await asyncio.wait_for(check(), timeout=READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"database did not answer within {READY_TIMEOUT_SECONDS:g}s"
    except Exception as error:  # the message may hold the host or the path: only the kind
        return f"database unreachable ({type(error).__name__})"
    return None


class _State:
    assembly: Assembly
    edge: SlackEdge
    ready: bool = True


class SignalledServer(uvicorn.Server):
    """uvicorn's server, whose SIGTERM or SIGINT also stops the app's start-up: uvicorn notes
    a signal then, but lets the start-up run to its end (minutes, when Atlassian or the
    database do not answer) before it stops."""

    def __init__(self, config: uvicorn.Config, stop: asyncio.Event) -> None:
        super().__init__(config)
        self.stop = stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A Python signal handler, run between two steps of the loop: wake the loop with it.
        with contextlib.suppress(RuntimeError):  # no loop running yet: nothing to wake
            asyncio.get_running_loop().call_soon_threadsafe(self.stop.set)


def create_server(
    settings: Settings,
    *,
    run_worker: bool = True,
    migrate: bool = True,
    stop: asyncio.Event | None = None,
) -> Starlette:
    """`stop`: set by a signal (SignalledServer); start-up ends there, and nothing is served."""
    state, metrics = _State(), Metrics()

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        logs.adopt("uvicorn", "uvicorn.access")  # its lines in our format, masked
        starting = assemble(settings, migrate=migrate, metrics=metrics)
        assembly = await started(starting, stop or asyncio.Event())
        if assembly is None:
            state.ready = False
            yield  # uvicorn has the signal too: it stops before serving anything
            return
        state.assembly, state.edge = assembly, build_app(assembly.services, assembly.client)
        if run_worker:
            assembly.start_worker()
        settle_heap()
        log.info("sabot ready (worker %s)", "in-process" if run_worker else "off")
        try:
            yield
        finally:
            await assembly.close()

    async def slack_events(request: Request) -> Response:
        body = await read_body(request, seconds=settings.http_read_timeout_seconds)
        if not isinstance(body, Refusal):
            stamp = request.headers.get("x-slack-request-timestamp")
            body = timestamp_problem(stamp) or body
        parsed = body if isinstance(body, Refusal) else bolt_request(request, body)
        if isinstance(parsed, Refusal):
            # One line, never the body (it is not trusted, and may be anybody's).
            log.warning("refused a request to %s: %s", SLACK_EVENTS, parsed.reason)
            return JSONResponse({"error": parsed.reason}, status_code=parsed.status)
        # As Bolt's Starlette adapter answers, with what the listeners find on the context put
        # on the request first.
        response = to_starlette_response(await state.edge.dispatch(parsed))
        if response.status_code == 401:
            # One line, never the body: Bolt's own log of this holds the whole payload.
            log.warning("refused a request with a bad or stale Slack signature")
        return response

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        problem = await database_problem(state.assembly.db)
        if (problem is None) != state.ready:  # log changes, not every probe
            state.ready = problem is None
            if problem is None:
                log.info("ready again: the database answers")
            else:
                log.warning("not ready: %s", problem)
        if problem is not None:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_text(_request: Request) -> Response:
        db = state.assembly.db
        reachable = await database_problem(db) is None
        body = await metrics.exposition(db, state.assembly.runtime.clock(), reachable=reachable)
        return Response(body, media_type=CONTENT_TYPE)

    routes: list[Any] = [
        Route(SLACK_EVENTS, slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
    return Starlette(
        routes=routes, middleware=[Middleware(RequestScope, metrics=metrics)], lifespan=lifespan
    )
