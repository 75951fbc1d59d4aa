"""The floor: a raw ASGI app that answers 200 to any POST (and GET /healthz).

It is also the sink for the bot's `response_url` follow-ups during the benchmark, and records
when each arrived (wall clock, by path): `GET /_arrivals?prefix=/response/bench-` returns them
as JSON, so the benchmark can time a command to its answer and wait until the answers are in.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

ARRIVALS: dict[str, float] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body
        message = await receive()
        more = message.get("more_body", False)
    body = b""
    if scope["method"] == "POST":
        ARRIVALS.setdefault(scope["path"], time.time())
    elif scope["path"] == "/_arrivals":
        prefix = parse_qs(scope["query_string"].decode()).get("prefix", [""])[0]
        body = json.dumps({p: t for p, t in ARRIVALS.items() if p.startswith(prefix)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
