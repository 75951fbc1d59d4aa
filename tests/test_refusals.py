"""What must change nothing: forged or stale requests, the wrong person clicking."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from sandbox.bot_process import BotProcess
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    DAVE,
    GENERAL,
    approval_message,
    ephemerals_to,
    has_button,
    reveal_offer,
    submit_request,
    token_replies,
    wait_card,
)
from sandbox.runner import Sandbox
from sandbox.signing import sign
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows

COMMAND_BODY = (
    "token=x&team_id=T0SANDBOX&channel_id=C0GENERAL&user_id=U0ALICE"
    "&command=%2Fservice-account&text=help&trigger_id=1.2.3"
    "&response_url=http%3A%2F%2F127.0.0.1%3A1%2Fnowhere"
)


def statuses(bot: BotProcess) -> list[str]:
    return [
        r["status"] for r in rows(bot.database_url, "SELECT status FROM service_account_request")
    ]


def test_bad_signature_and_stale_timestamp_are_refused(
    slack: SlackSandbox, bot: BotProcess
) -> None:
    forged = slack.raw(COMMAND_BODY, signature="v0=" + "0" * 64)
    stale_ts = int(time.time()) - 6 * 60
    stale = slack.raw(
        COMMAND_BODY,
        timestamp=stale_ts,
        signature=sign("sandbox-signing-secret", stale_ts, COMMAND_BODY),
    )
    assert forged["status"] == 401 and stale["status"] == 401
    good = slack.raw(COMMAND_BODY)
    assert good["status"] == 200 and "request" in json.dumps(good["body"])
    bot.stop()
    assert "bad or stale Slack signature" in bot.log()
    assert "response_url=http" not in bot.log()  # the refused body is not logged
    assert "Invalid request signature" not in bot.log()


def test_oversized_body_is_refused(slack: SlackSandbox, bot: BotProcess) -> None:
    answer = slack.raw(COMMAND_BODY + "&pad=" + "x" * (1024 * 1024 + 10))
    assert answer["status"] == 413


def test_wrong_people_clicking_change_nothing(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    slack.set_channel(APPROVALS, members=[ALICE, BOB, CAROL, DAVE, "U0SABOT"])
    submit_request(slack)
    message = approval_message(slack)
    slack.click(DAVE, APPROVALS, message["ts"], "request_approve")  # not an approver
    slack.wait_for(lambda: ephemerals_to(slack, DAVE, "not an approver"), what="refusal")
    slack.click(ALICE, APPROVALS, message["ts"], "request_approve")  # own request
    slack.wait_for(lambda: ephemerals_to(slack, ALICE, "your own request"), what="refusal")
    assert statuses(bot) == ["pending"]
    assert sandbox.atlassian.live_accounts() == []

    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    offer = reveal_offer(slack)
    # Carol cannot see Alice's DM; she forges a Reveal click pointing at Alice's request.
    slack.click(CAROL, APPROVALS, message["ts"], "token_reveal", value="1", force=True)
    slack.wait_for(lambda: ephemerals_to(slack, CAROL, "Only the owner"), what="refusal")
    assert sandbox.atlassian.minted_values() == []
    refusals = rows(
        bot.database_url,
        "SELECT actor_id, action FROM audit_event WHERE action LIKE '%refused' ORDER BY id",
    )
    assert [(r["actor_id"], r["action"]) for r in refusals] == [
        (DAVE, "decision_refused"),
        (ALICE, "decision_refused"),
        (CAROL, "reveal_refused"),
    ]
    assert offer["user"] == ALICE


def test_ten_concurrent_approvals_make_one_account(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    submit_request(slack)
    message = approval_message(slack)
    clickers = [BOB, CAROL] * 5
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(
                lambda user: slack.click(
                    user, APPROVALS, message["ts"], "request_approve", force=True
                ),
                clickers,
            )
        )
    assert all(a["status"] == 200 for a in answers)
    reveal_offer(slack)
    time.sleep(0.5)  # let any straggling job run: it must not make a second account
    assert len(sandbox.atlassian.live_accounts()) == 1
    decisions = rows(bot.database_url, "SELECT approver_id FROM decision")
    assert len(decisions) == 1
    creates = [
        c
        for c in sandbox.atlassian.calls
        if c["method"] == "POST" and c["path"].endswith("/service-accounts")
    ]
    assert len(creates) == 1
    already = [
        c for c in slack.calls("response_url") if "already approved by" in json.dumps(c["args"])
    ]
    assert len(already) == 9


def test_reveal_clicked_twice_mints_once(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    offer = reveal_offer(slack)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: slack.click(ALICE, GENERAL, offer["ts"], "token_reveal"), range(2)))
    slack.wait_for(lambda: token_replies(slack), what="the token reply")
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    slack.wait_for(lambda: ephemerals_to(slack, ALICE, "already revealed"), what="refusal")
    assert len(sandbox.atlassian.minted_values()) == 1
    assert len(token_replies(slack)) == 1
    assert not has_button(wait_card(slack, "Token revealed at"), "token_reveal")
