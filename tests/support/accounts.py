"""Making accounts through the real flow (submit, approve, reveal), and reading what the bot
answered a person's admin commands (list, show, rotate, revoke...)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.atlassian import Account, Token
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    has_button,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox

SCOPES = {
    "jira": ["read:jira-work", "write:jira-work"],
    "confluence": ["read:confluence-content.all"],
}


def texts(node: Any) -> list[str]:
    """Every piece of text in blocks (sections, fields, context, headers, buttons)."""
    if isinstance(node, list):
        return [t for item in node for t in texts(item)]
    if isinstance(node, dict):
        own = [node["text"]] if isinstance(node.get("text"), str) else []
        return own + [t for k, v in node.items() if k != "text" or not own for t in texts(v)]
    return []


def shown(message: dict[str, Any]) -> str:
    """What Slack shows of a message or a response_url post: its blocks, else its text."""
    blocks = message.get("blocks")
    return "\n".join(texts(blocks)) if blocks else str(message.get("text") or "")


def answers(slack: SlackSandbox, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """What the bot posted through one command's response_url."""
    rid = answer["response_url"].rsplit("/", 1)[-1]
    return [c["args"] for c in slack.calls("response_url") if c["args"].get("rid") == rid]


def ask(slack: SlackSandbox, user: str, text: str, channel: str = GENERAL) -> dict[str, Any]:
    """`/service-account TEXT` as `user`: the one ephemeral answer that follows the ack."""
    answer = slack.command(user, channel, text)
    assert answer["status"] == 200, answer
    assert not answer.get("body"), f"{text!r} was answered in the ack: {answer['body']}"
    reply = slack.wait_for(lambda: answers(slack, answer), what=f"the answer to {text!r}")
    assert len(reply) == 1, reply
    # Slack shows a response_url post ephemerally unless told "in_channel"
    assert reply[0].get("response_type", "ephemeral") == "ephemeral" and reply[0]["user"] == user
    return reply[0]


def wait_message(
    slack: SlackSandbox,
    find: Callable[[], dict[str, Any] | None],
    what: str,
    interval: float = 0.05,
) -> dict[str, Any]:
    """Poll `find` until it returns a message."""
    found = slack.wait_for(find, what=what, interval=interval)
    assert found is not None
    return found


def ephemeral_with(
    slack: SlackSandbox, user: str, action_id: str, channel: str = GENERAL
) -> dict[str, Any]:
    """The newest ephemeral the bot posted through a response_url with that button."""

    def find() -> dict[str, Any] | None:
        found = [
            m
            for m in slack.messages(channel, user=user)
            if m["ephemeral"] and m["via"] == "response_url" and has_button(m, action_id)
        ]
        return found[-1] if found else None

    return wait_message(slack, find, f"an ephemeral with {action_id} for {user}")


@dataclass
class Made:
    name: str
    owner: str
    account: Account  # at the Atlassian stand-in
    token: Token | None  # the first token, if it was revealed


def form(name: str, products: tuple[str, ...], lifetime: int, why: str) -> dict[str, Any]:
    return {
        "name": {"name": name},
        "justification": {"justification": why},
        "products": {"products": list(products)},
        "scopes": {"scopes": [s for p in products for s in SCOPES[p]]},
        "lifetime_days": {"lifetime_days": str(lifetime)},
    }


def posted_with(slack: SlackSandbox, channel: str, text: str, button: str) -> dict[str, Any]:
    """The newest top-level message in `channel` that mentions `text` and has `button`."""

    def find() -> dict[str, Any] | None:
        found = [
            m
            for m in slack.messages(channel)
            if not m["thread_ts"] and text in json.dumps(m["blocks"]) and has_button(m, button)
        ]
        return found[-1] if found else None

    return wait_message(slack, find, f"a message in {channel} about {text!r} with {button}")


def ready_offer(slack: SlackSandbox, user: str, name: str) -> dict[str, Any]:
    """The ephemeral 'your account is ready' with Reveal, where the request was made."""

    def find() -> dict[str, Any] | None:
        found = [
            m
            for m in slack.messages(GENERAL, user=user)
            if m["ephemeral"] and has_button(m, "token_reveal") and name in shown(m)
        ]
        return found[-1] if found else None

    return wait_message(slack, find, f"the Reveal offer for {name}")


def reveal(
    sandbox: Sandbox, slack: SlackSandbox, user: str, channel: str, ts: str, name: str
) -> tuple[Token, dict[str, Any]]:
    """Click Reveal; the token minted for it and the one call that carried it."""
    before = len(token_replies(slack))
    slack.click(user, channel, ts, "token_reveal")
    slack.wait_for(lambda: token_replies(slack)[before:], what=f"the token of {name}")
    [call] = token_replies(slack)[before:]
    assert name in json.dumps(call)
    [token] = [t for t in sandbox.atlassian.tokens if t.value in json.dumps(call)]
    return token, call


def make_account(
    sandbox: Sandbox,
    slack: SlackSandbox,
    name: str,
    *,
    owner: str = ALICE,
    approver: str = BOB,
    products: tuple[str, ...] = ("jira",),
    lifetime: int = 30,
    why: str = "Publishes release notes from CI",
    revealed: bool = True,
) -> Made:
    """Submit, approve, and (unless `revealed=False`) reveal the first token."""
    answer = submit_request(slack, form(name, products, lifetime, why), user=owner)
    assert answer["status"] == 200 and "errors" not in json.dumps(answer.get("body")), answer
    approval = posted_with(slack, APPROVALS, name, "request_approve")
    slack.click(approver, APPROVALS, approval["ts"], "request_approve")
    offer = ready_offer(slack, owner, name)
    [account] = [a for a in sandbox.atlassian.live_accounts() if a.display_name == name]
    if not revealed:
        return Made(name, owner, account, None)
    token, _ = reveal(sandbox, slack, owner, GENERAL, offer["ts"], name)
    return Made(name, owner, account, token)


def new_token_offer(slack: SlackSandbox, user: str, name: str) -> dict[str, Any]:
    """The DM that offers a rotated token with Reveal."""

    def find() -> dict[str, Any] | None:
        found = [
            m
            for m in slack.messages(slack.dm_channel(user))
            if f"A new token for `{name}`" in shown(m) and has_button(m, "token_reveal")
        ]
        return found[-1] if found else None

    return wait_message(slack, find, f"the new-token DM for {name}")


def tokens_of(sandbox: Sandbox, made: Made) -> list[Token]:
    return [t for t in sandbox.atlassian.tokens if t.atlassian_id == made.account.atlassian_id]
