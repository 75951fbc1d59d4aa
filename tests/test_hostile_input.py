"""Property-based hostile input over HTTP: whatever a person types or a forger sends, the
server answers without a 5xx and changes nothing it should not.

One bot and one set of stand-ins serve every example of a property (SQLite, one process).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.runner import Sandbox, start_sandbox
from sandbox.slack_client import SlackSandbox
from tests.conftest import BotProcess, rows, start_bot
from tests.test_end_to_end import ALICE, APPROVALS, DAVE, GENERAL, approval_message, submit_request

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


@PROPERTY
@given(text=HOSTILE_TEXT)
def test_any_command_text_is_answered_and_changes_nothing(world: Any, text: str) -> None:
    _, slack, bot = world
    before = state(bot)
    answer = slack.command(ALICE, GENERAL, text)
    assert answer["status"] == 200
    body = json.dumps(answer["body"])
    assert "<!channel>" not in body and "<https://evil" not in body
    if not text.strip().lower().startswith("request"):
        assert state(bot) == before


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
def test_forged_button_values_change_nothing(world: Any, value: str, action: str) -> None:
    _, slack, bot = world
    before = state(bot)
    message = slack.messages(APPROVALS)[0]
    answer = slack.click(DAVE, APPROVALS, message["ts"], action, value=value, force=True)
    assert answer["status"] == 200
    assert state(bot) == before


FIELD = st.text(max_size=600)


@PROPERTY
@given(
    name=FIELD,
    justification=FIELD,
    lifetime=st.text(max_size=12),
    products=st.lists(st.sampled_from(["jira", "confluence", "bitbucket", ""]), max_size=3),
    scopes=st.lists(st.text(max_size=40), max_size=4),
)
def test_any_modal_values_get_field_errors_or_a_clean_request(
    world: Any, name: str, justification: str, lifetime: str, products: list[str], scopes: list[str]
) -> None:
    _, slack, bot = world
    before = state(bot)
    values = {
        "name": {"value": {"type": "plain_text_input", "value": name}},
        "justification": {"value": {"type": "plain_text_input", "value": justification}},
        "products": {
            "value": {
                "type": "checkboxes",
                "selected_options": [
                    {"value": p, "text": {"type": "plain_text", "text": p or "-"}} for p in products
                ],
            }
        },
        "scopes": {
            "value": {
                "type": "multi_static_select",
                "selected_options": [
                    {"value": s, "text": {"type": "plain_text", "text": s or "-"}} for s in scopes
                ],
            }
        },
        "lifetime_days": {"value": {"type": "number_input", "value": lifetime}},
    }
    payload = {
        "type": "view_submission",
        "user": {"id": DAVE, "username": "dave"},
        "team": {"id": "T0SANDBOX"},
        "api_app_id": "A0SABOT",
        "view": {
            "id": "VFORGED",
            "type": "modal",
            "callback_id": "request_submit",
            "private_metadata": json.dumps({"channel": GENERAL}),
            "state": {"values": values},
        },
    }
    answer = slack.raw("payload=" + urllib.parse.quote(json.dumps(payload)))
    assert answer["status"] == 200
    body = answer["body"] if isinstance(answer["body"], dict) else {}
    after = state(bot)
    if body.get("response_action") == "errors":
        assert after == before
        assert set(body["errors"]) <= {
            "name",
            "justification",
            "products",
            "scopes",
            "lifetime_days",
        }
    else:
        assert len(after) <= len(before) + 1
