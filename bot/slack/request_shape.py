"""What a request to `/slack/events` must look like before Bolt reads it.

Bolt decodes and parses the body before it checks the signature (slack_bolt.request.internals
`parse_body`), and slack_sdk's verifier turns the timestamp header into a float; so bad UTF-8,
broken JSON, a JSON array or a 300-digit timestamp, signed or not, would escape from Bolt as a
500 with a traceback. They are refused here, with the same rules Bolt parses by, as a 400 (a body
that cannot be Slack's) or a 401 (a timestamp no signature can be checked against).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

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


def refusal(body: bytes, content_type: str, timestamp: str | None) -> Refusal | None:
    """Why Bolt could not even look at this request, or None."""
    if timestamp is not None and not (
        timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS
    ):
        return Refusal(401, "a malformed X-Slack-Request-Timestamp")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "a body that is not UTF-8")
    if not text:
        return None
    if content_type.split(";")[0].strip().lower() == "application/json" or text.startswith("{"):
        return _object_problem(text, "the JSON body")
    if "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        if payload is not None:
            return _object_problem(payload, "the payload field")
    return None


def _object_problem(text: str, what: str) -> Refusal | None:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested a hundred thousand deep
        return Refusal(400, f"{what} is not JSON")
    if not isinstance(parsed, dict):
        return Refusal(400, f"{what} is JSON but not an object")
    return None
