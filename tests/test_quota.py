"""The organisation's service-account quota: shown in the form and Home, and a request that
would exceed it is refused when it is submitted, not after someone approved it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import ALICE, BOB, GENERAL, new_view, open_home, submit_request
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import form
from tests.support.databases import rows

POLICY = """\
approval_channel: C0APPROVALS
approvers:
  default:
    users: [U0BOB, U0CAROL]
service_account_limit: 3
"""


@pytest.fixture
def quota_bot(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[BotProcess]:
    # Two service accounts made by hand in admin.atlassian.com: Atlassian counts them too, and
    # the reconcile that runs when sabot first starts counts them.
    sandbox.atlassian.seed_account("made-by-hand-1")
    sandbox.atlassian.seed_account("made-by-hand-2")
    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    bot = start_bot(
        sandbox, database_url, tmp_path / "sabot.log", extra_env={"SABOT_POLICY": str(path)}
    )
    yield bot
    bot.stop()


def counted(bot: BotProcess) -> None:
    """Wait for the first reconcile's count of the accounts at Atlassian."""
    query = "SELECT detail FROM audit_event WHERE action = 'reconcile_checked'"
    deadline = time.monotonic() + 15
    while not rows(bot.database_url, query):
        assert time.monotonic() < deadline, "no reconcile ran"
        time.sleep(0.1)


def _form_text(slack: SlackSandbox) -> str:
    before = set(slack.views())
    slack.command(ALICE, GENERAL, "request")
    return json.dumps(new_view(slack, ALICE, before, "the request form"))


def test_accounts_made_elsewhere_and_requests_waiting_use_the_quota(
    sandbox: Sandbox, slack: SlackSandbox, quota_bot: BotProcess
) -> None:
    counted(quota_bot)
    text = _form_text(slack)
    assert "2 of the organisation's 3 service accounts in use" in text
    assert "Ask an admin first" not in text

    first = submit_request(slack, form("third-bot", ("jira",), 30, "Syncs the release board"))
    assert "waiting for approval" in json.dumps(first["view"])  # the last free seat

    full = _form_text(slack)
    assert "3 of the organisation's 3 service accounts in use, 1 of them requested" in full
    assert "Ask an admin first" in full

    refused = submit_request(slack, form("fourth-bot", ("jira",), 30, "Another board sync"))
    said = json.dumps(refused["view"])
    assert "Not sent" in said and "the most its Atlassian plan allows" in said
    assert "service_account_limit" in said
    names = [
        r["name"] for r in rows(quota_bot.database_url, "SELECT name FROM service_account_request")
    ]
    assert names == ["third-bot"]  # nothing stored for the refused one

    home = open_home(slack, BOB, "service accounts in use")
    assert "3 of the organisation's 3 service accounts in use" in home


def test_a_denied_request_gives_its_seat_back(
    sandbox: Sandbox, slack: SlackSandbox, quota_bot: BotProcess
) -> None:
    counted(quota_bot)
    submit_request(slack, form("seat-taker", ("jira",), 30, "Syncs the release board"))
    assert "Ask an admin first" in _form_text(slack)

    approval: dict[str, Any] = slack.wait_for(
        lambda: [m for m in slack.messages("C0APPROVALS") if not m["thread_ts"]],
        what="the approval message",
    )[-1]
    before = set(slack.views())
    slack.click(BOB, "C0APPROVALS", approval["ts"], "request_deny")
    modal = new_view(slack, BOB, before, "the deny modal")
    slack.submit(BOB, modal["id"], {"deny_reason": {"deny_reason": "not now"}})
    slack.wait_for(
        lambda: (
            rows(quota_bot.database_url, "SELECT status FROM service_account_request")[0]["status"]
            == "denied"
        ),
        what="the denial",
    )
    assert "2 of the organisation's 3 service accounts in use." in _form_text(slack)
