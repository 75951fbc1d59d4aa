"""SIGKILL right after each saga step, then a restart: one account, no live stray token, and
the requester gets a working token. With the shipped settings (lease, retries, poll), the
restarted process takes up the dead one's job within 30 s, and a click meanwhile is told the
step is under way."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.bot_process import bot_environment, start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    GENERAL,
    approval_message,
    has_button,
    reveal_offer,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox, free_port
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows
from tests.support.reliability import engine_of, record

ROOT = Path(__file__).resolve().parent.parent
RESUMED_WITHIN = 30.0  # seconds from the restart to the dead process's job done again


def crashing_bot(
    sandbox: Sandbox, database_url: str, tmp_path: Path, target: str
) -> subprocess.Popen[bytes]:
    port = free_port()
    env = bot_environment(sandbox, database_url, {"PYTHONPATH": str(ROOT)})
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_serve", target, "serve", "--port", str(port)],
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


STEPS = {  # the function the process dies right after -> the saga step, as the report says
    "workflows.account.provisioning:_record_created": "account created",
    "workflows.account.provisioning:_ensure_granted": "access granted",
    "workflows.account.reveal:_record_minted": "Reveal clicked, token minted",
    "bot.slack.notifier:SlackNotifier.deliver_token": "token delivered",
}


def eventually(slack: SlackSandbox, find: Callable[[], Any], what: str) -> Any:
    """What `find` returns once it is truthy, or None after the wait: a miss is measured (as
    data lost), not raised, so the outcome is recorded before the test asserts on it."""
    try:
        return slack.wait_for(find, timeout=RESUMED_WITHIN + 15, what=what)
    except AssertionError:
        return None


def told_in_progress(
    slack: SlackSandbox, user: str, channel: str, message: dict[str, Any], action: str
) -> str:
    """Click `action` on `message` (as first shown) while the dead process's step waits to be
    taken up: the answer the clicker gets."""
    before = len(slack.calls("response_url"))
    [value] = [
        e["value"]
        for b in message["blocks"]
        for e in b.get("elements", [])
        if isinstance(e, dict) and e.get("action_id") == action
    ]
    slack.click(user, channel, message["ts"], action, value=value, force=True)
    [reply] = slack.wait_for(
        lambda: [c for c in slack.calls("response_url")[before:] if c["args"].get("user") == user],
        what=f"the answer to {action} while the step is under way",
    )
    return str(reply["args"].get("text"))


def offers(slack: SlackSandbox) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.messages(GENERAL, user=ALICE)
        if m["ephemeral"] and has_button(m, "token_reveal")
    ]


def deliveries_of(slack: SlackSandbox, token: str) -> int:
    """Replies that reached Slack carrying `token` (a response_url post or an ephemeral)."""
    return sum(
        1
        for c in slack.calls()
        if c["method"] in ("response_url", "chat.postEphemeral")
        and c.get("ok")
        and token in json.dumps(c)
    )


def measure_and_record(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, target: str, resumed: float
) -> dict[str, int]:
    """Count, at the stand-ins and in the database, what the restart left; record it."""
    live = live_tokens(sandbox)
    delivered = {t: deliveries_of(slack, t) for t in live}
    statuses = [
        r["status"] for r in rows(database_url, "SELECT status FROM service_account_request")
    ]
    accounts = len(sandbox.atlassian.live_accounts())
    found = {
        "accounts": accounts,
        "tokens": len(sandbox.atlassian.tokens),
        "live tokens": len(live),
        "live tokens delivered": sum(1 for n in delivered.values() if n),
        # a second account, a stray live token, a live token sent twice
        "duplicates": max(0, accounts - 1)
        + max(0, len(live) - 1)
        + sum(max(0, n - 1) for n in delivered.values()),
        # the request did not end active with one working token in the requester's hands
        "lost": int(statuses != ["active"] or accounts < 1 or not any(delivered.values())),
    }
    record(
        f"SIGKILL right after: {STEPS[target]}",
        f"`sabot serve` killed (SIGKILL) when `{target.split(':')[1]}` returns, then started "
        "again on the same database",
        engine=engine_of(database_url),
        runs=1,
        duplicates=found["duplicates"],
        lost=found["lost"],
        note=f"{found['accounts']} live account(s); {found['tokens']} token(s) minted, "
        f"{found['live tokens']} live, {found['live tokens delivered']} of them delivered; "
        f"request {', '.join(statuses) or 'missing'}; taken up {resumed:.1f} s after the "
        "restart (shipped lease)",
    )
    return found


@pytest.mark.parametrize(
    "target",
    [
        "workflows.account.provisioning:_record_created",  # account created and recorded
        "workflows.account.provisioning:_ensure_granted",  # product access granted
    ],
)
def test_crash_during_provisioning(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path, target: str
) -> None:
    crashing = crashing_bot(sandbox, database_url, tmp_path, target)
    submit_request(slack)
    approval = approval_message(slack)
    slack.click(BOB, APPROVALS, approval["ts"], "request_approve")
    assert crashing.wait(timeout=30) == -9  # killed at that step
    bot = start_bot(sandbox, database_url, tmp_path / "after.log")
    restarted = time.monotonic()
    try:
        # A click meanwhile is told the account is being made, not asked to click again.
        late = told_in_progress(slack, CAROL, APPROVALS, approval, "request_approve")
        offer = eventually(slack, lambda: offers(slack), "the Reveal offer after the restart")
        resumed = time.monotonic() - restarted
        if offer:
            slack.click(ALICE, GENERAL, offer[-1]["ts"], "token_reveal")
            eventually(slack, lambda: token_replies(slack), "the token after the restart")
        found = measure_and_record(sandbox, slack, database_url, target, resumed)
        assert found["duplicates"] == 0 and found["lost"] == 0, found
        assert found["accounts"] == 1 and found["live tokens"] == 1
        assert resumed < RESUMED_WITHIN
        assert "already approved by <@U0BOB>" in late and "being made now" in late, late
    finally:
        bot.stop()


@pytest.mark.parametrize(
    "target",
    [
        "workflows.account.reveal:_record_minted",  # minted, not delivered
        "bot.slack.notifier:SlackNotifier.deliver_token",  # delivered, not yet recorded
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
    bot = start_bot(sandbox, database_url, tmp_path / "after.log")
    restarted = time.monotonic()
    try:
        late = told_in_progress(slack, ALICE, GENERAL, offer, "token_reveal")
        # The restarted worker revokes the token it cannot vouch for and delivers a new one.
        eventually(
            slack,
            lambda: (
                len(sandbox.atlassian.tokens) == 2
                and len(live_tokens(sandbox)) == 1
                and deliveries_of(slack, live_tokens(sandbox)[0])
            ),
            "a fresh token delivered, the old revoked",
        )
        resumed = time.monotonic() - restarted
        found = measure_and_record(sandbox, slack, database_url, target, resumed)
        assert found["duplicates"] == 0 and found["lost"] == 0, found
        assert found["tokens"] == 2 and found["live tokens"] == 1
        assert resumed < RESUMED_WITHIN
        assert "being made right now" in late, late
        [live] = live_tokens(sandbox)
        replies = [r for r in token_replies(slack) if live in json.dumps(r)]
        assert replies[0]["args"]["user"] == ALICE
    finally:
        bot.stop()
