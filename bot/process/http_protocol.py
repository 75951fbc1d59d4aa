"""uvicorn's HTTP/1.1 protocol (h11), with a bound on the time a request's headers may take.

uvicorn bounds an idle kept-alive connection (`timeout_keep_alive`) but not a request whose
headers trickle in: a client sending a byte every few seconds holds a connection, and a few
hundred such clients hold them all. Slack sends each request at once, so headers that are not
complete within the bound close the connection. (The body has its own bound, in
bot.slack.request_shape.read_body; the ingress in front should bound both too: deploy/README.md.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)


class HeaderBoundedH11Protocol(H11Protocol):
    """Closes a connection whose request headers are not complete `header_seconds` after the
    connection opened (or, on a kept-alive connection, after the next request's first byte)."""

    header_seconds: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._headers_due is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._headers_due = self.loop.call_later(self.header_seconds, self._check_headers)

    def _check_headers(self) -> None:
        self._headers_due = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.warning(
                "closed a connection whose request headers took over %g s", self.header_seconds
            )
            self.transport.close()


def header_bounded(seconds: float) -> type[HeaderBoundedH11Protocol]:
    """The protocol class to give uvicorn (`http=`), with this bound."""
    return type(
        "HeaderBoundedH11Protocol", (HeaderBoundedH11Protocol,), {"header_seconds": seconds}
    )
