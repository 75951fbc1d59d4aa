"""Work that runs after Slack has its acknowledgement, inside this process.

Only quick, losable follow-ups go here (opening a modal, an ephemeral refusal, a decision that a
person would simply click again). Anything that must survive a crash is a database job.

Modals are started before the ack, a bounded number at once (`start_modal`): a trigger_id lives
3 s from the moment Slack sent the request, so a burst must not be acknowledged faster than its
forms open.

A few follow-ups run at once (`limit`); the others wait their turn in order, as coroutines not
yet started. Under a burst this keeps the event loop's turns short, so acknowledgements stay
fast: every started follow-up builds its queries and holds its session while it waits for a
database connection, and a backlog of hundreds of them made each turn of the loop, and each
pass of Python's garbage collector over them, long enough to delay the acks behind them by
hundreds of milliseconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# More than enough for a workspace's steady traffic (each follow-up is a few milliseconds of
# work and a round trip or two); only a burst waits.
DEFAULT_LIMIT = 32
# Modals being opened at once. A request that would open one more waits, before its ack, for one
# of them to be open: acknowledging a burst faster than its forms open left thousands to open
# after their trigger_ids had expired, which Slack refuses.
MODALS_AT_ONCE = 32
# The longest an ack waits for that: Slack wants the ack within 3 s, and the trigger lives 3 s
# from the same moment; past it the modal is started anyway.
MODAL_WAIT_SECONDS = 2.0

Work = Coroutine[Any, Any, Any]


class Background:
    def __init__(self, limit: int = DEFAULT_LIMIT, modals: int = MODALS_AT_ONCE) -> None:
        self.limit = limit
        self._modals = asyncio.Semaphore(modals)
        self._tasks: set[asyncio.Task[Any]] = set()
        # Unstarted work, each with the context (log fields) of the request that asked for it.
        self._waiting: deque[tuple[Work, contextvars.Context]] = deque()

    @property
    def waiting(self) -> int:
        """Follow-ups queued behind the running ones."""
        return len(self._waiting)

    def spawn(self, work: Work) -> None:
        """Run `work` soon; keep a reference so it is neither garbage-collected nor lost."""
        context = contextvars.copy_context()
        if len(self._tasks) < self.limit:
            self._start(work, context)
        else:
            self._waiting.append((work, context))

    async def start_modal(self, work: Work) -> None:
        """Start `work`, which opens a modal, once fewer than MODALS_AT_ONCE are opening (or
        after MODAL_WAIT_SECONDS); return once it has started, so the ack can go."""
        if not self._modals.locked():
            await self._modals.acquire()
            held = True
        else:
            try:
                async with asyncio.timeout(MODAL_WAIT_SECONDS):
                    await self._modals.acquire()
                held = True
            except TimeoutError:
                held = False
                log.warning("%d modals still opening after %gs", MODALS_AT_ONCE, MODAL_WAIT_SECONDS)
        self._start(self._opening(work, held), contextvars.copy_context())

    async def _opening(self, work: Work, held: bool) -> None:
        try:
            await work
        finally:
            if held:
                self._modals.release()

    def _start(self, work: Work, context: contextvars.Context) -> None:
        task = asyncio.get_running_loop().create_task(work, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        while self._waiting and len(self._tasks) < self.limit:
            self._start(*self._waiting.popleft())
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def drain(self, timeout: float = 10.0) -> None:
        """Let running and queued follow-ups finish (on shutdown); drop what is left after
        `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)
        if self._waiting:
            log.warning("dropped %d follow-ups still queued at shutdown", len(self._waiting))
        while self._waiting:
            self._waiting.popleft()[0].close()
