"""Unused credentials (issue 12, item 3), through the real server on both engines, shipped
settings: the daily idle check reads each token's last use at Atlassian, asks the owner about
an idle token (Keep / Revoke), proposes an idle account for deletion to its owner and the
admins, and an expiry warning for an unused token says so.

A day cannot be waited for: the stand-in is told when a token was last used (or made), and
the daily task's job is queued as the worker's daily tick queues it (an expiry warning's job
is made due the same way), so the bot's own worker runs it.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import col

from sandbox.bot_process import BotProcess
from sandbox.people import ALICE, CAROL, DAVE, GENERAL, ephemerals_to, has_button
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import Made, ask, make_account, shown, wait_message
from tests.support.databases import rows
from tests.support.lifecycle import World
from workflows.account import idle, reveal
from workflows.db import Database
from workflows.jobs import queue
from workflows.models import ApiToken, Job
from workflows.ports import ReplyTarget
from workflows.request import decisions, requests
from workflows.request.validation import RequestForm
from workflows.states import JobKind, JobStatus, Verdict

DAY = 86400.0
LONG_LIVED = RequestForm("ci-bot", "Runs the nightly CI jobs", ["jira"], ["read:jira-work"], "180")
KEEP, REVOKE = "idle_token_keep", "idle_token_revoke"


def days_ago(days: float) -> float:
    return time.time() - days * DAY


async def _in_database(url: str, work: Any) -> Any:
    db = Database(url)
    try:
        async with db.transaction() as session:
            return await work(session)
    finally:
        await db.dispose()


def run_daily_check(bot: BotProcess) -> None:
    """The idle check's day has come: its job is queued (as the worker's daily tick queues
    it), and the bot's worker runs it to the end."""

    async def queue_check(session: Any) -> int:
        queue.enqueue(session, JobKind.IDLE_CREDENTIALS, now=datetime.now(UTC))
        await session.flush()
        return int(
            (
                await session.execute(
                    select(col(Job.id))
                    .where(col(Job.kind) == JobKind.IDLE_CREDENTIALS)
                    .order_by(col(Job.id).desc())
                    .limit(1)
                )
            ).scalar_one()
        )

    job_id = asyncio.run(_in_database(bot.database_url, queue_check))

    def done() -> bool:
        [job] = rows(bot.database_url, f"SELECT status FROM job WHERE id = {job_id}")
        assert job["status"] in ("queued", "running", "done"), job
        return job["status"] == "done"

    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, "the idle check did not finish"
        time.sleep(0.1)
    time.sleep(0.5)  # the DMs it queued go out right after


def first_warnings_due_now(bot: BotProcess, count: int) -> None:
    """The day of the `count` earliest expiry warnings has come (for tokens made together,
    each one's first warning: 14 days before it expires)."""

    async def move(session: Any) -> None:
        first = (
            (
                await session.execute(
                    select(col(Job.id))
                    .where(
                        col(Job.kind) == JobKind.EXPIRY_WARNING, col(Job.status) == JobStatus.QUEUED
                    )
                    .order_by(col(Job.run_after))
                    .limit(count)
                )
            )
            .scalars()
            .all()
        )
        await session.execute(
            update(Job).where(col(Job.id).in_(first)).values(run_after=datetime.now(UTC))
        )

    asyncio.run(_in_database(bot.database_url, move))


def dms(slack: SlackSandbox, user: str, button: str, name: str) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.messages(slack.dm_channel(user))
        if has_button(m, button) and f"`{name}`" in shown(m)
    ]


def idle_dm(slack: SlackSandbox, user: str, button: str, name: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        found = dms(slack, user, button, name)
        return found[-1] if found else None

    return wait_message(slack, find, f"the idle DM about {name} to {user} with {button}")


def audit(bot: BotProcess, action: str) -> list[dict[str, Any]]:
    found = rows(
        bot.database_url,
        f"SELECT actor_id, request_id, detail FROM audit_event WHERE action = '{action}' "
        "ORDER BY id",
    )
    for row in found:
        if isinstance(row["detail"], str):
            row["detail"] = json.loads(row["detail"])
    return found


def token_row(bot: BotProcess, made: Made) -> dict[str, Any]:
    assert made.token is not None
    [row] = rows(
        bot.database_url,
        "SELECT id, state, last_used_at, use_checked_at, idle_kept_at FROM api_token "
        f"WHERE atlassian_token_id = '{made.token.id}'",
    )
    return row


def replaced_dm(slack: SlackSandbox, user: str, ts: str, text: str) -> dict[str, Any]:
    channel = slack.dm_channel(user)

    def find() -> dict[str, Any] | None:
        [message] = [m for m in slack.messages(channel) if m["ts"] == ts]
        return message if text in shown(message) else None

    return wait_message(slack, find, f"the DM {ts} to show {text!r}")


def test_idle_token_asks_its_owner_and_keep_is_remembered(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    idle = make_account(sandbox, slack, "idle-keep-bot")
    busy = make_account(sandbox, slack, "busy-bot")
    assert idle.token is not None and busy.token is not None
    sandbox.atlassian.use_token(idle.token.id, last_used_at=days_ago(40))
    sandbox.atlassian.use_token(busy.token.id, last_used_at=days_ago(1))

    run_daily_check(admin_bot)
    question = idle_dm(slack, ALICE, KEEP, "idle-keep-bot")
    assert has_button(question, REVOKE)
    assert "): unused for 40 days." in shown(question)
    assert dms(slack, ALICE, KEEP, "busy-bot") == []  # used yesterday: not asked
    assert token_row(admin_bot, busy)["last_used_at"] is not None  # its use was read, stored
    assert token_row(admin_bot, idle)["use_checked_at"] is not None

    slack.click(ALICE, slack.dm_channel(ALICE), question["ts"], KEEP)
    replaced_dm(slack, ALICE, question["ts"], "Kept the token")
    [kept] = audit(admin_bot, "idle_token_kept")
    assert kept["actor_id"] == ALICE and kept["detail"]["label"] == idle.token.label
    assert token_row(admin_bot, idle)["idle_kept_at"] is not None

    run_daily_check(admin_bot)  # the next day: still idle, but kept
    # The one question was replaced by the answer; a second would have come as a new DM.
    assert dms(slack, ALICE, KEEP, "idle-keep-bot") == []
    assert len(audit(admin_bot, "idle_token_flagged")) == 1
    assert not idle.token.revoked


def test_revoke_revokes_the_token_and_a_stranger_is_refused(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "idle-revoke-bot")
    assert made.token is not None
    sandbox.atlassian.use_token(made.token.id, last_used_at=days_ago(45))
    run_daily_check(admin_bot)
    question = idle_dm(slack, ALICE, REVOKE, "idle-revoke-bot")
    token_id = token_row(admin_bot, made)["id"]

    # Dave cannot see Alice's DM; he forges the Revoke click on a message he can see (the
    # answer to his own `list`).
    ask(slack, DAVE, "list")
    [mine] = [m for m in slack.messages(GENERAL, user=DAVE) if m["ephemeral"]]
    slack.click(DAVE, GENERAL, mine["ts"], REVOKE, value=str(token_id), force=True)
    slack.wait_for(
        lambda: ephemerals_to(slack, DAVE, "Only its owner or an admin can revoke"),
        what="the refusal",
    )
    assert not made.token.revoked and token_row(admin_bot, made)["state"] == "delivered"
    assert [r["actor_id"] for r in audit(admin_bot, "revoke_refused")] == [DAVE]

    slack.click(ALICE, slack.dm_channel(ALICE), question["ts"], REVOKE)
    replaced_dm(slack, ALICE, question["ts"], "Revoking the token")
    slack.wait_for(lambda: made.token is not None and made.token.revoked, what="the revoke")
    slack.wait_for(lambda: token_row(admin_bot, made)["state"] == "revoked", what="the row revoked")
    revokes = [
        c
        for c in sandbox.atlassian.calls
        if c["method"] == "DELETE" and c["path"].endswith(f"/api-tokens/{made.token.id}")
    ]
    assert len(revokes) == 1
    [asked] = audit(admin_bot, "idle_token_revoke_requested")
    assert asked["actor_id"] == ALICE
    slack.wait_for(lambda: audit(admin_bot, "token_revoked"), what="the revocation audited")
    [revoked] = audit(admin_bot, "token_revoked")
    assert revoked["actor_id"] == "sabot" and "idle" in revoked["detail"]["why"]
    assert sandbox.atlassian.live_accounts()  # the account stays


def test_a_never_used_token_is_asked_about_once_it_is_old(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    old = make_account(sandbox, slack, "never-used-bot")
    fresh = make_account(sandbox, slack, "fresh-bot")
    assert old.token is not None and fresh.token is not None
    sandbox.atlassian.use_token(old.token.id, last_used_at=None, created_at=days_ago(35))
    # The console route's shape (`lastAccess`) this time: the documented routes are gone.
    sandbox.atlassian.switch_off("access", "404")

    run_daily_check(admin_bot)
    question = idle_dm(slack, ALICE, KEEP, "never-used-bot")
    assert "): never used since it was made 35 days ago." in shown(question)
    assert dms(slack, ALICE, KEEP, "fresh-bot") == []  # never used, but made today
    assert token_row(admin_bot, old)["last_used_at"] is None
    listed = {
        c["path"]
        for c in sandbox.atlassian.calls
        if c["method"] == "GET" and c["path"].endswith("/manage/api-tokens")
    }
    assert listed == {f"/users/{m.account.atlassian_id}/manage/api-tokens" for m in (old, fresh)}


def test_an_account_idle_for_90_days_is_proposed_for_deletion(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "forgotten-bot")
    assert made.token is not None
    sandbox.atlassian.use_token(made.token.id, last_used_at=days_ago(100))

    run_daily_check(admin_bot)
    to_admin = idle_dm(slack, CAROL, "idle_account_delete", "forgotten-bot")
    assert has_button(to_admin, "idle_account_keep")
    assert "none of its 1 token(s) has been used for 100 days" in shown(to_admin)
    to_owner = idle_dm(slack, ALICE, "idle_account_keep", "forgotten-bot")
    assert not has_button(to_owner, "idle_account_delete")  # deleting is for admins
    assert "The admins were asked" in shown(to_owner)
    assert dms(slack, ALICE, KEEP, "forgotten-bot") == []  # the account question covers it
    [flagged] = audit(admin_bot, "idle_account_flagged")
    assert flagged["detail"]["idle_days"] == 100

    run_daily_check(admin_bot)  # waiting on an answer: not proposed twice
    assert len(dms(slack, CAROL, "idle_account_delete", "forgotten-bot")) == 1

    # Delete goes through the usual "are you sure?"
    slack.click(CAROL, slack.dm_channel(CAROL), to_admin["ts"], "idle_account_delete")

    def prompt() -> dict[str, Any] | None:
        found = [
            m
            for m in slack.messages(slack.dm_channel(CAROL), user=CAROL)
            if m["ephemeral"] and has_button(m, "confirm_delete")
        ]
        return found[-1] if found else None

    question = wait_message(slack, prompt, "the delete confirmation")
    assert "Delete `forgotten-bot` (SA-1, owner <@U0ALICE>, active) at Atlassian?" in shown(
        question
    )
    slack.click(CAROL, slack.dm_channel(CAROL), question["ts"], "confirm_delete")
    slack.wait_for(lambda: made.account.status == "deleted", what="deleted at Atlassian")
    assert made.token.revoked


def test_the_owner_keeps_an_idle_account(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "still-needed-bot")
    assert made.token is not None
    sandbox.atlassian.use_token(made.token.id, last_used_at=None, created_at=days_ago(95))
    run_daily_check(admin_bot)
    to_owner = idle_dm(slack, ALICE, "idle_account_keep", "still-needed-bot")
    slack.click(ALICE, slack.dm_channel(ALICE), to_owner["ts"], "idle_account_keep")
    replaced_dm(slack, ALICE, to_owner["ts"], "Kept `still-needed-bot`")
    [kept] = audit(admin_bot, "idle_account_kept")
    assert kept["actor_id"] == ALICE

    run_daily_check(admin_bot)  # kept: neither proposed again nor asked per token
    assert len(audit(admin_bot, "idle_account_flagged")) == 1
    assert audit(admin_bot, "idle_token_flagged") == []
    assert made.account.status == "active" and not made.token.revoked


def test_the_expiry_warning_of_an_unused_token_says_so(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    unused = make_account(sandbox, slack, "lapse-bot")
    used = make_account(sandbox, slack, "in-use-bot")
    assert unused.token is not None and used.token is not None
    sandbox.atlassian.use_token(unused.token.id, last_used_at=days_ago(120))
    sandbox.atlassian.use_token(used.token.id, last_used_at=days_ago(2))

    first_warnings_due_now(admin_bot, 2)
    lapse = shown(idle_dm(slack, ALICE, "token_rotate", "lapse-bot"))
    in_use = shown(idle_dm(slack, ALICE, "token_rotate", "in-use-bot"))
    assert "expires in 14 days" in lapse and "Unused for 120 days: let it lapse?" in lapse
    assert "expires in 14 days" in in_use and "lapse" not in in_use and "unused" not in in_use
    slack.wait_for(lambda: len(audit(admin_bot, "expiry_warning_sent")) == 2, what="audited")
    warned = audit(admin_bot, "expiry_warning_sent")
    assert sorted(str(w["detail"].get("unused_days")) for w in warned) == ["120", "None"]


# -- over weeks, in-process with a clock (the same domain code, time moved instead of slept) ----


async def test_a_kept_token_is_asked_about_again_after_another_n_days(
    lifecycle_world: World,
) -> None:
    world = lifecycle_world

    request_id = await active_with_token(world, LONG_LIVED)
    [token] = world.atlassian.tokens
    token.last_used_at = (world.clock.now - timedelta(days=40)).timestamp()

    async def daily_check() -> list[Any]:
        async with world.runtime.db.transaction() as session:
            queue.enqueue(session, JobKind.IDLE_CREDENTIALS, now=world.clock())
        await world.run()
        return [what for kind, what in world.notifier.said if kind == "idle_token"]

    [(label, use)] = await daily_check()
    assert use.idle_days == 40 and not use.never_used
    assert await daily_check() == [(label, use)]  # asked once, not every day
    async with world.runtime.db.reading() as session:
        token_id = (await session.execute(select(col(ApiToken.id)))).scalar_one()
    await idle.keep_token(world.runtime, token_id, "U0ALICE")
    world.clock.advance(days=29, hours=23)
    assert len(await daily_check()) == 1  # kept: not asked within another 30 days
    world.clock.advance(hours=2)
    asked = await daily_check()
    assert len(asked) == 2 and asked[1][1].idle_days == 70
    assert request_id == 1


async def active_with_token(w: World, form: RequestForm) -> int:
    request = await requests.submit(w.runtime, "U0ALICE", form, "C0GENERAL")
    await w.run()
    assert request.id is not None
    await decisions.decide(w.runtime, request.id, "U0BOB", Verdict.APPROVE)
    await w.run()
    await reveal.request_reveal(w.runtime, request.id, ReplyTarget("U0ALICE", "C0GENERAL", None))
    await w.run()
    assert len(w.live_tokens()) == 1
    return request.id
