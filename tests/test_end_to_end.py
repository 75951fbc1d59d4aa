"""The whole flow over real sockets: request -> approve -> provision -> Reveal -> token.

`sabot serve` runs as its own process against the Slack and Atlassian stand-ins, on SQLite and
on PostgreSQL. A person's view is checked through what the Slack stand-in showed them.
"""

from __future__ import annotations

import json

from sandbox.bot_process import BotProcess
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    GOOD_FORM,
    approval_message,
    card,
    has_button,
    markup,
    plain_texts,
    reveal_offer,
    submit_request,
    token_replies,
    wait_card,
    wait_shown,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.databases import dump_database, rows


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
