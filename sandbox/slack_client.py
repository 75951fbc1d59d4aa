"""Synchronous client for the Slack stand-in's control routes (`/_sandbox/...`).

Tests and the demo use it to act as Slack users (commands, clicks, modal submissions) and to
inspect what the bot did (Web API calls, messages, open views).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


class SandboxError(AssertionError):
    """A control route refused the request (unknown user, invisible message, forged click...)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"sandbox refused ({status}): {body}")
        self.status = status
        self.body = body


class SlackSandbox:
    """Drive the Slack stand-in at `base_url` (e.g. `http://127.0.0.1:8765`)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        # Generous timeout: a control request waits for the bot's own answer (up to 10 s).
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.base_url = base_url.rstrip("/")

    @property
    def api_url(self) -> str:
        """Base URL to give slack_sdk clients (`WebClient(base_url=...)`), ending with `/`."""
        return f"{self.base_url}/api/"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> SlackSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _post(self, route: str, payload: dict[str, Any]) -> Any:
        resp = self._http.post(f"/_sandbox/{route}", json=payload)
        if resp.status_code >= 400:
            raise SandboxError(resp.status_code, resp.json())
        return resp.json()

    def _get(self, route: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        resp = self._http.get(f"/_sandbox/{route}", params=query)
        if resp.status_code >= 400:
            raise SandboxError(resp.status_code, resp.json())
        return resp.json()

    # --- acting as Slack --------------------------------------------------------------------

    def command(
        self,
        user: str,
        channel: str | None = None,
        text: str = "",
        command: str = "/service-account",
    ) -> dict[str, Any]:
        """Send a slash command; `channel=None` means the user's DM with the app."""
        payload = {"user": user, "channel": channel, "text": text, "command": command}
        result: dict[str, Any] = self._post("command", payload)
        return result

    def click(
        self,
        user: str,
        channel: str,
        ts: str,
        action_id: str,
        value: str | None = None,
        force: bool = False,
        block_id: str | None = None,
    ) -> dict[str, Any]:
        """Click a button on message (channel, ts); `force` sends buttons/values not shown."""
        payload = {
            "user": user,
            "channel": channel,
            "ts": ts,
            "action_id": action_id,
            "value": value,
            "force": force,
            "block_id": block_id,
        }
        result: dict[str, Any] = self._post("click", payload)
        return result

    def click_view(
        self,
        user: str,
        action_id: str,
        view_id: str | None = None,
        home: bool = False,
        value: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Click a button in an open modal (`view_id`) or the user's Home tab (`home=True`)."""
        payload = {
            "user": user,
            "action_id": action_id,
            "view_id": view_id,
            "home": home,
            "value": value,
            "force": force,
        }
        result: dict[str, Any] = self._post("click_view", payload)
        return result

    def submit(
        self, user: str, view_id: str, values: dict[str, Any], force: bool = False
    ) -> dict[str, Any]:
        """Submit an open modal with `{block_id: {action_id: value}}` (or `{block_id: value}`)."""
        payload = {"user": user, "view_id": view_id, "values": values, "force": force}
        result: dict[str, Any] = self._post("submit", payload)
        return result

    def event(
        self,
        event: dict[str, Any],
        event_id: str | None = None,
        retry_num: int | None = None,
    ) -> dict[str, Any]:
        """Deliver an Events API event; reuse `event_id` with `retry_num` to mimic a retry."""
        payload = {"event": event, "event_id": event_id, "retry_num": retry_num}
        result: dict[str, Any] = self._post("event", payload)
        return result

    def raw(
        self,
        body: str,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST `body` to the bot, signed unless `signature` is given (refusal tests)."""
        payload = {
            "body": body,
            "content_type": content_type,
            "timestamp": timestamp,
            "signature": signature,
            "headers": headers or {},
        }
        result: dict[str, Any] = self._post("raw", payload)
        return result

    # --- setup ------------------------------------------------------------------------------

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings such as `bot_url`, `trigger_ttl_seconds`, `ack_timeout_seconds`."""
        result: dict[str, Any] = self._post("config", settings)
        return result

    def set_user(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """Add or modify a user (`name`, `email`, `real_name`, `deleted`, `is_bot`)."""
        result: dict[str, Any] = self._post("users", {"id": user_id, **fields})
        return result

    def set_channel(
        self, channel_id: str, members: list[str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Add or modify a channel (`members`, `name`, `is_private`, `is_archived`);
        `deleted=True` removes it."""
        payload = {"id": channel_id, **fields}
        if members is not None:
            payload["members"] = members
        result: dict[str, Any] = self._post("channels", payload)
        return result

    def set_usergroup(self, group_id: str, users: list[str]) -> dict[str, Any]:
        """Add or replace a user group."""
        result: dict[str, Any] = self._post("usergroups", {"id": group_id, "users": users})
        return result

    def fault(
        self,
        method: str,
        count: int = 1,
        retry_after: int | None = None,
        error: str | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        """Make the next `count` calls of `method` fail: 429 (default) or `ok:false, error`;
        with `delay`, answer them as usual but that many seconds late."""
        payload = {
            "method": method,
            "count": count,
            "retry_after": retry_after,
            "error": error,
            "delay": delay,
        }
        result: dict[str, Any] = self._post("faults", payload)
        return result

    def reset(self) -> None:
        """Forget calls, messages, views, triggers, response URLs and faults."""
        self._post("reset", {})

    # --- Socket Mode ------------------------------------------------------------------------

    def socket(self) -> dict[str, Any]:
        """Socket Mode: `{"enabled", "refusing", "connections": [...], "events": [...]}`."""
        status: dict[str, Any] = self._get("socket")
        return status

    def socket_config(
        self, enabled: bool | None = None, refusing: bool | None = None
    ) -> dict[str, Any]:
        """Switch Socket Mode on or off; make the socket host refuse every connection."""
        given = {"enabled": enabled, "refusing": refusing}
        result: dict[str, Any] = self._post(
            "socket", {k: v for k, v in given.items() if v is not None}
        )
        return result

    def disconnect(self, reason: str = "refresh_requested", close_after: float = 10.0) -> list[str]:
        """Send Slack's `disconnect` to every live connection; the ids of those told."""
        payload = {"reason": reason, "close_after": close_after}
        told: list[str] = self._post("socket/disconnect", payload)["disconnected"]
        return told

    def socket_connected(self, timeout: float = 15.0) -> dict[str, Any]:
        """Wait for a live Socket Mode connection (not one told to disconnect); return it."""

        def live() -> dict[str, Any] | None:
            links = [c for c in self.socket()["connections"] if not c["draining"]]
            return links[-1] if links else None

        found = self.wait_for(live, timeout=timeout, what="a Socket Mode connection")
        assert found is not None
        return found

    # --- inspection -------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded Web API (and `response_url`) calls, optionally of one method."""
        calls: list[dict[str, Any]] = self._get("calls", method=method)["calls"]
        return calls

    def messages(
        self, channel: str | None = None, user: str | None = None, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Messages in `channel` and/or visible to `user` (ephemerals only to their viewer)."""
        params = {"channel": channel, "user": user, "include_deleted": include_deleted or None}
        messages: list[dict[str, Any]] = self._get("messages", **params)["messages"]
        return messages

    def views(self) -> dict[str, Any]:
        """Open modals: `{view_id: {"user", "view", "hash"}}`."""
        views: dict[str, Any] = self._get("views")["views"]
        return views

    def home(self, user: str) -> dict[str, Any] | None:
        """The user's published Home tab view, or None."""
        view: dict[str, Any] | None = self._get("home", user=user)["view"]
        return view

    def deliveries(self) -> list[dict[str, Any]]:
        """Every request sent to the bot with its answer."""
        out: list[dict[str, Any]] = self._get("deliveries")["deliveries"]
        return out

    def dm_channel(self, user: str) -> str:
        """The id of the bot's DM channel with `user`."""
        channel: str = self._get("dm", user=user)["channel"]
        return channel

    def last_view_for(self, user: str) -> dict[str, Any] | None:
        """The most recently opened modal view still open for `user`, or None."""
        mine = [e["view"] for e in self.views().values() if e["user"] == user]
        return mine[-1] if mine else None

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 10.0,
        what: str = "condition",
        interval: float = 0.05,
    ) -> T:
        """Poll `predicate` until it returns something truthy, and return that.

        The bot often acts after acknowledging (Slack's 3-second rule), so effects arrive late.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)
