"""The App Home tab: what each person sees when they open it, and acting from it."""

from __future__ import annotations

import json

from sandbox.bot_process import BotProcess
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    GOOD_FORM,
    approval_message,
    new_view,
    open_home,
    reveal_offer,
    submit_request,
)
from sandbox.slack_client import SlackSandbox


def test_home_for_requester_approver_and_admin(slack: SlackSandbox, admin_bot: BotProcess) -> None:
    submit_request(slack)
    approval_message(slack)
    bob_home = open_home(slack, BOB, "Waiting for my decision")
    assert "ci-release-bot" in bob_home and "request_approve" in bob_home
    alice_home = open_home(slack, ALICE, "My requests")
    assert "SA-1" in alice_home and "pending" in alice_home and "home_request" in alice_home
    assert "Waiting for my decision" not in alice_home  # her own request is not hers to decide

    slack.click_view(BOB, "request_approve.1", home=True)  # approve from the Home tab
    reveal_offer(slack)
    bob_after = open_home(slack, BOB, "Service accounts")
    assert "Waiting for my decision" not in bob_after

    carol_home = open_home(slack, CAROL, "Admin")
    assert "Requests by status" in carol_home and "Orphaned accounts" in carol_home
    alice_after = open_home(slack, ALICE, "token_rotate")  # an active account has Rotate
    assert "ci-release-bot" in alice_after


def test_a_refused_click_in_home_is_answered_in_a_dm(
    slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    submit_request(slack)
    approval_message(slack)
    open_home(slack, BOB, "Waiting for my decision")
    open_home(slack, "U0DAVE", "Service accounts")
    # Dave forges an approve click from his own Home tab.
    slack.click_view("U0DAVE", "request_approve", home=True, value="1", force=True)
    dm = slack.dm_channel("U0DAVE")
    slack.wait_for(
        lambda: [m for m in slack.messages(dm) if "not an approver" in m["text"]],
        what="the refusal in Dave's DM",
    )
    assert "Approved" not in json.dumps(slack.messages(APPROVALS)[0]["blocks"])


def test_the_home_request_button_opens_the_form(slack: SlackSandbox, admin_bot: BotProcess) -> None:
    open_home(slack, ALICE, "home_request")
    before = set(slack.views())
    slack.click_view(ALICE, "home_request", home=True)
    form = new_view(slack, ALICE, before, "the request form from Home")
    assert form["callback_id"] == "request_submit"
    answer = slack.submit(ALICE, form["id"], GOOD_FORM)
    assert "waiting for approval" in json.dumps(answer["view"])
    approval_message(slack)  # the request went to the approvers like any other
