"""SIGKILL right after each saga step, then a restart: one account, no live stray token, and
the requester gets a working token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.runner import Sandbox, free_port
from sandbox.slack_client import SlackSandbox
from tests.conftest import bot_environment, start_bot
from tests.test_end_to_end import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    approval_message,
    reveal_offer,
    submit_request,
    token_replies,
)

ROOT = Path(__file__).resolve().parent.parent
RESTART = {"JOB_LEASE_SECONDS": "1"}  # a dead worker's job is taken again after a second


def crashing_bot(
    sandbox: Sandbox, database_url: str, tmp_path: Path, target: str
) -> subprocess.Popen[bytes]:
    port = free_port()
    env = bot_environment(sandbox, database_url, {**RESTART, "PYTHONPATH": str(ROOT)})
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_serve", target, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "crash.log").open("wb"),
        stderr=subprocess.STDOUT,
    )

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                sandbox.slack.bot_url = f"http://127.0.0.1:{port}"
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError((tmp_path / "crash.log").read_text())


def live_tokens(sandbox: Sandbox) -> list[str]:
    return [t.value for t in sandbox.atlassian.tokens if not t.revoked]


@pytest.mark.parametrize(
    "target",
    [
        "workflows.provisioning:_record_created",  # account created and recorded
        "workflows.provisioning:_ensure_granted",  # product access granted
    ],
)
def test_crash_during_provisioning(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path, target: str
) -> None:
    crashing = crashing_bot(sandbox, database_url, tmp_path, target)
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    assert crashing.wait(timeout=30) == -9  # killed at that step
    bot = start_bot(sandbox, database_url, tmp_path / "after.log", extra_env=RESTART)
    try:
        offer = reveal_offer(slack)
        assert len(sandbox.atlassian.live_accounts()) == 1
        slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
        slack.wait_for(lambda: token_replies(slack), what="the token after the restart")
        assert len(live_tokens(sandbox)) == 1
    finally:
        bot.stop()


@pytest.mark.parametrize(
    "target",
    [
        "workflows.reveal:_set_token",  # minted, not delivered
        "bot.notifier:SlackNotifier.deliver_token",  # delivered, not yet recorded
    ],
)
def test_crash_during_reveal(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path, target: str
) -> None:
    crashing = crashing_bot(sandbox, database_url, tmp_path, target)
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    offer = reveal_offer(slack)
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    assert crashing.wait(timeout=30) == -9
    bot = start_bot(sandbox, database_url, tmp_path / "after.log", extra_env=RESTART)
    try:
        # The restarted worker revokes the token it cannot vouch for and delivers a new one.
        slack.wait_for(
            lambda: len(sandbox.atlassian.tokens) == 2 and len(live_tokens(sandbox)) == 1,
            what="a fresh token, the old revoked",
        )
        [live] = live_tokens(sandbox)
        replies = slack.wait_for(
            lambda: [r for r in token_replies(slack) if live in json.dumps(r)],
            what="the live token sent",
        )
        assert replies[0]["args"]["user"] == ALICE
        assert len(sandbox.atlassian.live_accounts()) == 1
    finally:
        bot.stop()
