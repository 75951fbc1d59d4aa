"""Long-running modes without an HTTP server: the job worker and Socket Mode."""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.app import build_app
from bot.assembly import assemble, settle_heap
from bot.settings import Settings

log = logging.getLogger(__name__)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def run_worker(settings: Settings) -> int:
    """Claim and run jobs until SIGTERM; the job in hand is finished first."""
    from bot.metrics import serve_worker_metrics

    assembly = await assemble(settings)
    _stop_on_signals(assembly.stop)
    port = settings.worker_metrics_port
    metrics = serve_worker_metrics(assembly, port) if port else None
    log.info("sabot worker running%s", f" (metrics on port {port})" if port else "")
    assembly.start_worker()
    settle_heap()
    await assembly.stop.wait()
    await assembly.close()
    if metrics is not None:
        metrics.shutdown()
    return 0


async def run_socket_mode(settings: Settings) -> int:
    """Same listeners over a WebSocket: for a laptop with no public URL."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    assembly = await assemble(settings)
    _stop_on_signals(assembly.stop)
    app = build_app(assembly.services, assembly.client, socket_mode=True)
    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
    assembly.start_worker()
    await handler.connect_async()
    settle_heap()
    log.info("sabot connected over Socket Mode")
    await assembly.stop.wait()
    await handler.close_async()
    await assembly.close()
    return 0
