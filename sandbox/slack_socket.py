"""Socket Mode for the Slack stand-in: `apps.connections.open` and the WebSocket it hands out.

Slack's side of Socket Mode, as slack_sdk's client (`slack_sdk/socket_mode/aiohttp`) and Bolt's
`AsyncSocketModeHandler` use it:

* `apps.connections.open` takes the app-level token (`xapp-`) as Bearer and answers
  `{"ok": true, "url": "ws://.../link/?ticket=..."}`. A bot token is refused with
  `not_allowed_token_type`, a wrong or revoked app token with `invalid_auth` (the token check is
  sandbox/slack.py's `_check_token`). A ticket opens one connection, within `TICKET_TTL_SECONDS`.
* The WebSocket greets with `hello`, then carries envelopes `{envelope_id, type, payload,
  accepts_response_payload}` (`retry_attempt`/`retry_reason` for `events_api`) holding exactly
  the payloads the stand-in POSTs in HTTP mode. The app acks with `{envelope_id, payload?}`; an
  ack's payload counts as the HTTP answer's body would (a command's immediate message, a
  view_submission's `response_action`), where the envelope accepts one. No ack within
  `ack_timeout_seconds` is Slack's `operation_timeout`, as a late HTTP answer is.
* Once a connection has said hello, Socket Mode is on for the app: every delivery (`deliver` in
  sandbox/slack.py hands over here) goes over a connection, none over HTTP, so the control
  routes and the test drivers are the same for both transports.
* Controls: `GET /_sandbox/socket` (connections, what happened), `POST /_sandbox/socket`
  (`enabled`, `refusing`: the socket host answers 503 to every attempt), and
  `POST /_sandbox/socket/disconnect {"reason"}`: `refresh_requested` or `warning` (the link is
  closed after `close_after` seconds unless the app leaves first) or `link_disabled` (closed at
  once).

The socket is served by aiohttp on its own port: uvicorn serves WebSockets only with the
`websockets` or `wsproto` package, which the project does not depend on.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from starlette.requests import Request
from starlette.routing import Route

from sandbox.slack import JSON, ApiError, ControlError, SlackState, api, control

TICKET_TTL_SECONDS = 30.0
DISCONNECT_REASONS = ("refresh_requested", "warning", "link_disabled")
HOST = "applink-sandbox"
# Envelopes whose ack may carry a payload Slack uses (others' payloads are ignored).
ANSWERED_INTERACTIONS = ("view_submission", "block_suggestion")


@dataclass
class Link:
    """One open WebSocket from the app."""

    id: str
    ws: web.WebSocketResponse
    opened_at: float
    draining: bool = False  # told to disconnect: gets no new envelopes
    envelopes: int = 0


@dataclass
class SocketHub:
    """Slack's Socket Mode side for one app; lives on the stand-in's event loop."""

    url: str | None = None  # ws://host:port once served (sandbox.runner)
    enabled: bool = False  # Socket Mode on: deliveries go over the socket, not HTTP
    refusing: bool = False  # every connection attempt answered 503, as an unreachable host
    tickets: dict[str, float] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    pending: dict[str, asyncio.Future[JSON]] = field(default_factory=dict)
    events: list[JSON] = field(default_factory=list)  # opened, refused, disconnect, ack...
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def note(self, kind: str, **detail: Any) -> None:
        self.events.append({"event": kind, "at": time.time(), **detail})

    def live(self) -> list[Link]:
        return [link for link in self.links if not link.draining and not link.ws.closed]

    def take_ticket(self, ticket: str) -> bool:
        issued = self.tickets.pop(ticket, None)
        return issued is not None and time.monotonic() - issued <= TICKET_TTL_SECONDS

    def status(self) -> JSON:
        return {
            "url": self.url,
            "enabled": self.enabled,
            "refusing": self.refusing,
            "connections": [
                {
                    "id": link.id,
                    "opened_at": link.opened_at,
                    "draining": link.draining,
                    "envelopes": link.envelopes,
                }
                for link in self.links
            ],
            "events": self.events,
        }


def socket_hub(state: SlackState) -> SocketHub:
    """The state's Socket Mode side, made on first use."""
    if state.socket_mode is None:
        state.socket_mode = SocketHub()
    hub: SocketHub = state.socket_mode
    return hub


# --- apps.connections.open ------------------------------------------------------------------


@api("apps.connections.open")
def apps_connections_open(state: SlackState, args: JSON) -> JSON:
    """Hand out a single-use WebSocket URL (the app token was checked by `_check_token`)."""
    hub = socket_hub(state)
    if hub.url is None:
        raise ApiError("internal_error", ["the Socket Mode server is not running"])
    ticket = secrets.token_hex(16)
    hub.tickets[ticket] = time.monotonic()
    return {"ok": True, "url": f"{hub.url}/link/?ticket={ticket}&app_id={state.api_app_id}"}


# --- the WebSocket ---------------------------------------------------------------------------

STATE_KEY = web.AppKey("slack_state", SlackState)


def hello(state: SlackState, hub: SocketHub) -> JSON:
    return {
        "type": "hello",
        "num_connections": len(hub.live()),
        "debug_info": {"host": HOST, "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": state.api_app_id},
    }


async def link_endpoint(request: web.Request) -> web.StreamResponse:
    """`GET /link/?ticket=...`: upgrade, say hello, take acks until the app or Slack closes."""
    state = request.app[STATE_KEY]
    hub = socket_hub(state)
    if hub.refusing:
        hub.note("refused", reason="refusing")
        return web.Response(status=503, text="socket mode host unavailable")
    if not hub.take_ticket(request.query.get("ticket", "")):
        hub.note("refused", reason="invalid_ticket")
        return web.Response(status=401, text="invalid_ticket")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    link = Link("L" + secrets.token_hex(4).upper(), ws, time.time())
    hub.links.append(link)
    hub.enabled = True
    hub.note("opened", link=link.id)
    try:
        await ws.send_json(hello(state, hub))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                on_frame(hub, link, message.data)
    finally:
        hub.links.remove(link)
        hub.note("closed", link=link.id, code=ws.close_code)
    return ws


def on_frame(hub: SocketHub, link: Link, data: str) -> None:
    """An ack from the app: settles the envelope waiting for it; anything else is noted."""
    try:
        frame = json.loads(data)
    except ValueError:
        frame = None
    envelope_id = frame.get("envelope_id") if isinstance(frame, dict) else None
    if not isinstance(frame, dict) or not isinstance(envelope_id, str):
        hub.note("bad_frame", link=link.id, data=data[:200])
        return
    waiting = hub.pending.get(envelope_id)
    if waiting is None or waiting.done():
        hub.note("late_ack", link=link.id, envelope_id=envelope_id)  # Slack stopped waiting
        return
    hub.note("ack", link=link.id, envelope_id=envelope_id, payload="payload" in frame)
    waiting.set_result(frame)


async def close_links(app: web.Application) -> None:
    for link in list(socket_hub(app[STATE_KEY]).links):
        await link.ws.close()


async def serve_socket_mode(state: SlackState, sock: socket.socket) -> web.AppRunner:
    """Serve the WebSocket on `sock` (already listening); the caller cleans the runner up."""
    app = web.Application()
    app[STATE_KEY] = state
    app.router.add_get("/link/", link_endpoint)
    app.on_shutdown.append(close_links)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    host, port = sock.getsockname()[:2]
    socket_hub(state).url = f"ws://{host}:{port}"
    return runner


# --- delivering --------------------------------------------------------------------------------


def envelope(body: str, content_type: str, headers: dict[str, str]) -> JSON:
    """Wrap what would be POSTed in HTTP mode in the envelope Socket Mode sends instead."""
    out: JSON = {"envelope_id": secrets.token_hex(16)}
    if content_type.startswith("application/json"):
        out.update(type="events_api", payload=json.loads(body), accepts_response_payload=False)
        out["retry_attempt"] = int(headers.get("X-Slack-Retry-Num") or 0)
        out["retry_reason"] = headers.get("X-Slack-Retry-Reason") or ""
        return out
    form = dict(parse_qsl(body, keep_blank_values=True))
    if set(form) == {"payload"}:
        payload = json.loads(form["payload"])
        answered = payload.get("type") in ANSWERED_INTERACTIONS
        out.update(type="interactive", payload=payload, accepts_response_payload=answered)
    else:
        out.update(type="slash_commands", payload=form, accepts_response_payload=True)
    return out


async def _live_link(hub: SocketHub, deadline: float) -> Link | None:
    """A connection to send on, waiting (until `deadline`) while the app reconnects."""
    while True:
        live = hub.live()
        if live:
            return min(live, key=lambda link: link.envelopes)  # spread over the app's links
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)


async def deliver_over_socket(
    state: SlackState, body: str, content_type: str, headers: dict[str, str]
) -> JSON:
    """Send one envelope and wait for its ack, within Slack's 3 seconds."""
    hub = socket_hub(state)
    started = time.monotonic()
    deadline = started + state.ack_timeout_seconds
    sent = envelope(body, content_type, headers)
    eid = sent["envelope_id"]
    result: JSON = {"transport": "socket", "envelope_id": eid, "envelope_type": sent["type"]}
    link = await _live_link(hub, deadline)
    if link is None:
        return {**result, "status": None, "body": None, "slack_error": "dispatch_failed"}
    waiting: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
    hub.pending[eid] = waiting
    try:
        link.envelopes += 1
        await link.ws.send_json(sent)
        ack = await asyncio.wait_for(waiting, max(deadline - time.monotonic(), 0.0))
    except TimeoutError:
        result.update(status=None, body=None, slack_error="operation_timeout")
    except (ConnectionError, RuntimeError) as exc:  # the link closed under us
        result.update(status=None, body=None, slack_error="dispatch_failed", error=str(exc))
    else:
        given = ack.get("payload")
        used = sent["accepts_response_payload"] and isinstance(given, dict)
        result.update(status=200, body=given if used else "", link=link.id)
        if given is not None and not used:
            result["ignored_payload"] = given  # Slack drops it: this envelope takes none
    finally:
        hub.pending.pop(eid, None)
    result["elapsed"] = time.monotonic() - started
    return result


# --- controls ----------------------------------------------------------------------------------


async def get_socket(state: SlackState, data: JSON, request: Request) -> JSON:
    """The connections and what happened on them."""
    return socket_hub(state).status()


async def set_socket(state: SlackState, data: JSON, request: Request) -> JSON:
    """Switch Socket Mode (`enabled`) or make the socket host refuse connections (`refusing`)."""
    hub = socket_hub(state)
    unknown = sorted(set(data) - {"enabled", "refusing"})
    if unknown:
        raise ControlError(
            400, f"not configurable: {unknown}", configurable=["enabled", "refusing"]
        )
    for key in ("enabled", "refusing"):
        if key in data:
            setattr(hub, key, bool(data[key]))
    return hub.status()


async def _close_later(link: Link, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await link.ws.close()


async def send_disconnect(state: SlackState, data: JSON, request: Request) -> JSON:
    """Send `disconnect` to every live connection, as Slack does before it drops one."""
    hub = socket_hub(state)
    reason = str(data.get("reason") or "refresh_requested")
    if reason not in DISCONNECT_REASONS:
        raise ControlError(400, f"reason must be one of {list(DISCONNECT_REASONS)}")
    links = hub.live()
    if not links:
        raise ControlError(409, "no Socket Mode connection to disconnect")
    close_after = 0.0 if reason == "link_disabled" else float(data.get("close_after", 10.0))
    for link in links:
        link.draining = True
        await link.ws.send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": HOST}}
        )
        hub.note("disconnect", link=link.id, reason=reason)
        task = asyncio.create_task(_close_later(link, close_after))
        hub.tasks.add(task)
        task.add_done_callback(hub.tasks.discard)
    return {"disconnected": [link.id for link in links], "reason": reason}


def socket_routes() -> list[Route]:
    """The control routes, mounted on the stand-in's Starlette app."""
    return [
        Route("/_sandbox/socket", control(get_socket), methods=["GET"]),
        Route("/_sandbox/socket", control(set_socket), methods=["POST"]),
        Route("/_sandbox/socket/disconnect", control(send_disconnect), methods=["POST"]),
    ]
