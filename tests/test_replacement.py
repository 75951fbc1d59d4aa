"""Replacing automation on a person's account with a service account, through the real server.

Each state of a finding is reached by clicks a person makes in the Slack stand-in: open (found
by `/service-account discover`), offered (an admin's Offer), migrated (the person's new token is
revealed), human_token_revoked (the person and an admin confirm; the old token is revoked at the
Atlassian stand-in by `DELETE /users/{account_id}/manage/api-tokens/{tokenId}`), dismissed (with
a reason), and back to open when the person declines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from sandbox.bot_process import BotProcess
from sandbox.people import ADMIN, ALICE, APPROVALS, BOB, DAVE, GENERAL, has_button, new_view
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import ask, ephemeral_with, shown, wait_message
from tests.support.cli import sabot
from tests.support.databases import rows

# Alice's own Atlassian account runs a deploy script: its token is used daily while she has
# not opened Jira for 45 days.
ALICE_AT_ATLASSIAN = {
    "name": "Alice Requester",
    "email": "alice@example.com",
    "uiActiveDaysAgo": 45,
    "products": ["jira-software"],
    "tokens": [
        {"label": "laptop", "lastActiveDaysAgo": 50},
        {"label": "jenkins_deploy", "lastActiveDaysAgo": 1},
    ],
}
NOBODY_IN_SLACK = {
    "name": "Ghost Writer",
    "email": "ghost@example.com",
    "uiActiveDaysAgo": None,
    "tokens": [{"label": "export", "lastActiveDaysAgo": 1}],
}
FORM = {
    "name": {"name": "jenkins-deploy"},
    "justification": {"justification": "Deploys from Jenkins to the PLAT project"},
    "products": {"products": ["jira"]},
    "scopes": {"scopes": ["read:jira-work", "write:jira-work"]},
    "lifetime_days": {"lifetime_days": "30"},
}
OFFER, DISMISS = "finding_offer", "finding_dismiss"
FORM_BUTTON, DECLINE, CONFIRM = "replacement_form", "replacement_decline", "replacement_confirm"


def seed(sandbox: Sandbox, *people: dict[str, Any]) -> list[str]:
    answer = httpx.post(f"{sandbox.atlassian_url}/_sandbox/people", json={"people": list(people)})
    assert answer.status_code == 201, answer.text
    return list(answer.json()["accountIds"])


def finding(bot: BotProcess, account_id: str) -> dict[str, Any]:
    (row,) = rows(
        bot.database_url,
        "SELECT state, state_reason, state_by, slack_user_id, replaced_token_label, request_id,"
        f" admin_confirmed_by FROM finding WHERE account_id = '{account_id}'",
    )
    return row


def trail(bot: BotProcess) -> list[str]:
    found = rows(bot.database_url, "SELECT action FROM audit_event ORDER BY id")
    return [r["action"] for r in found if r["action"].startswith("finding_")]


def dm_with(slack: SlackSandbox, user: str, button: str, after: str = "0") -> dict[str, Any]:
    """The newest DM to `user` holding `button` (posted after the message `after`)."""

    def find() -> dict[str, Any] | None:
        found = [
            m
            for m in slack.messages(slack.dm_channel(user))
            if has_button(m, button) and float(m["ts"]) > float(after)
        ]
        return found[-1] if found else None

    return wait_message(slack, find, f"a DM to {user} with {button}")


def dm_saying(slack: SlackSandbox, user: str, text: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        found = [m for m in slack.messages(slack.dm_channel(user)) if text in shown(m)]
        return found[-1] if found else None

    return wait_message(slack, find, f"a DM to {user} saying {text!r}")


def said_to(slack: SlackSandbox, user: str, text: str, channel: str = GENERAL) -> dict[str, Any]:
    """An answer shown to `user` alone (an ephemeral, or a DM for a click in a DM)."""

    def find() -> dict[str, Any] | None:
        found = [
            m
            for m in slack.messages(channel, user=user) + slack.messages(slack.dm_channel(user))
            if text in shown(m)
        ]
        return found[-1] if found else None

    return wait_message(slack, find, f"{text!r} shown to {user}")


def own_message(slack: SlackSandbox, user: str) -> dict[str, Any]:
    """A message only `user` sees (a refused `findings`), to forge clicks on."""
    ask(slack, user, "findings")
    return [m for m in slack.messages(GENERAL, user=user) if m["ephemeral"]][-1]


def wait_state(bot: BotProcess, slack: SlackSandbox, account_id: str, state: str) -> None:
    slack.wait_for(
        lambda: finding(bot, account_id)["state"] == state or None,
        what=f"the finding to be {state}",
    )


def discovered(slack: SlackSandbox) -> dict[str, Any]:
    """`/service-account discover` as the admin: the message shown, with its buttons."""
    reply = ask(slack, ADMIN, "discover")
    assert has_button(reply, OFFER), shown(reply)
    return ephemeral_with(slack, ADMIN, f"{OFFER}.0")


def offer_first(slack: SlackSandbox, reply: dict[str, Any], user: str = ADMIN) -> None:
    slack.click(user, GENERAL, reply["ts"], f"{OFFER}.0")


def initial_form(view: dict[str, Any]) -> dict[str, Any]:
    """What the form shows filled in, by block id."""
    shown_values: dict[str, Any] = {}
    for block in view["blocks"]:
        element = block.get("element") or {}
        if "initial_value" in element:
            shown_values[block["block_id"]] = element["initial_value"]
        if "initial_options" in element:
            shown_values[block["block_id"]] = [o["value"] for o in element["initial_options"]]
    return shown_values


def migrated(sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess) -> tuple[str, Any]:
    """Alice flagged, offered, her filled-in form submitted, approved and its token revealed:
    the finding is migrated. Returns her Atlassian account id and the token to replace."""
    (alice_at,) = seed(sandbox, ALICE_AT_ATLASSIAN)
    directory = sandbox.atlassian.directory
    old = next(t for t in directory.tokens if t.label == "jenkins_deploy")

    # open: discovery flags Alice; Carol (an admin) offers a service account
    reply = discovered(slack)
    assert finding(admin_bot, alice_at)["state"] == "open"
    offer_first(slack, reply)
    said_to(slack, ADMIN, "Offered a service account to <@U0ALICE>")
    offered = finding(admin_bot, alice_at)
    assert offered["state"] == "offered" and offered["slack_user_id"] == ALICE
    assert offered["replaced_token_label"] == "jenkins_deploy"  # the automation's, not laptop

    # Alice's DM opens the form filled in from the finding
    dm = dm_with(slack, ALICE, FORM_BUTTON)
    assert "jenkins_deploy" in shown(dm) and "<@U0CAROL>" in shown(dm)
    before = set(slack.views())
    slack.click(ALICE, slack.dm_channel(ALICE), dm["ts"], FORM_BUTTON)
    view = new_view(slack, ALICE, before, "the filled-in request form")
    filled = initial_form(view)
    assert filled["name"] == "jenkins-deploy" and filled["products"] == ["jira"]
    assert "jenkins_deploy" in filled["justification"]
    assert json.loads(view["private_metadata"])["finding"] == alice_at
    answer = slack.submit(ALICE, view["id"], FORM)
    assert "waiting for approval" in json.dumps(answer["view"]), answer
    linked = finding(admin_bot, alice_at)
    assert linked["request_id"] == 1 and linked["state"] == "offered"

    # the usual approval; Reveal on Alice's card mints the new token
    approval = wait_message(
        slack, lambda: [m for m in slack.messages(APPROVALS) if not m["thread_ts"]], "approval"
    )[-1]
    slack.click(BOB, APPROVALS, approval["ts"], "request_approve")
    card = dm_with(slack, ALICE, "token_reveal")
    slack.click(ALICE, slack.dm_channel(ALICE), card["ts"], "token_reveal")
    wait_state(admin_bot, slack, alice_at, "migrated")
    assert old in directory.tokens  # nothing is revoked before both have confirmed
    return alice_at, old


def test_offer_form_reveal_confirm_revokes_the_old_token(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess, tmp_path: Path
) -> None:
    alice_at, old = migrated(sandbox, slack, admin_bot)
    directory = sandbox.atlassian.directory
    # migrated: Alice confirms, then Carol; only then is the old token revoked
    to_alice, to_carol = dm_with(slack, ALICE, CONFIRM), dm_with(slack, ADMIN, CONFIRM)
    assert "jenkins-deploy" in shown(to_alice) and "<@U0ALICE>" in shown(to_carol)
    slack.click(ALICE, slack.dm_channel(ALICE), to_alice["ts"], CONFIRM)
    said_to(slack, ALICE, "revoked once an admin confirms too")
    assert finding(admin_bot, alice_at)["state"] == "migrated" and old in directory.tokens
    slack.click(ADMIN, slack.dm_channel(ADMIN), to_carol["ts"], CONFIRM)
    wait_state(admin_bot, slack, alice_at, "human_token_revoked")
    assert directory.revoked == [old] and [t.label for t in directory.tokens] == ["laptop"]
    deletes = [c for c in sandbox.atlassian.calls if c["method"] == "DELETE"]
    assert [c["path"] for c in deletes] == [f"/users/{alice_at}/manage/api-tokens/{old.id}"]
    for user in (ALICE, ADMIN):
        dm_saying(slack, user, "`jenkins_deploy` on alice@example.com's Atlassian account is")

    # audited, and listed by state in Slack and by the CLI
    assert trail(admin_bot) == [
        "finding_opened",
        "finding_offered",
        "finding_request_linked",
        "finding_migrated",
        "finding_revocation_confirmed",
        "finding_revocation_confirmed",
        "finding_human_token_revoked",
    ]
    listed = shown(ask(slack, ADMIN, "findings human_token_revoked"))
    assert "1 human_token_revoked findings" in listed and "alice@example.com" in listed
    assert "SA-1" in listed
    done = sabot(admin_bot.database_url, tmp_path, "findings", "--format", "json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["findings"]
    assert row["state"] == "human_token_revoked" and row["request_id"] == 1
    assert row["replaced_token_label"] == "jenkins_deploy"


def test_only_the_right_people_move_a_finding(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    """A forwarded DM or a forged button changes nothing; every refusal is said."""
    ghost, alice_at = seed(sandbox, NOBODY_IN_SLACK, ALICE_AT_ATLASSIAN)
    reply = discovered(slack)
    # Bob is no admin: an Offer he forges on a message of his own is refused
    bobs = own_message(slack, BOB)
    slack.click(BOB, GENERAL, bobs["ts"], f"{OFFER}.0", value=alice_at, force=True)
    said_to(slack, BOB, "Only admins can offer")
    # nobody in Slack has the ghost's email: told, and still open
    slack.click(ADMIN, GENERAL, reply["ts"], f"{OFFER}.0", value=ghost, force=True)
    said_to(slack, ADMIN, "Nobody in this Slack workspace has the email ghost@example.com")
    assert finding(admin_bot, ghost)["state"] == "open"

    slack.click(ADMIN, GENERAL, reply["ts"], f"{OFFER}.0", value=alice_at, force=True)
    dm = dm_with(slack, ALICE, FORM_BUTTON)
    # Dave forges Alice's buttons: no form, no decline
    daves = own_message(slack, DAVE)
    before = set(slack.views())
    slack.click(DAVE, GENERAL, daves["ts"], FORM_BUTTON, value=alice_at, force=True)
    said_to(slack, DAVE, "This offer is not open to you")
    slack.click(DAVE, GENERAL, daves["ts"], DECLINE, value=alice_at, force=True)
    said_to(slack, DAVE, "Only the person it was offered to can decline it.")
    assert not [v for k, v in slack.views().items() if k not in before]
    assert finding(admin_bot, alice_at)["state"] == "offered"

    # Alice declines: open again, and Carol (who offered) is told
    slack.click(ALICE, slack.dm_channel(ALICE), dm["ts"], DECLINE)
    wait_state(admin_bot, slack, alice_at, "open")
    dm_saying(slack, ADMIN, "alice@example.com says the API token 'jenkins_deploy' is not")
    assert finding(admin_bot, alice_at)["state_reason"].startswith("declined")
    # the DM lost its buttons; the form button, sent again, opens nothing
    answered = dm_saying(slack, ALICE, "no service account for now")
    assert answered["ts"] == dm["ts"] and not has_button(answered, FORM_BUTTON)
    slack.click(ALICE, slack.dm_channel(ALICE), dm["ts"], FORM_BUTTON, value=alice_at, force=True)
    said_to(slack, ALICE, "This offer is not open to you any more")
    assert trail(admin_bot) == [
        "finding_opened",
        "finding_opened",
        "finding_offered",
        "finding_open",
    ]


def test_dismiss_with_a_reason_and_a_re_run_keeps_it(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    (alice_at,) = seed(sandbox, ALICE_AT_ATLASSIAN)
    reply = discovered(slack)
    before = set(slack.views())
    slack.click(ADMIN, GENERAL, reply["ts"], f"{DISMISS}.0")
    modal = new_view(slack, ADMIN, before, "the dismiss modal")
    empty = slack.submit(ADMIN, modal["id"], {"dismiss_reason": {"dismiss_reason": "  "}})
    assert empty["body"]["errors"] == {"dismiss_reason": "Say why."}
    # Bob (no admin) forges a Dismiss: the modal opens, its submit is refused
    bobs, before = own_message(slack, BOB), set(slack.views())
    slack.click(BOB, GENERAL, bobs["ts"], f"{DISMISS}.0", value=alice_at, force=True)
    his = new_view(slack, BOB, before, "Bob's dismiss modal")
    refused = slack.submit(BOB, his["id"], {"dismiss_reason": {"dismiss_reason": "looks fine"}})
    assert refused["body"]["errors"] == {"dismiss_reason": "Only admins can dismiss a finding."}
    assert finding(admin_bot, alice_at)["state"] == "open"
    done = slack.submit(
        ADMIN, modal["id"], {"dismiss_reason": {"dismiss_reason": "Alice's own CLI, approved"}}
    )
    assert done["status"] == 200 and not (done.get("body") or {}).get("errors"), done
    dismissed = finding(admin_bot, alice_at)
    assert dismissed["state"] == "dismissed" and dismissed["state_by"] == ADMIN
    assert dismissed["state_reason"] == "Alice's own CLI, approved"

    again = ask(slack, ADMIN, "discover")
    assert "dismissed" in shown(again) and not has_button(again, OFFER)
    assert finding(admin_bot, alice_at)["state"] == "dismissed"
    listed = shown(ask(slack, ADMIN, "findings"))
    assert "1 findings: 1 dismissed." in listed
    assert "Only admins can list findings." in shown(ask(slack, BOB, "findings"))
    bad = slack.command(ADMIN, GENERAL, "findings closed")
    assert "closed is not a finding state" in json.dumps(bad["body"])


def test_a_refused_revoke_is_told_and_can_be_confirmed_again(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    """Atlassian answers the revoke with its SSO wall (403): no retry storm, the finding stays
    migrated, Carol is told why and asked again; her second confirmation revokes it."""
    alice_at, old = migrated(sandbox, slack, admin_bot)
    slack.click(ALICE, slack.dm_channel(ALICE), dm_with(slack, ALICE, CONFIRM)["ts"], CONFIRM)
    said_to(slack, ALICE, "revoked once an admin confirms too")
    sandbox.atlassian.add_fault("revoke", "html403")
    first = dm_with(slack, ADMIN, CONFIRM)
    slack.click(ADMIN, slack.dm_channel(ADMIN), first["ts"], CONFIRM)
    dm_saying(slack, ADMIN, "on alice@example.com's account could not be revoked")
    again = dm_with(slack, ADMIN, CONFIRM, after=first["ts"])
    assert finding(admin_bot, alice_at)["state"] == "migrated"
    assert old in sandbox.atlassian.directory.tokens
    assert "finding_revoke_failed" in trail(admin_bot)
    slack.click(ADMIN, slack.dm_channel(ADMIN), again["ts"], CONFIRM)
    wait_state(admin_bot, slack, alice_at, "human_token_revoked")
    assert sandbox.atlassian.directory.revoked == [old]
