"""Run the Slack and Atlassian stand-ins together, on local ports, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn

from sandbox.atlassian import AtlassianState, create_atlassian_app
from sandbox.slack import SlackState, create_slack_app
from sandbox.slack_socket import serve_socket_mode

APPROVAL_CHANNEL = "C0APPROVALS"
APPROVERS = ("U0BOB", "U0CAROL")


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket already bound to a free port: no other process can take the port meanwhile.

    Made with IPPROTO_TCP, as a listener bound by host and port is: asyncio turns Nagle's
    algorithm off (TCP_NODELAY) only on sockets whose protocol says TCP. Without it a response
    written in two parts waited for the client's delayed ACK, 40 ms per call on a kept-alive
    connection, which real Slack does not add."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(2048)  # uvicorn's default backlog: a burst of new connections is not dropped
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class Sandbox:
    slack: SlackState
    atlassian: AtlassianState
    slack_url: str
    atlassian_url: str
    _servers: list[uvicorn.Server] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def bot_env(self) -> dict[str, str]:
        """The settings that point a bot at these stand-ins."""
        return {
            "SLACK_API_URL": f"{self.slack_url}/api/",
            "SLACK_BOT_TOKEN": self.slack.bot_token,
            "SLACK_SIGNING_SECRET": self.slack.signing_secret,
            "SABOT_APPROVAL_CHANNEL": APPROVAL_CHANNEL,
            "SABOT_APPROVERS": ",".join(APPROVERS),
            "ATLASSIAN_API_URL": self.atlassian_url,
            "ATLASSIAN_ORG_ID": self.atlassian.org_id,
            "ATLASSIAN_API_KEY": self.atlassian.api_key,
            # The stand-in organisation's plan: the bot's quota is the one it enforces.
            "ATLASSIAN_SERVICE_ACCOUNT_LIMIT": str(self.atlassian.quota),
        }

    def socket_mode_env(self) -> dict[str, str]:
        """`bot_env` plus the app-level token `sabot socket` connects with."""
        return {**self.bot_env(), "SLACK_APP_TOKEN": self.slack.app_token}

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def start_sandbox(host: str = "127.0.0.1", bot_url: str | None = None) -> Sandbox:
    """Start both stand-ins and return once they answer."""
    slack_state, atlassian_state = SlackState(bot_url=bot_url), AtlassianState()
    # Bound here and handed to uvicorn, so a test starting at the same moment cannot take the
    # port between choosing it and listening on it.
    sockets = [listening_socket(host), listening_socket(host)]
    socket_mode = listening_socket(host)  # the Slack stand-in's WebSocket (Socket Mode)
    slack_port, atlassian_port = (int(sock.getsockname()[1]) for sock in sockets)
    sandbox = Sandbox(
        slack_state,
        atlassian_state,
        f"http://{host}:{slack_port}",
        f"http://{host}:{atlassian_port}",
    )
    apps = [create_slack_app(slack_state), create_atlassian_app(atlassian_state)]
    sandbox._servers = [
        uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")) for app in apps
    ]

    async def serve() -> None:
        links = await serve_socket_mode(slack_state, socket_mode)
        try:
            await asyncio.gather(
                *(
                    server.serve(sockets=[sock])
                    for server, sock in zip(sandbox._servers, sockets, strict=True)
                )
            )
        finally:
            await links.cleanup()

    sandbox._thread = threading.Thread(
        target=asyncio.run, args=(serve(),), daemon=True, name="sandbox"
    )
    sandbox._thread.start()
    deadline = time.monotonic() + 10
    while not all(server.started for server in sandbox._servers):
        if time.monotonic() > deadline or not sandbox._thread.is_alive():
            raise RuntimeError("the sandbox stand-ins did not start")
        time.sleep(0.01)
    return sandbox


def serve_forever(host: str = "127.0.0.1", bot_url: str | None = None) -> int:
    """`sabot sandbox`: start, print the settings to use, run until Ctrl-C."""
    sandbox = start_sandbox(host, bot_url)
    print("Slack stand-in:     ", sandbox.slack_url, f"(sends commands and clicks to {bot_url})")
    print("Atlassian stand-in: ", sandbox.atlassian_url)
    print("\nPoint a bot at them with:\n")
    for key, value in sandbox.bot_env().items():
        print(f"export {key}={value}")
    print(f"export SLACK_APP_TOKEN={sandbox.slack.app_token}  # for `sabot socket` (Socket Mode)")
    print(
        f"\nDrive it: POST {sandbox.slack_url}/_sandbox/command "
        '{"user":"U0ALICE","channel":"C0GENERAL","text":"request"}'
    )
    print("Ctrl-C stops.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sandbox.stop()
    return 0
