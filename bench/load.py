"""The load generator: runs in its own process, one asyncio loop, keep-alive connections.

Each request is a fresh, signed Slack request (v0 HMAC over the exact body, as Slack sends it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from sandbox.signing import signed_headers

FORM = "application/x-www-form-urlencoded"
_ids = itertools.count(1)


@dataclass
class Cell:
    url: str  # the server's base URL; requests go to {url}/slack/events
    kind: str  # "help" | "request" | "list" | "click"
    concurrency: int
    total: int
    warmup: int
    secret: str
    sink: str  # base URL for response_urls (a local sink that answers 200)
    # trigger_ids the Slack stand-in issued, one per request (warm-up first), for `request`,
    # whose views.open must present a real one; other kinds make them up.
    triggers: tuple[str, ...] = ()


def answer_path(n: int) -> str:
    """Where request `n` asks for its answer (its response_url, at the sink)."""
    return f"/response/bench-{n}"


def body_for(kind: str, sink: str, trigger_id: str | None = None, n: int | None = None) -> str:
    n = next(_ids) if n is None else n
    response_url = f"{sink}{answer_path(n)}"
    trigger_id = trigger_id or f"{n}.1111111111.bench{n:08x}"
    if kind in ("help", "list", "request"):
        return urlencode(
            {
                "token": "sandbox-verification-token",
                "team_id": "T0SANDBOX",
                "team_domain": "sandbox",
                "channel_id": "C0GENERAL",
                "channel_name": "general",
                "user_id": "U0ALICE",
                "user_name": "alice",
                "command": "/service-account",
                "text": kind,
                "api_app_id": "A0SABOT",
                "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": trigger_id,
            }
        )
    payload = {
        "type": "block_actions",
        "user": {"id": "U0DAVE", "username": "dave", "name": "dave", "team_id": "T0SANDBOX"},
        "api_app_id": "A0SABOT",
        "token": "sandbox-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": "C0APPROVALS",
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "team": {"id": "T0SANDBOX", "domain": "sandbox"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": "C0APPROVALS", "name": "approvals"},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": "request_approve",
                "block_id": "decision_buttons",
                "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                "value": "987654321",  # no such request: refused after the ack
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


class Connection:
    """One client: a keep-alive HTTP/1.1 connection over asyncio streams.

    Deliberately minimal: httpx's connection pool cost more than the servers under test at 50
    clients (a floor of ~150 req/s, p99 near 2 s), so it would have measured itself."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _run(cell: Cell) -> dict[str, object]:
    parsed = urlsplit(cell.url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    clients = [Connection(host, port) for _ in range(cell.concurrency)]
    triggers = iter(cell.triggers)
    sent: dict[str, float] = {}  # trigger_id -> wall-clock time the request was sent
    asked: dict[str, float] = {}  # answer path -> the same, for the measured requests

    async def phase(count: int, measured: bool) -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        remaining = iter(range(count))

        async def worker(conn: Connection) -> None:
            nonlocal errors
            for _ in remaining:
                trigger, n = next(triggers, None), next(_ids)
                body = body_for(cell.kind, cell.sink, trigger, n).encode()
                headers = {"Content-Type": FORM, **signed_headers(cell.secret, body)}
                if trigger is not None:
                    sent[trigger] = time.time()
                if measured:
                    asked[answer_path(n)] = time.time()
                start = time.perf_counter()
                try:
                    ok = await conn.post("/slack/events", body, headers) == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    conn.close()
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        began = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        return latencies, errors, time.perf_counter() - began

    await phase(cell.warmup, measured=False)
    latencies, errors, wall = await phase(cell.total, measured=True)
    for conn in clients:
        conn.close()
    return {"latencies": latencies, "errors": errors, "wall": wall, "sent": sent, "asked": asked}


def run_cell(cell: Cell) -> dict[str, object]:
    """Entry point in the load-generator process: returns latencies (s), errors, wall (s),
    for requests that carried an issued trigger_id when each was sent (wall clock, s), and
    for each measured request when it was sent, by the path its answer goes to."""
    return asyncio.run(_run(cell))
