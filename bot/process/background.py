"""Work that runs after Slack has its acknowledgement, inside this process.

Only quick, losable follow-ups go here (opening a modal, an ephemeral refusal, a decision that a
person would simply click again). Anything that must survive a crash is a database job.

A modal's `views.open` is sent before the ack (`open_modal`): a trigger_id lives 3 s from the
moment Slack sent the request, so a burst must not be acknowledged faster than its forms go out.

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
# How long an ack waits for its modal's views.open to be sent. Acknowledging a burst of
# `request` commands at once left thousands of forms to open after their trigger_ids had expired
# (Slack refuses them); waiting for each to be on the wire (which takes one of the Slack pool's
# connections), no more can be asked for than can be sent. Slack wants the ack within 3 s, and
# the trigger lives 3 s from the same moment: past this the ack goes, the modal still opening.
MODAL_WAIT_SECONDS = 2.0

Work = Coroutine[Any, Any, Any]

# In the context of a modal's work (`open_modal`): done once its views.open has been written.
_VIEW_SENT: contextvars.ContextVar[asyncio.Future[None] | None] = contextvars.ContextVar(
    "view_sent", default=None
)


def view_sent() -> None:
    """A views.open request is being written (bot.slack.slack_api traces it): the ack that
    `open_modal` holds for it may go. Slack's answer is not waited for: the form is then
    Slack's to show, and a refusal is told to the person by the work itself."""
    sent = _VIEW_SENT.get()
    if sent is not None:
        _resolve(sent)


def _resolve(sent: asyncio.Future[None]) -> None:
    if not sent.done():
        sent.set_result(None)


class Background:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
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

    async def open_modal(self, work: Work) -> None:
        """Start `work`, which opens a modal, at once whatever is queued, and wait until its
        views.open is sent, it is done, or MODAL_WAIT_SECONDS have passed; the ack goes then
        (the work goes on)."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        context = contextvars.copy_context()
        context.run(_VIEW_SENT.set, sent)
        task = self._start(work, context)
        task.add_done_callback(lambda _: _resolve(sent))
        await asyncio.wait((sent,), timeout=MODAL_WAIT_SECONDS)

    def _start(self, work: Work, context: contextvars.Context) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

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
