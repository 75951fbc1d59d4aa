"""The slack tier: the Bolt app in process, as a person in Slack meets it.

`sabot serve`'s own app (its assembly, listeners and worker) runs on a thread of this process
on SQLite, against the Slack and Atlassian stand-ins on theirs (tests/support/in_process.py).
Slack's requests reach it signed, and what each person saw is read at the Slack stand-in. The
same flows run as processes, on both engines, in the e2e tier (test_end_to_end, test_flows,
test_refusals, test_admin_commands).
"""

from __future__ import annotations

import json
import time

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.process.background import MODAL_WAIT_SECONDS
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    DAVE,
    GENERAL,
    GOOD_FORM,
    approval_message,
    ephemerals_to,
    has_button,
    markup,
    new_view,
    open_request_form,
    plain_texts,
    reveal_offer,
    submit_request,
    token_replies,
    wait_card,
    wait_shown,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import ask, make_account, shown
from tests.support.databases import dump_database, rows
from tests.support.in_process import InProcessBot

HELP = (
    "token=x&team_id=T0SANDBOX&channel_id=C0GENERAL&user_id=U0ALICE"
    "&command=%2Fservice-account&text=help&trigger_id=1.2.3"
    "&response_url=http%3A%2F%2F127.0.0.1%3A1%2Fnowhere"
)


def post_signed(
    bot: InProcessBot, body: str, secret: str, timestamp: int | None = None
) -> httpx.Response:
    """A slash command signed by slack_sdk's own verifier (as bolt-python's tests sign theirs),
    not by the stand-in's signing code."""
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }
    return httpx.post(f"{bot.url}/slack/events", content=body, headers=headers, timeout=10)


def test_a_request_approved_then_revealed_shows_the_token_to_the_requester_alone(
    sandbox: Sandbox, slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    answer = submit_request(slack)
    assert answer["status"] == 200
    assert "waiting for approval" in json.dumps(answer["view"])

    # the approvers see the justification as typed, never parsed as a mention
    message = approval_message(slack)
    assert plain_texts(message["blocks"]) == [GOOD_FORM["justification"]["justification"]]
    assert "<!channel>" not in "\n".join([message["text"], *markup(message["blocks"])])
    assert has_button(message, "request_approve") and has_button(message, "request_deny")

    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    offer = reveal_offer(slack)
    approved = wait_shown(slack, APPROVALS, "Approved by <@U0BOB>", index=0)
    assert not has_button(approved, "request_approve")
    [account] = sandbox.atlassian.live_accounts()
    assert account.display_name == "ci-release-bot"
    assert sandbox.atlassian.minted_values() == []  # nothing minted before the click

    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    [reply] = slack.wait_for(lambda: token_replies(slack), what="the token reply")
    [token] = sandbox.atlassian.minted_values()
    assert reply["args"]["response_type"] == "ephemeral" and reply["args"]["user"] == ALICE
    assert token in json.dumps(reply) and account.email in json.dumps(reply)
    assert not has_button(wait_card(slack, "Token revealed at"), "token_reveal")
    assert all(token not in json.dumps(c) for c in slack.calls() if c != reply)
    assert token not in dump_database(in_process_bot.database_url)
    audit = rows(in_process_bot.database_url, "SELECT action FROM audit_event ORDER BY id")
    assert audit[-1]["action"] == "token_delivered"


def test_a_bad_or_stale_signature_is_refused_and_not_logged(
    sandbox: Sandbox, slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    secret = sandbox.slack.signing_secret
    good = post_signed(in_process_bot, HELP, secret)
    assert good.status_code == 200 and "/service-account request" in good.text
    assert post_signed(in_process_bot, HELP, "another-apps-secret").status_code == 401
    stale = post_signed(in_process_bot, HELP, secret, timestamp=int(time.time()) - 6 * 60)
    assert stale.status_code == 401
    assert slack.raw(HELP, signature="v0=" + "0" * 64)["status"] == 401  # forged at the stand-in
    log = in_process_bot.log()
    assert log.count("bad or stale Slack signature") == 3
    assert "response_url=http" not in log  # the refused bodies are not logged


def test_help_and_an_unknown_subcommand_are_answered_in_the_ack(
    slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    for text in ("", "help"):
        answer = slack.command(ALICE, GENERAL, text)
        assert "`/service-account request`" in json.dumps(answer["body"])
    body = json.dumps(slack.command(ALICE, GENERAL, "frobnicate <!channel>")["body"])
    assert "Unknown subcommand" in body and "/service-account request" in body
    assert "<!channel>" not in body


def test_the_request_form_goes_to_slack_before_the_ack_which_does_not_wait_for_its_answer(
    slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    """A trigger_id lives 3 s from the moment Slack sends the command: the form's views.open
    is sent first and the ack follows, so a burst of commands is never acknowledged faster than
    their forms go out (acknowledging them all at once left thousands to open after their
    triggers expired). Slack's answer to views.open is not waited for."""
    slack.fault("views.open", delay=1.5)  # Slack answers views.open 1.5 s late
    before = set(slack.views())
    started = time.monotonic()
    assert slack.command(ALICE, GENERAL, "request")["status"] == 200
    assert time.monotonic() - started < 1.0
    assert [vid for vid in slack.views() if vid not in before] == []  # acked before it opened
    opened = new_view(slack, ALICE, before, "the request form")
    assert opened["callback_id"] == "request_submit"
    assert json.loads(opened["private_metadata"]) == {"channel": GENERAL}


def test_a_form_slack_holds_back_holds_the_ack_two_seconds_at_most(
    slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    """After a 429 on views.open (Retry-After 3 s) the next form cannot be sent before 3 s:
    its ack waits for it MODAL_WAIT_SECONDS at most, as Slack wants the ack within 3 s."""
    slack.fault("views.open", retry_after=3)
    started = time.monotonic()
    assert slack.command(ALICE, GENERAL, "request")["status"] == 200  # sent, then refused
    assert time.monotonic() - started < 1.0
    started = time.monotonic()
    assert slack.command(ALICE, GENERAL, "request")["status"] == 200  # held by the gate
    held = time.monotonic() - started
    assert MODAL_WAIT_SECONDS - 0.1 < held < MODAL_WAIT_SECONDS + 0.9


def test_form_errors_are_shown_on_the_fields_and_store_nothing(
    slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    view_id = open_request_form(slack)
    bad = {
        "name": {"name": "Bad Name!"},
        "justification": {"justification": "short"},
        "products": {"products": ["jira"]},
        "scopes": {"scopes": ["write:confluence-content"]},
        "lifetime_days": {"lifetime_days": "90"},
    }
    errors = slack.submit(ALICE, view_id, bad)["body"]["errors"]
    assert set(errors) == {"name", "justification", "scopes"}
    assert "lower-case" in errors["name"]
    assert rows(in_process_bot.database_url, "SELECT id FROM service_account_request") == []


def test_a_denial_with_a_reason_reaches_the_requester_and_makes_no_account(
    sandbox: Sandbox, slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    submit_request(slack)
    message = approval_message(slack)
    slack.click(BOB, APPROVALS, message["ts"], "request_deny")
    modal = slack.wait_for(lambda: slack.last_view_for(BOB), what="the deny modal")
    slack.submit(BOB, modal["id"], {"deny_reason": {"deny_reason": "Use the shared <!here> bot"}})
    assert "Use the shared &lt;!here&gt; bot" in json.dumps(wait_card(slack, "Denied by"))
    denied = wait_shown(slack, APPROVALS, "Denied by <@U0BOB>", index=0)
    assert not has_button(denied, "request_approve")
    assert sandbox.atlassian.live_accounts() == []


def test_only_an_approver_who_is_not_the_requester_decides(
    sandbox: Sandbox, slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    slack.set_channel(APPROVALS, members=[ALICE, BOB, CAROL, DAVE, "U0SABOT"])
    submit_request(slack)
    message = approval_message(slack)
    slack.click(DAVE, APPROVALS, message["ts"], "request_approve")  # not an approver
    slack.wait_for(lambda: ephemerals_to(slack, DAVE, "not an approver"), what="Dave's refusal")
    slack.click(ALICE, APPROVALS, message["ts"], "request_approve")  # her own request
    slack.wait_for(lambda: ephemerals_to(slack, ALICE, "your own request"), what="the refusal")
    assert sandbox.atlassian.live_accounts() == []
    refused = rows(
        in_process_bot.database_url,
        "SELECT actor_id FROM audit_event WHERE action = 'decision_refused' ORDER BY id",
    )
    assert [r["actor_id"] for r in refused] == [DAVE, ALICE]
    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    reveal_offer(slack)
    assert len(sandbox.atlassian.live_accounts()) == 1


def test_the_admin_lists_every_account_and_a_requester_only_their_own(
    sandbox: Sandbox, slack: SlackSandbox, in_process_bot: InProcessBot
) -> None:
    make_account(sandbox, slack, "alpha-jira-bot")
    make_account(sandbox, slack, "beta-bob-bot", owner=BOB, approver=CAROL, revealed=False)
    mine = shown(ask(slack, ALICE, "list"))
    assert "alpha-jira-bot" in mine and "beta-bob-bot" not in mine
    every = shown(ask(slack, CAROL, "list"))  # Carol is the admin
    assert "alpha-jira-bot" in every and "beta-bob-bot" in every
    assert "Service accounts 1-2 of 2" in every
