"""Two `sabot serve` replicas on one PostgreSQL database behind a round-robin balancer:
bursts of clicks spread over both still make one account, one token, one delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sandbox.bot_process import BotProcess, start_bot, start_worker
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    DAVE,
    GENERAL,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.databases import PENDING_WORK, rows
from tests.support.reliability import record

BURSTS = 20
APPROVERS = {"SABOT_APPROVERS": f"{BOB},{CAROL},{DAVE}"}


@pytest.fixture
def replicas(sandbox: Sandbox, postgres_url: str, tmp_path: Path) -> Iterator[list[BotProcess]]:
    """Two `sabot serve` (each with its in-process worker) and one `sabot worker`, all taking
    jobs from the same queue."""
    bots = [
        start_bot(sandbox, postgres_url, tmp_path / f"r{i}.log", extra_env=APPROVERS)
        for i in range(2)
    ]
    sandbox.slack.bot_url = ",".join(bot.url for bot in bots)  # the balancer
    # it polls more often than the servers, whose own clicks wake their in-process workers
    worker_env = {**APPROVERS, "WORKER_METRICS_PORT": "0", "WORKER_POLL_SECONDS": "0.05"}
    worker = start_worker(sandbox, postgres_url, tmp_path / "worker.log", worker_env)
    yield bots
    worker.terminate()
    assert worker.wait(timeout=30) == 0
    for bot in bots:
        bot.stop()


def approve_value(message: dict[str, Any]) -> str:
    return next(
        str(element["value"])
        for block in message["blocks"]
        for element in block.get("elements", [])
        if element.get("action_id") == "request_approve"
    )


def job_runs(db: str) -> dict[str, int]:
    """Jobs done, by the process that ran them; and how many were claimed more than once."""
    done = rows(db, "SELECT locked_by, attempts FROM job WHERE status = 'done'")
    by_process: dict[str, int] = {}
    for job in done:
        process = job["locked_by"].rsplit("/", 1)[0]  # worker id / claim id
        by_process[process] = by_process.get(process, 0) + 1
    return {**by_process, "claimed twice": sum(1 for j in done if j["attempts"] > 1)}


def test_click_bursts_over_two_replicas(
    sandbox: Sandbox, slack: SlackSandbox, replicas: list[BotProcess]
) -> None:
    slack.set_channel(APPROVALS, members=[BOB, CAROL, DAVE, "U0SABOT"])
    for burst in range(BURSTS):
        name = f"burst-{burst:02d}"
        submit_request(slack, form={**_form(), "name": {"name": name}})
        message = slack.wait_for(
            lambda n=name: next(
                (m for m in slack.messages(APPROVALS) if n in json.dumps(m["blocks"])), None
            ),
            what=f"the approval message of {name}",
        )
        approvers = [BOB, CAROL, DAVE] * 17
        with ThreadPoolExecutor(max_workers=25) as pool:
            answers = list(
                pool.map(
                    # clicks made on the message as first shown: the value it carried then
                    lambda u, m=message: slack.click(
                        u, APPROVALS, m["ts"], "request_approve", value=approve_value(m), force=True
                    ),
                    approvers[:50],
                )
            )
        assert all(a["status"] == 200 for a in answers)
        offer = slack.wait_for(
            lambda n=name: next(
                (
                    m
                    for m in slack.messages(GENERAL, user=ALICE)
                    if m["ephemeral"] and n in json.dumps(m["blocks"])
                ),
                None,
            ),
            what="ready",
        )
        with ThreadPoolExecutor(max_workers=20) as pool:
            list(
                pool.map(
                    lambda _, o=offer: slack.click(ALICE, GENERAL, o["ts"], "token_reveal"),
                    range(20),
                )
            )
        slack.wait_for(
            lambda n=name: [r for r in token_replies(slack) if n in json.dumps(r)],
            what=f"the token of {name}",
        )
    db = replicas[0].database_url
    slack.wait_for(lambda: not rows(db, PENDING_WORK), what="every job done")
    accounts = len(sandbox.atlassian.live_accounts())
    minted, delivered = len(sandbox.atlassian.tokens), len(token_replies(slack))
    decisions = rows(db, "SELECT request_id, count(*) AS n FROM decision GROUP BY request_id")
    announced = [
        c
        for c in slack.calls("chat.postMessage")
        if c["args"].get("channel") == APPROVALS and not c["args"].get("thread_ts")
    ]
    refused = [
        c
        for c in slack.calls("response_url")
        if "already approved" in json.dumps(c["args"]) or "already decided" in json.dumps(c["args"])
    ]
    runs = job_runs(db)
    twice = runs.pop("claimed twice")
    record(
        "50 Approve + 20 Reveal clicks over two replicas and a worker",
        "2 x `sabot serve` behind a round-robin balancer + `sabot worker`, one PostgreSQL",
        runs=BURSTS,
        duplicates=(accounts - BURSTS)
        + (minted - BURSTS)
        + (delivered - BURSTS)
        + sum(d["n"] - 1 for d in decisions)
        + (len(announced) - BURSTS)
        + twice,
        lost=BURSTS - min(accounts, delivered, len(decisions)),
        engine="PostgreSQL",
        note=f"{BURSTS * 70} clicks, {len(refused)} told 'already approved'; "
        f"jobs run per process: {sorted(runs.values())}",
    )
    assert accounts == BURSTS and minted == BURSTS  # one account, one mint per burst
    assert delivered == BURSTS  # one delivery per burst
    assert all(d["n"] == 1 for d in decisions) and len(decisions) == BURSTS
    assert len(announced) == BURSTS and twice == 0  # each job ran once
    assert len(refused) == 49 * BURSTS  # every other click was told it came too late
    assert len(runs) == 3  # both servers and the worker process took jobs


def _form() -> dict[str, dict[str, object]]:
    from sandbox.people import GOOD_FORM

    return dict(GOOD_FORM)


def test_approve_and_deny_at_the_same_instant(
    sandbox: Sandbox, slack: SlackSandbox, replicas: list[BotProcess]
) -> None:
    db = replicas[0].database_url
    rounds: list[tuple[str, list[str], object]] = []
    for round_ in range(5):
        name = f"duel-{round_}"
        submit_request(slack, form={**_form(), "name": {"name": name}})
        message = slack.wait_for(
            lambda n=name: next(
                (m for m in slack.messages(APPROVALS) if n in json.dumps(m["blocks"])), None
            ),
            what=f"the approval message of {name}",
        )
        before = set(slack.views())
        slack.click(CAROL, APPROVALS, message["ts"], "request_deny")
        modal = slack.wait_for(
            lambda b=before: next(
                (
                    v["view"]
                    for vid, v in slack.views().items()
                    if vid not in b and v["user"] == CAROL
                ),
                None,
            ),
            what="the deny modal",
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            approving = pool.submit(slack.click, BOB, APPROVALS, message["ts"], "request_approve")
            denying = pool.submit(
                slack.submit, CAROL, modal["id"], {"deny_reason": {"deny_reason": "not now"}}
            )
            approving.result()
            denial = denying.result()
        [request] = rows(
            db, f"SELECT id, status FROM service_account_request WHERE name = '{name}'"
        )
        decided = rows(db, f"SELECT verdict FROM decision WHERE request_id = {request['id']}")
        rounds.append((request["status"], [d["verdict"] for d in decided], denial["body"]))
    record(
        "Approve and deny at the same instant",
        "one click and one modal submit at once, over two replicas",
        runs=len(rounds),
        duplicates=sum(max(len(verdicts) - 1, 0) for _, verdicts, _ in rounds),
        lost=sum(1 for _, verdicts, _ in rounds if not verdicts),
        engine="PostgreSQL",
        note="won: " + ", ".join("deny" if s == "denied" else "approve" for s, _, _ in rounds),
    )
    for status, verdicts, denial_answer in rounds:
        assert len(verdicts) == 1  # one decision won; the other was refused
        if status == "denied":
            assert verdicts == ["deny"] and denial_answer in ("", None, {})
        else:
            assert verdicts == ["approve"]
            assert "already approved" in json.dumps(denial_answer)


def test_an_event_and_its_retries_over_two_replicas_are_taken_once(
    sandbox: Sandbox, slack: SlackSandbox, replicas: list[BotProcess]
) -> None:
    db = replicas[0].database_url
    event = {"type": "user_change", "user": {"id": ALICE, "deleted": True}}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(
                lambda n: slack.event(event, event_id="Ev0REPLICAS", retry_num=n % 4 or None),
                range(8),
            )
        )
    assert [a["status"] for a in answers] == [200] * 8
    assert rows(db, "SELECT event_id FROM inbound_event") == [{"event_id": "Ev0REPLICAS"}]
    assert len(rows(db, "SELECT id FROM job WHERE kind = 'owner_left'")) == 1
