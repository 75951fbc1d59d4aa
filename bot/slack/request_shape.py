"""What a request to `/slack/events` must look like before Bolt reads it.

Bolt decodes and parses the body before it checks the signature (slack_bolt.request.internals
`parse_body`), and slack_sdk's verifier turns the timestamp header into a float; so bad UTF-8,
broken JSON, a JSON array or a 300-digit timestamp, signed or not, would escape from Bolt as a
500 with a traceback. The timestamp is checked here (a 401: no signature can be checked against
it), and the body by Bolt's own parse (`bolt_request`): what it cannot read is a 400, a body that
cannot be Slack's. (Parsing it here as well cost each click a second parse of its payload.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request
from slack_bolt.request.async_request import AsyncBoltRequest
from starlette.requests import ClientDisconnect, Request

MAX_BODY_BYTES = 1024 * 1024  # Slack's payloads are far smaller; refuse anything past 1 MiB
# Slack's timestamps are epoch seconds: ten digits until the year 2286.
MAX_TIMESTAMP_DIGITS = 12


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str  # for the log; never the body


async def read_body(request: Request, *, seconds: float) -> bytes | Refusal:
    """The whole body within `seconds` and MAX_BODY_BYTES; Slack sends a request at once, so a
    body that trickles in is a slow client holding a connection (408)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return Refusal(413, "payload too large")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return Refusal(413, "payload too large")
                chunks.append(chunk)
    except TimeoutError:
        return Refusal(408, f"the body did not arrive within {seconds:g} s")
    except ClientDisconnect:
        return Refusal(400, "the client went away mid-body")
    return b"".join(chunks)


def timestamp_problem(timestamp: str | None) -> Refusal | None:
    """A timestamp header no signature can be checked against, or None."""
    if timestamp is not None and not (
        timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS
    ):
        return Refusal(401, "a malformed X-Slack-Request-Timestamp")
    return None


def bolt_request(request: Request, body: bytes) -> AsyncBoltRequest | Refusal:
    """Bolt's request (as its Starlette adapter makes it), or a 400 when Bolt cannot parse the
    body: not UTF-8, broken JSON, JSON that is not an object (the body, or its `payload`)."""
    try:
        return to_async_bolt_request(request, body)
    except (ValueError, TypeError, AttributeError, RecursionError) as error:
        # RecursionError: JSON nested a hundred thousand deep.
        return Refusal(400, f"a body that cannot be Slack's ({type(error).__name__})")
