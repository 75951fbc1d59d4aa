"""Owners who leave: flagged once, admins told with Reassign/Revoke; reassigning fixes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    GENERAL,
    approval_message,
    new_view,
    reveal_offer,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows


@pytest.fixture
def bot_checking_owners(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> Iterator[BotProcess]:
    bot = start_bot(
        sandbox,
        database_url,
        tmp_path / "sabot.log",
        extra_env={"SABOT_ADMINS": CAROL, "OWNER_CHECK_INTERVAL_SECONDS": "1"},
    )
    yield bot
    bot.stop()


def test_owner_leaves_admin_reassigns(
    sandbox: Sandbox, slack: SlackSandbox, bot_checking_owners: BotProcess
) -> None:
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    slack.click(ALICE, GENERAL, reveal_offer(slack)["ts"], "token_reveal")
    slack.wait_for(lambda: token_replies(slack), what="alice's token")

    slack.set_user(ALICE, deleted=True)  # alice leaves the company
    carol_dm = slack.dm_channel(CAROL)
    alert = slack.wait_for(
        lambda: [m for m in slack.messages(carol_dm) if "has left" in json.dumps(m["blocks"])],
        what="the admins' orphan alert",
        timeout=15,
    )[0]
    assert "owner_reassign" in json.dumps(alert["blocks"])
    assert "confirm_revoke" in json.dumps(alert["blocks"])
    assert (
        rows(bot_checking_owners.database_url, "SELECT orphaned_at FROM service_account")[0][
            "orphaned_at"
        ]
        is not None
    )

    before = set(slack.views())
    slack.click(CAROL, carol_dm, alert["ts"], "owner_reassign")
    modal = new_view(slack, CAROL, before, "the reassign modal")
    slack.submit(CAROL, modal["id"], {"new_owner": {"new_owner": BOB}})
    slack.wait_for(
        lambda: (
            rows(
                bot_checking_owners.database_url,
                "SELECT owner_id, orphaned_at FROM service_account",
            )[0]
            == {"owner_id": BOB, "orphaned_at": None}
        ),
        what="the new owner recorded",
    )
    actions = [
        r["action"]
        for r in rows(bot_checking_owners.database_url, "SELECT action FROM audit_event")
    ]
    assert actions.count("owner_left") == 1 and "owner_reassigned" in actions
