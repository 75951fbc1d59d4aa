"""The policy at work over real sockets: quorum, groups re-checked at click time, timers,
cancel, break-glass and approvers' DM copies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.bot_process import BotProcess, start_bot
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
    new_view,
    reveal_offer,
    submit_request,
    wait_card,
    wait_shown,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows

BASE = """\
approval_channel: C0APPROVALS
approvers:
  default:
    {approvers}
"""


@pytest.fixture
def policy_bot(
    request: pytest.FixtureRequest, sandbox: Sandbox, database_url: str, tmp_path: Path
) -> Iterator[BotProcess]:
    """A bot running the policy text given by the test's `policy` marker."""
    text = request.node.get_closest_marker("policy").args[0]
    path = tmp_path / "policy.yml"
    path.write_text(text)
    bot = start_bot(
        sandbox, database_url, tmp_path / "sabot.log", extra_env={"SABOT_POLICY": str(path)}
    )
    yield bot
    bot.stop()


def creates(sandbox: Sandbox) -> int:
    return len(
        [
            c
            for c in sandbox.atlassian.calls
            if c["method"] == "POST" and c["path"].endswith("/service-accounts")
        ]
    )


@pytest.mark.policy(
    BASE.format(approvers="users: [U0BOB, U0CAROL, U0DAVE]") + "quorum:\n  default: 2\n"
)
def test_quorum_of_two_with_three_approvers_at_once(
    sandbox: Sandbox, slack: SlackSandbox, policy_bot: BotProcess
) -> None:
    slack.set_channel(APPROVALS, members=[BOB, CAROL, DAVE, "U0SABOT"])
    submit_request(slack)
    message = approval_message(slack)
    assert "0 of 2 approvals" in json.dumps(message["blocks"])
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(
            pool.map(
                lambda u: slack.click(u, APPROVALS, message["ts"], "request_approve"),
                [BOB, CAROL, DAVE],
            )
        )
    reveal_offer(slack)
    time.sleep(0.5)
    approvals = rows(policy_bot.database_url, "SELECT approver_id FROM decision")
    assert len(approvals) == 2
    assert creates(sandbox) == 1
    assert (
        len([c for c in slack.calls("response_url") if "already approved" in json.dumps(c["args"])])
        == 1
    )
    shown = wait_shown(slack, APPROVALS, "Approved by", index=0)
    assert all(f"<@{a['approver_id']}>" in json.dumps(shown["blocks"]) for a in approvals)


@pytest.mark.policy(BASE.format(approvers="groups: [S0APPROVERS]"))
def test_a_member_removed_from_the_group_cannot_approve(
    sandbox: Sandbox, slack: SlackSandbox, policy_bot: BotProcess
) -> None:
    submit_request(slack)
    message = approval_message(slack)
    slack.set_usergroup("S0APPROVERS", [BOB])  # carol leaves the group after the request
    slack.click(CAROL, APPROVALS, message["ts"], "request_approve")
    slack.wait_for(lambda: ephemerals_to(slack, CAROL, "not an approver"), what="refusal")
    assert rows(policy_bot.database_url, "SELECT id FROM decision") == []
    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    reveal_offer(slack)


@pytest.mark.policy(
    BASE.format(approvers="users: [U0BOB]")
    + """\
pending:
  remind_after: 1s
  escalate_after: 2s
  escalate_to:
    users: [U0DAVE]
    groups: [S0APPROVERS]
  expire_after: 3s
"""
)
def test_reminder_escalation_and_expiry_in_seconds(
    slack: SlackSandbox, policy_bot: BotProcess
) -> None:
    submit_request(slack)
    message = approval_message(slack)

    def thread() -> list[str]:
        return [m["text"] for m in slack.messages(APPROVALS) if m["thread_ts"] == message["ts"]]

    texts = slack.wait_for(lambda: len(thread()) >= 2 and thread(), what="reminder, escalation")
    assert "Reminder" in texts[0]
    assert "<@U0DAVE>" in texts[1] and "<!subteam^S0APPROVERS>" in texts[1]
    expired = wait_shown(slack, APPROVALS, "Expired without a decision", index=0)
    assert not has_button(expired, "request_approve")
    wait_card(slack, "Expired without a decision")
    actions = [
        r["action"]
        for r in rows(policy_bot.database_url, "SELECT action FROM audit_event ORDER BY id")
    ]
    assert {"reminder_sent", "request_escalated", "request_expired"} <= set(actions)


@pytest.mark.policy(BASE.format(approvers="users: [U0BOB]"))
def test_cancel_from_the_card_and_by_command(
    sandbox: Sandbox, slack: SlackSandbox, policy_bot: BotProcess
) -> None:
    submit_request(slack)
    approval_message(slack)
    card = wait_card(slack, "Waiting for approval")
    slack.click(ALICE, slack.dm_channel(ALICE), card["ts"], "request_cancel")
    wait_shown(slack, APPROVALS, "Cancelled by <@U0ALICE>", index=0)
    assert not has_button(slack.messages(APPROVALS)[0], "request_approve")

    form = {"name": {"name": "second-bot"}}
    submit_request(slack, form={**_good_form(), **form})
    slack.wait_for(lambda: len(slack.messages(APPROVALS)) == 2, what="the second request")
    answer = slack.command(ALICE, GENERAL, "cancel SA-2")
    assert answer["status"] == 200
    wait_shown(slack, APPROVALS, "Cancelled by <@U0ALICE>", index=1)
    refused = slack.command(BOB, GENERAL, "cancel SA-2")
    assert refused["status"] == 200
    assert sandbox.atlassian.live_accounts() == []


def _good_form() -> dict[str, dict[str, object]]:
    from sandbox.people import GOOD_FORM

    return dict(GOOD_FORM)


@pytest.mark.policy(BASE.format(approvers="users: [U0BOB]") + "break_glass:\n  enabled: true\n")
def test_break_glass_self_approval_is_loud(
    sandbox: Sandbox, slack: SlackSandbox, policy_bot: BotProcess
) -> None:
    submit_request(slack)
    card = wait_card(slack, "Waiting for approval")
    before = set(slack.views())
    slack.click(ALICE, slack.dm_channel(ALICE), card["ts"], "request_break_glass")
    modal = new_view(slack, ALICE, before, "the break-glass modal")
    slack.submit(
        ALICE, modal["id"], {"break_glass_reason": {"break_glass_reason": "Prod deploy is down"}}
    )
    reveal_offer(slack)
    alert = slack.wait_for(
        lambda: [m for m in slack.messages(APPROVALS) if "Break-glass" in json.dumps(m["blocks"])],
        what="the loud message",
    )
    assert "<!here>" in json.dumps(alert[0]["blocks"])
    assert "Prod deploy is down" in json.dumps(alert[0]["blocks"])
    audit = rows(policy_bot.database_url, "SELECT action FROM audit_event")
    assert {"request_break_glass", "break_glass_announced"} <= {a["action"] for a in audit}
    assert len(sandbox.atlassian.live_accounts()) == 1


@pytest.mark.policy(
    BASE.format(approvers="users: [U0BOB, U0CAROL]") + "notify_approvers_by_dm: true\n"
)
def test_every_copy_is_updated_on_a_decision(slack: SlackSandbox, policy_bot: BotProcess) -> None:
    submit_request(slack)
    bob_dm, carol_dm = slack.dm_channel(BOB), slack.dm_channel(CAROL)
    slack.wait_for(
        lambda: slack.messages(bob_dm) and slack.messages(carol_dm), what="the approvers' DM copies"
    )
    copy = slack.messages(carol_dm)[0]
    slack.click(CAROL, carol_dm, copy["ts"], "request_approve")
    for channel in (APPROVALS, bob_dm, carol_dm):
        shown = wait_shown(slack, channel, "Approved by <@U0CAROL>", index=0)
        assert not has_button(shown, "request_approve")
