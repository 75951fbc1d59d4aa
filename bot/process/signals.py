"""SIGTERM and SIGINT stop every long-running mode at any moment, start-up included.

Start-up may take minutes: migrations wait for another replica's lock, the site lookup retries
an Atlassian that does not answer, Socket Mode retries a Slack it cannot reach. A deployment
that rolls back in that time sends SIGTERM, and must not have to wait for it, nor kill the
process with its migration half-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
STOPPING = (signal.SIGTERM, signal.SIGINT)

log = logging.getLogger(__name__)


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM or SIGINT sets `stop` (the running loop's handlers, not Python's default)."""
    loop = asyncio.get_running_loop()
    for sig in STOPPING:
        loop.add_signal_handler(sig, stop.set)


async def until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """`work`'s result, or None when `stop` is set first: the work is then cancelled, and
    whatever it opened is closed by its own clean-up before this returns."""
    working = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if working.done():
        return working.result()  # its error, if it failed, is the one to show
    working.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await working
    return None


async def started(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """A mode's start-up (`assemble`), unless a signal stops the process first; then one line
    says so and None is returned."""
    result = await until_stopped(work, stop)
    if result is None:
        log.info("sabot stopped before it was ready: a signal came during start-up")
    return result
