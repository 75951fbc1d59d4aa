"""Property-based hostile input over HTTP: whatever a person types or a forger sends, the
server answers without a 5xx and changes nothing it should not.

One bot and one set of stand-ins serve every example of a property (SQLite, one process). Each
property counts its examples, the 5xx answers or crashes and the state changes as they happen,
and records them (`tests.support.reliability`) before the test's verdict.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import ALICE, APPROVALS, DAVE, GENERAL, approval_message, submit_request
from sandbox.runner import Sandbox, start_sandbox
from sandbox.signing import TIMESTAMP_HEADER, sign
from sandbox.slack_client import SlackSandbox
from tests.support.databases import rows
from tests.support.reliability import record

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "<!channel>",
            "<@U0BOSS|boss>",
            "<https://evil.example|click>",
            "&amp;",
            "--owner",
            "--owner <@U0X|x> --status",
            "cancel SA-99999999999999",
            "rotate ../../etc",
            "show " + "x" * 5000,
            "list --expiring 99999999d",
        ]
    ),
)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Sandbox, SlackSandbox, BotProcess]]:
    folder: Path = tmp_path_factory.mktemp("hostile")
    sandbox = start_sandbox()
    bot = start_bot(sandbox, f"sqlite:///{folder / 'sabot.db'}", folder / "sabot.log")
    slack = SlackSandbox(sandbox.slack_url)
    # Dave, who may decide nothing, can see the approvers' channel and forge clicks there.
    slack.set_channel(APPROVALS, members=["U0BOB", "U0CAROL", DAVE, "U0SABOT"])
    submit_request(slack)
    approval_message(slack)
    yield sandbox, slack, bot
    slack.close()
    bot.stop()
    sandbox.stop()


def state(bot: BotProcess) -> list[dict[str, Any]]:
    return rows(
        bot.database_url,
        "SELECT id, name, status, requester_id FROM service_account_request ORDER BY id",
    )


@dataclass
class Tally:
    """What the examples of one property did, counted as they ran (shrinking included)."""

    runs: int = 0
    failures: int = 0  # a 5xx, no answer at all, or the bot process gone
    changes: int = 0  # state changed where nothing may change
    refused: int = 0

    def answered(self, bot: BotProcess, answer: dict[str, Any]) -> int:
        self.runs += 1
        status = answer.get("status")
        if status is None or status >= 500 or bot.process.poll() is not None:
            self.failures += 1
        return int(status or 0)

    def record(self, scenario: str, driven: str) -> None:
        record(
            scenario,
            driven,
            engine="SQLite",
            runs=self.runs,
            duplicates=self.changes,
            lost=self.failures,
            note=f"{self.runs} examples; {self.failures} 5xx or crashes, "
            f"{self.changes} state changes" + (f", {self.refused} refused" if self.refused else ""),
        )


def test_any_command_text_is_answered_and_changes_nothing(world: Any) -> None:
    _, slack, bot = world
    tally = Tally()

    @PROPERTY
    @given(text=HOSTILE_TEXT)
    def example(text: str) -> None:
        before = state(bot)
        answer = slack.command(ALICE, GENERAL, text)
        status = tally.answered(bot, answer)
        changed = not text.strip().lower().startswith("request") and state(bot) != before
        tally.changes += changed
        assert status == 200 and not changed
        body = json.dumps(answer["body"])
        assert "<!channel>" not in body and "<https://evil" not in body

    try:
        example()
    finally:
        tally.record(
            "Forged/malformed slash commands (hypothesis)",
            "signed `/service-account` commands with arbitrary text (mrkdwn, flags, 5,000 "
            "characters, unknown ids) over HTTP to a running `sabot serve`",
        )
    assert tally.runs >= 40 and tally.failures == tally.changes == 0


def test_forged_button_values_change_nothing(world: Any) -> None:
    _, slack, bot = world
    tally = Tally()

    @PROPERTY
    @given(
        value=st.one_of(
            st.text(max_size=100),
            st.integers().map(str),
            st.sampled_from(["1", "0", "-1", "999999", "1 OR 1=1", "{}", "[]"]),
        ),
        action=st.sampled_from(
            [
                "request_approve",
                "request_deny",
                "token_reveal",
                "request_cancel",
                "accounts_page_next",
                "confirm_revoke",
                "confirm_delete",
                "token_rotate",
                "owner_reassign",
            ]
        ),
    )
    def example(value: str, action: str) -> None:
        before = state(bot)
        message = slack.messages(APPROVALS)[0]
        answer = slack.click(DAVE, APPROVALS, message["ts"], action, value=value, force=True)
        status = tally.answered(bot, answer)
        changed = state(bot) != before
        tally.changes += changed
        assert status == 200 and not changed

    try:
        example()
    finally:
        tally.record(
            "Forged button values (hypothesis)",
            "clicks by someone who may decide nothing, on any button, with arbitrary values "
            "(other requests' ids, junk, SQL)",
        )
    assert tally.runs >= 40 and tally.failures == tally.changes == 0


FIELD = st.text(max_size=600)


def submission(values: dict[str, Any], marker: str = "") -> str:
    """A `view_submission` of the request form as Slack sends it, from Dave."""
    payload = {
        "type": "view_submission",
        "user": {"id": DAVE, "username": "dave"},
        "team": {"id": "T0SANDBOX"},
        "api_app_id": "A0SABOT",
        "view": {
            "id": "VFORGED" + marker,
            "type": "modal",
            "callback_id": "request_submit",
            "private_metadata": json.dumps({"channel": GENERAL}),
            "state": {"values": values},
        },
    }
    return "payload=" + urllib.parse.quote(json.dumps(payload))


def form_values(
    name: str, justification: str, lifetime: str, products: list[str], scopes: list[str]
) -> dict[str, Any]:
    return {
        "name": {"name": {"type": "plain_text_input", "value": name}},
        "justification": {"justification": {"type": "plain_text_input", "value": justification}},
        "products": {
            "products": {
                "type": "checkboxes",
                "selected_options": [
                    {"value": p, "text": {"type": "plain_text", "text": p or "-"}} for p in products
                ],
            }
        },
        "scopes": {
            "scopes": {
                "type": "multi_static_select",
                "selected_options": [
                    {"value": s, "text": {"type": "plain_text", "text": s or "-"}} for s in scopes
                ],
            }
        },
        "lifetime_days": {"lifetime_days": {"type": "number_input", "value": lifetime}},
    }


def test_any_modal_values_get_field_errors_or_a_clean_request(world: Any) -> None:
    _, slack, bot = world
    tally = Tally()

    @PROPERTY
    @given(
        name=FIELD,
        justification=FIELD,
        lifetime=st.text(max_size=12),
        products=st.lists(st.sampled_from(["jira", "confluence", "bitbucket", ""]), max_size=3),
        scopes=st.lists(st.text(max_size=40), max_size=4),
    )
    def example(
        name: str, justification: str, lifetime: str, products: list[str], scopes: list[str]
    ) -> None:
        before = state(bot)
        values = form_values(name, justification, lifetime, products, scopes)
        answer = slack.raw(submission(values))
        status = tally.answered(bot, answer)
        body = answer["body"] if isinstance(answer["body"], dict) else {}
        after = state(bot)
        refused = body.get("response_action") == "errors"
        tally.refused += refused
        # refused: nothing may change; accepted: one new request at most
        changed = after != before if refused else len(after) > len(before) + 1
        tally.changes += changed
        assert status == 200 and not changed
        if refused:
            assert set(body["errors"]) <= {
                "name",
                "justification",
                "products",
                "scopes",
                "lifetime_days",
            }

    try:
        example()
    finally:
        tally.record(
            "Malformed modal submissions (hypothesis)",
            "request-form submissions with arbitrary names, justifications over their limits, "
            "unknown products and scopes, non-numeric lifetimes",
        )
    assert tally.runs >= 40 and tally.failures == tally.changes == 0


GOOD_VALUES = form_values(
    "forged-bot", "A good form, badly signed", "30", ["jira"], ["read:jira-work"]
)
MIB = 1024 * 1024


def test_bad_stale_and_oversized_signatures_are_refused_and_not_logged(world: Any) -> None:
    """A good request form (it would make a request if accepted), sent with an empty or bad
    signature, signed for another body, stale or from the future, or past 1 MiB: refused (401,
    413), nothing changes, and the refused body never reaches the log."""
    sandbox, slack, bot = world
    secret = sandbox.slack.signing_secret
    tally = Tally()
    markers: list[str] = []

    @PROPERTY
    @given(
        kind=st.sampled_from(["unsigned", "bad", "other body", "stale", "future", "oversized"]),
        skew=st.integers(min_value=5 * 60 + 5, max_value=7 * 24 * 3600),
        junk=st.text(alphabet="0123456789abcdef", min_size=0, max_size=64),
    )
    def example(kind: str, skew: int, junk: str) -> None:
        marker = f"marker{uuid.uuid4().hex}"
        markers.append(marker)
        body = submission(GOOD_VALUES, marker)
        now = int(time.time())
        ts, signature = now, None
        if kind == "unsigned":
            signature = ""
        elif kind == "bad":
            signature = "v0=" + junk
        elif kind == "other body":
            signature = sign(secret, now, body + "&x=1")
        elif kind in ("stale", "future"):
            ts = now - skew if kind == "stale" else now + skew
            signature = sign(secret, ts, body)
        else:
            body += "&pad=" + "x" * (MIB + len(junk))
        before = state(bot)
        answer = slack.raw(body, timestamp=ts, signature=signature)
        status = tally.answered(bot, answer)
        changed = state(bot) != before
        tally.changes += changed
        tally.refused += status in (401, 413)
        assert status == (413 if kind == "oversized" else 401) and not changed

    try:
        example()
    finally:
        log = bot.log()
        in_log = sum(1 for m in markers if m in log)
        tally.failures += in_log  # a refused body in the log is data that must not be kept
        tally.record(
            "Bad, stale and oversized signatures",
            "a valid request form sent unsigned, with a bad signature, signed for another body, "
            "more than 5 minutes old or ahead, or over 1 MiB",
        )
    assert tally.runs >= 40 and tally.refused == tally.runs
    assert tally.failures == tally.changes == in_log == 0


def test_a_malformed_timestamp_header_is_refused_not_a_500(world: Any) -> None:
    _, slack, bot = world
    tally = Tally()
    for stamp in ("", "soon", "1700000000.5", "0x10", "-5"):
        before = state(bot)
        body = submission(GOOD_VALUES, uuid.uuid4().hex)
        answer = slack.raw(body, headers={TIMESTAMP_HEADER: stamp})
        tally.refused += tally.answered(bot, answer) == 401
        tally.changes += state(bot) != before
    tally.record(
        "Malformed signature timestamps",
        "a valid request form, well signed but with an empty or non-numeric "
        "X-Slack-Request-Timestamp",
    )
    assert tally.failures == tally.changes == 0 and tally.refused == tally.runs == 5
