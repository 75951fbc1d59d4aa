"""The stand-in workspace's people, and what they do and see in Slack: open and submit the
request form, find the approval request, the requester's card, the Reveal offer and the token
reply. Tests and the benchmark drive the bot through these."""

from __future__ import annotations

import json
from typing import Any

from sandbox.slack_client import SlackSandbox

ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
GENERAL, APPROVALS = "C0GENERAL", "C0APPROVALS"
ADMIN = CAROL
ADMIN_ENV = {"SABOT_ADMINS": ADMIN}  # what makes Carol the bot's admin

GOOD_FORM: dict[str, dict[str, Any]] = {
    "name": {"name": "ci-release-bot"},
    "justification": {"justification": "Publishes release notes from CI <!channel>"},
    "products": {"products": ["jira"]},
    "scopes": {"scopes": ["read:jira-work", "write:jira-work"]},
    "lifetime_days": {"lifetime_days": "30"},
}


def markup(node: Any) -> list[str]:
    """Every text in blocks that Slack parses as mrkdwn (mentions, links, formatting)."""
    if isinstance(node, list):
        return [t for item in node for t in markup(item)]
    if not isinstance(node, dict):
        return []
    parsed = node.get("type") == "mrkdwn" and isinstance(node.get("text"), str)
    return ([node["text"]] if parsed else []) + [t for v in node.values() for t in markup(v)]


def plain_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """The texts of sections whose text is plain_text (shown exactly as written)."""
    return [
        b["text"]["text"]
        for b in blocks
        if b.get("type") == "section" and (b.get("text") or {}).get("type") == "plain_text"
    ]


def has_button(message: dict[str, Any], action_id: str) -> bool:
    return action_id in json.dumps(message.get("blocks") or [])


def new_view(slack: SlackSandbox, user: str, before: set[str], what: str) -> dict[str, Any]:
    """The modal opened for `user` since `before` (the view ids open then)."""

    def opened() -> dict[str, Any] | None:
        new = [v for vid, v in slack.views().items() if vid not in before and v["user"] == user]
        return new[-1]["view"] if new else None

    return slack.wait_for(opened, what=what)


def open_request_form(slack: SlackSandbox, user: str = ALICE, channel: str = GENERAL) -> str:
    before = set(slack.views())
    answer = slack.command(user, channel, "request")
    assert answer["status"] == 200
    return str(new_view(slack, user, before, "the request modal")["id"])


def submit_request(
    slack: SlackSandbox,
    form: dict[str, Any] | None = None,
    user: str = ALICE,
    channel: str = GENERAL,
) -> dict[str, Any]:
    view_id = open_request_form(slack, user, channel)
    return slack.submit(user, view_id, form or GOOD_FORM)


def approval_message(slack: SlackSandbox) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        posted = [m for m in slack.messages(APPROVALS) if not m["thread_ts"]]
        return posted[-1] if posted else None

    return slack.wait_for(find, what="the approval request in the approvers' channel")


def card(slack: SlackSandbox, user: str = ALICE) -> dict[str, Any]:
    dm = slack.dm_channel(user)
    return slack.wait_for(lambda: slack.messages(dm), what="the requester's card")[-1]


def wait_shown(
    slack: SlackSandbox, channel: str, text: str, index: int = -1, timeout: float = 10.0
) -> dict[str, Any]:
    """Wait until a message in `channel` shows `text` now (not in an earlier version)."""

    def find() -> dict[str, Any] | None:
        messages = [m for m in slack.messages(channel) if not m["thread_ts"]]
        shown = messages[index] if messages else None
        return shown if shown and text in json.dumps(shown["blocks"]) else None

    return slack.wait_for(find, timeout=timeout, what=f"a message in {channel} to show {text!r}")


def wait_card(
    slack: SlackSandbox, text: str, user: str = ALICE, timeout: float = 10.0
) -> dict[str, Any]:
    return wait_shown(slack, slack.dm_channel(user), text, timeout=timeout)


def reveal_offer(slack: SlackSandbox, timeout: float = 10.0) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        offers = [
            m
            for m in slack.messages(GENERAL, user=ALICE)
            if m["ephemeral"] and has_button(m, "token_reveal")
        ]
        return offers[-1] if offers else None

    return slack.wait_for(find, timeout=timeout, what="the ephemeral 'account ready' with Reveal")


def token_replies(slack: SlackSandbox) -> list[dict[str, Any]]:
    return [c for c in slack.calls("response_url") if "API token for" in json.dumps(c)]


def open_home(slack: SlackSandbox, user: str, expect: str) -> str:
    before = json.dumps(slack.home(user))
    slack.event({"type": "app_home_opened", "user": user, "tab": "home", "channel": "D0X"})

    def shown() -> str | None:
        home = slack.home(user)
        text = json.dumps(home) if home else ""
        return text if expect in text and text != before else None

    return slack.wait_for(shown, what=f"{user}'s Home to show {expect!r}")


def ephemerals_to(slack: SlackSandbox, user: str, text: str) -> list[dict]:
    return [
        c
        for c in slack.calls("response_url")
        if c["args"].get("user") == user and text in json.dumps(c["args"])
    ]
