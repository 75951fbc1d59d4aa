"""Local stand-in for Slack: a Starlette app that plays both sides of the Slack platform.

* Web API (`/api/{method}`): the methods the bot calls, with Slack's rules (membership, trigger
  expiry, Block Kit limits, response shapes, errors as HTTP 200 `ok:false`, 429 on rate limits).
  Every call is recorded in `SlackState.calls`.
* Response URLs (`/response/{rid}`): five uses within thirty minutes, ephemeral or in-channel.
* Slack towards the bot (`/_sandbox/...`): builds, signs and POSTs slash commands, button clicks,
  view submissions and events to `{bot_url}/slack/events`, then interprets the bot's answer the way
  Slack does (ack bodies shown to the user, `response_action` for modals, 3-second ack deadline).
  Once an app connects over Socket Mode (sandbox/slack_socket.py), the same payloads go to it in
  envelopes over its WebSocket instead, and its acks are read as those answers.

Rules come from the Slack reference (shared/reference/slack-platform.md in the team's docs);
required arguments per Web API method come from Slack's OpenAPI description, extracted into
`slack_methods.json` beside this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sandbox.block_kit import (
    MAX_MESSAGE_BLOCKS,
    block_elements,
    block_problems,
    view_problems,
    with_generated_ids,
)
from sandbox.signing import SIGNATURE_HEADER, signed_headers

if TYPE_CHECKING:
    from sandbox.slack_socket import SocketHub

JSON = dict[str, Any]

MAX_TEXT = 40_000
# The bot scopes app_manifest.yml asks for: what Slack grants an app installed from it (a test
# holds the two equal). Web API answers name the granted ones in `x-oauth-scopes`.
MANIFEST_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
)
SCOPES_HEADER = "x-oauth-scopes"
# The scope each method needs (conversations.info: by the channel's kind, see there); a call
# without it is refused with `missing_scope`, as Slack does.
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "conversations.open": "im:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "usergroups.users.list": "usergroups:read",
}
# Arguments Slack accepts as JSON strings in form bodies; decoded so records and checks see objects.
JSON_ARGS = ("blocks", "view", "attachments", "metadata")


def load_methods() -> dict[str, JSON]:
    """Return `{method: {"required": [...], "optional": [...]}}` from Slack's OpenAPI extract."""
    text = resources.files("sandbox").joinpath("slack_methods.json").read_text()
    methods: dict[str, JSON] = json.loads(text)
    return methods


METHODS = load_methods()


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


@dataclass
class SlackUser:
    """A workspace member as `users.info` describes it."""

    id: str
    name: str
    email: str = ""
    real_name: str = ""
    deleted: bool = False
    is_bot: bool = False

    def to_api(self, team_id: str) -> JSON:
        """Return the `user` object of `users.info`."""
        real = self.real_name or self.name
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": real,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": {"email": self.email, "real_name": real, "display_name": self.name},
        }


@dataclass
class Channel:
    """A conversation: public/private channel or the bot's DM with one user (`is_im`)."""

    id: str
    name: str
    members: set[str] = field(default_factory=set)
    is_private: bool = False
    is_im: bool = False
    is_archived: bool = False

    def to_api(self, bot_user_id: str) -> JSON:
        """Return the `channel` object of `conversations.info`."""
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not (self.is_im or self.is_private),
            "is_private": self.is_private or self.is_im,
            "is_im": self.is_im,
            "is_archived": self.is_archived,
            "is_member": bot_user_id in self.members,
        }


@dataclass
class Message:
    """A posted message. Ephemeral ones are visible to `user` only and never via the Web API."""

    channel: str
    ts: str
    text: str = ""
    blocks: list[JSON] | None = None
    user: str | None = None  # the only viewer of an ephemeral message
    ephemeral: bool = False
    thread_ts: str | None = None
    via: str = "api"  # "api" | "response_url" | "ack"
    author: str = ""
    attachments: list[Any] | None = None
    deleted: bool = False
    history: list[JSON] = field(default_factory=list)  # earlier versions, oldest first

    def to_dict(self) -> JSON:
        """Return an inspection record, including who can see the message."""
        out = asdict(self)
        out["visible_to"] = [self.user] if self.ephemeral else "channel"
        return out


@dataclass
class Trigger:
    """A trigger_id Slack issued with a command or interaction: single use, short-lived."""

    user: str
    issued_at: float
    used: bool = False


@dataclass
class ResponseUrl:
    """A response_url bound to a user, a channel and (for clicks) the clicked message."""

    user: str
    channel: str
    message_ts: str | None
    created_at: float
    uses: int = 0


def _default_users() -> dict[str, SlackUser]:
    people = [
        ("U0ALICE", "alice", "Alice Requester"),
        ("U0BOB", "bob", "Bob Approver"),
        ("U0CAROL", "carol", "Carol Approver"),
        ("U0DAVE", "dave", "Dave Bystander"),
    ]
    return {uid: SlackUser(uid, name, f"{name}@example.com", real) for uid, name, real in people}


@dataclass
class SlackState:
    """Everything the stand-in knows; mutated only on the server's event loop."""

    signing_secret: str = "sandbox-signing-secret"
    bot_token: str = "xoxb-sandbox-token"
    verification_token: str = "sandbox-verification-token"  # deprecated `token` field
    bot_url: str | None = None
    public_url: str | None = None  # base for response_urls; default: the request's base URL
    team_id: str = "T0SANDBOX"
    team_domain: str = "sandbox"
    bot_user_id: str = "U0SABOT"
    bot_id: str = "B0SABOT"
    api_app_id: str = "A0SABOT"
    trigger_ttl_seconds: float = 3.0
    ack_timeout_seconds: float = 3.0
    response_url_ttl_seconds: float = 1800.0
    response_url_max_uses: int = 5
    users: dict[str, SlackUser] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    calls: list[JSON] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    views: dict[str, JSON] = field(default_factory=dict)
    home: dict[str, JSON] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    response_urls: dict[str, ResponseUrl] = field(default_factory=dict)
    faults: dict[str, list[JSON]] = field(default_factory=dict)
    deliveries: list[JSON] = field(default_factory=list)  # what was POSTed to the bot
    last_ts_micros: int = 0
    balancer: Iterator[int] = field(default_factory=itertools.count)
    # Socket Mode (sandbox/slack_socket.py): the app-level token and Slack's side of the socket.
    app_token: str = "xapp-1-A0SABOT-1-sandbox-app-token"
    socket_mode: SocketHub | None = None
    # The bot token's scopes, comma-separated as in the header (`set_config` changes them).
    granted_scopes: str = ",".join(MANIFEST_SCOPES)

    def require_scope(self, scope: str) -> None:
        """Refuse a call the bot token's scopes do not cover, in Slack's words."""
        granted = [s for s in self.granted_scopes.split(",") if s]
        if scope not in granted:
            raise ApiError("missing_scope", extra={"needed": scope, "provided": ",".join(granted)})

    def __post_init__(self) -> None:
        # Seed after construction so an overridden bot_user_id lands in the seeded channels.
        if not self.users:
            self.users = _default_users()
        self.users.setdefault(
            self.bot_user_id, SlackUser(self.bot_user_id, "sabot", "", "sabot", is_bot=True)
        )
        if not self.channels:
            self.channels = self._default_channels()
        if not self.usergroups:
            self.usergroups = {"S0APPROVERS": ["U0BOB", "U0CAROL"]}

    def _default_channels(self) -> dict[str, Channel]:
        bot = self.bot_user_id
        people = {"U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"}
        chans = [
            Channel("C0GENERAL", "general", people | {bot}),
            Channel("C0APPROVALS", "approvals", {"U0BOB", "U0CAROL", bot}, is_private=True),
            Channel("C0LONELY", "lonely", {"U0DAVE", bot}),  # the requester is not a member
            Channel("C0NOBOT", "nobot", {"U0ALICE", "U0BOB"}),  # the bot is not a member
        ]
        return {c.id: c for c in chans}

    def reset(self) -> None:
        """Forget traffic (calls, messages, views, triggers, URLs, faults); keep people."""
        for name in ("calls", "messages", "deliveries"):
            getattr(self, name).clear()
        for name in ("views", "home", "triggers", "response_urls", "faults"):
            getattr(self, name).clear()
        if self.socket_mode is not None:
            self.socket_mode.events.clear()

    def next_ts(self) -> str:
        """Return a unique, increasing message timestamp like `1700000000.000100`."""
        now = int(time.time() * 1_000_000)
        self.last_ts_micros = max(now, self.last_ts_micros + 1)
        return f"{self.last_ts_micros // 1_000_000}.{self.last_ts_micros % 1_000_000:06d}"

    def dm_channel(self, user_id: str) -> Channel:
        """Return (creating once) the bot's stable DM channel with `user_id`."""
        cid = "D" + user_id[1:]
        if cid not in self.channels:
            self.channels[cid] = Channel(
                cid, "directmessage", {user_id, self.bot_user_id}, is_im=True
            )
        return self.channels[cid]

    def find_message(self, channel: str, ts: str) -> Message | None:
        """Return the live message (channel, ts), ephemeral or not."""
        for msg in reversed(self.messages):
            if msg.channel == channel and msg.ts == ts and not msg.deleted:
                return msg
        return None

    def message_json(self, msg: Message) -> JSON:
        """Return the message as Slack puts it in API answers and block_actions payloads."""
        out: JSON = {
            "type": "message",
            "user": msg.author,
            "bot_id": self.bot_id,
            "app_id": self.api_app_id,
            "text": msg.text,
            "ts": msg.ts,
            "team": self.team_id,
        }
        if msg.blocks is not None:
            out["blocks"] = msg.blocks
        if msg.attachments:
            out["attachments"] = msg.attachments
        if msg.thread_ts:
            out["thread_ts"] = msg.thread_ts
        return out

    def issue_trigger(self, user_id: str) -> str:
        """Issue a fresh trigger_id for `user_id`, formatted like Slack's."""
        tid = f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**11)}.{secrets.token_hex(16)}"
        self.triggers[tid] = Trigger(user_id, time.monotonic())
        return tid

    def issue_response_url(
        self, base: str, user_id: str, channel: str, message_ts: str | None
    ) -> str:
        """Issue a fresh response_url bound to a user, channel and optionally a message."""
        rid = secrets.token_urlsafe(12)
        self.response_urls[rid] = ResponseUrl(user_id, channel, message_ts, time.monotonic())
        return f"{base}/response/{rid}"

    def take_fault(self, method: str) -> JSON | None:
        """Consume and return the next injected fault for `method`, if any."""
        queue = self.faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault["count"] -= 1
        if fault["count"] <= 0:
            queue.pop(0)
        return fault

    def open_views_of(self, user_id: str) -> list[str]:
        """Return ids of the user's open modal views, oldest first."""
        return [vid for vid, entry in self.views.items() if entry["user"] == user_id]


# --------------------------------------------------------------------------------------------
# Web API
# --------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A Web API error, answered as HTTP 200 `{"ok": false, "error": ...}`."""

    def __init__(
        self, error: str, messages: list[str] | None = None, *, extra: JSON | None = None
    ) -> None:
        super().__init__(error)
        self.error = error
        self.messages = messages or []
        self.extra = extra or {}  # more top-level fields (missing_scope: needed, provided)


Handler = Callable[[SlackState, JSON], JSON]
HANDLERS: dict[str, Handler] = {}


def api(name: str) -> Callable[[Handler], Handler]:
    """Register a Web API method handler."""

    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _str_or_none(value: Any) -> str | None:
    return None if _blank(value) else str(value)


def resolve_channel(state: SlackState, ref: Any) -> Channel:
    """Find a channel by id, `#name`, or a user id (meaning the bot's DM with that user)."""
    key = str(ref)
    if key in state.channels:
        return state.channels[key]
    if key.startswith(("U", "W")) and key in state.users:
        return state.dm_channel(key)  # Slack accepts a user id as channel for app DMs
    name = key.lstrip("#")
    for chan in state.channels.values():
        if chan.name == name and not chan.is_im:
            return chan
    raise ApiError("channel_not_found")


def require_bot_in(state: SlackState, chan: Channel) -> None:
    """Apply Slack's posting rules: archived channels refuse, the bot must be a member."""
    if chan.is_archived:
        raise ApiError("is_archived")
    if state.bot_user_id not in chan.members:
        raise ApiError("not_in_channel")


def message_content(args: JSON, *, need_content: bool = True) -> tuple[str | None, Any]:
    """Validate text/blocks like chat.postMessage does; return (text, blocks or None)."""
    text = _str_or_none(args.get("text"))
    blocks = args.get("blocks")
    if _blank(blocks):
        blocks = None
    if blocks is not None:
        problems = block_problems(blocks, MAX_MESSAGE_BLOCKS)
        if problems:
            raise ApiError("invalid_blocks", problems)
        blocks = with_generated_ids(blocks)
    if need_content and text is None and blocks is None and not args.get("attachments"):
        raise ApiError("no_text")
    if text is not None and len(text) > MAX_TEXT:
        raise ApiError("msg_too_long")
    return text, blocks


@api("auth.test")
def auth_test(state: SlackState, args: JSON) -> JSON:
    """Identify the bot token."""
    return {
        "ok": True,
        "url": f"https://{state.team_domain}.slack.com/",
        "team": "Sandbox",
        "user": state.users[state.bot_user_id].name,
        "team_id": state.team_id,
        "user_id": state.bot_user_id,
        "bot_id": state.bot_id,
        "is_enterprise_install": False,
    }


@api("chat.postMessage")
def chat_post_message(state: SlackState, args: JSON) -> JSON:
    """Post a channel message; the bot must be in the channel."""
    chan = resolve_channel(state, args["channel"])
    require_bot_in(state, chan)
    text, blocks = message_content(args)
    msg = Message(
        channel=chan.id,
        ts=state.next_ts(),
        text=text or "",
        blocks=blocks,
        thread_ts=_str_or_none(args.get("thread_ts")),
        author=state.bot_user_id,
        attachments=args.get("attachments") or None,
    )
    state.messages.append(msg)
    return {"ok": True, "channel": chan.id, "ts": msg.ts, "message": state.message_json(msg)}


@api("chat.update")
def chat_update(state: SlackState, args: JSON) -> JSON:
    """Edit a message the bot posted; ephemeral messages cannot be edited."""
    chan = resolve_channel(state, args["channel"])
    msg = state.find_message(chan.id, str(args["ts"]))
    if msg is None or msg.ephemeral:
        raise ApiError("message_not_found")
    if msg.author != state.bot_user_id:
        raise ApiError("cant_update_message")
    text, blocks = message_content(args, need_content=False)
    msg.history.append({"text": msg.text, "blocks": msg.blocks, "via": "chat.update"})
    # Slack keeps the previous blocks when `blocks` is omitted; `[]` removes them.
    if "blocks" in args:
        msg.blocks = blocks
    if text is not None:
        msg.text = text
    if not msg.text and not msg.blocks:
        raise ApiError("no_text")
    return {
        "ok": True,
        "channel": chan.id,
        "ts": msg.ts,
        "text": msg.text,
        "message": state.message_json(msg),
    }


@api("chat.postEphemeral")
def chat_post_ephemeral(state: SlackState, args: JSON) -> JSON:
    """Show a message to one member of the channel; answers `message_ts` only."""
    chan = resolve_channel(state, args["channel"])
    require_bot_in(state, chan)
    user = str(args["user"])
    if user not in chan.members or user not in state.users or state.users[user].deleted:
        raise ApiError("user_not_in_channel")
    text, blocks = message_content(args)
    msg = Message(
        channel=chan.id,
        ts=state.next_ts(),
        text=text or "",
        blocks=blocks,
        user=user,
        ephemeral=True,
        thread_ts=_str_or_none(args.get("thread_ts")),
        author=state.bot_user_id,
        attachments=args.get("attachments") or None,
    )
    state.messages.append(msg)
    return {"ok": True, "message_ts": msg.ts}


@api("chat.delete")
def chat_delete(state: SlackState, args: JSON) -> JSON:
    """Delete a bot message; ephemeral messages are not reachable through the Web API."""
    chan = resolve_channel(state, args["channel"])
    msg = state.find_message(chan.id, str(args["ts"]))
    if msg is None or msg.ephemeral:
        raise ApiError("message_not_found")
    if msg.author != state.bot_user_id:
        raise ApiError("cant_delete_message")
    msg.deleted = True
    return {"ok": True, "channel": chan.id, "ts": msg.ts}


@api("chat.getPermalink")
def chat_get_permalink(state: SlackState, args: JSON) -> JSON:
    """Return a permalink for a non-ephemeral message."""
    chan = resolve_channel(state, args["channel"])
    msg = state.find_message(chan.id, str(args["message_ts"]))
    if msg is None or msg.ephemeral:
        raise ApiError("message_not_found")
    link = f"https://{state.team_domain}.slack.com/archives/{chan.id}/p{msg.ts.replace('.', '')}"
    return {"ok": True, "channel": chan.id, "permalink": link}


def _user_ids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


@api("conversations.open")
def conversations_open(state: SlackState, args: JSON) -> JSON:
    """Open (or reopen) the bot's DM with one user."""
    if not _blank(args.get("channel")):
        chan = state.channels.get(str(args["channel"]))
        if chan is None or not chan.is_im:
            raise ApiError("channel_not_found")
        return {"ok": True, "no_op": True, "already_open": True, "channel": {"id": chan.id}}
    users = _user_ids(args.get("users"))
    if not users:
        raise ApiError("users_list_not_supplied")
    if len(users) > 1:
        raise ApiError("not_implemented_in_sandbox", ["group DMs are not modelled"])
    user = state.users.get(users[0])
    if user is None:
        raise ApiError("user_not_found")
    if user.deleted:
        raise ApiError("user_disabled")
    existed = ("D" + user.id[1:]) in state.channels
    chan = state.dm_channel(user.id)
    out: JSON = {"ok": True, "channel": {"id": chan.id}}
    if existed:
        out.update(no_op=True, already_open=True)
    return out


@api("conversations.info")
def conversations_info(state: SlackState, args: JSON) -> JSON:
    """Describe a channel."""
    chan = state.channels.get(str(args["channel"]))
    # A private channel is invisible to a bot outside it, as if it did not exist.
    if chan is None or (chan.is_private and state.bot_user_id not in chan.members):
        raise ApiError("channel_not_found")
    state.require_scope(
        "im:read" if chan.is_im else "groups:read" if chan.is_private else "channels:read"
    )
    return {"ok": True, "channel": chan.to_api(state.bot_user_id)}


@api("users.info")
def users_info(state: SlackState, args: JSON) -> JSON:
    """Describe a user (email under profile, deleted, is_bot)."""
    user = state.users.get(str(args.get("user") or ""))
    if user is None:
        raise ApiError("user_not_found")
    return {"ok": True, "user": user.to_api(state.team_id)}


@api("users.lookupByEmail")
def users_lookup_by_email(state: SlackState, args: JSON) -> JSON:
    """Find a user by email."""
    wanted = str(args["email"]).lower()
    for user in state.users.values():
        if user.email and user.email.lower() == wanted:
            return {"ok": True, "user": user.to_api(state.team_id)}
    raise ApiError("users_not_found")


@api("usergroups.users.list")
def usergroups_users_list(state: SlackState, args: JSON) -> JSON:
    """List the member ids of a user group."""
    group = state.usergroups.get(str(args["usergroup"]))
    if group is None:
        raise ApiError("no_such_subteam")
    return {"ok": True, "users": list(group)}


def _view_arg(args: JSON) -> JSON:
    view = args.get("view")
    if not isinstance(view, dict):
        raise ApiError("invalid_arguments", ["view must be a JSON object [json-pointer:/view]"])
    return view


def checked_view(args_or_view: JSON, kind: str) -> JSON:
    """Validate a view, raising `invalid_arguments` with Slack-like messages."""
    view = args_or_view
    view.setdefault("blocks", [])
    problems = view_problems(view, kind)
    if problems:
        raise ApiError("invalid_arguments", problems)
    return view


def view_json(state: SlackState, vid: str, view: JSON, *, root: str, prev: str | None) -> JSON:
    """Build the stored/returned view object Slack answers with."""
    return {
        "id": vid,
        "team_id": state.team_id,
        "type": view["type"],
        "title": view.get("title"),
        "submit": view.get("submit"),
        "close": view.get("close"),
        "blocks": with_generated_ids(view.get("blocks", [])),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "external_id": view.get("external_id", ""),
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "root_view_id": root,
        "previous_view_id": prev,
        "app_id": state.api_app_id,
        "app_installed_team_id": state.team_id,
        "bot_id": state.bot_id,
    }


def new_view_id() -> str:
    """Return a fresh view id like Slack's `V0123ABCD`."""
    return "V" + secrets.token_hex(5).upper()


def store_view(state: SlackState, user: str, view: JSON, prev: str | None = None) -> JSON:
    """Open `view` for `user` (on top of `prev` when pushed) and return its view object."""
    vid = new_view_id()
    root = state.views[prev]["view"]["root_view_id"] if prev else vid
    obj = view_json(state, vid, view, root=root, prev=prev)
    state.views[vid] = {"user": user, "view": obj, "hash": obj["hash"]}
    return obj


def replace_view(state: SlackState, vid: str, view: JSON) -> JSON:
    """Replace an open view's content, keeping its id and stack position; new hash."""
    old = state.views[vid]["view"]
    if not view.get("external_id") and old.get("external_id"):
        view = {**view, "external_id": old["external_id"]}  # keep the handle the app chose
    obj = view_json(state, vid, view, root=old["root_view_id"], prev=old["previous_view_id"])
    state.views[vid].update(view=obj, hash=obj["hash"])
    return obj


def exchange_trigger(state: SlackState, trigger_id: str) -> Trigger:
    """Use a trigger_id once, within its lifetime, as Slack does for views.open/push."""
    trig = state.triggers.get(trigger_id)
    if trig is None:
        raise ApiError("invalid_trigger_id")
    if trig.used:
        raise ApiError("exchanged_trigger_id")
    if time.monotonic() - trig.issued_at > state.trigger_ttl_seconds:
        raise ApiError("expired_trigger_id")
    trig.used = True
    return trig


@api("views.open")
def views_open(state: SlackState, args: JSON) -> JSON:
    """Open a modal for the user who caused the trigger."""
    view = checked_view(_view_arg(args), "modal")
    trig = exchange_trigger(state, str(args["trigger_id"]))
    return {"ok": True, "view": store_view(state, trig.user, view)}


@api("views.push")
def views_push(state: SlackState, args: JSON) -> JSON:
    """Push a modal on top of the user's open one (at most three in a stack)."""
    view = checked_view(_view_arg(args), "modal")
    trig = exchange_trigger(state, str(args["trigger_id"]))
    stack = state.open_views_of(trig.user)
    if not stack:
        raise ApiError("not_found", ["no open view to push onto"])
    if len(stack) >= 3:
        raise ApiError("push_limit_reached")
    return {"ok": True, "view": store_view(state, trig.user, view, prev=stack[-1])}


def _find_view_id(state: SlackState, args: JSON) -> str:
    if not _blank(args.get("view_id")):
        vid = str(args["view_id"])
        if vid in state.views:
            return vid
        raise ApiError("not_found")
    external = _str_or_none(args.get("external_id"))
    if external is None:
        raise ApiError("invalid_arguments", ["view_id or external_id is required"])
    for vid, entry in state.views.items():
        if entry["view"].get("external_id") == external:
            return vid
    raise ApiError("not_found")


@api("views.update")
def views_update(state: SlackState, args: JSON) -> JSON:
    """Replace an open modal; a stale `hash` is refused with `hash_conflict`."""
    vid = _find_view_id(state, args)
    view = checked_view(_view_arg(args), "modal")
    given = _str_or_none(args.get("hash"))
    if given is not None and given != state.views[vid]["hash"]:
        raise ApiError("hash_conflict")
    return {"ok": True, "view": replace_view(state, vid, view)}


@api("views.publish")
def views_publish(state: SlackState, args: JSON) -> JSON:
    """Publish a user's Home tab."""
    user = str(args["user_id"])
    if user not in state.users:
        raise ApiError("user_not_found")
    view = checked_view(_view_arg(args), "home")
    current = state.home.get(user)
    given = _str_or_none(args.get("hash"))
    if current is not None and given is not None and given != current["hash"]:
        raise ApiError("hash_conflict")
    vid = current["id"] if current else new_view_id()
    obj = view_json(state, vid, view, root=vid, prev=None)
    state.home[user] = obj
    return {"ok": True, "view": obj}


async def read_api_args(request: Request) -> tuple[JSON, str | None]:
    """Merge query, form or JSON body into args; return (args, token). Raises on bad JSON."""
    args: JSON = dict(request.query_params)
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if raw and ctype == "application/json":
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError("invalid_json") from exc
        if not isinstance(body, dict):
            raise ApiError("invalid_json")
        body.pop("token", None)  # Slack reads tokens from JSON bodies' headers only
        args.update(body)
    elif raw:
        args.update(parse_qsl(raw.decode(), keep_blank_values=True))
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    body_token = args.pop("token", None)
    for key in JSON_ARGS:
        if isinstance(args.get(key), str) and args[key]:
            # Undecodable JSON stays a string, so validation reports it as invalid.
            with contextlib.suppress(ValueError):
                args[key] = json.loads(args[key])
    return args, bearer or _str_or_none(body_token)


# Methods called with the app-level token (xapp-); it calls nothing else, a bot token not these.
APP_TOKEN_METHODS = ("apps.connections.open",)


def _check_token(state: SlackState, method: str, token: str | None) -> None:
    if not token:
        raise ApiError("not_authed")
    app_level = method in APP_TOKEN_METHODS
    if token == (state.app_token if app_level else state.bot_token):
        return
    if token == (state.bot_token if app_level else state.app_token):
        raise ApiError("not_allowed_token_type")
    raise ApiError("invalid_auth")  # wrong, or revoked since


def _check_call(state: SlackState, method: str, args: JSON, token: str | None) -> None:
    if method not in METHODS and method not in HANDLERS:
        raise ApiError("unknown_method")
    _check_token(state, method, token)
    spec = METHODS.get(method, {"required": []})
    missing = [name for name in spec["required"] if _blank(args.get(name))]
    if missing:
        raise ApiError("invalid_arguments", [f"missing required field: {n}" for n in missing])
    if method not in HANDLERS:
        raise ApiError("unknown_method", ["known Slack method the sandbox does not implement"])


def _record(state: SlackState, method: str, args: JSON, result: JSON, status: int) -> None:
    spec = METHODS.get(method)
    known = set(spec["required"]) | set(spec["optional"]) if spec else set()
    state.calls.append(
        {
            "method": method,
            "args": args,
            "ok": bool(result.get("ok")),
            "error": result.get("error"),
            "status": status,
            "at": time.time(),
            # The OpenAPI extract predates some parameters: flag, never refuse, unknown ones.
            "unknown_args": sorted(set(args) - known) if spec else [],
        }
    )


def _error_body(exc: ApiError) -> JSON:
    out: JSON = {"ok": False, "error": exc.error, **exc.extra}
    if exc.messages:
        out["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in exc.messages]}
    return out


def _apply_fault(fault: JSON) -> tuple[JSON, int, dict[str, str]]:
    if fault.get("error"):
        return {"ok": False, "error": fault["error"]}, 200, {}
    retry = str(fault.get("retry_after") if fault.get("retry_after") is not None else 1)
    return {"ok": False, "error": "ratelimited"}, 429, {"Retry-After": retry}


async def web_api(request: Request) -> Response:
    """Serve `/api/{method}` the way slack.com/api does."""
    state: SlackState = request.app.state.slack
    method = request.path_params["method"]
    args: JSON = {}
    status = 200
    headers: dict[str, str] = {}
    try:
        args, token = await read_api_args(request)
        _check_call(state, method, args, token)
        if token == state.bot_token:  # Slack names a token's scopes on every answer to it
            headers[SCOPES_HEADER] = state.granted_scopes
            if method in METHOD_SCOPES:
                state.require_scope(METHOD_SCOPES[method])
        fault = state.take_fault(method)
        if fault is not None and fault.get("delay"):
            await asyncio.sleep(float(fault["delay"]))  # a slow answer, then served as usual
            fault = None
        if fault is not None:
            result, status, fault_headers = _apply_fault(fault)
            headers.update(fault_headers)
        else:
            result = HANDLERS[method](state, args)
    except ApiError as exc:
        result = _error_body(exc)
    _record(state, method, args, result, status)
    return JSONResponse(result, status_code=status, headers=headers)


# --------------------------------------------------------------------------------------------
# response_url
# --------------------------------------------------------------------------------------------


class WebhookError(Exception):
    """A response_url refusal: an HTTP status with a Slack error code."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def _usable_response_url(state: SlackState, rid: str) -> ResponseUrl:
    entry = state.response_urls.get(rid)
    if entry is None:
        raise WebhookError(404, "no_service")
    if time.monotonic() - entry.created_at > state.response_url_ttl_seconds:
        raise WebhookError(404, "expired_url")
    if entry.uses >= state.response_url_max_uses:
        raise WebhookError(404, "used_up")
    return entry


def _response_content(body: JSON) -> tuple[str, list[JSON] | None]:
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError as exc:
            raise WebhookError(400, "invalid_blocks") from exc
    if blocks is not None and block_problems(blocks, MAX_MESSAGE_BLOCKS):
        raise WebhookError(400, "invalid_blocks")
    text = body.get("text")
    if _blank(text) and not blocks and not body.get("attachments"):
        raise WebhookError(400, "no_text")
    if text is not None and len(str(text)) > MAX_TEXT:
        raise WebhookError(400, "msg_too_long")
    return str(text or ""), with_generated_ids(blocks) if blocks is not None else None


def _apply_response(state: SlackState, entry: ResponseUrl, body: JSON) -> None:
    original = state.find_message(entry.channel, entry.message_ts) if entry.message_ts else None
    if _flag(body.get("delete_original")):
        if original is None:
            raise WebhookError(404, "message_not_found")
        original.deleted = True
        return
    text, blocks = _response_content(body)
    # For a click, Slack replaces the clicked message unless told `replace_original: false`.
    replace = body.get("replace_original")
    if original is not None and (replace is None or _flag(replace)):
        original.history.append({"text": original.text, "blocks": original.blocks, "via": "url"})
        original.text, original.blocks = text, blocks
        return
    ephemeral = body.get("response_type", "ephemeral") != "in_channel"
    state.messages.append(
        Message(
            channel=entry.channel,
            ts=state.next_ts(),
            text=text,
            blocks=blocks,
            user=entry.user if ephemeral else None,
            ephemeral=ephemeral,
            thread_ts=_str_or_none(body.get("thread_ts")),
            via="response_url",
            author=state.bot_user_id,
        )
    )


def _response_body(raw: bytes) -> JSON:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise WebhookError(400, "invalid_payload") from exc
    if not isinstance(body, dict):
        raise WebhookError(400, "invalid_payload")
    return body


async def response_url(request: Request) -> Response:
    """Serve a response_url: at most N uses within the TTL, answered with plain `ok`."""
    state: SlackState = request.app.state.slack
    rid = request.path_params["rid"]
    record: JSON = {"method": "response_url", "args": {"rid": rid}, "at": time.time()}
    try:
        entry = _usable_response_url(state, rid)
        body = _response_body(await request.body())
        record["args"] = {**body, "rid": rid, "user": entry.user, "channel": entry.channel}
        fault = state.take_fault("response_url")
        if fault is not None:
            result, status, headers = _apply_fault(fault)
            status = status if status != 200 else 400  # webhooks fail with HTTP errors
            state.calls.append({**record, "ok": False, "error": result["error"], "status": status})
            return JSONResponse(result, status_code=status, headers=headers)
        _apply_response(state, entry, body)
    except WebhookError as exc:
        state.calls.append({**record, "ok": False, "error": exc.error, "status": exc.status})
        return JSONResponse({"ok": False, "error": exc.error}, status_code=exc.status)
    entry.uses += 1  # only accepted posts count towards the limit
    state.calls.append({**record, "ok": True, "error": None, "status": 200})
    return PlainTextResponse("ok")


# --------------------------------------------------------------------------------------------
# Acting as Slack towards the bot
# --------------------------------------------------------------------------------------------


class ControlError(Exception):
    """A misuse of a control route (unknown user, invisible message...): HTTP 4xx to the test."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


ControlHandler = Callable[[SlackState, JSON, Request], Awaitable[Any]]


def control(fn: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a control handler: JSON in, JSON out, ControlError -> 4xx with a reason."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        data.update(request.query_params)
        try:
            result = await fn(request.app.state.slack, data, request)
        except ControlError as exc:
            return JSONResponse({"error": exc.message, **exc.extra}, status_code=exc.status)
        return JSONResponse(result)

    return endpoint


def _base_url(state: SlackState, request: Request) -> str:
    return (state.public_url or str(request.base_url)).rstrip("/")


def _actor(state: SlackState, user_id: Any) -> SlackUser:
    user = state.users.get(str(user_id))
    if user is None:
        raise ControlError(400, f"unknown user {user_id!r}")
    if user.deleted:
        raise ControlError(400, f"user {user_id!r} is deactivated and cannot act in Slack")
    return user


def _user_obj(state: SlackState, user: SlackUser) -> JSON:
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": state.team_id}


def _team_obj(state: SlackState) -> JSON:
    return {"id": state.team_id, "domain": state.team_domain}


def _parse_answer(resp: httpx.Response) -> Any:
    if not resp.content:
        return ""
    try:
        return resp.json()
    except ValueError:
        return resp.text


async def deliver(
    state: SlackState,
    body: str,
    content_type: str,
    *,
    kind: str,
    timestamp: int | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSON:
    """Sign and POST `body` to `{bot_url}/slack/events`; report status, answer and timing.
    With Socket Mode on (a connection said hello), the same body goes in an envelope instead."""
    if kind != "raw" and state.socket_mode is not None and state.socket_mode.enabled:
        from sandbox.slack_socket import deliver_over_socket

        over_socket = await deliver_over_socket(state, body, content_type, headers or {})
        state.deliveries.append({"kind": kind, "request": body, **over_socket})
        return over_socket
    if not state.bot_url:
        raise ControlError(409, "bot_url is not configured (POST /_sandbox/config)")
    hdrs = {"Content-Type": content_type, **signed_headers(state.signing_secret, body, timestamp)}
    if signature is not None:
        hdrs[SIGNATURE_HEADER] = signature
    hdrs.update(headers or {})
    # Several URLs (comma-separated) are served in turn, as a load balancer in front of
    # replicas would: Slack itself only knows one request URL.
    replicas = [u.strip() for u in state.bot_url.split(",") if u.strip()]
    url = replicas[next(state.balancer) % len(replicas)].rstrip("/") + "/slack/events"
    started = time.monotonic()
    result: JSON
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            resp = await client.post(url, content=body.encode(), headers=hdrs)
    except httpx.HTTPError as exc:
        result = {"status": None, "body": None, "slack_error": "dispatch_failed"}
        result["error"] = f"{type(exc).__name__}: {exc}"
    else:
        elapsed = time.monotonic() - started
        result = {"status": resp.status_code, "body": _parse_answer(resp), "elapsed": elapsed}
        # Slack stops waiting after 3 s and shows the user an error; later answers are lost.
        if elapsed > state.ack_timeout_seconds:
            result["slack_error"] = "operation_timeout"
        elif resp.status_code != 200:
            result["slack_error"] = "dispatch_failed"
    state.deliveries.append({"kind": kind, "request": body, **result})
    return result


def _show_ack(state: SlackState, result: JSON, user: str, channel: str) -> None:
    """Show a slash command's non-empty ack body the way Slack does (ephemeral by default)."""
    answer = result.get("body")
    if result.get("slack_error") or not answer:
        return
    if isinstance(answer, dict):
        text, blocks = answer.get("text"), answer.get("blocks")
        if _blank(text) and not blocks:
            return
        in_channel = answer.get("response_type") == "in_channel"
    else:
        text, blocks, in_channel = str(answer), None, False
    msg = Message(
        channel=channel,
        ts=state.next_ts(),
        text=str(text or ""),
        blocks=with_generated_ids(blocks) if isinstance(blocks, list) else None,
        user=None if in_channel else user,
        ephemeral=not in_channel,
        via="ack",
        author=state.bot_user_id,
    )
    state.messages.append(msg)
    result["ack_message_ts"] = msg.ts


def _command_channel(state: SlackState, user: SlackUser, ref: Any) -> Channel:
    if _blank(ref):
        return state.dm_channel(user.id)  # typed in the app's Messages tab
    chan = state.channels.get(str(ref))
    if chan is None:
        raise ControlError(400, f"unknown channel {ref!r}")
    if user.id not in chan.members:
        raise ControlError(400, f"{user.id} is not a member of {chan.id} and cannot type there")
    return chan


async def send_command(state: SlackState, data: JSON, request: Request) -> JSON:
    """Send a slash command from `user` in `channel` (default: the user's DM with the app)."""
    user = _actor(state, data.get("user"))
    chan = _command_channel(state, user, data.get("channel"))
    trigger_id = state.issue_trigger(user.id)
    url = state.issue_response_url(_base_url(state, request), user.id, chan.id, None)
    form = {
        "token": state.verification_token,
        "team_id": state.team_id,
        "team_domain": state.team_domain,
        "channel_id": chan.id,
        "channel_name": chan.name,
        "user_id": user.id,
        "user_name": user.name,
        "command": str(data.get("command") or "/service-account"),
        "text": str(data.get("text") or ""),
        "api_app_id": state.api_app_id,
        "is_enterprise_install": "false",
        "response_url": url,
        "trigger_id": trigger_id,
    }
    body = urlencode(form)
    result = await deliver(state, body, "application/x-www-form-urlencoded", kind="command")
    _show_ack(state, result, user.id, chan.id)
    return {**result, "trigger_id": trigger_id, "response_url": url, "payload": form}


def _buttons(blocks: list[JSON] | None) -> Iterator[tuple[str, JSON]]:
    for block in blocks or []:
        for el in block_elements(block):
            if el.get("type") == "button":
                yield str(block.get("block_id", "")), el


def pick_button(blocks: list[JSON] | None, data: JSON) -> JSON:
    """Find the clicked button and build the `actions[0]` entry; forged clicks need `force`."""
    action_id, block_id, value = data["action_id"], data.get("block_id"), data.get("value")
    candidates = [
        (bid, el)
        for bid, el in _buttons(blocks)
        if el.get("action_id") == action_id and block_id in (None, bid)
    ]
    matching = [c for c in candidates if value is None or c[1].get("value") == value]
    force = _flag(data.get("force"))
    if not matching and not force:
        shown = [(b, e.get("action_id"), e.get("value")) for b, e in _buttons(blocks)]
        raise ControlError(400, "no such button (pass force=true to forge)", buttons=shown)
    bid, el = (matching or candidates or [(block_id or "forged", {})])[0]
    return {
        "action_id": action_id,
        "block_id": bid,
        "text": el.get("text") or {"type": "plain_text", "text": action_id, "emoji": True},
        "value": value if value is not None else el.get("value"),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
        **({"style": el["style"]} if "style" in el else {}),
    }


def _clicked_message(state: SlackState, user: SlackUser, data: JSON) -> tuple[Message, Channel]:
    chan = state.channels.get(str(data.get("channel")))
    msg = state.find_message(str(data.get("channel")), str(data.get("ts")))
    if chan is None or msg is None:
        raise ControlError(400, f"no message {data.get('ts')!r} in channel {data.get('channel')!r}")
    if msg.ephemeral and msg.user != user.id:
        raise ControlError(400, f"ephemeral message {msg.ts} is visible to {msg.user} only")
    if (chan.is_private or chan.is_im) and user.id not in chan.members:
        raise ControlError(400, f"{user.id} cannot see {chan.id}")
    return msg, chan


def _interaction_body(payload: JSON) -> str:
    return urlencode({"payload": json.dumps(payload)})


async def send_click(state: SlackState, data: JSON, request: Request) -> JSON:
    """Click a button on a message as `user`; ephemeral messages only by their viewer."""
    user = _actor(state, data.get("user"))
    msg, chan = _clicked_message(state, user, data)
    action = pick_button(msg.blocks, data)
    trigger_id = state.issue_trigger(user.id)
    url = state.issue_response_url(_base_url(state, request), user.id, chan.id, msg.ts)
    payload: JSON = {
        "type": "block_actions",
        "user": _user_obj(state, user),
        "api_app_id": state.api_app_id,
        "token": state.verification_token,
        "container": {
            "type": "message",
            "message_ts": msg.ts,
            "channel_id": chan.id,
            "is_ephemeral": msg.ephemeral,
        },
        "trigger_id": trigger_id,
        "team": _team_obj(state),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": chan.id, "name": chan.name},
        "state": {"values": {}},
        "response_url": url,
        "actions": [action],
    }
    if not msg.ephemeral:  # Slack omits the message for clicks on ephemeral messages
        payload["message"] = state.message_json(msg)
    body = _interaction_body(payload)
    result = await deliver(state, body, "application/x-www-form-urlencoded", kind="click")
    return {**result, "trigger_id": trigger_id, "response_url": url, "payload": payload}


def _view_for_click(state: SlackState, user: SlackUser, data: JSON) -> JSON:
    if _flag(data.get("home")):
        home = state.home.get(user.id)
        if home is None:
            raise ControlError(400, f"no Home tab published for {user.id}")
        return home
    entry = state.views.get(str(data.get("view_id")))
    if entry is None or entry["user"] != user.id:
        raise ControlError(400, f"view {data.get('view_id')!r} is not open for {user.id}")
    view: JSON = entry["view"]
    return view


async def send_view_click(state: SlackState, data: JSON, request: Request) -> JSON:
    """Click a button inside an open modal or a published Home tab."""
    user = _actor(state, data.get("user"))
    view = _view_for_click(state, user, data)
    action = pick_button(view.get("blocks"), data)
    trigger_id = state.issue_trigger(user.id)
    payload: JSON = {
        "type": "block_actions",
        "user": _user_obj(state, user),
        "api_app_id": state.api_app_id,
        "token": state.verification_token,
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": trigger_id,
        "team": _team_obj(state),
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view,
        "actions": [action],
    }
    body = _interaction_body(payload)
    result = await deliver(state, body, "application/x-www-form-urlencoded", kind="view_click")
    return {**result, "trigger_id": trigger_id, "payload": payload}


# --- view_submission -------------------------------------------------------------------------

TEXT_INPUTS = {"plain_text_input", "number_input", "email_text_input", "url_text_input"}
ONE_OPTION = {"static_select", "radio_buttons", "external_select"}
MANY_OPTIONS = {"multi_static_select", "checkboxes", "multi_external_select"}
# element type -> (state key, initial_* field)
SIMPLE_VALUES = {
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
}


def _options(el: JSON) -> list[JSON]:
    opts = list(el.get("options") or [])
    for group in el.get("option_groups") or []:
        opts += group.get("options") or []
    return opts


def _option(el: JSON, value: Any) -> JSON:
    for opt in _options(el):
        if opt.get("value") == value:
            return copy.deepcopy(opt)
    raise ControlError(400, f"option {value!r} not offered by {el.get('action_id')!r}")


def _initial(el: JSON) -> Any:
    """Return the element's pre-filled raw value: an untouched input submits its initial value."""
    kind = el.get("type", "")
    if kind in TEXT_INPUTS:
        return el.get("initial_value")
    if kind in ONE_OPTION:
        return (el.get("initial_option") or {}).get("value")
    if kind in MANY_OPTIONS:
        return [o.get("value") for o in el.get("initial_options") or []]
    if kind in SIMPLE_VALUES:
        return el.get(SIMPLE_VALUES[kind][1])
    return el.get("initial_value")


def encode_value(el: JSON, raw: Any) -> JSON:
    """Encode a raw test value the way Slack reports that element type in `state.values`."""
    kind = el.get("type", "")
    if kind in TEXT_INPUTS:
        return {"type": kind, "value": None if _blank(raw) else str(raw)}
    if kind in ONE_OPTION:
        return {"type": kind, "selected_option": None if _blank(raw) else _option(el, raw)}
    if kind in MANY_OPTIONS:
        values = [raw] if isinstance(raw, str) else list(raw or [])
        return {"type": kind, "selected_options": [_option(el, v) for v in values]}
    if kind in SIMPLE_VALUES:
        return {"type": kind, SIMPLE_VALUES[kind][0]: raw}
    return {"type": kind, "value": raw}


def _is_empty(encoded: JSON) -> bool:
    return all(_blank(v) or v == [] for k, v in encoded.items() if k != "type")


def _input_problems(block: JSON, encoded: JSON) -> list[str]:
    """Checks the Slack client makes before it lets a user submit a modal."""
    bid, el = block["block_id"], block["element"]
    if _is_empty(encoded):
        return [] if block.get("optional") else [f"{bid}: required input is empty"]
    value = encoded.get("value")
    if el.get("type") == "plain_text_input" and isinstance(value, str):
        if len(value) > int(el.get("max_length", 3000)):
            return [f"{bid}: longer than max_length"]
        if len(value) < int(el.get("min_length", 0)):
            return [f"{bid}: shorter than min_length"]
    if el.get("type") == "number_input" and isinstance(value, str):
        return _number_problems(bid, el, value)
    return []


def _number_problems(bid: str, el: JSON, value: str) -> list[str]:
    try:
        number = float(value) if el.get("is_decimal_allowed") else int(value)
    except ValueError:
        return [f"{bid}: not a valid number"]
    low, high = el.get("min_value"), el.get("max_value")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        return [f"{bid}: out of range"]
    return []


def build_state_values(view: JSON, values: JSON, force: bool) -> JSON:
    """Build `view.state.values` from `{block_id: {action_id: raw}}` (or `{block_id: raw}`)."""
    inputs = {b["block_id"]: b for b in view.get("blocks", []) if b.get("type") == "input"}
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise ControlError(400, f"no input blocks {unknown}", input_blocks=sorted(inputs))
    out: JSON = {}
    problems: list[str] = []
    for bid, block in inputs.items():
        el = block["element"]
        given = values.get(bid)
        provided = bid in values
        if isinstance(given, dict):
            provided = el["action_id"] in given
            given = given.get(el["action_id"])
        encoded = encode_value(el, given if provided else _initial(el))
        problems += _input_problems(block, encoded)
        out[bid] = {el["action_id"]: encoded}
    if problems and not force:
        raise ControlError(400, "Slack would not submit this form", problems=problems)
    return out


def _close_views(state: SlackState, vid: str, *, whole_stack: bool) -> None:
    root = state.views[vid]["view"]["root_view_id"]
    doomed = [
        v
        for v, e in state.views.items()
        if v == vid or (whole_stack and e["view"]["root_view_id"] == root)
    ]
    for v in doomed:
        state.views.pop(v, None)


def _apply_submit_answer(state: SlackState, vid: str, result: JSON) -> None:
    """Interpret the bot's answer to a view_submission the way Slack does."""
    entry = state.views[vid]
    answer = result.get("body")
    result["view"] = entry["view"]
    if result.get("slack_error"):
        return  # Slack shows an error inside the still-open modal
    if answer in ("", None) or (isinstance(answer, dict) and "response_action" not in answer):
        _close_views(state, vid, whole_stack=False)
        result["view"] = None
        return
    if not isinstance(answer, dict):
        result["slack_error"] = "invalid_response"
        return
    _apply_response_action(state, vid, entry, answer, result)


def _apply_response_action(
    state: SlackState, vid: str, entry: JSON, answer: JSON, result: JSON
) -> None:
    action = answer.get("response_action")
    if action == "errors":
        errors = answer.get("errors") or {}
        inputs = {b["block_id"] for b in entry["view"]["blocks"] if b.get("type") == "input"}
        result["errors"] = errors
        if not errors or set(errors) - inputs:
            # Slack can only attach errors to input blocks; anything else fails the submit.
            result["slack_error"] = "invalid_errors"
        return
    if action == "clear":
        _close_views(state, vid, whole_stack=True)
        result["view"] = None
        return
    if action not in ("update", "push"):
        result["slack_error"] = "invalid_response_action"
        return
    new = answer.get("view")
    problems = view_problems(new, "modal") if isinstance(new, dict) else ["view missing"]
    if problems:
        result.update(slack_error="invalid_view", problems=problems)
        return
    if action == "update":
        result["view"] = replace_view(state, vid, new)  # type: ignore[arg-type]
    else:
        result["view"] = store_view(state, entry["user"], new, prev=vid)  # type: ignore[arg-type]


async def send_submit(state: SlackState, data: JSON, request: Request) -> JSON:
    """Submit an open modal as `user` with `values`; apply the bot's response_action."""
    user = _actor(state, data.get("user"))
    vid = str(data.get("view_id"))
    entry = state.views.get(vid)
    if entry is None or entry["user"] != user.id:
        raise ControlError(400, f"view {vid!r} is not open for {user.id}")
    view = copy.deepcopy(entry["view"])
    values = data.get("values") or {}
    view["state"] = {"values": build_state_values(view, values, _flag(data.get("force")))}
    trigger_id = state.issue_trigger(user.id)
    payload: JSON = {
        "type": "view_submission",
        "team": _team_obj(state),
        "user": _user_obj(state, user),
        "api_app_id": state.api_app_id,
        "token": state.verification_token,
        "trigger_id": trigger_id,
        "view": view,
        "response_urls": [],
        "enterprise": None,
        "is_enterprise_install": False,
    }
    body = _interaction_body(payload)
    result = await deliver(state, body, "application/x-www-form-urlencoded", kind="submit")
    if vid in state.views:  # the bot may have closed/replaced it with API calls meanwhile
        _apply_submit_answer(state, vid, result)
    return {**result, "trigger_id": trigger_id, "payload": payload}


async def send_event(state: SlackState, data: JSON, request: Request) -> JSON:
    """Deliver an Events API `event_callback` (JSON); `retry_num` re-sends as Slack's retry."""
    event = dict(data.get("event") or {})
    if not event.get("type"):
        raise ControlError(400, "event.type is required")
    event.setdefault("event_ts", f"{time.time():.6f}")
    event_id = str(data.get("event_id") or "Ev" + secrets.token_hex(5).upper())
    envelope = {
        "token": state.verification_token,
        "team_id": state.team_id,
        "api_app_id": state.api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": state.team_id,
                "user_id": state.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
    }
    headers = {}
    if data.get("retry_num"):
        headers["X-Slack-Retry-Num"] = str(data["retry_num"])
        headers["X-Slack-Retry-Reason"] = str(data.get("retry_reason") or "http_timeout")
    body = json.dumps(envelope)
    result = await deliver(state, body, "application/json", kind="event", headers=headers)
    return {**result, "event_id": event_id, "payload": envelope}


async def send_raw(state: SlackState, data: JSON, request: Request) -> JSON:
    """POST an arbitrary body to the bot, signed unless a (bad) signature is given."""
    body = data.get("body")
    if not isinstance(body, str):
        raise ControlError(400, "body must be a string")
    ts = data.get("timestamp")
    return await deliver(
        state,
        body,
        str(data.get("content_type") or "application/x-www-form-urlencoded"),
        kind="raw",
        timestamp=int(ts) if ts is not None else None,
        signature=data.get("signature"),
        headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
    )


# --- configuration -------------------------------------------------------------------------

CONFIGURABLE = {
    f.name
    for f in fields(SlackState)
    if f.type in ("str", "str | None", "float", "int") and f.name not in ("last_ts_micros",)
}


async def set_config(state: SlackState, data: JSON, request: Request) -> JSON:
    """Change scalar settings (bot_url, secrets, TTLs...)."""
    unknown = sorted(set(data) - CONFIGURABLE)
    if unknown:
        raise ControlError(400, f"not configurable: {unknown}", configurable=sorted(CONFIGURABLE))
    for key, value in data.items():
        setattr(state, key, value)
    return {key: getattr(state, key) for key in sorted(CONFIGURABLE)}


async def set_user(state: SlackState, data: JSON, request: Request) -> JSON:
    """Add or modify a user (e.g. `deleted: true`)."""
    uid = str(data.get("id") or "")
    if not uid:
        raise ControlError(400, "id is required")
    user = state.users.get(uid) or SlackUser(uid, str(data.get("name") or uid.lower()))
    for key in ("name", "email", "real_name", "deleted", "is_bot"):
        if key in data:
            setattr(user, key, data[key])
    state.users[uid] = user
    return asdict(user)


async def set_channel(state: SlackState, data: JSON, request: Request) -> JSON:
    """Add or modify a channel (members, privacy, archived); `deleted: true` removes it."""
    cid = str(data.get("id") or "")
    if not cid:
        raise ControlError(400, "id is required")
    if _flag(data.get("deleted")):
        state.channels.pop(cid, None)
        return {"id": cid, "deleted": True}
    chan = state.channels.get(cid) or Channel(cid, str(data.get("name") or cid.lower()))
    if "members" in data:
        chan.members = set(data["members"])
    for key in ("name", "is_private", "is_archived"):
        if key in data:
            setattr(chan, key, data[key])
    state.channels[cid] = chan
    return {**asdict(chan), "members": sorted(chan.members)}


async def set_usergroup(state: SlackState, data: JSON, request: Request) -> JSON:
    """Add or replace a user group's members."""
    gid = str(data.get("id") or "")
    if not gid:
        raise ControlError(400, "id is required")
    state.usergroups[gid] = [str(u) for u in data.get("users") or []]
    return {"id": gid, "users": state.usergroups[gid]}


async def add_fault(state: SlackState, data: JSON, request: Request) -> JSON:
    """Queue a fault: `retry_after` -> HTTP 429, `error` -> `ok:false` with that error, `delay`
    -> answered as usual that many seconds late."""
    method = str(data.get("method") or "")
    if not method:
        raise ControlError(400, "method is required")
    fault = {
        "count": int(data.get("count", 1)),
        "retry_after": data.get("retry_after"),
        "error": data.get("error"),
        "delay": data.get("delay"),
    }
    state.faults.setdefault(method, []).append(fault)
    return {"method": method, "queued": state.faults[method]}


async def do_reset(state: SlackState, data: JSON, request: Request) -> JSON:
    """Forget traffic; keep users, channels, groups and settings."""
    state.reset()
    return {"ok": True}


# --- inspection ----------------------------------------------------------------------------


def _visible(state: SlackState, msg: Message, user: str) -> bool:
    if msg.ephemeral:
        return msg.user == user
    chan = state.channels.get(msg.channel)
    return chan is not None and (user in chan.members or not (chan.is_private or chan.is_im))


async def get_calls(state: SlackState, data: JSON, request: Request) -> JSON:
    """Recorded Web API and response_url calls, optionally for one method."""
    method = data.get("method")
    return {"calls": [c for c in state.calls if method in (None, c["method"])]}


async def get_messages(state: SlackState, data: JSON, request: Request) -> JSON:
    """Messages, optionally in one channel and/or visible to one user."""
    channel, user = data.get("channel"), data.get("user")
    deleted = _flag(data.get("include_deleted"))
    out = [
        m.to_dict()
        for m in state.messages
        if channel in (None, m.channel)
        and (user is None or _visible(state, m, str(user)))
        and (deleted or not m.deleted)
    ]
    return {"messages": out}


async def get_views(state: SlackState, data: JSON, request: Request) -> JSON:
    """Open modal views by id."""
    return {"views": state.views}


async def get_home(state: SlackState, data: JSON, request: Request) -> JSON:
    """A user's published Home tab (or null)."""
    return {"view": state.home.get(str(data.get("user")))}


async def get_deliveries(state: SlackState, data: JSON, request: Request) -> JSON:
    """Everything POSTed to the bot, with its answers."""
    return {"deliveries": state.deliveries}


async def get_dm(state: SlackState, data: JSON, request: Request) -> JSON:
    """The bot's DM channel with a user (created on demand, like opening the Messages tab)."""
    user = _actor(state, data.get("user"))
    return {"channel": state.dm_channel(user.id).id}


def create_slack_app(state: SlackState | None = None) -> Starlette:
    """Build the stand-in's ASGI app around `state` (a fresh seeded one by default)."""
    routes = [
        Route("/api/{method}", web_api, methods=["GET", "POST"]),
        Route("/response/{rid}", response_url, methods=["POST"]),
    ]
    posts: dict[str, ControlHandler] = {
        "command": send_command,
        "click": send_click,
        "click_view": send_view_click,
        "submit": send_submit,
        "event": send_event,
        "raw": send_raw,
        "config": set_config,
        "users": set_user,
        "channels": set_channel,
        "usergroups": set_usergroup,
        "faults": add_fault,
        "reset": do_reset,
    }
    gets: dict[str, ControlHandler] = {
        "calls": get_calls,
        "messages": get_messages,
        "views": get_views,
        "home": get_home,
        "deliveries": get_deliveries,
        "dm": get_dm,
    }
    routes += [Route(f"/_sandbox/{n}", control(h), methods=["POST"]) for n, h in posts.items()]
    routes += [Route(f"/_sandbox/{n}", control(h), methods=["GET"]) for n, h in gets.items()]
    from sandbox.slack_socket import socket_routes  # it imports this module: loaded once built

    routes += socket_routes()
    app = Starlette(routes=routes)
    app.state.slack = state if state is not None else SlackState()
    return app
