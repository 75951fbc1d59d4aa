"""Socket Mode: the Slack stand-in's side of it, and `sabot socket` as its own process.

The stand-in: `apps.connections.open` takes the app-level token only, a ticket opens one
WebSocket that says hello, envelopes carry the payloads HTTP mode POSTs, an ack's payload is the
answer, no ack within 3 s is Slack's timeout, and Slack's `disconnect` is sent on demand.

`sabot socket`: the whole flow and the Home tab over the socket with the same drivers as over
HTTP, reconnecting when Slack asks, a refused app token ending the process with one line, and
SIGTERM/SIGINT stopping it at any moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.process.settings import Settings
from sandbox.bot_process import BotProcess, start_socket_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    GOOD_FORM,
    approval_message,
    open_home,
    open_request_form,
    reveal_offer,
    submit_request,
    token_replies,
    wait_card,
    wait_shown,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SandboxError, SlackSandbox
from tests.support.throwaway import throwaway_database

ROOT = Path(__file__).resolve().parent.parent
WS_URL = re.compile(r"^ws://127\.0\.0\.1:\d+/link/\?ticket=[0-9a-f]{32}&app_id=A0SABOT$")
# SIGTERM with no job in hand must end the process well inside the worker's grace period.
GRACE_SECONDS = Settings.model_fields["worker_shutdown_grace_seconds"].default


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """What is tested here is the transport: one engine is enough (the flow runs on both)."""
    with throwaway_database("sqlite", tmp_path) as url:
        yield url


# -- the stand-in ---------------------------------------------------------------------------


def test_connections_open_takes_the_app_level_token_only(sandbox: Sandbox) -> None:
    web = WebClient(base_url=f"{sandbox.slack_url}/api/")
    opened = web.apps_connections_open(app_token=sandbox.slack.app_token)
    assert opened["ok"] and WS_URL.match(opened["url"])

    refused = {
        sandbox.slack.bot_token: "not_allowed_token_type",
        "xapp-1-A0SABOT-1-not-the-token": "invalid_auth",
    }
    for token, error in refused.items():
        with pytest.raises(SlackApiError) as caught:
            web.apps_connections_open(app_token=token)
        assert caught.value.response["error"] == error
    unauthenticated = httpx.post(f"{sandbox.slack_url}/api/apps.connections.open").json()
    assert unauthenticated == {"ok": False, "error": "not_authed"}
    # The app token opens connections and calls nothing else.
    with pytest.raises(SlackApiError) as caught:
        WebClient(sandbox.slack.app_token, base_url=f"{sandbox.slack_url}/api/").auth_test()
    assert caught.value.response["error"] == "not_allowed_token_type"

    old = sandbox.slack.app_token
    SlackSandbox(sandbox.slack_url).configure(app_token="xapp-1-A0SABOT-2-regenerated")
    with pytest.raises(SlackApiError) as caught:
        web.apps_connections_open(app_token=old)  # revoked by regenerating it
    assert caught.value.response["error"] == "invalid_auth"


@asynccontextmanager
async def socket_link(
    sandbox: Sandbox,
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, Any]]:
    """A WebSocket as slack_sdk opens one; yields it and the hello it was greeted with."""
    web = WebClient(base_url=f"{sandbox.slack_url}/api/")
    url = web.apps_connections_open(app_token=sandbox.slack.app_token)["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        yield ws, await ws.receive_json(timeout=5)


async def test_a_ticket_opens_one_connection_which_says_hello(sandbox: Sandbox) -> None:
    web = WebClient(base_url=f"{sandbox.slack_url}/api/")
    url = web.apps_connections_open(app_token=sandbox.slack.app_token)["url"]
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": "A0SABOT"}
        assert hello["debug_info"]["host"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url)  # the ticket was used
        assert refused.value.status == 401
    events = [e["event"] for e in SlackSandbox(sandbox.slack_url).socket()["events"]]
    assert events[:2] == ["opened", "refused"]


async def test_envelopes_carry_the_http_payloads_and_an_ack_payload_is_the_answer(
    sandbox: Sandbox, slack: SlackSandbox
) -> None:
    async with socket_link(sandbox) as (ws, _):
        answer = asyncio.create_task(asyncio.to_thread(slack.command, ALICE, GENERAL, "help"))
        envelope = await ws.receive_json(timeout=5)
        assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"]
        payload = envelope["payload"]
        assert (payload["command"], payload["text"], payload["user_id"]) == (
            "/service-account",
            "help",
            ALICE,
        )
        assert payload["trigger_id"] and payload["response_url"].startswith(sandbox.slack_url)
        await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "Hi"}})
        result = await answer
        assert (result["status"], result["body"], result["transport"]) == (
            200,
            {"text": "Hi"},
            "socket",
        )
        shown = slack.messages(GENERAL, user=ALICE)
        assert [(m["text"], m["via"], m["ephemeral"]) for m in shown] == [("Hi", "ack", True)]
        assert slack.messages(GENERAL, user=BOB) == []

        retried = asyncio.create_task(
            asyncio.to_thread(slack.event, {"type": "app_home_opened", "user": ALICE}, "Ev1", 1)
        )
        envelope = await ws.receive_json(timeout=5)
        assert envelope["type"] == "events_api" and not envelope["accepts_response_payload"]
        assert envelope["payload"]["type"] == "event_callback"
        assert envelope["payload"]["event"]["type"] == "app_home_opened"
        assert (envelope["retry_attempt"], envelope["retry_reason"]) == (1, "http_timeout")
        await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "x"}})
        result = await retried
        assert result["status"] == 200 and result["body"] == ""  # events take no answer
        assert result["ignored_payload"] == {"text": "x"}


async def test_an_envelope_not_acked_within_3_seconds_is_slacks_timeout(
    sandbox: Sandbox, slack: SlackSandbox
) -> None:
    async with socket_link(sandbox) as (ws, _):
        answer = asyncio.create_task(asyncio.to_thread(slack.command, ALICE, GENERAL, "help"))
        envelope = await ws.receive_json(timeout=5)
        result = await answer
        assert result["slack_error"] == "operation_timeout" and result["status"] is None
        assert result["elapsed"] >= sandbox.slack.ack_timeout_seconds - 0.05
        await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "late"}})
        await asyncio.sleep(0.2)
    assert slack.messages(GENERAL, user=ALICE) == []  # a late ack shows nothing
    assert "late_ack" in [e["event"] for e in slack.socket()["events"]]


async def test_disconnect_is_sent_and_the_link_closed(
    sandbox: Sandbox, slack: SlackSandbox
) -> None:
    async with socket_link(sandbox) as (first, _):
        told = await asyncio.to_thread(slack.disconnect, "refresh_requested", 0.5)
        assert len(told) == 1
        message = await first.receive_json(timeout=5)
        assert (message["type"], message["reason"]) == ("disconnect", "refresh_requested")
        async with socket_link(sandbox) as (second, hello):
            assert hello["num_connections"] == 1  # the one told to go does not count
            answer = asyncio.create_task(asyncio.to_thread(slack.command, ALICE, GENERAL))
            envelope = await second.receive_json(timeout=5)  # sent on the new link only
            await second.send_json({"envelope_id": envelope["envelope_id"]})
            assert (await answer)["status"] == 200
            closing = await first.receive(timeout=5)  # Slack drops the old link
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

            await asyncio.to_thread(slack.disconnect, "link_disabled")
            message = await second.receive_json(timeout=5)
            assert message["reason"] == "link_disabled"
            closing = await second.receive(timeout=1)  # at once
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    with pytest.raises(SandboxError) as refused:
        slack.disconnect("bored")
    assert refused.value.status == 400


def test_with_socket_mode_on_and_no_connection_slack_cannot_dispatch(slack: SlackSandbox) -> None:
    slack.socket_config(enabled=True)
    result = slack.command(ALICE, GENERAL, "help")
    assert result["slack_error"] == "dispatch_failed" and result["transport"] == "socket"


# -- sabot socket ---------------------------------------------------------------------------


def test_whole_flow_over_socket_mode(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_socket_bot(sandbox, database_url, tmp_path / "sabot.log")
    answer = submit_request(slack)
    assert answer["status"] == 200 and "waiting for approval" in json.dumps(answer["view"])
    message = approval_message(slack)
    assert "ci-release-bot" in json.dumps(message)
    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    wait_shown(slack, APPROVALS, "Approved by <@U0BOB>", index=0)
    offer = reveal_offer(slack)
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    slack.wait_for(lambda: token_replies(slack), what="the token reply")
    [token] = sandbox.atlassian.minted_values()
    [reply] = token_replies(slack)
    assert reply["args"]["response_type"] == "ephemeral" and reply["args"]["user"] == ALICE
    assert token in json.dumps(reply)
    wait_card(slack, "Token revealed at")

    deliveries = slack.deliveries()
    assert {d["kind"] for d in deliveries} >= {"command", "submit", "click"}
    assert all(d["transport"] == "socket" and d["status"] == 200 for d in deliveries)
    assert sandbox.slack.bot_url is None  # nothing could have gone over HTTP
    assert "WARNING" not in bot.log() and "ERROR" not in bot.log()


def test_app_home_opened_publishes_the_home_tab(
    sandbox: Sandbox, slack: SlackSandbox, sqlite_url: str, tmp_path: Path
) -> None:
    start_socket_bot(sandbox, sqlite_url, tmp_path / "sabot.log")
    home = open_home(slack, ALICE, "Request a service account")
    assert "home_request" in home
    [event] = [d for d in slack.deliveries() if d["kind"] == "event"]
    assert event["envelope_type"] == "events_api" and event["status"] == 200


def reconnected(slack: SlackSandbox, before: str) -> str:
    """Wait for a live connection other than `before`; its id."""
    return slack.wait_for(
        lambda: next(
            (
                c["id"]
                for c in slack.socket()["connections"]
                if c["id"] != before and not c["draining"]
            ),
            None,
        ),
        what="the bot to reconnect",
    )


def test_the_flow_goes_on_when_slack_asks_the_bot_to_reconnect(
    sandbox: Sandbox, slack: SlackSandbox, sqlite_url: str, tmp_path: Path
) -> None:
    start_socket_bot(sandbox, sqlite_url, tmp_path / "sabot.log")
    first = slack.socket_connected()["id"]
    view_id = open_request_form(slack)

    slack.disconnect("refresh_requested")
    second = reconnected(slack, first)
    answer = slack.submit(ALICE, view_id, GOOD_FORM)
    # Over a new link (slack_sdk may open more than one while it reconnects: any new one will do)
    assert answer["status"] == 200 and answer["link"] != first
    message = approval_message(slack)

    slack.disconnect("warning", close_after=0)  # dropped at once, not when the bot is ready
    third = reconnected(slack, second)
    click = slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    assert click["status"] == 200 and click["link"] not in (first, second)
    assert third != second
    offer = reveal_offer(slack)
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    slack.wait_for(lambda: token_replies(slack), what="the token reply")
    assert [e["reason"] for e in slack.socket()["events"] if e["event"] == "disconnect"] == [
        "refresh_requested",
        "warning",
    ]


def exited(bot: BotProcess, timeout: float = 30.0) -> tuple[int, float]:
    started = time.monotonic()
    try:
        code = bot.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        bot.process.kill()
        raise AssertionError(f"sabot socket still running after {timeout}s:\n{bot.log()}") from None
    return code, time.monotonic() - started


def lines_naming_the_app_token(bot: BotProcess) -> list[str]:
    return [line for line in bot.log().splitlines() if "SLACK_APP_TOKEN" in line]


@pytest.mark.parametrize(
    ("given", "error"),
    [("xapp-1-A0SABOT-1-not-the-token", "invalid_auth"), ("bot", "not_allowed_token_type")],
)
def test_a_refused_app_token_ends_it_with_one_line(
    sandbox: Sandbox,
    slack: SlackSandbox,
    sqlite_url: str,
    tmp_path: Path,
    given: str,
    error: str,
) -> None:
    token = sandbox.slack.bot_token if given == "bot" else given
    bot = start_socket_bot(
        sandbox, sqlite_url, tmp_path / "sabot.log", {"SLACK_APP_TOKEN": token}, connected=False
    )
    code, _ = exited(bot)
    assert code == 2
    [line] = lines_naming_the_app_token(bot)
    assert line.startswith("sabot: SLACK_APP_TOKEN") and error in line
    assert "connections:write" in line and "App-Level Tokens" in line
    assert "Retrying" not in bot.log() and "Traceback" not in bot.log()
    assert len(slack.calls("apps.connections.open")) == 1  # asked once, not again and again


def test_an_app_token_revoked_while_connected_ends_it_at_the_next_connection(
    sandbox: Sandbox, slack: SlackSandbox, sqlite_url: str, tmp_path: Path
) -> None:
    bot = start_socket_bot(sandbox, sqlite_url, tmp_path / "sabot.log")
    slack.configure(app_token="xapp-1-A0SABOT-2-regenerated")  # the old one stops working
    slack.disconnect("refresh_requested")
    code, _ = exited(bot)
    assert code == 2
    [line] = lines_naming_the_app_token(bot)
    assert "invalid_auth" in line
    assert "sabot stopped cleanly" in bot.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_connected_stops_it_cleanly(
    sandbox: Sandbox, slack: SlackSandbox, sqlite_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    bot = start_socket_bot(sandbox, sqlite_url, tmp_path / "sabot.log")
    open_request_form(slack)  # it serves, then is told to stop
    bot.process.send_signal(sig)
    code, took = exited(bot)
    assert code == 0 and took < GRACE_SECONDS
    assert "sabot stopped cleanly" in bot.log()
    slack.wait_for(lambda: not slack.socket()["connections"], what="the socket to be closed")


def refused_attempts(slack: SlackSandbox) -> int:
    return sum(1 for e in slack.socket()["events"] if e["event"] == "refused")


def test_sigterm_while_it_retries_connecting_stops_it(
    sandbox: Sandbox, slack: SlackSandbox, sqlite_url: str, tmp_path: Path
) -> None:
    slack.socket_config(refusing=True)  # Slack's socket host unreachable: it keeps trying
    bot = start_socket_bot(sandbox, sqlite_url, tmp_path / "sabot.log", connected=False)
    slack.wait_for(lambda: refused_attempts(slack) >= 1, timeout=30, what="a refused attempt")
    slack.wait_for(lambda: "Retrying" in bot.log(), what="the bot to say it retries")
    bot.process.send_signal(signal.SIGTERM)
    code, took = exited(bot)
    assert code == 0 and took < GRACE_SECONDS
    assert "sabot connected over Socket Mode" not in bot.log()
    assert "sabot stopped cleanly" in bot.log()


def test_sigterm_while_it_reconnects_stops_it(
    sandbox: Sandbox, slack: SlackSandbox, sqlite_url: str, tmp_path: Path
) -> None:
    bot = start_socket_bot(sandbox, sqlite_url, tmp_path / "sabot.log")
    slack.socket_config(refusing=True)
    slack.disconnect("refresh_requested", close_after=0)
    slack.wait_for(lambda: refused_attempts(slack) >= 1, timeout=30, what="a refused reconnect")
    bot.process.send_signal(signal.SIGTERM)
    code, took = exited(bot)
    assert code == 0 and took < GRACE_SECONDS
    assert "sabot stopped cleanly" in bot.log()


# -- manifest and demo ----------------------------------------------------------------------


def sabot(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ATLASSIAN_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def without_urls(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_urls(v) for k, v in node.items() if k not in ("url", "request_url")}
    if isinstance(node, list):
        return [without_urls(v) for v in node]
    return node


def test_manifest_for_socket_mode_has_no_request_url() -> None:
    done = sabot("manifest", "--socket-mode")
    assert done.returncode == 0, done.stderr
    assert "https://" not in done.stdout and "url:" not in done.stdout
    printed = yaml.safe_load(done.stdout)
    assert printed["settings"]["socket_mode_enabled"] is True
    http = yaml.safe_load((ROOT / "app_manifest.yml").read_text())
    http["settings"]["socket_mode_enabled"] = True
    assert printed == without_urls(http)  # the same app otherwise: commands, scopes, events
    assert "SLACK_APP_TOKEN" in done.stdout and "connections:write" in done.stdout

    both = sabot("manifest", "--socket-mode", "--url", "https://sabot.acme.io")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_demo_over_socket_mode(tmp_path: Path) -> None:
    done = sabot("demo", "--socket-mode", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "connected over Socket Mode" in done.stdout
    for step in ("types `/service-account request`", "clicks [Approve]", "receives, ephemerally"):
        assert step in done.stdout
    assert "masked here" in done.stdout
