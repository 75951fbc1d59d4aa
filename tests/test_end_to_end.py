"""The whole flow over real sockets: request -> approve -> provision -> Reveal -> token.

`sabot serve` runs as its own process against the Slack and Atlassian stand-ins, on SQLite and
on PostgreSQL. A person's view is checked through what the Slack stand-in showed them.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.conftest import BotProcess, dump_database, rows

ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"
GENERAL, APPROVALS = "C0GENERAL", "C0APPROVALS"

GOOD_FORM = {
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


def test_whole_flow_token_only_in_the_ephemeral_reply(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    assert "WARNING" not in bot.log()  # a clean start: nothing for an operator to wonder about
    # 1-2: the form opens, is submitted, and turns into a confirmation
    answer = submit_request(slack)
    assert answer["status"] == 200
    assert "waiting for approval" in json.dumps(answer["view"])

    # 3: the approvers see the request; the justification as plain text, which Slack shows as
    # typed (no mention, no link), and nowhere in what Slack parses as mrkdwn
    message = approval_message(slack)
    posted = json.dumps(message)
    assert "ci-release-bot" in posted and "<@U0ALICE>" in posted
    assert "<!channel>" not in "\n".join([message["text"], *markup(message["blocks"])])
    assert plain_texts(message["blocks"]) == [GOOD_FORM["justification"]["justification"]]
    assert has_button(message, "request_approve") and has_button(message, "request_deny")
    assert "SA-1" in json.dumps(card(slack))

    # 5-6: approval updates the message in place, provisioning creates and grants
    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    offer = reveal_offer(slack)
    approved = wait_shown(slack, APPROVALS, "Approved by <@U0BOB>", index=0)
    assert not has_button(approved, "request_approve")
    accounts = sandbox.atlassian.live_accounts()
    assert [a.display_name for a in accounts] == ["ci-release-bot"]
    grants = sandbox.atlassian.effective_grants(accounts[0].atlassian_id)
    assert [g["resource"] for g in grants] == ["ari:cloud:jira-software::site/cloud-sandbox-1"]
    assert has_button(wait_card(slack, "the account is ready"), "token_reveal")
    assert sandbox.atlassian.minted_values() == []  # nothing minted before the click

    # 7: Reveal mints now and answers the click alone
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    slack.wait_for(lambda: token_replies(slack), what="the token reply")
    [token] = sandbox.atlassian.minted_values()
    [reply] = token_replies(slack)
    assert reply["args"]["response_type"] == "ephemeral" and reply["args"]["user"] == ALICE
    assert token in json.dumps(reply) and accounts[0].email in json.dumps(reply)
    assert "api.atlassian.com/ex/jira/cloud-sandbox-1" in json.dumps(reply)
    minted = sandbox.atlassian.tokens[0]
    assert minted.scopes == ["read:jira-work", "write:jira-work"]
    final_card = wait_card(slack, "Token revealed at")
    assert not has_button(final_card, "token_reveal")

    # the token is nowhere else: no other Slack call, no database row, no log line
    others = [
        c
        for c in slack.calls()
        if (c is not reply and c["method"] != "response_url")
        or (c["method"] == "response_url" and c not in [reply])
    ]
    assert all(token not in json.dumps(c) for c in others)
    assert token not in dump_database(bot.database_url)
    bot.stop()
    log = bot.log()
    assert "DEBUG" in log  # the search below looked through DEBUG lines
    for secret in (
        token,
        sandbox.slack.bot_token,
        sandbox.slack.signing_secret,
        sandbox.atlassian.api_key,
    ):
        assert secret not in log
    audit = rows(bot.database_url, "SELECT action FROM audit_event ORDER BY id")
    assert [a["action"] for a in audit][-1] == "token_delivered"
