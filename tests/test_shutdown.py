"""SIGTERM to `sabot serve` (a rolling deploy): it stops taking jobs, and the job in hand is
either finished within the grace period or handed back to the queue; a restart completes it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    approval_message,
    reveal_offer,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows
from tests.support.reliability import engine_of, record

PROVISION = "SELECT status, locked_by FROM job WHERE kind = 'provision'"


def provisioning_in_hand(slack: SlackSandbox, bot: BotProcess) -> None:
    """Submit, approve, and return once the provision job is running in `bot`."""
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    slack.wait_for(
        lambda: [j for j in rows(bot.database_url, PROVISION) if j["status"] == "running"],
        what="the provision job to be running",
    )


def terminate(bot: BotProcess) -> tuple[int, float]:
    """SIGTERM; uvicorn re-raises the signal after its graceful shutdown, so a clean stop of
    `serve` ends "killed by SIGTERM" (-15) after the log says it stopped cleanly."""
    started = time.monotonic()
    bot.process.send_signal(signal.SIGTERM)
    try:
        code = bot.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        bot.process.kill()
        raise
    return code, time.monotonic() - started


def finish_after_restart(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, log: Path
) -> BotProcess:
    sandbox.atlassian.answer_delay_seconds = 0
    bot = start_bot(sandbox, database_url, log)
    # A create cut off mid-call may still land: the restart looks for its account until that
    # call's answer could no longer come (ATLASSIAN_TIMEOUT_SECONDS, 15 s, and a margin).
    slack.click(ALICE, GENERAL, reveal_offer(slack, timeout=45)["ts"], "token_reveal")
    slack.wait_for(lambda: token_replies(slack), what="the token after the restart")
    return bot


def test_sigterm_lets_the_job_in_hand_finish_and_takes_no_more(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_bot(sandbox, database_url, tmp_path / "first.log")
    sandbox.atlassian.answer_delay_seconds = 0.5  # provisioning takes a few seconds
    provisioning_in_hand(slack, bot)
    code, took = terminate(bot)
    jobs = rows(database_url, "SELECT kind, status FROM job ORDER BY id")
    assert code in (0, -signal.SIGTERM)
    assert "sabot stopped cleanly" in bot.log()
    assert rows(database_url, PROVISION)[0]["status"] == "done"  # finished, not dropped
    # provisioning queued the "ready" notice; the stopping process did not take it
    assert {"kind": "notify_ready", "status": "queued"} in jobs
    assert "not finished at shutdown" not in bot.log()
    assert len(sandbox.atlassian.live_accounts()) == 1

    finish_after_restart(sandbox, slack, database_url, tmp_path / "second.log")
    accounts = len(sandbox.atlassian.live_accounts())
    record(
        "SIGTERM while a job runs (within the grace period)",
        "serve stopped mid-provisioning; job finishes; restart",
        runs=1,
        duplicates=accounts - 1,
        lost=int(not token_replies(slack)),
        engine=engine_of(database_url),
        note=f"stopped in {took:.1f} s",
    )
    assert accounts == 1


def test_sigterm_hands_back_a_job_that_outlasts_the_grace_period(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    grace = {"WORKER_SHUTDOWN_GRACE_SECONDS": "0.5", "JOB_LEASE_SECONDS": "120"}
    bot = start_bot(sandbox, database_url, tmp_path / "first.log", extra_env=grace)
    sandbox.atlassian.answer_delay_seconds = 1.5  # each Atlassian call outlasts the grace
    provisioning_in_hand(slack, bot)
    code, took = terminate(bot)
    [job] = rows(database_url, PROVISION)
    assert code in (0, -signal.SIGTERM)
    assert "sabot stopped cleanly" in bot.log()
    # released, not left "running" until its two-minute lease runs out
    assert job == {"status": "queued", "locked_by": None}
    assert "not finished at shutdown: released" in bot.log()

    started = time.monotonic()
    finish_after_restart(sandbox, slack, database_url, tmp_path / "second.log")
    accounts = len(sandbox.atlassian.live_accounts())
    record(
        "SIGTERM while a job runs (past the grace period)",
        "serve stopped mid-Atlassian call; job released; restart",
        runs=1,
        duplicates=accounts - 1,
        lost=int(not token_replies(slack)),
        engine=engine_of(database_url),
        note=f"stopped in {took:.1f} s; done {time.monotonic() - started:.1f} s after restart",
    )
    assert accounts == 1  # a create cut off mid-call is adopted, not repeated
