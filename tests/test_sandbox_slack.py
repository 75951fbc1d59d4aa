"""Tests for the local Slack stand-in: Web API rules, signing, and acting as Slack to a bot."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.runner import listening_socket
from sandbox.signing import sign, signed_headers
from sandbox.slack import SlackState, create_slack_app
from sandbox.slack_client import SandboxError, SlackSandbox

SECRET = SlackState.signing_secret
TOKEN = SlackState.bot_token
TS_RE = re.compile(r"^\d{10}\.\d{6}$")
TRIGGER_RE = re.compile(r"^\d+\.\d+\.[0-9a-f]{32}$")

# --------------------------------------------------------------------------------------------
# Servers: the stand-in and a fake bot, each on its own uvicorn thread and free port
# --------------------------------------------------------------------------------------------


class ServerThread:
    """Run an ASGI app with uvicorn in a background thread on a free port."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        """Start serving and return the base URL."""
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=5)


Reply = Callable[[dict[str, Any]], Awaitable[Response]]


@dataclass
class FakeBot:
    """A stand-in for the bot: verifies Slack signatures, records requests, answers via `reply`."""

    received: list[dict[str, Any]] = field(default_factory=list)
    reply: Reply | None = None

    async def endpoint(self, request: Request) -> Response:
        """Handle POST /slack/events like Bolt's HTTP adapter (401 on a bad signature)."""
        body = await request.body()
        valid = SignatureVerifier(SECRET).is_valid_request(body, dict(request.headers))
        parsed = parse_payload(body, request.headers.get("content-type", ""))
        self.received.append({"headers": dict(request.headers), "parsed": parsed, "valid": valid})
        if not valid:
            return JSONResponse({"error": "invalid request"}, status_code=401)
        if self.reply is not None:
            return await self.reply(parsed)
        return Response(status_code=200)

    @property
    def last(self) -> dict[str, Any]:
        """The last parsed request."""
        return self.received[-1]["parsed"]


def parse_payload(body: bytes, content_type: str) -> dict[str, Any]:
    """Parse a Slack request body: JSON, form with `payload`, or plain form fields."""
    import json

    if content_type.startswith("application/json"):
        parsed: dict[str, Any] = json.loads(body)
        return parsed
    form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    return json.loads(form["payload"]) if "payload" in form else form


@dataclass
class Env:
    """Handles for one test: the stand-in's URL and state, the fake bot, the client."""

    base_url: str
    bot: FakeBot
    sandbox: SlackSandbox
    state: SlackState

    def web(self, **kw: Any) -> WebClient:
        """A sync slack_sdk client pointed at the stand-in."""
        return WebClient(token=TOKEN, base_url=self.sandbox.api_url, **kw)

    def async_web(self) -> AsyncWebClient:
        """An async slack_sdk client pointed at the stand-in."""
        return AsyncWebClient(token=TOKEN, base_url=self.sandbox.api_url)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Starlette, str, FakeBot, str]]:
    """Start the stand-in and the fake bot once per module."""
    app = create_slack_app(SlackState())
    bot = FakeBot()
    bot_app = Starlette(routes=[Route("/slack/events", bot.endpoint, methods=["POST"])])
    slack_thread, bot_thread = ServerThread(app), ServerThread(bot_app)
    slack_url, bot_url = slack_thread.start(), bot_thread.start()
    yield app, slack_url, bot, bot_url
    slack_thread.stop()
    bot_thread.stop()


@pytest.fixture
def env(servers: tuple[Starlette, str, FakeBot, str]) -> Iterator[Env]:
    """Fresh seeded Slack state and a quiet fake bot for every test."""
    app, slack_url, bot, bot_url = servers
    state = SlackState(bot_url=bot_url)
    app.state.slack = state
    bot.received.clear()
    bot.reply = None
    with SlackSandbox(slack_url) as sandbox:
        yield Env(slack_url, bot, sandbox, state)


def section(text: str) -> dict[str, Any]:
    """A section block with mrkdwn text."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def buttons(*pairs: tuple[str, str], block_id: str = "decide") -> dict[str, Any]:
    """An actions block with buttons given as (action_id, value)."""
    elements = [
        {"type": "button", "action_id": a, "value": v, "text": {"type": "plain_text", "text": a}}
        for a, v in pairs
    ]
    return {"type": "actions", "block_id": block_id, "elements": elements}


def modal(title: str = "Service account", blocks: list[dict[str, Any]] | None = None) -> dict:
    """A minimal modal view."""
    return {
        "type": "modal",
        "callback_id": "request",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": blocks if blocks is not None else [section("hello")],
    }


def api_post(env: Env, method: str, token: str | None = TOKEN, **data: Any) -> httpx.Response:
    """POST a form-encoded Web API call, with a Bearer token unless `token` is None."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{env.sandbox.api_url}{method}", data=data, headers=headers)


# --------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------

VECTOR_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
    "IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)


def test_sign_matches_slack_known_answer_vector() -> None:
    """Slack's documented example signature."""
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, VECTOR_BODY) == expected
    assert sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", VECTOR_BODY.encode()) == expected


def test_signed_headers_pass_slack_sdk_verifier() -> None:
    """Headers for 'now' verify; a stale timestamp is refused by the verifier (replay rule)."""
    assert SignatureVerifier("s3cret").is_valid_request("a=b", signed_headers("s3cret", "a=b"))
    stale = signed_headers("s3cret", "a=b", int(time.time()) - 600)
    assert not SignatureVerifier("s3cret").is_valid_request("a=b", stale)


# --------------------------------------------------------------------------------------------
# Web API
# --------------------------------------------------------------------------------------------


def test_post_update_and_ephemeral_through_web_client(env: Env) -> None:
    """chat.postMessage/update/postEphemeral shapes and rules through slack_sdk's WebClient."""
    web = env.web()
    first = web.chat_postMessage(channel="C0GENERAL", text="hi", blocks=[section("hi")])
    second = web.chat_postMessage(channel="C0GENERAL", text="again", thread_ts=first["ts"])
    assert first["channel"] == "C0GENERAL" and TS_RE.match(first["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"][0]["block_id"]  # Slack fills in missing block ids
    assert web.chat_update(channel="C0GENERAL", ts=first["ts"], text="edited")["ok"]
    [msg] = [m for m in env.sandbox.messages("C0GENERAL") if m["ts"] == first["ts"]]
    assert msg["text"] == "edited" and msg["blocks"] and msg["history"][0]["text"] == "hi"

    eph = web.chat_postEphemeral(channel="C0LONELY", user="U0DAVE", text="psst")
    assert set(eph.data) == {"ok", "message_ts"}  # type: ignore[arg-type]
    with pytest.raises(SlackApiError) as err:
        web.chat_postEphemeral(channel="C0LONELY", user="U0ALICE", text="psst")
    assert err.value.response["error"] == "user_not_in_channel"
    with pytest.raises(SlackApiError) as err:
        web.chat_update(channel="C0LONELY", ts=eph["message_ts"], text="no")
    assert err.value.response["error"] == "message_not_found"


def test_posting_rules_for_channels(env: Env) -> None:
    """Bot must be a member; unknown channels; user ids resolve to the app DM."""
    web = env.web()
    for channel, error in [("C0NOBOT", "not_in_channel"), ("C0MISSING", "channel_not_found")]:
        with pytest.raises(SlackApiError) as err:
            web.chat_postMessage(channel=channel, text="x")
        assert err.value.response["error"] == error
    dm = web.chat_postMessage(channel="U0ALICE", text="direct")
    assert dm["channel"] == web.conversations_open(users="U0ALICE")["channel"]["id"]


def test_ephemeral_visibility_in_inspection(env: Env) -> None:
    """An ephemeral message is listed for its viewer only."""
    env.web().chat_postEphemeral(channel="C0GENERAL", user="U0ALICE", text="only alice")
    assert [m["text"] for m in env.sandbox.messages(user="U0ALICE")] == ["only alice"]
    assert env.sandbox.messages(user="U0BOB") == []


async def test_async_web_client_lookups(env: Env) -> None:
    """auth.test, conversations.open, users.info, usergroups.users.list via AsyncWebClient."""
    web = env.async_web()
    assert (await web.auth_test())["user_id"] == "U0SABOT"
    first = await web.conversations_open(users="U0ALICE")
    again = await web.conversations_open(users=["U0ALICE"])
    assert first["channel"]["id"] == again["channel"]["id"] and first["channel"]["id"][0] == "D"
    assert (await web.chat_postMessage(channel=first["channel"]["id"], text="hi"))["ok"]
    user = (await web.users_info(user="U0BOB"))["user"]
    assert user["profile"]["email"] == "bob@example.com" and user["deleted"] is False
    members = await web.usergroups_users_list(usergroup="S0APPROVERS")
    assert members["users"] == ["U0BOB", "U0CAROL"]
    for call, error in [
        (web.users_info(user="U0NOBODY"), "user_not_found"),
        (web.usergroups_users_list(usergroup="S0NONE"), "no_such_subteam"),
    ]:
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response["error"] == error


def test_auth_and_argument_errors(env: Env) -> None:
    """not_authed, invalid_auth, unknown_method and missing required arguments; HTTP 200."""
    cases = [
        (api_post(env, "auth.test", token=None), "not_authed"),
        (api_post(env, "auth.test", token="xoxb-wrong"), "invalid_auth"),
        (api_post(env, "chat.nonsense"), "unknown_method"),
        (api_post(env, "chat.postMessage", text="no channel"), "invalid_arguments"),
    ]
    for resp, error in cases:
        assert resp.status_code == 200
        assert (resp.json()["ok"], resp.json()["error"]) == (False, error)
    assert "channel" in str(cases[-1][0].json()["response_metadata"])
    form_token = httpx.post(f"{env.sandbox.api_url}auth.test", data={"token": TOKEN})
    assert form_token.json()["ok"] is True


def test_message_content_limits(env: Env) -> None:
    """no_text, invalid_blocks (bad JSON, > 50 blocks, duplicate ids), msg_too_long."""
    many = [section(str(i)) for i in range(51)]
    dup = [section("a") | {"block_id": "x"}, section("b") | {"block_id": "x"}]
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "no_text"),
        ({"blocks": "not json"}, "invalid_blocks"),
        ({"blocks": many}, "invalid_blocks"),
        ({"blocks": dup}, "invalid_blocks"),
        ({"text": "x" * 40_001}, "msg_too_long"),
    ]
    web = env.web()
    for extra, error in cases:
        with pytest.raises(SlackApiError) as err:
            web.api_call("chat.postMessage", json={"channel": "C0GENERAL", **extra})
        assert err.value.response["error"] == error


def test_calls_are_recorded_with_decoded_json(env: Env) -> None:
    """Form-encoded blocks are recorded as objects, without the token."""
    resp = api_post(env, "chat.postMessage", channel="C0GENERAL", blocks='[{"type":"divider"}]')
    assert resp.json()["ok"]
    [call] = env.sandbox.calls("chat.postMessage")
    assert call["args"]["blocks"] == [{"type": "divider"}] and "token" not in call["args"]
    assert call["ok"] is True and call["error"] is None


def test_rate_limit_injection_returns_429_with_retry_after(env: Env) -> None:
    """Two injected 429s, then success; errors can be injected too."""
    env.sandbox.fault("chat.postMessage", count=2, retry_after=1)
    codes = [api_post(env, "chat.postMessage", channel="C0GENERAL", text="x") for _ in range(3)]
    assert [r.status_code for r in codes] == [429, 429, 200]
    assert codes[0].headers["Retry-After"] == "1"
    assert codes[0].json() == {"ok": False, "error": "ratelimited"}
    env.sandbox.fault("users.info", error="fatal_error")
    with pytest.raises(SlackApiError) as err:
        env.web().users_info(user="U0BOB")
    assert err.value.response["error"] == "fatal_error"


def test_slack_sdk_retry_handler_honours_retry_after(env: Env) -> None:
    """Without a handler slack_sdk raises on 429; RateLimitErrorRetryHandler retries through."""
    env.sandbox.fault("chat.postMessage", count=1, retry_after=0)
    with pytest.raises(SlackApiError) as err:
        env.web().chat_postMessage(channel="C0GENERAL", text="x")
    assert err.value.response.status_code == 429
    env.sandbox.fault("chat.postMessage", count=1, retry_after=0)
    web = env.web(retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    assert web.chat_postMessage(channel="C0GENERAL", text="x")["ok"]
    errors = [c["error"] for c in env.sandbox.calls("chat.postMessage")]
    assert errors == ["ratelimited", "ratelimited", None]


# --------------------------------------------------------------------------------------------
# Triggers and views
# --------------------------------------------------------------------------------------------


def test_trigger_is_single_use(env: Env) -> None:
    """A trigger opens one modal; a second use and a made-up id are refused."""
    web = env.web()
    trigger = env.sandbox.command("U0ALICE", "C0GENERAL")["trigger_id"]
    assert TRIGGER_RE.match(trigger)
    view = web.views_open(trigger_id=trigger, view=modal())["view"]
    assert view["id"].startswith("V") and view["hash"]
    assert env.sandbox.last_view_for("U0ALICE")["id"] == view["id"]  # type: ignore[index]
    for trig, error in [(trigger, "exchanged_trigger_id"), ("1.2.3", "invalid_trigger_id")]:
        with pytest.raises(SlackApiError) as err:
            web.views_open(trigger_id=trig, view=modal())
        assert err.value.response["error"] == error


def test_trigger_expires(env: Env) -> None:
    """A trigger used after its lifetime (shortened here) is expired_trigger_id."""
    env.sandbox.configure(trigger_ttl_seconds=0.05)
    trigger = env.sandbox.command("U0ALICE", "C0GENERAL")["trigger_id"]
    time.sleep(0.1)
    with pytest.raises(SlackApiError) as err:
        env.web().views_open(trigger_id=trigger, view=modal())
    assert err.value.response["error"] == "expired_trigger_id"


def test_modal_limits_are_invalid_arguments(env: Env) -> None:
    """Modal title over 24 characters and more than 100 blocks are refused."""
    web = env.web()
    for view in [modal(title="x" * 25), modal(blocks=[section("b")] * 101)]:
        trigger = env.sandbox.command("U0ALICE", "C0GENERAL")["trigger_id"]
        with pytest.raises(SlackApiError) as err:
            web.views_open(trigger_id=trigger, view=view)
        assert err.value.response["error"] == "invalid_arguments"


def test_views_update_hash_and_external_id(env: Env) -> None:
    """views.update by id or external_id; a stale hash is hash_conflict; unknown is not_found."""
    web = env.web()
    trigger = env.sandbox.command("U0ALICE", "C0GENERAL")["trigger_id"]
    view = web.views_open(trigger_id=trigger, view=modal() | {"external_id": "req-1"})["view"]
    updated = web.views_update(view_id=view["id"], hash=view["hash"], view=modal("Step 2"))
    assert updated["view"]["id"] == view["id"] and updated["view"]["hash"] != view["hash"]
    by_external = web.views_update(external_id="req-1", view=modal("Step 3"))["view"]
    assert by_external["id"] == view["id"] and by_external["title"]["text"] == "Step 3"
    for kwargs, error in [
        ({"view_id": view["id"], "hash": view["hash"]}, "hash_conflict"),
        ({"view_id": "VNOPE"}, "not_found"),
    ]:
        with pytest.raises(SlackApiError) as err:
            web.views_update(view=modal(), **kwargs)
        assert err.value.response["error"] == error


def test_home_publish_and_click(env: Env) -> None:
    """views.publish stores the Home tab; a click there has a view container and no channel."""
    home = {"type": "home", "blocks": [buttons(("new_request", "go"))]}
    env.web().views_publish(user_id="U0ALICE", view=home)
    assert env.sandbox.home("U0ALICE")["type"] == "home"  # type: ignore[index]
    env.sandbox.click_view("U0ALICE", "new_request", home=True)
    payload = env.bot.last
    assert payload["container"]["type"] == "view" and "channel" not in payload
    assert payload["actions"][0]["value"] == "go" and "response_url" not in payload


# --------------------------------------------------------------------------------------------
# Commands and response URLs
# --------------------------------------------------------------------------------------------

COMMAND_FIELDS = {
    "token",
    "team_id",
    "team_domain",
    "channel_id",
    "channel_name",
    "user_id",
    "user_name",
    "command",
    "text",
    "api_app_id",
    "is_enterprise_install",
    "response_url",
    "trigger_id",
}


def test_command_is_signed_and_shaped_like_slack(env: Env) -> None:
    """Form fields as Slack sends them, a valid signature, fresh trigger and response_url."""
    result = env.sandbox.command("U0ALICE", "C0GENERAL", "request jira")
    assert result["status"] == 200 and env.bot.received[-1]["valid"]
    form = env.bot.last
    assert set(form) == COMMAND_FIELDS
    assert form["command"] == "/service-account" and form["text"] == "request jira"
    assert (form["user_id"], form["channel_id"], form["channel_name"]) == (
        "U0ALICE",
        "C0GENERAL",
        "general",
    )
    assert form["trigger_id"] == result["trigger_id"] and TRIGGER_RE.match(form["trigger_id"])
    assert form["response_url"].startswith(f"{env.base_url}/response/")
    assert env.bot.received[-1]["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_command_refused_where_user_cannot_type(env: Env) -> None:
    """A user can only run a command in a channel they belong to; default is the app DM."""
    with pytest.raises(SandboxError):
        env.sandbox.command("U0ALICE", "C0LONELY")
    env.sandbox.command("U0ALICE")
    assert env.bot.last["channel_id"] == env.sandbox.dm_channel("U0ALICE")


def test_command_ack_body_is_shown_ephemerally(env: Env) -> None:
    """A non-empty ack body becomes an ephemeral message for the invoking user."""

    async def reply(_: dict[str, Any]) -> Response:
        return JSONResponse({"text": "Working on it"})

    env.bot.reply = reply
    env.sandbox.command("U0ALICE", "C0GENERAL")
    [msg] = env.sandbox.messages("C0GENERAL", user="U0ALICE")
    assert msg["ephemeral"] and msg["text"] == "Working on it" and msg["via"] == "ack"
    assert env.sandbox.messages("C0GENERAL", user="U0BOB") == []


def test_ack_after_three_seconds_is_operation_timeout(env: Env) -> None:
    """A slow ack is reported as Slack's operation_timeout (deadline shortened here)."""

    async def slow(_: dict[str, Any]) -> Response:
        await asyncio.sleep(0.2)
        return Response(status_code=200)

    env.sandbox.configure(ack_timeout_seconds=0.05)
    env.bot.reply = slow
    assert env.sandbox.command("U0ALICE", "C0GENERAL")["slack_error"] == "operation_timeout"


def test_response_url_has_five_uses(env: Env) -> None:
    """Five posts are accepted with plain `ok`; the sixth is refused."""
    url = env.sandbox.command("U0ALICE", "C0GENERAL")["response_url"]
    for i in range(5):
        resp = httpx.post(url, json={"text": f"n{i}", "response_type": "in_channel"})
        assert (resp.status_code, resp.text) == (200, "ok")
    sixth = httpx.post(url, json={"text": "too many"})
    assert sixth.status_code == 404 and sixth.json()["error"] == "used_up"
    calls = env.sandbox.calls("response_url")
    assert [c["ok"] for c in calls] == [True] * 5 + [False]
    assert calls[0]["args"]["user"] == "U0ALICE" and calls[0]["args"]["channel"] == "C0GENERAL"
    assert len(env.sandbox.messages("C0GENERAL", user="U0BOB")) == 5  # in_channel: all see it


def test_response_url_expires(env: Env) -> None:
    """A response_url used after its lifetime (shortened here) is refused."""
    env.sandbox.configure(response_url_ttl_seconds=0.05)
    url = env.sandbox.command("U0ALICE", "C0GENERAL")["response_url"]
    time.sleep(0.1)
    assert httpx.post(url, json={"text": "late"}).json()["error"] == "expired_url"


def test_response_url_ephemeral_by_default(env: Env) -> None:
    """Without response_type, a response_url post is visible to the invoking user only."""
    url = env.sandbox.command("U0ALICE", "C0GENERAL")["response_url"]
    assert httpx.post(url, json={"text": "just you"}).text == "ok"
    assert [m["text"] for m in env.sandbox.messages(user="U0ALICE")] == ["just you"]
    assert env.sandbox.messages(user="U0BOB") == []


# --------------------------------------------------------------------------------------------
# Clicks
# --------------------------------------------------------------------------------------------


def test_click_on_channel_message_includes_message(env: Env) -> None:
    """block_actions for a normal message: signed, with message, container and the button."""
    blocks = [section("Approve?"), buttons(("approve", "req-1"), ("deny", "req-1"))]
    ts = env.web().chat_postMessage(channel="C0APPROVALS", text="Approve?", blocks=blocks)["ts"]
    result = env.sandbox.click("U0BOB", "C0APPROVALS", ts, "approve")
    payload = env.bot.last
    assert result["status"] == 200 and env.bot.received[-1]["valid"]
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0BOB"
    assert payload["message"]["ts"] == ts
    assert payload["container"] == {
        "type": "message",
        "message_ts": ts,
        "channel_id": "C0APPROVALS",
        "is_ephemeral": False,
    }
    action = payload["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"]) == (
        "approve",
        "decide",
        "req-1",
    )
    assert action["type"] == "button" and payload["response_url"] and payload["trigger_id"]


def test_click_refusals_and_forgery(env: Env) -> None:
    """Non-members of a private channel cannot click; forged values need force=True."""
    blocks = [buttons(("approve", "req-1"))]
    ts = env.web().chat_postMessage(channel="C0APPROVALS", text="?", blocks=blocks)["ts"]
    with pytest.raises(SandboxError):
        env.sandbox.click("U0ALICE", "C0APPROVALS", ts, "approve")
    with pytest.raises(SandboxError):
        env.sandbox.click("U0BOB", "C0APPROVALS", ts, "approve", value="req-2")
    env.sandbox.click("U0BOB", "C0APPROVALS", ts, "approve", value="req-2", force=True)
    assert env.bot.last["actions"][0]["value"] == "req-2"


def test_click_on_ephemeral_has_no_message(env: Env) -> None:
    """Only the viewer can click an ephemeral message; the payload carries no `message`."""
    eph = env.web().chat_postEphemeral(
        channel="C0GENERAL", user="U0ALICE", text="Cancel?", blocks=[buttons(("cancel", "req-9"))]
    )
    ts = eph["message_ts"]
    with pytest.raises(SandboxError):
        env.sandbox.click("U0BOB", "C0GENERAL", ts, "cancel")
    env.sandbox.click("U0ALICE", "C0GENERAL", ts, "cancel")
    payload = env.bot.last
    assert "message" not in payload and payload["container"]["is_ephemeral"] is True
    assert payload["channel"]["id"] == "C0GENERAL"


def test_click_response_url_replaces_and_deletes_original(env: Env) -> None:
    """replace_original edits the clicked ephemeral; false posts anew; delete removes it."""
    eph = env.web().chat_postEphemeral(
        channel="C0GENERAL", user="U0ALICE", text="Cancel?", blocks=[buttons(("cancel", "r"))]
    )
    url = env.sandbox.click("U0ALICE", "C0GENERAL", eph["message_ts"], "cancel")["response_url"]
    httpx.post(url, json={"text": "Cancelled", "replace_original": True})
    [msg] = env.sandbox.messages(user="U0ALICE")
    assert msg["text"] == "Cancelled" and msg["ephemeral"] and msg["ts"] == eph["message_ts"]
    httpx.post(url, json={"text": "FYI", "response_type": "ephemeral", "replace_original": False})
    assert [m["text"] for m in env.sandbox.messages(user="U0ALICE")] == ["Cancelled", "FYI"]
    httpx.post(url, json={"delete_original": True})
    assert [m["text"] for m in env.sandbox.messages(user="U0ALICE")] == ["FYI"]


# --------------------------------------------------------------------------------------------
# View submissions
# --------------------------------------------------------------------------------------------


def option(value: str) -> dict[str, Any]:
    """A Block Kit option whose label is its value."""
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def input_block(block_id: str, element: dict[str, Any], optional: bool = False) -> dict:
    """An input block whose element's action_id is `{block_id}_in`."""
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": block_id},
        "element": {"action_id": f"{block_id}_in", **element},
    }


FORM_BLOCKS = [
    input_block("name", {"type": "plain_text_input", "max_length": 20}),
    input_block("count", {"type": "number_input", "is_decimal_allowed": False}),
    input_block(
        "product",
        {
            "type": "static_select",
            "option_groups": [
                {"label": {"type": "plain_text", "text": "A"}, "options": [option("jira")]},
                {"label": {"type": "plain_text", "text": "B"}, "options": [option("confluence")]},
            ],
        },
    ),
    input_block("scopes", {"type": "multi_static_select", "options": [option("r"), option("w")]}),
    input_block("flags", {"type": "checkboxes", "options": [option("notify")]}, optional=True),
    input_block("env", {"type": "radio_buttons", "options": [option("dev"), option("prod")]}),
    input_block(
        "team",
        {"type": "static_select", "options": [option("a"), option("b")]}
        | {"initial_option": option("b")},
    ),
    input_block("note", {"type": "plain_text_input"}, optional=True),
]


def open_form(env: Env, answers: list[Response]) -> dict[str, Any]:
    """Make the bot open FORM on /service-account and answer submissions from `answers`."""

    async def reply(payload: dict[str, Any]) -> Response:
        if "command" in payload:
            await env.async_web().views_open(
                trigger_id=payload["trigger_id"], view=modal(blocks=FORM_BLOCKS)
            )
            return Response(status_code=200)
        return answers.pop(0)

    env.bot.reply = reply
    env.sandbox.command("U0ALICE", "C0GENERAL")
    view = env.sandbox.last_view_for("U0ALICE")
    assert view is not None
    return view


GOOD_VALUES = {
    "name": {"name_in": "svc-jira"},
    "count": {"count_in": 3},
    "product": {"product_in": "confluence"},
    "scopes": {"scopes_in": ["r", "w"]},
    "env": "prod",  # shorthand: the block's only element
}


def test_submit_encodes_each_element_type(env: Env) -> None:
    """state.values per element type; untouched inputs submit their initial/empty value."""
    view = open_form(env, [Response(status_code=200)])
    result = env.sandbox.submit("U0ALICE", view["id"], GOOD_VALUES)
    values = env.bot.last["view"]["state"]["values"]
    assert values["name"]["name_in"] == {"type": "plain_text_input", "value": "svc-jira"}
    assert values["count"]["count_in"] == {"type": "number_input", "value": "3"}
    assert values["product"]["product_in"]["selected_option"] == option("confluence")
    assert values["scopes"]["scopes_in"]["selected_options"] == [option("r"), option("w")]
    assert values["flags"]["flags_in"] == {"type": "checkboxes", "selected_options": []}
    assert values["env"]["env_in"]["selected_option"] == option("prod")
    assert values["team"]["team_in"]["selected_option"] == option("b")
    assert values["note"]["note_in"] == {"type": "plain_text_input", "value": None}
    assert env.bot.last["type"] == "view_submission" and env.bot.last["view"]["id"] == view["id"]
    assert result["view"] is None and env.sandbox.views() == {}  # empty ack closes it


def test_submit_response_actions_errors_then_update(env: Env) -> None:
    """`errors` keeps the view open; `update` replaces it keeping the id."""
    errors = JSONResponse({"response_action": "errors", "errors": {"name": "taken"}})
    update = JSONResponse({"response_action": "update", "view": modal("Done")})
    view = open_form(env, [errors, update])
    first = env.sandbox.submit("U0ALICE", view["id"], GOOD_VALUES)
    assert first["errors"] == {"name": "taken"} and view["id"] in env.sandbox.views()
    assert "slack_error" not in first
    second = env.sandbox.submit("U0ALICE", view["id"], GOOD_VALUES)
    assert second["view"]["id"] == view["id"] and second["view"]["title"]["text"] == "Done"
    assert second["view"]["hash"] != view["hash"]


def test_submit_refuses_what_slack_would_not_send(env: Env) -> None:
    """Empty required inputs, too-long text and unknown options never reach the bot."""
    view = open_form(env, [Response(status_code=200)])
    before = len(env.bot.received)
    for values in [
        {**GOOD_VALUES, "name": {"name_in": ""}},
        {**GOOD_VALUES, "name": {"name_in": "x" * 21}},
        {**GOOD_VALUES, "env": "staging"},
        {**GOOD_VALUES, "nonexistent": "x"},
    ]:
        with pytest.raises(SandboxError):
            env.sandbox.submit("U0ALICE", view["id"], values)
    assert len(env.bot.received) == before
    env.sandbox.submit("U0ALICE", view["id"], {**GOOD_VALUES, "name": ""}, force=True)
    assert env.bot.last["view"]["state"]["values"]["name"]["name_in"]["value"] is None


# --------------------------------------------------------------------------------------------
# Raw requests and events
# --------------------------------------------------------------------------------------------


def test_raw_requests_with_bad_signature_or_stale_timestamp(env: Env) -> None:
    """The bot sees a bad signature and a replayed timestamp; a good one passes."""
    assert env.sandbox.raw("a=b")["status"] == 200
    assert env.sandbox.raw("a=b", signature="v0=" + "0" * 64)["status"] == 401
    assert env.sandbox.raw("a=b", timestamp=int(time.time()) - 600)["status"] == 401


def test_event_callback_and_retry_headers(env: Env) -> None:
    """Events arrive as signed JSON envelopes; retries reuse event_id with retry headers."""
    first = env.sandbox.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    env.sandbox.event(first["payload"]["event"], event_id=first["event_id"], retry_num=1)
    a, b = env.bot.received[-2:]
    assert a["parsed"]["type"] == "event_callback" and a["valid"] and b["valid"]
    assert a["parsed"]["event_id"] == b["parsed"]["event_id"]
    assert b["headers"]["x-slack-retry-num"] == "1"


# --------------------------------------------------------------------------------------------
# A real Bolt app accepts what the stand-in sends
# --------------------------------------------------------------------------------------------


def bolt_app(env: Env) -> Starlette:
    """A slack-bolt AsyncApp served over HTTP, talking to the stand-in's Web API."""
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(signing_secret=SECRET, client=env.async_web())

    @app.command("/service-account")
    async def command(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=modal(blocks=FORM_BLOCKS[:1]))

    @app.view("request")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        await ack(response_action="errors", errors={"name": "taken"})

    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


def test_real_bolt_app_accepts_stand_in_requests(env: Env) -> None:
    """Bolt verifies the signatures, opens a modal with the trigger and answers a submission."""
    thread = ServerThread(bolt_app(env))
    env.sandbox.configure(bot_url=thread.start())
    try:
        assert env.sandbox.command("U0ALICE", "C0GENERAL")["status"] == 200
        view = env.sandbox.last_view_for("U0ALICE")
        assert view is not None
        result = env.sandbox.submit("U0ALICE", view["id"], {"name": "svc"})
        assert result["errors"] == {"name": "taken"} and result["view"]["id"] == view["id"]
        assert env.sandbox.raw("command=%2Fx", signature="v0=" + "0" * 64)["status"] == 401
        assert [c["method"] for c in env.sandbox.calls()] == ["auth.test", "views.open"]
    finally:
        thread.stop()


async def test_the_stand_ins_listeners_turn_nagles_algorithm_off() -> None:
    """asyncio sets TCP_NODELAY only on sockets whose protocol says TCP; a listener made without
    it left Nagle on, and each answer on a kept-alive connection waited for the client's delayed
    ACK (40 ms a Slack call, which real Slack does not add, in every test and the benchmark)."""
    accepted: list[socket.socket] = []

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("socket"))
        writer.close()

    sock = listening_socket()
    server = await asyncio.start_server(on_connect, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname())
        while not accepted:
            await asyncio.sleep(0.01)
        writer.close()
    assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
