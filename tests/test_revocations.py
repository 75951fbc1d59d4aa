"""What an admin does sticks, and a live token exists only in its owner's hands (issue 10,
items 1-7), through the real server on both engines, with the shipped settings.

- A revoke during a slow, rate-limited mint leaves no live token, and the database agrees.
- An admin's revoke is undone only by an admin, and the approvers hear of it.
- `rotate` decides on the account as it is when it acts, not as it was read a moment before.
- Every new token meets today's policy (lifetime, scopes, who may hold one).
- An approval stops counting once its approver is no longer one.
- A Reassign button works only while the account is orphaned; reassigning is announced.
- A name two accounts share is refused; `SA-n` names one, and a failed request's leftover
  account can be deleted.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    DAVE,
    GENERAL,
    new_view,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import (
    Made,
    answers,
    ask,
    ephemeral_with,
    form,
    make_account,
    new_token_offer,
    posted_with,
    ready_offer,
    shown,
    tokens_of,
)
from tests.support.databases import rows
from tests.support.reliability import engine_of, record


def account_row(bot: BotProcess, name: str) -> dict[str, Any]:
    [row] = rows(
        bot.database_url,
        "SELECT r.id, r.status, a.reveal_status, a.owner_id, a.revoked_by, a.revoked_by_admin "
        "FROM service_account_request r JOIN service_account a ON a.request_id = r.id "
        f"WHERE r.name = '{name}' AND r.status <> 'failed'",
    )
    return row


def token_states(bot: BotProcess, request_id: int) -> list[str]:
    found = rows(
        bot.database_url,
        "SELECT t.state FROM api_token t JOIN service_account a ON a.id = t.account_id "
        f"WHERE a.request_id = {request_id} ORDER BY t.id",
    )
    return [str(r["state"]) for r in found]


def replies_to(slack: SlackSandbox, user: str) -> list[str]:
    """What the bot answered `user`'s clicks and commands (ephemeral, via response_url)."""
    return [
        shown(c["args"])
        for c in slack.calls("response_url")
        if c["args"].get("user") == user and c.get("ok")
    ]


def confirm(slack: SlackSandbox, admin: str, action: str, text: str) -> None:
    """`revoke NAME` or `delete NAME`, then the confirm button it shows."""
    ask(slack, admin, text)
    prompt = ephemeral_with(slack, admin, f"confirm_{action}")
    slack.click(admin, GENERAL, prompt["ts"], f"confirm_{action}")


def approvers_posts(slack: SlackSandbox, text: str) -> list[str]:
    return [shown(m) for m in slack.messages(APPROVALS) if not m["thread_ts"] and text in shown(m)]


# -- 1. a revoke that overlaps a Reveal in flight ------------------------------------------------

# Seconds after the Reveal click at which the admin revokes: during the two 429s, during the
# slow mint (twice), and after the token was shown.
REVOKE_AFTER = (0.3, 2.5, 4.0, 8.0)


def test_revoke_during_a_slow_rate_limited_mint_leaves_no_live_token(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = [
        make_account(sandbox, slack, f"race-bot-{n}", revealed=False)
        for n in range(len(REVOKE_AFTER))
    ]
    outcomes = []
    for account, delay in zip(made, REVOKE_AFTER, strict=True):
        # The mint is rate-limited twice (429 with X-RateLimit-Reset), then takes 3 s.
        sandbox.atlassian.add_fault("mint", "429", count=2)
        sandbox.atlassian.add_fault("mint", "slow", seconds=3.0)
        offer = ready_offer(slack, ALICE, account.name)
        told_before = len(replies_to(slack, ALICE))
        slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
        time.sleep(delay)
        confirm(slack, CAROL, "revoke", f"revoke {account.name}")
        outcomes.append(settle_after_revoke(sandbox, slack, admin_bot, account, told_before))
    live = sum(o["live"] for o in outcomes)
    disagree = sum(o["disagree"] for o in outcomes)
    record(
        "Revoke during a slow, rate-limited Reveal",
        "Reveal clicked; the mint answers 429 twice, then takes 3 s; an admin revokes "
        f"{', '.join(f'{d:g}' for d in REVOKE_AFTER)} s after the click",
        runs=len(outcomes),
        duplicates=live,
        lost=disagree,
        engine=engine_of(admin_bot.database_url),
        note=f"{live} live tokens at Atlassian on revoked accounts; {disagree} token rows not "
        "revoked; the owner was told each time: " + "; ".join(o["told"][:90] for o in outcomes),
    )
    assert live == 0 and disagree == 0, outcomes
    overtaken = [o for o in outcomes if not o["shown"]]
    assert overtaken, "at least one revoke landed while the mint was in flight"
    for outcome in overtaken:
        assert "revoked now" in outcome["told"] and "never shown" in outcome["told"], outcome


def settle_after_revoke(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess, made: Made, told_before: int
) -> dict[str, Any]:
    """Wait until the revoke and the reveal have both run their course; what is left."""
    request_id = int(account_row(bot, made.name)["id"])

    def settled() -> bool:
        jobs = rows(
            bot.database_url,
            "SELECT status FROM job WHERE kind IN ('reveal', 'revoke_all') "
            f"AND request_id = {request_id}",
        )
        states = token_states(bot, request_id)
        told = replies_to(slack, ALICE)[told_before:]
        return (
            len(jobs) == 2
            and all(j["status"] == "done" for j in jobs)
            and bool(states)
            and not sandbox.atlassian.faults
            and bool(told)
        )

    slack.wait_for(settled, timeout=60, what=f"the reveal and the revoke of {made.name} done")
    told = replies_to(slack, ALICE)[told_before:]
    row = account_row(bot, made.name)
    states = token_states(bot, request_id)
    return {
        "name": made.name,
        "live": len([t for t in tokens_of(sandbox, made) if not t.revoked]),
        "disagree": len([s for s in states if s not in ("revoked", "failed")])
        + int(row["status"] != "revoked" or row["reveal_status"] != "locked"),
        "shown": any(made.name in json.dumps(c) for c in token_replies(slack)),
        "told": told[-1],
        "states": states,
    }


# -- 2. an admin's revoke is the admin's to undo -----------------------------------------------


def test_an_admins_revoke_is_undone_only_by_an_admin_and_announced(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "admin-revoked-bot")
    confirm(slack, CAROL, "revoke", "revoke admin-revoked-bot")
    slack.wait_for(
        lambda: all(t.revoked for t in tokens_of(sandbox, made)), what="the tokens revoked"
    )
    refused = shown(ask(slack, ALICE, "token admin-revoked-bot"))
    still = account_row(admin_bot, made.name)
    offers_after_refusal = len(
        [m for m in slack.messages(slack.dm_channel(ALICE)) if "A new token for" in shown(m)]
    )
    # The admin restores it: the new token goes to the owner, and the approvers hear of it.
    restored = shown(ask(slack, CAROL, "token admin-revoked-bot"))
    offer = new_token_offer(slack, ALICE, made.name)
    announced = slack.wait_for(
        lambda: approvers_posts(slack, "restored `admin-revoked-bot`"),
        what="the approvers told of the restore",
    )
    actions = [r["action"] for r in rows(admin_bot.database_url, "SELECT action FROM audit_event")]
    # The owner's own revoke stays the owner's to undo, and is not announced.
    confirm(slack, ALICE, "revoke", "revoke admin-revoked-bot")
    slack.wait_for(
        lambda: account_row(admin_bot, made.name)["status"] == "revoked", what="revoked again"
    )
    own = shown(ask(slack, ALICE, "token admin-revoked-bot"))
    record(
        "An admin's revoke undone by the owner",
        "admin revokes; the owner runs `token NAME`; then the admin does; then the owner "
        "revokes and restores their own",
        runs=2,
        duplicates=0,
        lost=int(still["status"] != "revoked") + offers_after_refusal,
        engine=engine_of(admin_bot.database_url),
        note=f"the owner was told: {refused}",
    )
    assert "revoked by an admin, <@U0CAROL>" in refused and "only an admin" in refused
    assert still["status"] == "revoked" and still["reveal_status"] == "locked"
    assert offers_after_refusal == 0
    assert "went to its owner" in restored and offer is not None
    assert "<@U0CAROL> restored `admin-revoked-bot`" in announced[0]
    assert actions.count("account_reactivated") == 1
    assert "is ready to reveal" in own
    assert len(approvers_posts(slack, "restored `admin-revoked-bot`")) == 1


# -- 3. rotate decides on the account as it is when it acts -----------------------------------

ADMIN_GROUP_POLICY = """\
approval_channel: C0APPROVALS
approvers:
  default:
    users: [U0BOB]
admins:
  groups: [S0ADMINS]
"""


def test_rotate_acts_on_the_status_of_the_moment_not_an_earlier_read(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    """The owner's rotate reads the account, then waits on Slack (who is an admin: the user
    group is asked); an admin's revoke lands meanwhile. The rotate must then see the revoke."""
    policy = tmp_path / "policy.yml"
    policy.write_text(ADMIN_GROUP_POLICY)
    slack.set_usergroup("S0ADMINS", [CAROL])
    bot = start_bot(sandbox, database_url, tmp_path / "sabot.log", {"SABOT_POLICY": str(policy)})
    made = make_account(sandbox, slack, "rotate-race-bot")
    slack.fault("usergroups.users.list", delay=3.0)  # the rotate's admin check is slow
    rotating = slack.command(ALICE, GENERAL, "rotate rotate-race-bot")
    time.sleep(0.3)
    confirm(slack, CAROL, "revoke", "revoke rotate-race-bot")
    slack.wait_for(lambda: account_row(bot, made.name)["status"] == "revoked", what="revoked")
    answer = slack.wait_for(lambda: answers(slack, rotating), timeout=15, what="rotate answered")
    slack.wait_for(
        lambda: all(t.revoked for t in tokens_of(sandbox, made)), what="the tokens revoked"
    )
    time.sleep(1.0)  # an offer the rotate wrongly queued would be out by now
    row = account_row(bot, made.name)
    offers = [m for m in slack.messages(slack.dm_channel(ALICE)) if "A new token for" in shown(m)]
    wrong = int(row["reveal_status"] != "locked") + len(offers)
    record(
        "rotate racing a revoke",
        "the owner's rotate is held 3 s on Slack's user-group answer; an admin revokes meanwhile",
        runs=1,
        duplicates=len(offers),
        lost=wrong,
        engine=engine_of(database_url),
        note=f"ended {row['status']} with Reveal {row['reveal_status']}; the owner was told: "
        f"{shown(answer[0])}",
    )
    assert row["status"] == "revoked" and row["reveal_status"] == "locked"
    assert offers == []
    assert "revoked by an admin" in shown(answer[0])
    bot.stop()


# -- 4. every new token meets today's policy ---------------------------------------------------

POLICY = """\
approval_channel: C0APPROVALS
approvers:
  default:
    users: [U0BOB]
admins:
  users: [U0CAROL]
{extra}"""
LONGER = "products:\n  jira: {}\n"
SHORTER = "products:\n  jira:\n    max_lifetime_days: 30\n"
NARROWER = "products:\n  jira:\n    scopes: [read:jira-work]\n"
FEWER = "requesters:\n  users: [U0BOB]\n"


def restart(
    bot: BotProcess | None, sandbox: Sandbox, database_url: str, tmp_path: Path, extra: str
) -> BotProcess:
    """Stop the bot (if any) and start it again with the policy tightened as `extra` says."""
    if bot is not None:
        bot.stop()
    path = tmp_path / f"policy-{abs(hash(extra))}.yml"
    path.write_text(POLICY.format(extra=extra))
    log = tmp_path / f"sabot-{abs(hash(extra))}.log"
    return start_bot(sandbox, database_url, log, {"SABOT_POLICY": str(path)})


def test_a_tightened_policy_reaches_every_new_token(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = restart(None, sandbox, database_url, tmp_path, LONGER)
    made = make_account(sandbox, slack, "policy-bot", lifetime=90, revealed=False)
    offer = ready_offer(slack, ALICE, made.name)
    # Tokens may live at most 30 days now: the first token, approved for 90, gets 30.
    bot = restart(bot, sandbox, database_url, tmp_path, SHORTER)
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    slack.wait_for(
        lambda: any(made.name in json.dumps(c) for c in token_replies(slack)),
        what="the token shown",  # Reveal is closed to a rotate until it is
    )
    [token] = tokens_of(sandbox, made)
    days = (datetime.fromisoformat(token.expiry) - datetime.now(UTC)) / timedelta(days=1)
    # An admin offers a new one before write scopes are withdrawn...
    assert "went to its owner" in shown(ask(slack, CAROL, "rotate policy-bot"))
    rotated = new_token_offer(slack, ALICE, made.name)
    bot = restart(bot, sandbox, database_url, tmp_path, NARROWER)
    mints_before = len(sandbox.atlassian.tokens)
    before = len(replies_to(slack, ALICE))
    slack.click(ALICE, slack.dm_channel(ALICE), rotated["ts"], "token_reveal")
    clicked = slack.wait_for(lambda: replies_to(slack, ALICE)[before:], what="the refusal")[0]
    asked = shown(ask(slack, ALICE, "token policy-bot"))
    # ... and the owner is no longer among those who may hold accounts.
    bot = restart(bot, sandbox, database_url, tmp_path, FEWER)
    fewer = shown(ask(slack, ALICE, "token policy-bot"))
    minted_after = len(sandbox.atlassian.tokens) - mints_before
    record(
        "A tightened policy and the tokens of existing accounts",
        "an account approved for 90 days with write:jira-work; the policy then caps tokens "
        "at 30 days, withdraws write:jira-work, then leaves its owner out (restarts)",
        runs=4,
        duplicates=minted_after,
        lost=int(days > 30.01),
        engine=engine_of(database_url),
        note=f"first token {days:.1f} days; Reveal told: {clicked}; token told: {asked}; "
        f"after the owner was left out: {fewer}",
    )
    assert 29.9 < days <= 30.01
    assert minted_after == 0
    for refusal in (clicked, asked):
        assert "no longer allows the scope write:jira-work" in refusal, refusal
        assert "policy-bot" in refusal
    assert "no longer lets <@U0ALICE> hold service accounts" in fewer
    bot.stop()


# -- 5. an approval stops counting when its approver is no longer one ---------------------------

GROUP_QUORUM = """\
approval_channel: C0APPROVALS
approvers:
  default:
    groups: [S0APPROVERS]
quorum:
  default: 2
"""


def test_an_approval_of_someone_removed_from_the_approvers_stops_counting(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(GROUP_QUORUM)
    slack.set_usergroup("S0APPROVERS", [BOB, CAROL, DAVE])
    slack.set_channel(APPROVALS, members=[BOB, CAROL, DAVE, "U0SABOT"])
    bot = start_bot(sandbox, database_url, tmp_path / "sabot.log", {"SABOT_POLICY": str(policy)})
    submit_request(slack, form("quorum-bot", ("jira",), 30, "Publishes release notes"))
    message = posted_with(slack, APPROVALS, "quorum-bot", "request_approve")
    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    slack.wait_for(lambda: "1 of 2" in shown(current(slack, message)), what="1 of 2")
    slack.set_usergroup("S0APPROVERS", [CAROL, DAVE])  # Bob is no longer an approver
    slack.click(CAROL, APPROVALS, message["ts"], "request_approve")
    card = slack.wait_for(
        lambda: (text := shown(current(slack, message))) and "not counted" in text and text,
        what="the card to say Bob's approval no longer counts",
    )
    status_then = rows(bot.database_url, "SELECT status FROM service_account_request")[0]
    accounts_then = len(sandbox.atlassian.live_accounts())
    slack.click(DAVE, APPROVALS, message["ts"], "request_approve")
    slack.wait_for(lambda: sandbox.atlassian.live_accounts(), what="the account made")
    actions = [r["action"] for r in rows(bot.database_url, "SELECT action FROM audit_event")]
    record(
        "Quorum after an approver is removed from the group",
        "quorum 2 of a user group; one approves, is removed from the group, another approves",
        runs=1,
        duplicates=0,
        lost=accounts_then + int(status_then["status"] != "pending"),
        engine=engine_of(database_url),
        note=f"after the second approval: {status_then['status']}, {accounts_then} account; "
        "approved at the third",
    )
    assert status_then["status"] == "pending" and accounts_then == 0
    assert "1 of 2 approvals (<@U0CAROL>)" in card
    assert "not counted, no longer approvers: <@U0BOB>" in card
    assert actions.count("approval_discounted") == 1
    bot.stop()


def current(slack: SlackSandbox, message: dict[str, Any]) -> dict[str, Any]:
    [now] = [m for m in slack.messages(APPROVALS) if m["ts"] == message["ts"]]
    return now


# -- 6. Reassign only while orphaned, and announced ---------------------------------------------


def test_reassign_works_only_while_orphaned_and_is_announced(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "orphan-bot")
    slack.set_user(ALICE, deleted=True)
    slack.event({"type": "user_change", "user": {"id": ALICE, "deleted": True}}, "Ev0ALICEGONE")
    carol = slack.dm_channel(CAROL)
    alert = slack.wait_for(
        lambda: [m for m in slack.messages(carol) if "has left" in shown(m)],
        timeout=15,
        what="the orphan alert",
    )[0]
    reassigned = reassign(slack, alert, DAVE)
    announced = slack.wait_for(
        lambda: approvers_posts(slack, "reassigned `orphan-bot`"), what="announced"
    )
    # The same button, clicked again later: out of date.
    again = reassign(slack, alert, BOB)
    row = account_row(admin_bot, made.name)
    record(
        "An old Reassign button",
        "an orphan alert's Reassign used once, then clicked again",
        runs=2,
        duplicates=int(row["owner_id"] != DAVE),
        lost=0,
        engine=engine_of(admin_bot.database_url),
        note=f"the second was refused: {again}",
    )
    assert reassigned == "" and row["owner_id"] == DAVE
    assert "<@U0CAROL> reassigned `orphan-bot`" in announced[0] and "<@U0DAVE>" in announced[0]
    assert "not orphaned now" in again and "out of date" in again


def reassign(slack: SlackSandbox, alert: dict[str, Any], owner: str) -> str:
    """Click Reassign on the alert and submit `owner`; the modal's error, or "" if it closed."""
    before = set(slack.views())
    slack.click(CAROL, alert["channel"], alert["ts"], "owner_reassign")
    modal = new_view(slack, CAROL, before, "the reassign modal")
    answer = slack.submit(CAROL, modal["id"], {"new_owner": {"new_owner": owner}})
    body = answer.get("body") or {}
    return str((body.get("errors") or {}).get("new_owner", "")) if isinstance(body, dict) else ""


# -- 7. a name two accounts share ---------------------------------------------------------------


def test_a_shared_name_is_refused_and_sa_n_reaches_a_failed_requests_account(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    # Alice's request fails after its account was made (the licence quota is full at grant),
    # which frees the name; Bob then gets an account of the same name.
    sandbox.atlassian.add_fault("grant", "409")
    submit_request(slack, form("shared-bot", ("jira",), 30, "Syncs the release board"))
    first = posted_with(slack, APPROVALS, "shared-bot", "request_approve")
    slack.click(BOB, APPROVALS, first["ts"], "request_approve")
    slack.wait_for(
        lambda: (
            rows(admin_bot.database_url, "SELECT status FROM service_account_request")[0]["status"]
            == "failed"
        ),
        what="the first request failed",
    )
    [leftover] = sandbox.atlassian.live_accounts()
    submit_request(slack, form("shared-bot", ("jira",), 30, "Bob's release sync"), user=BOB)
    second = posted_with(slack, APPROVALS, "Service account request SA-2", "request_approve")
    slack.click(CAROL, APPROVALS, second["ts"], "request_approve")
    ready_offer(slack, BOB, "shared-bot")
    [bobs] = [a for a in sandbox.atlassian.live_accounts() if a.id != leftover.id]
    ambiguous = shown(ask(slack, CAROL, "delete shared-bot"))
    confirm(slack, CAROL, "delete", "delete SA-1")
    slack.wait_for(lambda: leftover.status == "deleted", what="the leftover account deleted")
    shown_bob = shown(ask(slack, CAROL, "show SA-2"))
    record(
        "A name shared by a failed request's account and a live one",
        "request 1 fails after its account was made; request 2 takes the name; "
        "`delete NAME`, then `delete SA-1`",
        runs=2,
        duplicates=0,
        lost=int(bobs.status != "active") + int(leftover.status != "deleted"),
        engine=engine_of(admin_bot.database_url),
        note=f"`delete shared-bot` answered: {ambiguous}",
    )
    assert "2 accounts are named `shared-bot`" in ambiguous
    assert "SA-1 (failed, owner <@U0ALICE>)" in ambiguous
    assert "SA-2 (active, owner <@U0BOB>)" in ambiguous
    assert bobs.status == "active" and leftover.status == "deleted"
    assert "Bob's release sync" in shown_bob


def test_a_failed_requests_unconfirmed_account_is_found_and_deleted(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    """The create took effect but its answer was lost, and Atlassian's list could not be read
    on any try: the request fails saying an account may exist. Once the list answers again,
    `delete SA-1` finds that account by the request's marker and deletes it."""
    wait_reconciled(admin_bot)
    sandbox.atlassian.add_fault("create", "reset", after=True)
    sandbox.atlassian.add_fault("list", "500", count=1000)
    submit_request(slack, form("unknown-bot", ("jira",), 30, "Syncs the release board"))
    first = posted_with(slack, APPROVALS, "unknown-bot", "request_approve")
    slack.click(BOB, APPROVALS, first["ts"], "request_approve")
    slack.wait_for(
        lambda: (
            rows(admin_bot.database_url, "SELECT status FROM service_account_request")[0]["status"]
            == "failed"
        ),
        timeout=120,
        what="the request failed while the list could not be read",
    )
    [reason] = rows(admin_bot.database_url, "SELECT status_reason FROM service_account_request")
    [made] = sandbox.atlassian.live_accounts()  # made at Atlassian, unknown to the database
    sandbox.atlassian.faults.clear()
    confirm(slack, CAROL, "delete", "delete SA-1")
    slack.wait_for(lambda: made.status == "deleted", timeout=30, what="the account deleted")
    [row] = rows(admin_bot.database_url, "SELECT atlassian_account_id FROM service_account")
    record(
        "A failed request's account that Atlassian never confirmed",
        "create answered with a reset after it took effect; every list answers 500 until the "
        "request fails; then `delete SA-1`",
        runs=1,
        duplicates=len(sandbox.atlassian.live_accounts()),
        lost=int(made.status != "deleted"),
        engine=engine_of(admin_bot.database_url),
        note=f"failed with: {reason['status_reason']}",
    )
    assert made.status == "deleted" and row["atlassian_account_id"] == made.atlassian_id
    assert sandbox.atlassian.live_accounts() == []


def wait_reconciled(bot: BotProcess) -> None:
    """The reconcile due at start-up lists the accounts: let it pass before faults are queued."""
    slack_wait = time.monotonic() + 15
    while not rows(
        bot.database_url, "SELECT id FROM audit_event WHERE action = 'reconcile_checked'"
    ):
        assert time.monotonic() < slack_wait, "the start-up reconcile did not run"
        time.sleep(0.05)
