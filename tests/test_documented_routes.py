"""Atlassian's documented API Access routes first, the console routes as the fallback, and a
manual step where no route will mint (issue 11, item 4), through the real bot process.

A real `sabot serve` (SQLite and PostgreSQL) against the stand-ins. What is checked is what an
operator would look at: which paths the stand-in was called on (its request log), the bot's
log line saying which route set an operation uses, the request's state, what the requester
and the admins were told, and the audit trail.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ALICE,
    CAROL,
    GENERAL,
    has_button,
    reveal_offer,
    token_replies,
    wait_card,
    wait_shown,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import ask, ephemeral_with
from tests.support.databases import rows
from tests.support.provisioning import (
    NAME,
    SCOPES,
    approve,
    audit,
    click_reveal,
    dm_texts,
    replies_to_requester,
    thread_notes,
)

ORG = "/orgs/org-sandbox"
ACCESS = f"/admin/api-access/v1{ORG}"
CONSOLE = f"/admin/account-management/v1{ORG}"
OPERATIONS = ("list", "create", "tokens", "revoke_all", "delete")
MANUAL_PATH = (
    "admin.atlassian.com → Directory → Service accounts → {name} ({email}) → Credentials → "
    "Create API token"
)


def start(
    sandbox: Sandbox, database_url: str, tmp_path: Path, env: dict[str, str] | None = None
) -> BotProcess:
    """The bot with Carol as admin, once its start-up reconcile (a list) has run."""
    extra = {"SABOT_ADMINS": CAROL, **(env or {})}
    bot = start_bot(sandbox, database_url, tmp_path / "sabot.log", extra_env=extra)
    deadline = time.monotonic() + 10
    while "reconcile_checked" not in [action for action, _ in audit(database_url)]:
        assert time.monotonic() < deadline, "the start-up reconcile did not run"
        time.sleep(0.05)
    return bot


def called(sandbox: Sandbox) -> list[tuple[str, str, int | None]]:
    """(method, path with ids as {id}, status) of every call the stand-in answered."""
    out = []
    for call in sandbox.atlassian.calls:
        path = str(call["path"])
        for account in sandbox.atlassian.accounts.values():
            path = path.replace(account.atlassian_id, "{atlassianId}").replace(account.id, "{id}")
        for token in sandbox.atlassian.tokens:
            path = path.replace(token.id, "{tokenId}")
        out.append((str(call["method"]), path, call["status"]))
    return out


def route_lines(bot: BotProcess, operation: str) -> list[str]:
    """The bot's INFO lines (JSON, one a line) saying which route set `operation` uses."""
    said = []
    for line in bot.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = str(record.get("message", "")) if isinstance(record, dict) else ""
        if message.startswith(f"Atlassian {operation}: ") and "route (" in message:
            assert record["level"] == "INFO" and record["logger"].endswith("atlassian"), record
            said.append(message)
    return said


def reveal_token(slack: SlackSandbox) -> None:
    offer = reveal_offer(slack, timeout=30)
    click_reveal(slack, offer)
    slack.wait_for(lambda: token_replies(slack), timeout=30, what="the token reply")
    assert wait_card(slack, "Token revealed at")


def delete_as_admin(sandbox: Sandbox, slack: SlackSandbox) -> None:
    [account] = sandbox.atlassian.live_accounts()
    ask(slack, CAROL, f"delete {NAME}")
    prompt = ephemeral_with(slack, CAROL, "confirm_delete")
    slack.click(CAROL, GENERAL, prompt["ts"], "confirm_delete")
    slack.wait_for(lambda: account.status == "deleted", what="the account deleted at Atlassian")


def deleted_route(database_url: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        found = [d["route"] for a, d in audit(database_url) if a == "account_deleted"]
        if found:
            return str(found[0])
        assert time.monotonic() < deadline, "no account_deleted in the audit trail"
        time.sleep(0.05)


# -- (a) both route sets there: the documented ones are used --------------------------------


def test_documented_routes_serve_list_create_tokens_and_delete(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start(sandbox, database_url, tmp_path)
    approve(slack)
    reveal_token(slack)
    delete_as_admin(sandbox, slack)
    assert deleted_route(database_url) == "api-access"

    used = called(sandbox)
    assert all(status is not None and status < 300 for _, _, status in used), used
    paths = {(method, path) for method, path, _ in used}
    # list (the start-up reconcile), create, the token list and revoke-all, delete:
    # each on its documented route, none on a console route.
    assert {
        ("GET", f"{ACCESS}/service-accounts"),
        ("POST", f"{ACCESS}/service-accounts"),
        ("GET", f"{ACCESS}/service-accounts/{{id}}/api-tokens"),
        ("DELETE", f"{ACCESS}/service-accounts/{{id}}/api-tokens"),
        ("DELETE", f"{ACCESS}/service-accounts/{{id}}"),
    } <= paths
    # The console served only what has no documented route: the grant and the mint.
    assert {(m, p) for m, p in paths if not p.startswith(ACCESS)} == {
        ("POST", "/admin/v2/orgs/org-sandbox/workspaces"),
        ("POST", f"{CONSOLE}/service-accounts/invite"),
        ("POST", "/users/{atlassianId}/manage/api-tokens"),
    }
    for operation in OPERATIONS:
        [line] = route_lines(bot, operation)  # said once, however often it was called
        assert "using the documented API Access route" in line
    assert all(t.revoked for t in sandbox.atlassian.tokens)


# -- (b) documented routes gone: the console routes carry the whole flow --------------------


@pytest.mark.parametrize("absent", ["404", "405"])
def test_without_the_documented_routes_the_console_carries_the_flow(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path, absent: str
) -> None:
    sandbox.atlassian.switch_off("access", absent)
    bot = start(sandbox, database_url, tmp_path)
    approve(slack)
    reveal_token(slack)
    delete_as_admin(sandbox, slack)
    assert deleted_route(database_url) == "lifecycle"

    [token] = sandbox.atlassian.tokens
    assert token.revoked and token.scopes == SCOPES
    [account] = sandbox.atlassian.accounts.values()
    assert account.display_name == NAME and account.status == "deleted"
    used = called(sandbox)
    refused = [(m, p) for m, p, status in used if p.startswith(ACCESS)]
    # Each documented route was asked once, refused as absent, and never again.
    assert sorted(refused) == sorted(
        [
            ("GET", f"{ACCESS}/service-accounts"),
            ("POST", f"{ACCESS}/service-accounts"),
            ("GET", f"{ACCESS}/service-accounts/{{id}}/api-tokens"),
            ("DELETE", f"{ACCESS}/service-accounts/{{id}}/api-tokens"),
            ("DELETE", f"{ACCESS}/service-accounts/{{id}}"),
        ]
    )
    assert {s for _, p, s in used if p.startswith(ACCESS)} == {int(absent)}
    served = {(m, p) for m, p, s in used if s is not None and s < 300}
    assert {
        ("GET", f"{CONSOLE}/service-accounts"),
        ("POST", f"{CONSOLE}/service-accounts"),
        ("GET", "/users/{atlassianId}/manage/api-tokens"),
        ("DELETE", "/users/{atlassianId}/manage/api-tokens/{tokenId}"),
        ("POST", "/users/{atlassianId}/manage/lifecycle/delete"),
    } <= served
    for operation in OPERATIONS:
        [line] = route_lines(bot, operation)
        assert f"refused (Atlassian answered HTTP {absent}" in line
        assert "using the console route" in line
    actions = [action for action, _ in audit(database_url)]
    assert actions.count("account_created") == 1 and "token_delivered" in actions


# -- (c) a scoped key: documented routes take it, the console routes do not -------------------


def test_a_scoped_key_is_named_when_the_console_grant_refuses_it(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    scoped = "atl-scoped-key-e2e"
    sandbox.atlassian.scoped_key = scoped
    start(sandbox, database_url, tmp_path, {"ATLASSIAN_API_KEY": scoped})
    approve(slack)
    card = wait_shown(slack, slack.dm_channel(ALICE), "provisioning failed", index=0, timeout=30)
    note = slack.wait_for(
        lambda: [n for n in thread_notes(slack) if "failed" in n], what="the approvers' note"
    )[0]

    used = called(sandbox)
    # The documented list and create took the key; the console grant answered 403.
    assert ("GET", f"{ACCESS}/service-accounts", 200) in used
    assert ("POST", f"{ACCESS}/service-accounts", 201) in used
    assert [s for m, p, s in used if p.endswith("/invite")] == [403]
    [request] = rows(database_url, "SELECT status, status_reason FROM service_account_request")
    assert request["status"] == "failed"
    for shown in (request["status_reason"], note, json.dumps(card)):
        assert "HTTP 403" in shown and "most likely scoped" in shown, shown
        assert "ATLASSIAN_API_KEY" in shown, shown
    # The half-made account is known to the database (an admin can delete it by name).
    [account] = sandbox.atlassian.live_accounts()
    [stored] = rows(database_url, "SELECT atlassian_account_id FROM service_account")
    assert stored["atlassian_account_id"] == account.atlassian_id
    assert sandbox.atlassian.minted_values() == []


# -- (d) the mint refused: a manual step, told, audited, not retried --------------------------


def admin_requests(slack: SlackSandbox) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.messages(slack.dm_channel(CAROL))
        if "Credentials → Create API token" in str(m.get("text", ""))
    ]


@pytest.mark.parametrize("refusal", ["403", "404"])
def test_a_refused_mint_ends_in_a_manual_step(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path, refusal: str
) -> None:
    start(sandbox, database_url, tmp_path)
    approve(slack)
    offer = reveal_offer(slack, timeout=30)
    sandbox.atlassian.switch_off("mint", refusal)
    click_reveal(slack, offer)

    told = slack.wait_for(
        lambda: [t for t in replies_to_requester(slack) if "by hand" in t],
        timeout=30,
        what="the owner told an admin makes the token",
    )[0]
    [asked] = slack.wait_for(lambda: admin_requests(slack), what="the admin's DM")

    # The account exists, with its product access; no token was made.
    [account] = sandbox.atlassian.live_accounts()
    grants = sandbox.atlassian.effective_grants(account.atlassian_id)
    assert [g["resource"] for g in grants] == ["ari:cloud:jira-software::site/cloud-sandbox-1"]
    assert sandbox.atlassian.tokens == []
    assert "account exists and has its product access" in told and "Nothing more to click" in told
    # The admin is told where to click, with the scopes, the expiry and the owner.
    trail = audit(database_url)
    [step] = [detail for action, detail in trail if action == "token_manual_step"]
    assert step["scopes"] == SCOPES and f"HTTP {refusal}" in step["reason"]
    expires = datetime.fromisoformat(step["expires_at"])
    shown = json.dumps(asked, ensure_ascii=False)
    assert MANUAL_PATH.format(name=NAME, email=account.email) in shown
    for part in (", ".join(SCOPES), f"{expires:%Y-%m-%d}", f"<@{ALICE}>", step["label"]):
        assert part in shown, part
    [token] = rows(database_url, "SELECT state, label FROM api_token")
    assert token == {"state": "manual", "label": step["label"]}
    [stored] = rows(database_url, "SELECT reveal_status FROM service_account")
    assert stored["reveal_status"] == "manual"
    card = wait_card(slack, "an admin is making it by hand")
    assert not has_button(card, "token_reveal")

    # A second click says the step is pending; nothing is minted or retried.
    mints_before = len([c for c in sandbox.atlassian.calls if c["path"].endswith("/api-tokens")])
    click_reveal(slack, offer)
    pending = slack.wait_for(
        lambda: [t for t in replies_to_requester(slack) if "by hand" in t][1:],
        what="the second click's answer",
    )[0]
    assert "Nothing more to click" in pending
    time.sleep(3)  # long enough for a retried job to show up at the stand-in
    calls = [c for c in sandbox.atlassian.calls if c["path"].endswith("/api-tokens")]
    assert len(calls) == mints_before
    jobs = rows(database_url, "SELECT kind, status FROM job WHERE status != 'done'")
    assert jobs == [] or all(j["kind"] not in ("reveal", "manual_token") for j in jobs), jobs
    assert len(admin_requests(slack)) == 1
    actions = [action for action, _ in trail]
    assert "mint_failed" not in actions and "token_delivered" not in actions
    assert "reveal_failed" not in [a for a, _ in audit(database_url)]
    assert not [t for t in dm_texts(slack, ALICE) if "could not" in t]
