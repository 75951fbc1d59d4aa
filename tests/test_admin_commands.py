"""The admin commands end to end: list, show, rotate, token, revoke, delete, audit, paging.

`sabot serve` runs as its own process with Carol as admin (`SABOT_ADMINS`), against the Slack and
Atlassian stand-ins, on SQLite and on PostgreSQL. Each test checks what a person saw in Slack
(the ephemeral answers to their commands and clicks, their DMs) and what the stand-in and the
database hold afterwards.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import (
    ADMIN_ENV,
    ALICE,
    BOB,
    CAROL,
    DAVE,
    GENERAL,
    has_button,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import (
    answers,
    ask,
    ephemeral_with,
    make_account,
    new_token_offer,
    reveal,
    shown,
    texts,
    tokens_of,
    wait_message,
)
from tests.support.databases import dump_database, rows

# One row of a list: "*name* · <@owner> · products · token expiry · status"
ROW = re.compile(
    r"^\*(?P<name>[^*]+)\* · <@(?P<owner>\w+)> · (?P<products>[^·]+) · "
    r"(?P<expiry>[^·]+) · (?P<status>\w+)"
)
PAGE_RANGE = re.compile(r"Service accounts (\d+)-(\d+) of (\d+)")
NEXT, PREVIOUS = "accounts_page_next", "accounts_page_prev"


# --- what a person sees ---------------------------------------------------------------------


def listed(message: dict[str, Any]) -> list[dict[str, str]]:
    """The rows of an account list, as the person reads them."""
    found = (ROW.match(text) for text in texts(message.get("blocks") or []))
    return [{k: v.strip() for k, v in m.groupdict().items()} for m in found if m]


def names(message: dict[str, Any]) -> list[str]:
    return [row["name"] for row in listed(message)]


def page_range(message: dict[str, Any]) -> tuple[int, int, int] | None:
    match = PAGE_RANGE.search(shown(message))
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


# --- commands and their answers ---------------------------------------------------------------


def ack_line(answer: dict[str, Any]) -> str:
    body = answer.get("body")
    return str(body.get("text") if isinstance(body, dict) else body or "")


def refused_at_once(slack: SlackSandbox, user: str, text: str) -> str:
    """A malformed command: one line in the ack, and nothing else shown to anyone."""
    before = len(slack.messages(user=user))
    calls_before = len(slack.calls())
    answer = slack.command(user, GENERAL, text)
    assert answer["status"] == 200
    line = ack_line(answer)
    assert line and "\n" not in line, answer
    time.sleep(0.5)  # anything sent later would show up by now
    assert answers(slack, answer) == []
    new = slack.messages(user=user)[before:]
    assert [m["via"] for m in new] == ["ack"] and shown(new[0]) == line
    # no Web API call either (Bolt checks its own token once, on the first request it serves)
    assert [c["method"] for c in slack.calls()[calls_before:] if c["method"] != "auth.test"] == []
    return line


def one_line(reply: dict[str, Any]) -> str:
    """An answer that is a single line of text (a refusal or an error)."""
    text = str(reply.get("text") or "")
    assert text and "\n" not in text and not reply.get("blocks"), reply
    return text


def current(slack: SlackSandbox, user: str, ts: str, channel: str = GENERAL) -> dict[str, Any]:
    """The message (channel, ts) as `user` sees it now."""
    [message] = [m for m in slack.messages(channel, user=user) if m["ts"] == ts]
    return message


def replaced(
    slack: SlackSandbox, user: str, ts: str, text: str, channel: str = GENERAL
) -> dict[str, Any]:
    """Wait until the message (channel, ts) shows `text`, replaced in place."""

    def find() -> dict[str, Any] | None:
        message = current(slack, user, ts, channel)
        return message if text in shown(message) else None

    return wait_message(slack, find, f"message {ts} to show {text!r}")


# --- what the database holds ------------------------------------------------------------------


def request_status(bot: BotProcess, name: str) -> str:
    [row] = rows(
        bot.database_url,
        f"SELECT status FROM service_account_request WHERE name = '{name}'",
    )
    return str(row["status"])


def db_tokens(bot: BotProcess, name: str) -> list[dict[str, Any]]:
    return rows(
        bot.database_url,
        "SELECT t.label, t.state, t.expires_at, t.revoke_after FROM api_token t "
        f"JOIN service_account a ON a.id = t.account_id WHERE a.name = '{name}' ORDER BY t.id",
    )


def as_utc(value: Any) -> datetime:
    """A timestamp column read directly (SQLite gives text, PostgreSQL a datetime)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- list ----------------------------------------------------------------------------------


def test_list_sees_own_or_all_and_filters(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    make_account(sandbox, slack, "alpha-jira-bot", lifetime=30)
    make_account(sandbox, slack, "beta-wiki-bot", products=("confluence",), lifetime=5)
    make_account(sandbox, slack, "gamma-idle-bot", revealed=False)
    make_account(sandbox, slack, "delta-bob-bot", owner=BOB, approver=CAROL)
    # gamma's tokens are revoked by its owner: its status becomes revoked
    ask(slack, ALICE, "revoke gamma-idle-bot")
    slack.click(
        ALICE, GENERAL, ephemeral_with(slack, ALICE, "confirm_revoke")["ts"], "confirm_revoke"
    )
    slack.wait_for(lambda: request_status(admin_bot, "gamma-idle-bot") == "revoked", what="revoked")

    # a requester sees their own accounts, sorted by name; every row says what matters
    mine = ask(slack, ALICE, "list")
    assert names(mine) == ["alpha-jira-bot", "beta-wiki-bot", "gamma-idle-bot"]
    assert "Service accounts 1-3 of 3" in shown(mine) and not has_button(mine, NEXT)
    alpha, beta, gamma = listed(mine)
    assert alpha["owner"] == ALICE and alpha["products"] == "Jira"
    assert alpha["status"] == "active" and alpha["expiry"].startswith("token expires 20")
    assert beta["products"] == "Confluence"
    assert gamma["status"] == "revoked" and gamma["expiry"] == "no live token"

    # an admin sees everyone's
    everyone = ask(slack, CAROL, "list")
    assert names(everyone) == ["alpha-jira-bot", "beta-wiki-bot", "delta-bob-bot", "gamma-idle-bot"]
    assert listed(everyone)[2]["owner"] == BOB

    filters = {
        "--owner <@U0ALICE|alice>": ["alpha-jira-bot", "beta-wiki-bot", "gamma-idle-bot"],
        "--owner U0BOB": ["delta-bob-bot"],
        "--product confluence": ["beta-wiki-bot"],
        "--product jira": ["alpha-jira-bot", "delta-bob-bot", "gamma-idle-bot"],
        "--status revoked": ["gamma-idle-bot"],
        "--status deleted": [],
        "--expiring 400d": ["alpha-jira-bot", "beta-wiki-bot", "delta-bob-bot"],
        "--expiring 7d": ["beta-wiki-bot"],
        "wiki": ["beta-wiki-bot"],
        "BOB": ["delta-bob-bot"],
        "--owner <@U0ALICE|alice> --product jira --status active": ["alpha-jira-bot"],
    }
    for words, expected in filters.items():
        reply = ask(slack, CAROL, f"list {words}")
        assert names(reply) == expected, words
        if not expected:
            assert shown(reply) == "No service accounts match."

    # a requester's filters narrow their own list; naming someone else is refused
    assert names(ask(slack, ALICE, "list --owner <@U0ALICE|alice> wiki")) == ["beta-wiki-bot"]
    refusal = one_line(ask(slack, ALICE, "list --owner <@U0BOB|bob>"))
    assert refusal == "Only admins can list other people's accounts."


def test_malformed_list_flags_get_one_line(slack: SlackSandbox, admin_bot: BotProcess) -> None:
    assert refused_at_once(slack, CAROL, "list --colour red") == (
        "Unknown flag --colour; use --owner, --product, --status or --expiring."
    )
    assert refused_at_once(slack, CAROL, "list --owner bob") == (
        "--owner takes @someone or a user id such as U0123ABCD."
    )
    assert refused_at_once(slack, CAROL, "list --expiring soon") == (
        "--expiring takes a number of days, such as 14d."
    )
    assert refused_at_once(slack, ALICE, "list --status gone") == (
        "--status is one of active, revoked, deleted, failed."
    )
    assert refused_at_once(slack, ALICE, "list --product") == "--product needs a value."
    assert refused_at_once(slack, ALICE, "rotate --now") == "Usage: rotate NAME [--now]"
    assert refused_at_once(slack, ALICE, "show a-bot --all") == "Unknown flag --all for show."


# --- show and audit --------------------------------------------------------------------------


def test_show_tells_the_owner_everything_and_refuses_others(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "show-me-bot", why="Syncs release notes to the wiki")
    assert made.token is not None
    [stored] = db_tokens(admin_bot, "show-me-bot")

    seen = shown(ask(slack, ALICE, "show show-me-bot"))
    for expected in (
        "show-me-bot",
        made.account.email,
        made.account.id,  # the admin API's id
        made.account.atlassian_id,  # the account id
        "<@U0ALICE>",
        "<@U0BOB> (approve)",
        "Syncs release notes to the wiki",
        "read:jira-work, write:jira-work",
        made.token.label,
        f"delivered, expires {as_utc(stored['expires_at']):%Y-%m-%d %H:%M} UTC",
        "request submitted",
        "account created",
        "token delivered",
    ):
        assert expected in seen, expected
    assert made.token.value not in seen

    # an admin may look too
    assert made.account.email in shown(ask(slack, CAROL, "show show-me-bot"))

    # neither owner nor admin: one line, nothing about the account
    refusal = one_line(ask(slack, DAVE, "show show-me-bot"))
    assert refusal == "Only its owner or an admin can see show-me-bot (SA-1)."
    unknown = one_line(ask(slack, ALICE, "show no-such-bot"))
    assert unknown == "There is no service account named no-such-bot."
    refused = rows(
        admin_bot.database_url,
        "SELECT actor_id FROM audit_event WHERE action = 'see_refused'",
    )
    assert [r["actor_id"] for r in refused] == [DAVE]


def test_audit_shows_the_history(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    make_account(sandbox, slack, "audit-me-bot")
    reply = ask(slack, ALICE, "audit audit-me-bot")
    seen = shown(reply)
    assert "History of audit-me-bot" in seen
    history = [line.split(" · ") for line in seen.splitlines() if " · " in line]
    actions = [line[-1] for line in history]
    assert actions[0] == "request submitted" and history[0][1] == "<@U0ALICE>"
    approved = actions.index("request approve")
    assert history[approved][1] == "<@U0BOB>"
    ordered = ["request submitted", "request approve", "account created", "token delivered"]
    assert [a for a in actions if a in ordered] == ordered
    assert actions[-1] == "token delivered"
    assert one_line(ask(slack, DAVE, "audit audit-me-bot")) == (
        "Only its owner or an admin can see audit-me-bot (SA-1)."
    )


# --- rotate and token ------------------------------------------------------------------------


def test_owner_rotates_now_new_token_only_in_the_ephemeral_reply(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "rotate-now-bot")
    assert made.token is not None

    assert one_line(ask(slack, DAVE, "rotate rotate-now-bot --now")) == (
        "Only its owner or an admin can rotate rotate-now-bot (SA-1)."
    )
    assert one_line(ask(slack, ALICE, "token no-such-bot")) == (
        "There is no service account named no-such-bot."
    )
    assert len(tokens_of(sandbox, made)) == 1 and not made.token.revoked

    reply = ask(slack, ALICE, "rotate rotate-now-bot --now")
    assert reply["text"].startswith("A new token for `rotate-now-bot` (SA-1) is ready")
    assert "1 previous token(s) will be revoked" in reply["text"]
    assert has_button(reply, "token_reveal")  # the owner asked: Reveal right in the answer
    new_token_offer(slack, ALICE, "rotate-now-bot")  # and in the DM
    [offer] = [
        m
        for m in slack.messages(GENERAL, user=ALICE)
        if m["via"] == "response_url"
        and has_button(m, "token_reveal")
        and "rotate-now-bot" in shown(m)
    ]
    # --now: the first token is revoked at Atlassian at once, before the new one is revealed
    slack.wait_for(lambda: made.token and made.token.revoked, what="the old token revoked")
    assert len(tokens_of(sandbox, made)) == 1

    second, call = reveal(sandbox, slack, ALICE, offer["channel"], offer["ts"], "rotate-now-bot")
    assert second.value != made.token.value and not second.revoked
    assert [t.value for t in tokens_of(sandbox, made)] == [made.token.value, second.value]
    # the new token travelled in one Slack call: the ephemeral answer to Alice's click
    carrying = [c for c in slack.calls() if second.value in json.dumps(c)]
    assert len(carrying) == 1
    assert carrying[0]["method"] == "response_url" == call["method"]
    assert carrying[0]["args"]["response_type"] == "ephemeral"
    assert carrying[0]["args"]["user"] == ALICE
    assert second.value not in dump_database(admin_bot.database_url)
    states = [(t["label"], t["state"]) for t in db_tokens(admin_bot, "rotate-now-bot")]
    assert states == [(made.token.label, "revoked"), (second.label, "delivered")]


def test_admin_rotation_goes_to_the_owner_old_token_kept_for_grace(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "rotate-admin-bot")
    assert made.token is not None
    asked_at = datetime.now(UTC)

    reply = one_line(ask(slack, CAROL, "rotate rotate-admin-bot"))
    assert reply.startswith(
        "The new token for `rotate-admin-bot` (SA-1) went to its owner, <@U0ALICE>, never to you."
    )
    offer = new_token_offer(slack, ALICE, "rotate-admin-bot")
    assert offer["channel"] == slack.dm_channel(ALICE)
    # Carol sees no Reveal anywhere, and nothing was minted for her
    assert not [m for m in slack.messages(user=CAROL) if has_button(m, "token_reveal")]
    assert len(tokens_of(sandbox, made)) == 1

    # the old token lives on for the default grace period of 24 hours
    [old] = db_tokens(admin_bot, "rotate-admin-bot")
    revoke_after = as_utc(old["revoke_after"])
    assert timedelta(hours=23) < revoke_after - asked_at < timedelta(hours=25)
    assert f"will be revoked at {revoke_after:%Y-%m-%d %H:%M} UTC" in reply
    time.sleep(1)  # the worker polls every 0.2 s: a wrongly due revocation would run by now
    assert not made.token.revoked and old["state"] == "delivered"

    # Alice reveals the new one; Carol's answers never carried a token
    second, _ = reveal(sandbox, slack, ALICE, offer["channel"], offer["ts"], "rotate-admin-bot")
    assert not made.token.revoked and not second.revoked
    to_carol = [c for c in slack.calls() if c["args"].get("user") == CAROL]
    assert all(t.value not in json.dumps(to_carol) for t in (made.token, second))


# --- revoke and delete -----------------------------------------------------------------------


def test_revoke_asks_first_then_revokes_every_token_and_token_reactivates(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "revoke-me-bot")
    assert made.token is not None

    # neither owner nor admin, or an unknown name: one line, no prompt to click
    assert one_line(ask(slack, DAVE, "revoke revoke-me-bot")) == (
        "Only its owner or an admin can revoke revoke-me-bot (SA-1)."
    )
    assert not [m for m in slack.messages(user=DAVE) if has_button(m, "confirm_revoke")]
    assert one_line(ask(slack, ALICE, "revoke no-such-bot")) == (
        "There is no service account named no-such-bot."
    )

    # "Never mind": the prompt goes away and nothing changes
    question = ask(slack, ALICE, "revoke revoke-me-bot")
    assert "Revoke *every* token of `revoke-me-bot` (SA-1, owner <@U0ALICE>, active)?" in shown(
        question
    )
    prompt = ephemeral_with(slack, ALICE, "confirm_revoke")
    slack.click(ALICE, GENERAL, prompt["ts"], "dismiss")
    slack.wait_for(
        lambda: prompt["ts"] not in [m["ts"] for m in slack.messages(GENERAL, user=ALICE)],
        what="the prompt deleted",
    )
    time.sleep(0.5)
    assert not made.token.revoked and request_status(admin_bot, "revoke-me-bot") == "active"

    # confirming revokes every token at Atlassian; the account stays
    ask(slack, ALICE, "revoke revoke-me-bot")
    prompt = ephemeral_with(slack, ALICE, "confirm_revoke")
    slack.click(ALICE, GENERAL, prompt["ts"], "confirm_revoke")
    done = replaced(slack, ALICE, prompt["ts"], "Revoking every token of `revoke-me-bot` (SA-1).")
    assert not has_button(done, "confirm_revoke")
    slack.wait_for(lambda: all(t.revoked for t in tokens_of(sandbox, made)), what="revoked")
    assert made.account.status == "active"
    slack.wait_for(
        lambda: [t["state"] for t in db_tokens(admin_bot, "revoke-me-bot")] == ["revoked"],
        what="the token marked revoked",
    )
    [row] = listed(ask(slack, ALICE, "list --status revoked"))
    assert (row["name"], row["status"], row["expiry"]) == (
        "revoke-me-bot",
        "revoked",
        "no live token",
    )

    # `token NAME`: the owner gets a new Reveal, and the account is active again
    reply = ask(slack, ALICE, "token revoke-me-bot")["text"]
    assert (
        reply.startswith("A new token for `revoke-me-bot` (SA-1) is ready")
        and "previous" not in reply
    )
    offer = new_token_offer(slack, ALICE, "revoke-me-bot")
    second, _ = reveal(sandbox, slack, ALICE, offer["channel"], offer["ts"], "revoke-me-bot")
    assert not second.revoked and made.token.revoked
    [row] = listed(ask(slack, ALICE, "list revoke-me-bot"))
    assert row["status"] == "active" and row["expiry"].startswith("token expires")


def test_delete_is_for_admins_and_deletes_at_atlassian(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "delete-me-bot")
    assert made.token is not None

    # the owner is not an admin: one line, no prompt to click
    refusal = one_line(ask(slack, ALICE, "delete delete-me-bot"))
    assert refusal == "Only an admin can delete delete-me-bot (SA-1)."
    assert not [m for m in slack.messages(user=ALICE) if has_button(m, "confirm_delete")]
    assert one_line(ask(slack, CAROL, "delete no-such-bot")) == (
        "There is no service account named no-such-bot."
    )
    assert made.account.status == "active" and not made.token.revoked

    question = ask(slack, CAROL, "delete delete-me-bot")
    assert "Delete `delete-me-bot` (SA-1, owner <@U0ALICE>, active) at Atlassian?" in shown(
        question
    )
    prompt = ephemeral_with(slack, CAROL, "confirm_delete")
    slack.click(CAROL, GENERAL, prompt["ts"], "confirm_delete")
    replaced(slack, CAROL, prompt["ts"], "Deleting `delete-me-bot` (SA-1)")
    slack.wait_for(lambda: made.account.status == "deleted", what="deleted at Atlassian")
    assert made.token.revoked and all(t.revoked for t in tokens_of(sandbox, made))
    documented = [
        c
        for c in sandbox.atlassian.calls
        if c["method"] == "DELETE" and c["path"].endswith(f"/service-accounts/{made.account.id}")
    ]
    assert len(documented) == 1  # the documented route, first

    [row] = listed(ask(slack, CAROL, "list --status deleted"))
    assert (row["name"], row["status"]) == ("delete-me-bot", "deleted")
    assert names(ask(slack, ALICE, "list --status active")) == []
    assert one_line(ask(slack, ALICE, "token delete-me-bot")) == (
        "delete-me-bot (SA-1) is deleted: it cannot get a new token."
    )
    history = shown(ask(slack, CAROL, "audit delete-me-bot"))
    assert "delete requested" in history
    slack.wait_for(
        lambda: "account deleted" in shown(ask(slack, CAROL, "audit delete-me-bot")),
        what="the deletion in the history",
    )
    refusals = rows(
        admin_bot.database_url, "SELECT actor_id FROM audit_event WHERE action = 'delete_refused'"
    )
    assert [r["actor_id"] for r in refusals] == [ALICE]


# --- paging ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "words",
    [
        "",
        "--owner <@U0ALICE|alice> --product confluence --status revoked --expiring 14d ci bot",
        "--expiring 0d",  # "already due": zero days is a filter too
        "--expiring 9999d --status active",
    ],
)
def test_page_buttons_keep_every_filter(words: str) -> None:
    """Next and Previous carry the list's filters in their value; none may be lost on the way."""
    from bot.slack.command_args import list_filter
    from bot.slack.views.accounts import filter_of, filter_value

    flt = list_filter(words.split())
    value = filter_value(flt, 40)
    assert len(value) < 2000  # Slack's limit for a button's value
    assert filter_of(value) == (flt, 40)


# --- 5,000 accounts ----------------------------------------------------------------------------


async def _seed(database_url: str, count: int) -> list[str]:
    from workflows import migrations
    from workflows.db import Database
    from workflows.models import ServiceAccount, ServiceAccountRequest

    db = Database(database_url)
    names = [f"load-{i:04d}" for i in range(count)]
    now = datetime.now(UTC)
    try:
        await migrations.upgrade(db)
        async with db.transaction() as session:
            requests = [
                ServiceAccountRequest(
                    name=name,
                    justification="Load test",
                    products=["jira"],
                    scopes=["read:jira-work"],
                    lifetime_days=30,
                    requester_id=ALICE,
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
                for name in random.Random(5000).sample(names, count)  # ids not in name order
            ]
            session.add_all(requests)
            await session.flush()
            session.add_all(
                ServiceAccount(
                    request_id=r.id or 0,
                    name=r.name,
                    owner_id=ALICE,
                    atlassian_id=f"load-admin-{r.id}",
                    atlassian_account_id=f"712020:load-{r.id}",
                    email=f"{r.name}@serviceaccount.atlassian.com",
                    granted_products=["jira"],
                    reveal_status="revealed",
                    created_at=now,
                )
                for r in requests
            )
    finally:
        await db.engine.dispose()
    return sorted(names)


def seed_accounts(database_url: str, count: int) -> list[str]:
    """`count` active accounts of Alice's, straight into the database; their names, sorted."""
    return asyncio.run(_seed(database_url, count))


def carols_list(sandbox: Sandbox, ts: str) -> dict[str, Any]:
    """Carol's account list as she sees it now. Read in-process: the control route would copy
    all 250 earlier versions of the message on every poll."""
    message = sandbox.slack.find_message(GENERAL, ts)
    assert message is not None and message.ephemeral and message.user == CAROL
    return {"ts": ts, "text": message.text, "blocks": message.blocks}


def turn_page(
    sandbox: Sandbox, slack: SlackSandbox, page: dict[str, Any], button: str
) -> dict[str, Any]:
    """Click Next or Previous on Carol's list; the list once it changed in place."""
    before = page_range(page)
    slack.click(CAROL, GENERAL, page["ts"], button)

    def changed() -> dict[str, Any] | None:
        now = carols_list(sandbox, page["ts"])
        return now if page_range(now) != before else None

    return wait_message(slack, changed, interval=0.01, what=f"the page after {before}")


def test_list_of_5000_accounts_answers_fast_and_pages_to_the_end(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    expected = seed_accounts(database_url, 5000)
    bot = start_bot(sandbox, database_url, tmp_path / "sabot.log", extra_env=ADMIN_ENV)
    try:
        started = time.monotonic()
        answer = slack.command(CAROL, GENERAL, "list")
        slack.wait_for(lambda: answers(slack, answer), interval=0.01, what="the first page")
        elapsed = time.monotonic() - started
        print(f"first page of 5,000 accounts on {database_url.split(':')[0]}: {elapsed:.3f} s")
        assert elapsed < 3.0

        page = ephemeral_with(slack, CAROL, NEXT)
        assert page_range(page) == (1, 20, 5000) and not has_button(page, PREVIOUS)
        seen = names(page)
        while has_button(page, NEXT):
            page = turn_page(sandbox, slack, page, NEXT)
            start, end, total = page_range(page) or (0, 0, 0)
            assert (start, total) == (len(seen) + 1, 5000) and end - start + 1 == len(names(page))
            seen += names(page)
        assert seen == expected  # every name once, in order, up to the 5,000th
        assert seen[-1] == "load-4999" and page_range(page) == (4981, 5000, 5000)

        back = turn_page(sandbox, slack, page, PREVIOUS)
        assert page_range(back) == (4961, 4980, 5000)
        assert names(back) == expected[4960:4980] and has_button(back, NEXT)

        # a filtered list pages through its own matches only
        ask(slack, CAROL, "list --owner <@U0ALICE|alice> load-49")
        page = ephemeral_with(slack, CAROL, NEXT)
        filtered = names(page)
        while has_button(page, NEXT):
            page = turn_page(sandbox, slack, page, NEXT)
            filtered += names(page)
        assert filtered == [n for n in expected if "load-49" in n] and len(filtered) == 100
    finally:
        bot.stop()
