"""One request through provisioning (the Atlassian side faulty or not): approving it, clicking
Reveal, and what the requester and the approvers were told, and the audit trail."""

from __future__ import annotations

import json
from typing import Any

from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    GOOD_FORM,
    approval_message,
    submit_request,
)
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows

NAME = GOOD_FORM["name"]["name"]
SCOPES = GOOD_FORM["scopes"]["scopes"]


def approve(slack: SlackSandbox) -> None:
    assert submit_request(slack)["status"] == 200
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")


def click_reveal(slack: SlackSandbox, offer: dict[str, Any]) -> None:
    answer = slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    assert answer["status"] == 200


def replies_to_requester(slack: SlackSandbox) -> list[str]:
    """Texts answered to the requester's clicks (ephemeral, through the response_url)."""
    return [
        str(c["args"].get("text", ""))
        for c in slack.calls("response_url")
        if c["args"].get("user") == ALICE and c.get("ok")
    ]


def dm_texts(slack: SlackSandbox, user: str) -> list[str]:
    """The texts of the messages in the bot's DM with `user` (current versions)."""
    return [str(m.get("text", "")) for m in slack.messages(slack.dm_channel(user))]


def thread_notes(slack: SlackSandbox) -> list[str]:
    return [str(m.get("text", "")) for m in slack.messages(APPROVALS) if m["thread_ts"]]


def audit(database_url: str) -> list[tuple[str, dict[str, Any]]]:
    events = rows(database_url, "SELECT action, detail FROM audit_event ORDER BY id")
    return [
        (e["action"], json.loads(e["detail"]) if isinstance(e["detail"], str) else e["detail"])
        for e in events
    ]
