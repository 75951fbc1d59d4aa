"""Slack's documented Block Kit limits: the stand-in refuses what Slack refuses, and every policy
`policy check` accepts renders within them (long lists shortened, the whole list in `show`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ADMIN_ENV,
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    GENERAL,
    approval_message,
    card,
    open_home,
    submit_request,
    wait_card,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import make_account, new_token_offer, shown

# --- the stand-in refuses each documented limit, with Slack's error --------------------------


def _text(n: int, kind: str = "mrkdwn") -> dict[str, Any]:
    return {"type": kind, "text": "x" * n}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _button(action_id: str = "go", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "text": _plain("Go"), "action_id": action_id, **extra}


def _select(options: int, text: str = "opt") -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": "pick",
        "placeholder": _plain("Pick"),
        "options": [{"text": _plain(f"{text}{i}"), "value": f"v{i}"} for i in range(options)],
    }


CONFIRM = {
    "title": _plain("Sure?"),
    "text": _plain("It cannot be undone."),
    "confirm": _plain("Yes"),
    "deny": _plain("No"),
}

# (what, blocks, the json-pointer Slack names); each is one limit just crossed.
MESSAGE_LIMITS: list[tuple[str, list[dict[str, Any]], str]] = [
    ("section text 3,000", [{"type": "section", "text": _text(3001)}], "/blocks/0/text/text"),
    (
        "section field 2,000",
        [{"type": "section", "fields": [_text(10), _text(2001)]}],
        "/blocks/0/fields/1/text",
    ),
    (
        "at most 10 fields",
        [{"type": "section", "fields": [_text(5)] * 11}],
        "/blocks/0/fields",
    ),
    ("header 150", [{"type": "header", "text": _text(151, "plain_text")}], "/blocks/0/text/text"),
    ("header plain_text only", [{"type": "header", "text": _text(5)}], "/blocks/0/text/type"),
    (
        "button value 2,000",
        [{"type": "actions", "elements": [_button(value="v" * 2001)]}],
        "/blocks/0/elements/0/value",
    ),
    (
        "button text plain_text only",
        [{"type": "actions", "elements": [_button() | {"text": _text(2)}]}],
        "/blocks/0/elements/0/text/type",
    ),
    (
        "option text 75",
        [{"type": "actions", "elements": [_select(2, text="o" * 75)]}],
        "/blocks/0/elements/0/options/0/text/text",
    ),
    (
        "at most 100 options",
        [{"type": "actions", "elements": [_select(101)]}],
        "/blocks/0/elements/0/options",
    ),
    (
        "action_id unique in a message",
        [
            {"type": "actions", "elements": [_button("same")]},
            {"type": "actions", "elements": [_button("same")]},
        ],
        "/blocks/1/elements/0/action_id",
    ),
    (
        "block_id unique in a message",
        [
            {"type": "divider", "block_id": "b"},
            {"type": "divider", "block_id": "b"},
        ],
        "/blocks/1/block_id",
    ),
    (
        "confirm text plain_text only",
        [{"type": "actions", "elements": [_button(confirm=CONFIRM | {"text": _text(5)})]}],
        "/blocks/0/elements/0/confirm/text/type",
    ),
    (
        "confirm title 100",
        [
            {
                "type": "actions",
                "elements": [_button(confirm=CONFIRM | {"title": _plain("t" * 101)})],
            }
        ],
        "/blocks/0/elements/0/confirm/title/text",
    ),
    (
        "context of at most 10 elements",
        [{"type": "context", "elements": [_text(3)] * 11}],
        "/blocks/0/elements",
    ),
    ("50 blocks per message", [{"type": "divider"}] * 51, "/blocks"),
]


def _web_api(sandbox: Sandbox, method: str, args: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{sandbox.slack_url}/api/{method}",
        json=args,
        headers={"Authorization": f"Bearer {sandbox.slack.bot_token}"},
    )
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize(("what", "blocks", "pointer"), MESSAGE_LIMITS, ids=lambda v: str(v)[:40])
def test_a_message_over_a_limit_is_refused_as_slack_refuses_it(
    sandbox: Sandbox, what: str, blocks: list[dict[str, Any]], pointer: str
) -> None:
    answer = _web_api(
        sandbox, "chat.postMessage", {"channel": APPROVALS, "text": what, "blocks": blocks}
    )
    assert answer["ok"] is False and answer["error"] == "invalid_blocks", answer
    assert any(pointer in m for m in answer["response_metadata"]["messages"]), answer
    assert not sandbox.slack.messages  # nothing was posted


def test_the_same_blocks_just_within_the_limits_are_posted(sandbox: Sandbox) -> None:
    blocks = [
        {"type": "section", "text": _text(3000), "block_id": "a"},
        {"type": "section", "fields": [_text(2000)] * 10},
        {"type": "header", "text": _text(150, "plain_text")},
        {"type": "actions", "elements": [_select(100, text="o" * 71), _button(value="v" * 2000)]},
        {"type": "actions", "elements": [_button("other", confirm=CONFIRM)]},
        {"type": "context", "elements": [_text(3)] * 10},
    ]
    answer = _web_api(sandbox, "chat.postMessage", {"channel": APPROVALS, "blocks": blocks})
    assert answer["ok"] is True, answer


def _modal(**changes: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": _plain("Service account"),
        "submit": _plain("Request"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": "a",
                "label": _plain("A"),
                "element": {"type": "plain_text_input", "action_id": "a"},
            }
        ],
    } | changes


@pytest.mark.parametrize(
    ("what", "view", "pointer"),
    [
        ("title 24", _modal(title=_plain("t" * 25)), "/view/title/text"),
        ("submit 24", _modal(submit=_plain("s" * 25)), "/view/submit/text"),
        ("close 24", _modal(close=_plain("c" * 25)), "/view/close/text"),
        ("title plain_text only", _modal(title=_text(5)), "/view/title/type"),
        ("private_metadata 3,000", _modal(private_metadata="m" * 3001), "/view/private_metadata"),
        (
            "action_id unique in a view",
            _modal(blocks=_modal()["blocks"] + [{**_modal()["blocks"][0], "block_id": "b"}]),
            "/view/blocks/1/element/action_id",
        ),
        ("100 blocks per view", _modal(blocks=[{"type": "divider"}] * 101), "/view/blocks"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_view_over_a_limit_is_refused_as_slack_refuses_it(
    sandbox: Sandbox, what: str, view: dict[str, Any], pointer: str
) -> None:
    # A bad view is refused before its trigger is even looked at, as Slack does.
    answer = _web_api(sandbox, "views.open", {"trigger_id": "1.2.expired", "view": view})
    assert answer["ok"] is False and answer["error"] == "invalid_arguments", (what, answer)
    assert any(pointer in m for m in answer["response_metadata"]["messages"]), answer


# --- every policy that `policy check` accepts renders within those limits --------------------

# 90 granular Jira read scopes of about 45 characters: over 4,000 characters side by side.
MANY_SCOPES = [f"read:issue-field-option-property-number-{i:02d}:jira" for i in range(90)]
MANY_POLICY = f"""\
approval_channel: C0APPROVALS
approvers:
  default:
    users: [U0BOB, U0CAROL]
admins:
  users: [U0CAROL]
products:
  jira:
    scopes: [{", ".join(MANY_SCOPES)}]
"""


def _policy_check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "policy.yml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "bot", "policy", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def many_scopes_bot(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[BotProcess]:
    assert _policy_check(tmp_path, MANY_POLICY).returncode == 0
    bot = start_bot(
        sandbox,
        database_url,
        tmp_path / "sabot.log",
        extra_env={**ADMIN_ENV, "SABOT_POLICY": str(tmp_path / "policy.yml")},
    )
    yield bot
    bot.stop()


def _many_form() -> dict[str, Any]:
    return {
        "name": {"name": "wide-reader"},
        "justification": {"justification": "Reads every issue field for the data warehouse"},
        "products": {"products": ["jira"]},
        "scopes": {"scopes": MANY_SCOPES},
        "lifetime_days": {"lifetime_days": "30"},
    }


def test_a_request_for_90_scopes_reaches_the_approvers_and_show_lists_them_all(
    sandbox: Sandbox, slack: SlackSandbox, many_scopes_bot: BotProcess
) -> None:
    answer = submit_request(slack, _many_form())  # the form opened: 90 options fit one group
    assert answer["status"] == 200 and "waiting for approval" in json.dumps(answer["view"])
    message = approval_message(slack)  # Slack took the post: the approvers see the request
    scopes_field = next(
        f["text"] for b in message["blocks"] for f in b.get("fields", []) if "Scopes" in f["text"]
    )
    assert len(scopes_field) <= 2000 and MANY_SCOPES[0] in scopes_field
    assert "more; `show SA-1` lists them all" in scopes_field
    assert MANY_SCOPES[-1] not in scopes_field
    assert "wide-reader" in json.dumps(card(slack)["blocks"])  # the requester's card too

    home = open_home(slack, BOB, "Waiting for my decision")  # Home publishes, list shortened
    assert "wide-reader" in home and "lists them all" in home

    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    wait_card(slack, "the account is ready")
    slack.command(CAROL, GENERAL, "show SA-1")  # an admin
    full = slack.wait_for(
        lambda: [m for m in slack.messages(GENERAL, user=CAROL) if "All 90 scopes" in shown(m)],
        what="show's full list of scopes",
    )[-1]
    assert all(scope in shown(full) for scope in MANY_SCOPES)
    refused = [(c["method"], c["error"]) for c in slack.calls() if not c["ok"]]
    assert not refused  # no post, update or publish was refused on the way


@pytest.mark.parametrize(
    ("scopes", "reason"),
    [
        (
            [f"read:field-{i:03d}:jira" for i in range(101)],
            "101 scopes, but the request form can list at most 100",
        ),
        ([f"read:{'x' * 70}:jira"], "longer than 75 characters"),
        (["read:jira-work", "read:jira-work"], "'read:jira-work' is listed twice"),
    ],
    ids=["101 scopes", "a 80-character scope", "a scope twice"],
)
def test_policy_check_refuses_what_the_form_could_not_show(
    tmp_path: Path, scopes: list[str], reason: str
) -> None:
    text = MANY_POLICY.replace(", ".join(MANY_SCOPES), ", ".join(scopes))
    result = _policy_check(tmp_path, text)
    assert result.returncode != 0
    assert "products.jira.scopes" in result.stdout + result.stderr
    assert reason in result.stdout + result.stderr


# --- Home, escaping and block ids ------------------------------------------------------------


def test_rotate_from_the_home_tab_offers_the_new_token_and_says_nothing_failed(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "home-rotated")
    second = make_account(sandbox, slack, "home-second")  # two Rotate buttons in one Home tab
    home = open_home(slack, ALICE, second.name)
    assert home.count("token_rotate.") == 2  # each button its own action id
    before = len(slack.messages(slack.dm_channel(ALICE)))
    slack.click_view(ALICE, "token_rotate.1", home=True, value="SA-1")
    offer = new_token_offer(slack, ALICE, made.name)
    assert "ready to reveal" in shown(offer)
    said = [shown(m) for m in slack.messages(slack.dm_channel(ALICE))[before:]]
    assert not [s for s in said if "went wrong" in s or "failed" in s], said


def test_a_name_typed_into_a_command_is_echoed_escaped(
    slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    # "@channel" typed into a command arrives as <!channel> (should_escape); a typed "<" as &lt;.
    slack.command(ALICE, GENERAL, "show <!channel>")
    slack.command(ALICE, GENERAL, "list --&lt;!here&gt;")
    answers = slack.wait_for(
        lambda: (
            found
            if len(found := [m for m in slack.messages(GENERAL, user=ALICE) if m["ephemeral"]]) >= 2
            else None
        ),
        what="both refusals",
    )
    said = " ".join(m["text"] + json.dumps(m["blocks"]) for m in answers)
    assert "There is no service account named &lt;!channel&gt;." in said
    assert "Unknown flag --&lt;!here&gt;" in said
    assert "<!channel>" not in said and "<!here>" not in said


def test_an_updated_message_gets_new_block_ids(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess
) -> None:
    submit_request(slack)
    pending = approval_message(slack)
    before = {b["block_id"] for b in pending["blocks"] if b["type"] == "actions"}
    slack.click(BOB, APPROVALS, pending["ts"], "request_approve")
    wait_card(slack, "the account is ready")
    approved = approval_message(slack)
    assert approved["ts"] == pending["ts"]  # the same message, updated in place
    requester = card(slack)
    ids = {b["block_id"] for b in approved["blocks"] + requester["blocks"]}
    assert before and not before & ids
    assert any(b.startswith("reveal_button.") for b in ids)
