"""Slack delivers again: an event retried with `X-Slack-Retry-Num` 1..3, even while the first
delivery is still being handled, and a button clicked twice, each count once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    DAVE,
    approval_message,
    reveal_offer,
    submit_request,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows
from tests.support.reliability import engine_of, record

ROUNDS = 3


def deliver_with_retries(slack: SlackSandbox, event: dict[str, object], event_id: str) -> list[int]:
    """The first delivery and Slack's retries 1..3, all in flight at once."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(
            pool.map(lambda n: slack.event(event, event_id=event_id, retry_num=n or None), range(4))
        )
    return [a["status"] for a in answers]


def settled(db: str) -> bool:
    return not rows(
        db,
        "SELECT id FROM job WHERE kind IN ('owner_left', 'orphan_alert') AND status != 'done'",
    )


def orphan_alerts(slack: SlackSandbox) -> list[dict[str, object]]:
    carol_dm = slack.dm_channel(CAROL)
    return [m for m in slack.messages(carol_dm) if "has left" in json.dumps(m["blocks"])]


def test_a_deactivation_event_retried_in_flight_flags_once(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    db = admin_bot.database_url
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    reveal_offer(slack)  # alice's account is active

    slack.set_user(ALICE, deleted=True)  # alice leaves; Slack sends user_change
    event = {"type": "user_change", "user": {"id": ALICE, "deleted": True, "name": "alice"}}
    statuses = deliver_with_retries(slack, event, "Ev0ALICELEFT")
    slack.wait_for(lambda: orphan_alerts(slack), what="the admins' orphan alert", timeout=15)
    # later, sequential retries of the same event (Slack's 1-minute and 5-minute retries)
    statuses += [slack.event(event, event_id="Ev0ALICELEFT", retry_num=n)["status"] for n in (2, 3)]
    slack.wait_for(lambda: settled(db), what="every queued owner job done")

    flags = rows(db, "SELECT count(*) AS n FROM audit_event WHERE action = 'owner_left'")[0]["n"]
    alerts = len(orphan_alerts(slack))
    received = rows(db, "SELECT event_id FROM inbound_event")
    record(
        "Events API retry (X-Slack-Retry-Num 1..3, concurrent with the first)",
        "user_change delivered 4x at once, then 2 more retries",
        runs=len(statuses),
        duplicates=(flags - 1) + (alerts - 1),
        lost=int(flags == 0),
        engine=engine_of(db),
        note="one owner_left audit row, one admin alert",
    )
    assert statuses == [200] * 6  # every delivery acknowledged: Slack stops retrying
    assert flags == 1 and alerts == 1
    assert received == [{"event_id": "Ev0ALICELEFT"}]
    orphaned = rows(db, "SELECT orphaned_at FROM service_account")
    assert orphaned[0]["orphaned_at"] is not None


def test_a_different_event_for_the_same_person_is_still_taken(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    """De-duplication is by event id, not by content: a second, distinct event is recorded, and
    the account, already flagged, is not flagged (or announced) again."""
    db = admin_bot.database_url
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    reveal_offer(slack)
    event = {"type": "user_change", "user": {"id": ALICE, "deleted": True}}
    slack.event(event, event_id="Ev0FIRST")
    slack.wait_for(lambda: orphan_alerts(slack), what="the admins' orphan alert", timeout=15)
    slack.event(event, event_id="Ev0SECOND")
    slack.wait_for(
        lambda: rows(db, "SELECT status FROM job WHERE kind = 'owner_left' AND status = 'done'")[
            1:
        ],
        what="the second event's job",
    )
    assert len(rows(db, "SELECT event_id FROM inbound_event")) == 2
    assert len(orphan_alerts(slack)) == 1


def test_a_person_still_active_changes_nothing(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    """user_change fires for any profile edit; only a deactivation means anything here."""
    db = admin_bot.database_url
    answer = slack.event({"type": "user_change", "user": {"id": ALICE, "deleted": False}})
    assert answer["status"] == 200
    assert rows(db, "SELECT event_id FROM inbound_event") == []
    assert rows(db, "SELECT kind FROM job WHERE kind = 'owner_left'") == []


QUORUM_OF_TWO = """\
approval_channel: C0APPROVALS
approvers:
  default:
    users: [U0BOB, U0CAROL, U0DAVE]
quorum:
  default: 2
"""


@pytest.fixture
def quorum_bot(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[BotProcess]:
    path = tmp_path / "policy.yml"
    path.write_text(QUORUM_OF_TWO)
    bot = start_bot(
        sandbox, database_url, tmp_path / "sabot.log", extra_env={"SABOT_POLICY": str(path)}
    )
    yield bot
    bot.stop()


def test_a_double_clicked_approve_counts_once(
    sandbox: Sandbox, slack: SlackSandbox, quorum_bot: BotProcess
) -> None:
    """With a quorum of two, one approver's double click must not count as both approvals."""
    db = quorum_bot.database_url
    slack.set_channel(APPROVALS, members=[BOB, CAROL, DAVE, "U0SABOT"])
    clicks = 0
    for round_ in range(ROUNDS):
        name = f"double-{round_}"
        submit_request(slack, form=_form(name))
        message = slack.wait_for(
            lambda n=name: next(
                (m for m in slack.messages(APPROVALS) if n in json.dumps(m["blocks"])), None
            ),
            what=f"the approval message of {name}",
        )
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(
                pool.map(
                    lambda _, m=message: slack.click(BOB, APPROVALS, m["ts"], "request_approve"),
                    range(2),
                )
            )
        clicks += len(answers)
        assert all(a["status"] == 200 for a in answers)
        # both clicks are handled just after their acknowledgements: one counts, one is refused
        slack.wait_for(
            lambda m=message: "1 of 2 approvals" in json.dumps(current(slack, m)["blocks"]),
            what="the card to show one approval",
        )
        slack.wait_for(lambda r=round_: len(refusals(slack)) > r, what="the second click refused")
    decided = rows(db, "SELECT request_id, count(*) AS n FROM decision GROUP BY request_id")
    statuses = rows(db, "SELECT status FROM service_account_request")
    counted_twice = sum(d["n"] - 1 for d in decided)
    record(
        "Double-clicked Approve (quorum of two)",
        "the same approver's two clicks at once, per request",
        runs=ROUNDS,
        duplicates=counted_twice,
        lost=ROUNDS - len(decided),
        engine=engine_of(db),
        note=f"{clicks} clicks",
    )
    assert counted_twice == 0 and len(decided) == ROUNDS
    assert {s["status"] for s in statuses} == {"pending"}  # one approval of two each
    assert sandbox.atlassian.live_accounts() == []


def current(slack: SlackSandbox, message: dict[str, object]) -> dict[str, object]:
    return next(m for m in slack.messages(APPROVALS) if m["ts"] == message["ts"])


def refusals(slack: SlackSandbox) -> list[dict[str, object]]:
    return [c for c in slack.calls("response_url") if "already decided" in json.dumps(c["args"])]


def _form(name: str) -> dict[str, dict[str, object]]:
    from sandbox.people import GOOD_FORM

    return {**GOOD_FORM, "name": {"name": name}}
