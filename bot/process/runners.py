"""Long-running modes without an HTTP server: the job worker and Socket Mode."""

from __future__ import annotations

import asyncio
import logging
from wsgiref.simple_server import WSGIServer

from bot.process.assembly import assemble, settle_heap
from bot.process.metrics import Metrics, serve_worker_metrics
from bot.process.settings import Settings, SettingsError
from bot.process.signals import started, stop_on_signals
from bot.slack.app import build_app

log = logging.getLogger(__name__)


async def run_worker(settings: Settings) -> int:
    """Claim and run jobs until SIGTERM; the job in hand is finished first."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    # Per process only: the HTTP replicas report the database.
    metrics = Metrics(database=False)
    port = settings.worker_metrics_port
    server = _metrics_server(metrics, port) if port else None  # before anything is touched
    assembly = await started(assemble(settings, metrics=metrics, stop=stop), stop)
    if assembly is None:
        if server is not None:
            server.shutdown()
        return 0
    log.info("sabot worker running%s", f" (metrics on port {port})" if port else "")
    assembly.start_worker()
    settle_heap()
    await assembly.stop.wait()
    await assembly.close()
    if server is not None:
        server.shutdown()
    return 0


def _metrics_server(metrics: Metrics, port: int) -> WSGIServer:
    try:
        return serve_worker_metrics(metrics, port)
    except OSError as error:  # most often: another worker on this host has the port
        raise SettingsError(
            f"setting WORKER_METRICS_PORT: cannot listen on port {port} ({error.strerror}); "
            "give each worker on a host its own port, or 0 for no metrics"
        ) from None


async def run_socket_mode(settings: Settings) -> int:
    """Same listeners over a WebSocket: for a laptop with no public URL. SIGTERM or SIGINT stops
    it at any moment (connecting, connected, reconnecting); a refused app token stops it with
    one line naming SLACK_APP_TOKEN (SettingsError: exit 2)."""
    from bot.process.socket_mode import SocketModeLink

    stop = asyncio.Event()
    stop_on_signals(stop)
    assembly = await started(assemble(settings, stop=stop), stop)
    if assembly is None:
        return 0
    edge = build_app(assembly.services, assembly.client, socket_mode=True)
    assert settings.slack_app_token is not None
    link = SocketModeLink(
        edge,
        settings.slack_app_token.get_secret_value(),
        assembly.client,  # given, not left to Bolt: on SLACK_API_URL, with the process's pool
        on_refused=assembly.stop.set,
    )
    assembly.start_worker()
    settle_heap()  # before connecting, which may take a while: Slack may be down
    try:
        if await link.connect_until(assembly.stop):
            log.info("sabot connected over Socket Mode")
            await assembly.stop.wait()
    finally:
        await link.close()
        await assembly.close()
    if link.refusal is not None:
        raise SettingsError(link.refusal)
    return 0
