"""The other paths a person can take: help, a bad form, deny, failure, a missing channel."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    GENERAL,
    GOOD_FORM,
    approval_message,
    has_button,
    open_request_form,
    reveal_offer,
    submit_request,
    token_replies,
    wait_card,
    wait_shown,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows


def test_help_and_unknown_subcommand(slack: SlackSandbox, bot: BotProcess) -> None:
    for text in ("", "help"):
        answer = slack.command(ALICE, GENERAL, text)
        assert "`/service-account request`" in json.dumps(answer["body"])
    answer = slack.command(ALICE, GENERAL, "frobnicate <!channel>")
    body = json.dumps(answer["body"])
    assert "Unknown subcommand" in body and "/service-account request" in body
    assert "<!channel>" not in body


def test_form_errors_are_shown_on_the_fields_and_store_nothing(
    slack: SlackSandbox, bot: BotProcess
) -> None:
    view_id = open_request_form(slack)
    bad = {
        "name": {"name": "Bad Name!"},
        "justification": {"justification": "short"},
        "products": {"products": ["jira"]},
        "scopes": {"scopes": ["write:confluence-content"]},
        "lifetime_days": {"lifetime_days": "90"},
    }
    answer = slack.submit(ALICE, view_id, bad)
    errors = answer["body"]["errors"]
    assert set(errors) == {"name", "justification", "scopes"}
    assert "lower-case" in errors["name"]
    assert rows(bot.database_url, "SELECT id FROM service_account_request") == []


def test_a_live_name_cannot_be_asked_for_twice(slack: SlackSandbox, bot: BotProcess) -> None:
    submit_request(slack)
    answer = submit_request(slack)
    assert "already in use" in answer["body"]["errors"]["name"]


def test_deny_with_a_reason(sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess) -> None:
    submit_request(slack)
    message = approval_message(slack)
    slack.click(BOB, APPROVALS, message["ts"], "request_deny")
    modal = slack.wait_for(lambda: slack.last_view_for(BOB), what="the deny modal")
    slack.submit(BOB, modal["id"], {"deny_reason": {"deny_reason": "Use the shared <!here> bot"}})
    card = wait_card(slack, "Denied by")
    assert "Use the shared &lt;!here&gt; bot" in json.dumps(card)
    denied = wait_shown(slack, APPROVALS, "Denied by <@U0BOB>", index=0)
    assert not has_button(denied, "request_approve")
    assert sandbox.atlassian.live_accounts() == []
    # the name is free again once the request ended
    assert submit_request(slack)["status"] == 200


def test_requester_not_in_the_origin_channel_gets_reveal_in_the_dm(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    submit_request(slack)
    everyone_but_alice = [u for u in sandbox.slack.channels[GENERAL].members if u != ALICE]
    slack.set_channel(GENERAL, members=everyone_but_alice)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    card = wait_card(slack, "the account is ready")
    assert has_button(card, "token_reveal")
    dm = slack.dm_channel(ALICE)
    slack.click(ALICE, dm, card["ts"], "token_reveal")
    slack.wait_for(lambda: token_replies(slack), what="the token reply in the DM")
    [token] = sandbox.atlassian.minted_values()
    assert token in json.dumps(token_replies(slack)[0])
    assert [c for c in slack.calls("chat.postEphemeral") if not c["ok"]]  # Slack refused it


def test_quota_full_ends_failed_with_the_reason(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    sandbox.atlassian.quota = 0
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    card = wait_card(slack, "provisioning failed")
    assert "quota is full" in json.dumps(card)
    thread = slack.wait_for(
        lambda: [m for m in slack.messages(APPROVALS) if m["thread_ts"]], what="thread note"
    )
    assert "quota is full" in thread[0]["text"]
    assert rows(bot.database_url, "SELECT status FROM service_account_request")[0] == {
        "status": "failed"
    }


def test_failure_after_create_keeps_the_account_on_record(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    sandbox.atlassian.add_fault("grant", "html403")
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    card = wait_card(slack, "provisioning failed")
    assert "HTML page" in json.dumps(card)
    [account] = sandbox.atlassian.live_accounts()
    [recorded] = rows(
        bot.database_url, "SELECT atlassian_id, atlassian_account_id, email FROM service_account"
    )
    assert recorded == {
        "atlassian_id": account.id,
        "atlassian_account_id": account.atlassian_id,
        "email": account.email,
    }


def test_requester_who_is_the_only_approver_is_refused_at_submit(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_bot(
        sandbox, database_url, tmp_path / "solo.log", extra_env={"SABOT_APPROVERS": ALICE}
    )
    try:
        view_id = open_request_form(slack)
        answer = slack.submit(ALICE, view_id, GOOD_FORM)
        assert "could never be approved" in json.dumps(answer["view"])
        assert rows(database_url, "SELECT id FROM service_account_request") == []
    finally:
        bot.stop()


def test_an_admin_retries_a_failed_request_once_the_cause_is_fixed(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_bot(
        sandbox, database_url, tmp_path / "sabot.log", extra_env={"SABOT_ADMINS": CAROL}
    )
    try:
        sandbox.atlassian.add_fault("grant", "html403")  # made, but access refused
        submit_request(slack)
        slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
        wait_card(slack, "provisioning failed")
        slack.wait_for(  # the requester's own message says what was left and what can be done
            lambda: [
                m for m in slack.messages(slack.dm_channel(ALICE)) if "retry SA-1" in m["text"]
            ],
            what="the failure DM",
        )

        refused = slack.command(ALICE, GENERAL, "retry SA-1")  # the requester is no admin
        assert slack.wait_for(lambda: ephemeral_texts(slack, ALICE, "Only an admin"))
        assert refused["status"] == 200
        slack.command(CAROL, GENERAL, "retry SA-1")
        reveal_offer(slack)  # the grant went through this time
        assert ephemeral_texts(slack, CAROL, "Provisioning SA-1 (`ci-release-bot`) again")
        slack.command(CAROL, GENERAL, "retry SA-1")  # no longer failed
        slack.wait_for(lambda: ephemeral_texts(slack, CAROL, "only a failed request"))

        assert len(sandbox.atlassian.live_accounts()) == 1  # the account made first, kept
        history = rows(database_url, "SELECT action FROM audit_event ORDER BY id")
        actions = [h["action"] for h in history]
        assert actions.count("account_created") == 1
        assert "retry_refused" in actions and "provisioning_retried" in actions
        assert rows(database_url, "SELECT status FROM service_account_request") == [
            {"status": "active"}
        ]
    finally:
        bot.stop()


def ephemeral_texts(slack: SlackSandbox, user: str, text: str) -> list[str]:
    """What `user` alone was shown in #general that says `text`."""
    shown = [m for m in slack.messages(GENERAL, user=user) if m["ephemeral"] and m["user"] == user]
    return [m["text"] for m in shown if text in json.dumps(m)]
