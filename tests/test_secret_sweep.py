"""The secret sweep, proved: every path a token or a credential can take, then a search of
everything the bot wrote or sent (the same `sweep` the autouse fixture runs after every test
that ran a bot), and negative controls showing the sweep finds a planted secret wherever it
looks, so that it cannot pass by looking nowhere.

One run per engine: request, approve, Reveal (its response_url refused and the
chat.postEphemeral fallback rate-limited once, so the token is sent three times, always to the
requester), rotate --now and reveal the new token, revoke, token and reveal again, the admin's
`list`, `show` and `audit`, the Home tab, delete, and `sabot audit export` and `sabot reconcile`
as an operator runs them.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import sqlite3
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.process import logs
from sandbox.atlassian import AtlassianState
from sandbox.bot_process import start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    CAROL,
    GENERAL,
    GOOD_FORM,
    approval_message,
    open_home,
    reveal_offer,
    submit_request,
)
from sandbox.runner import Sandbox
from sandbox.slack import Message, ResponseUrl, SlackState
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import ask, ephemeral_with, new_token_offer
from tests.support.cli import run_sabot
from tests.support.databases import database_tables, pg_admin_url, pg_execute
from tests.support.reliability import engine_of, record
from tests.support.sweep import found, secrets_of, sweep, sweep_calls, sweep_database, sweep_files

NAME = GOOD_FORM["name"]["name"]
# The loggers the issue names, and the bodies' loggers: all at DEBUG in the tests.
LIBRARY_LOGGERS = (
    "slack_sdk",
    "slack_sdk.web.async_base_client",
    "slack_sdk.webhook.async_client",
    "slack_bolt",
    "slack_bolt.AsyncApp",
    "slack_bolt.oauth",
    "aiohttp",
    "aiohttp.client",
    "httpx",
    "httpcore",
)


def carrying(slack: SlackSandbox, value: str) -> list[dict[str, Any]]:
    return [c for c in slack.calls() if value in json.dumps(c)]


def json_loggers(log: str) -> dict[str, set[str]]:
    """logger name -> levels seen, from a JSON log."""
    seen: dict[str, set[str]] = {}
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "logger" in entry:
            seen.setdefault(str(entry["logger"]), set()).add(str(entry.get("level")))
    return seen


def next_offer(slack: SlackSandbox, ask_for: str) -> dict[str, Any]:
    """Ask for a new token; the DM that offers it (not an older offer still showing)."""
    dm = slack.dm_channel(ALICE)
    before = {m["ts"] for m in slack.messages(dm)}
    ask(slack, ALICE, ask_for)
    slack.wait_for(
        lambda: new_token_offer(slack, ALICE, NAME)["ts"] not in before, what="a new offer"
    )
    return new_token_offer(slack, ALICE, NAME)


def drive_every_path(sandbox: Sandbox, slack: SlackSandbox) -> dict[str, int]:
    """The whole life of one account, through every place a token or credential passes.
    Returns what was counted on the way."""
    counted: dict[str, int] = {}
    tokens = sandbox.atlassian.tokens

    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    offer = reveal_offer(slack)

    # Reveal, the reply retried: the click's response_url refuses (429), the bot falls back
    # to chat.postEphemeral, which is rate-limited once and sent again.
    slack.fault("response_url", count=1, retry_after=1)
    slack.fault("chat.postEphemeral", count=1, retry_after=1)
    slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
    slack.wait_for(lambda: len(tokens) == 1, what="the first token minted")
    first = tokens[0].value
    sent = slack.wait_for(
        lambda: [
            c for c in carrying(slack, first) if c["method"] == "chat.postEphemeral" and c.get("ok")
        ],
        what="the first token, by chat.postEphemeral after the refused response_url",
    )
    counted["first token sent"] = len(carrying(slack, first))
    counted["first token delivered"] = len(sent)

    # rotate --now: the old token is revoked at once; the new one revealed from the DM
    offer = next_offer(slack, f"rotate {NAME} --now")
    slack.wait_for(lambda: tokens[0].revoked, what="the first token revoked")
    slack.click(ALICE, offer["channel"], offer["ts"], "token_reveal")
    slack.wait_for(lambda: len(tokens) == 2, what="the rotated token minted")
    second = tokens[1].value
    slack.wait_for(lambda: carrying(slack, second), what="the rotated token delivered")

    # revoke (after the confirm step), then `token NAME` and a third reveal
    ask(slack, ALICE, f"revoke {NAME}")
    prompt = ephemeral_with(slack, ALICE, "confirm_revoke")
    slack.click(ALICE, GENERAL, prompt["ts"], "confirm_revoke")
    slack.wait_for(lambda: all(t.revoked for t in tokens), what="every token revoked")
    offer = next_offer(slack, f"token {NAME}")
    slack.click(ALICE, offer["channel"], offer["ts"], "token_reveal")
    slack.wait_for(lambda: len(tokens) == 3, what="the third token minted")
    third = tokens[2].value
    slack.wait_for(lambda: carrying(slack, third), what="the third token delivered")

    # what the admin and the owner can see: list, show, audit, the Home tab
    for user, text in ((CAROL, "list"), (CAROL, f"show {NAME}"), (CAROL, f"audit {NAME}")):
        ask(slack, user, text)
    ask(slack, ALICE, f"show {NAME}")
    open_home(slack, ALICE, NAME)
    open_home(slack, CAROL, "Requests by status")

    # delete: every token revoked, the account deleted at Atlassian
    ask(slack, CAROL, f"delete {NAME}")
    prompt = ephemeral_with(slack, CAROL, "confirm_delete")
    slack.click(CAROL, GENERAL, prompt["ts"], "confirm_delete")
    slack.wait_for(
        lambda: [a.status for a in sandbox.atlassian.accounts.values()] == ["deleted"],
        what="the account deleted",
    )
    counted["tokens minted"] = len(tokens)
    counted["live tokens"] = sum(not t.revoked for t in tokens)
    return counted


def operator_commands(sandbox: Sandbox, database_url: str, cwd: Path) -> list[str]:
    """`sabot audit export` (CSV, JSON to a file) and `sabot reconcile`, at DEBUG: their
    output, as an operator would read or keep it."""
    debug = {"LOG_LEVEL": "DEBUG", "LOG_BODIES": "1"}
    outputs = []
    for args, settings in (
        (("audit", "export"), debug),
        (("audit", "export", "--format", "json", "--output", "audit.json"), debug),
        (("reconcile",), {**sandbox.bot_env(), **debug}),
    ):
        done = run_sabot(database_url, cwd, args, settings)
        assert done.returncode in (0, 1), f"sabot {' '.join(args)}: exit {done.returncode}"
        outputs += [done.stdout, done.stderr]
    outputs.append((cwd / "audit.json").read_text())
    return outputs


def test_every_path_a_token_takes_then_the_sweep_finds_nothing(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_bot(sandbox, database_url, tmp_path / "sabot.log", {"SABOT_ADMINS": CAROL})
    try:
        counted = drive_every_path(sandbox, slack)
    finally:
        bot.stop()
    cli = operator_commands(sandbox, database_url, tmp_path)
    secrets = secrets_of([(bot, sandbox)])
    cli_hits = [s.name for text in cli for s in found(text.encode(), secrets)]

    started = time.monotonic()
    outcome = sweep([(bot, sandbox)], [tmp_path])
    seconds = time.monotonic() - started
    [database] = outcome.databases.values()
    log_lines = sum(n for p, (n, _) in outcome.files.files.items() if p.endswith(".log"))
    loggers = json_loggers(bot.log())
    hits = len(outcome.findings) + len(cli_hits)
    record(
        "Secret sweep, every path a token takes",
        "one account's whole life (request, approve, Reveal with its ephemeral reply refused "
        "and retried, rotate --now and Reveal, revoke, token and Reveal, admin list/show/audit, "
        "Home, delete) and `sabot audit export`/`reconcile`; then the sweep",
        engine=engine_of(database_url),
        runs=1,
        duplicates=0,
        lost=hits,
        note=(
            f"{counted['tokens minted']} tokens and {len(secrets) - len(outcome.tokens)} "
            f"credentials searched in {database.tables} tables ({database.rows} rows), "
            f"{len(outcome.files.files)} files ({log_lines} log lines), "
            f"{outcome.calls.slack_calls} Slack calls, {outcome.calls.deliveries} deliveries, "
            f"{outcome.calls.atlassian_calls} Atlassian calls, {len(cli)} CLI outputs in "
            f"{seconds:.2f} s; the first token was sent {counted['first token sent']} times, "
            f"every time to the requester; {hits} hits"
        ),
    )

    assert counted["tokens minted"] == 3 and counted["live tokens"] == 0
    assert outcome.tokens == {t.value for t in sandbox.atlassian.tokens}
    # the retried reply carried the first token three times (the refused response_url and
    # chat.postEphemeral twice), and the sweep allowed exactly the ephemeral replies to Alice
    assert counted["first token sent"] == 3 and counted["first token delivered"] == 1
    carried = [c for t in sandbox.atlassian.tokens for c in carrying(slack, t.value)]
    assert all(c["args"]["user"] == ALICE for c in carried)
    assert outcome.calls.exempt == len(carried) == 5
    # it searched what it says it did
    assert {"audit_event", "job", "api_token", "service_account"} <= set(
        database_tables(database_url)
    )
    assert database.rows > 20 and log_lines > 200
    assert any(p.endswith("sabot.db") for p in outcome.files.files) == (
        not database_url.startswith("postgresql")
    )
    # the log holds every library's DEBUG lines, the token reply's body masked
    for prefix in ("slack_sdk.webhook", "slack_sdk.web", "slack_bolt", "httpcore"):
        assert any(n.startswith(prefix) and "DEBUG" in lv for n, lv in loggers.items()), prefix
    bodies = [line for line in bot.log().splitlines() if "Copy it now" in line]
    webhook = [line for line in bodies if "slack_sdk.webhook" in line]
    assert len(webhook) >= 3 and all(logs.MASK in line for line in bodies)
    assert outcome.findings == [] and cli_hits == []


# -- negative controls: a planted secret is found, wherever it is planted ------------------------


def test_the_sweep_finds_a_planted_secret_everywhere_it_looks(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_bot(sandbox, database_url, tmp_path / "sabot.log")
    try:
        submit_request(slack)
        slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
        slack.click(ALICE, GENERAL, reveal_offer(slack)["ts"], "token_reveal")
        slack.wait_for(
            lambda: [c for c in slack.calls("response_url") if "API token" in json.dumps(c)],
            what="the token delivered",
        )
    finally:
        bot.stop()
    secrets = secrets_of([(bot, sandbox)])
    [token] = [s for s in secrets if s.token]
    [signing] = [s for s in secrets if s.value == sandbox.slack.signing_secret]
    clean = sweep([(bot, sandbox)], [tmp_path])
    assert clean.findings == []
    planted: list[str] = []  # where each plant went
    caught: list[list[str]] = []  # what the sweep said about it

    # The copies live outside tmp_path, so the test's own sweep never sees the plants.
    with tempfile.TemporaryDirectory() as scratch:
        copies = Path(scratch)
        for name, text in {
            "traceback.log": json.dumps({"exception": f"RuntimeError: {token.value!r}"}),
            "form.log": "body: text=" + urllib.parse.quote_plus(token.value),
            "cut.log": f"token={token.value[:40]}...",
            "credential.log": f"signing with {signing.value}",
        }.items():
            shutil.copy(tmp_path / "sabot.log", copies / name)
            with (copies / name).open("a") as log:
                log.write(text + "\n")
            planted.append(f"file {name}")
            caught.append(sweep_files([copies], secrets).findings)
            (copies / name).unlink()

        for table, column in (("job", "last_error"), ("audit_event", "detail")):
            with database_copy(database_url, copies) as copy:
                plant_in_database(copy, table, column, token.value)
                planted.append(f"table {table}, column {column}")
                caught.append(sweep_database(copy, secrets).findings)

    recipients = sweep_database(database_url, secrets).recipients
    state, exempt = forged_calls(sandbox, token.value)
    # the same tokens and key as the real stand-in, and the key sent back in a body
    atlassian = AtlassianState(tokens=sandbox.atlassian.tokens)
    atlassian.calls = [{"method": "POST", "path": "/x", "json": {"key": atlassian.api_key}}]
    calls = sweep_calls(Sandbox(state, atlassian, "", ""), secrets, recipients)
    planted.append("forged Slack and Atlassian calls")
    caught.append(calls.findings)

    found_each = sum(bool(c) for c in caught)
    record(
        "Secret sweep, negative controls",
        "a token or credential planted in a copy of the log (JSON-escaped in a traceback, "
        "URL-encoded, cut short), of each engine's database (job.last_error, audit_event), "
        "and in forged Slack/Atlassian calls: the sweep must find each",
        engine=engine_of(database_url),
        runs=len(planted),
        duplicates=0,
        lost=len(planted) - found_each,
        note=f"{found_each} of {len(planted)} plants found; {calls.exempt} allowed replies "
        f"left alone",
    )
    assert found_each == len(planted), list(zip(planted, caught, strict=True))
    for where, findings in zip(planted[:4], caught[:4], strict=True):
        assert len(findings) == 1 and where.split()[-1] in findings[0], findings
    assert "table job" in caught[4][0] and "column last_error" in caught[4][0]
    assert "table audit_event" in caught[5][0] and "column detail" in caught[5][0]
    assert len(calls.findings) == 6 and calls.exempt == exempt == 2, calls.findings
    # and no report ever shows the secret itself
    every = [f for c in caught for f in c]
    for needle in (n.decode() for s in secrets for n in s.needles()):
        assert not [f for f in every if needle in f]


def forged_calls(sandbox: Sandbox, token: str) -> tuple[SlackState, int]:
    """A Slack stand-in's record with the token sent where it must never go (5 leaks, one of
    them in the bot's answer to Slack) and twice where it may (2 allowed)."""
    state = SlackState()
    public = Message(channel=GENERAL, ts="1.000001", text="hi", author="U0SABOT")
    state.messages.append(public)
    state.response_urls["r-public"] = ResponseUrl(ALICE, GENERAL, public.ts, 0.0)
    text = f"API token {token}"
    state.calls = [
        # leaks
        {"method": "chat.postMessage", "args": {"channel": GENERAL, "text": text}},
        {"method": "response_url", "args": {"rid": "x", "user": CAROL, "text": text}},
        {
            "method": "response_url",
            "args": {"rid": "x", "user": ALICE, "text": text, "response_type": "in_channel"},
        },
        # replaces a message everyone sees
        {"method": "response_url", "args": {"rid": "r-public", "user": ALICE, "text": text}},
        # allowed: ephemeral, to the owner
        {"method": "chat.postEphemeral", "args": {"user": ALICE, "text": text}},
        {
            "method": "response_url",
            "args": {"rid": "y", "user": ALICE, "text": text, "replace_original": False},
        },
    ]
    state.deliveries = [{"kind": "click", "request": "", "status": 500, "body": text}]
    return state, 2


def plant_in_database(url: str, table: str, column: str, value: str) -> None:
    """Write `value` into one row's column, as a careless `last_error` or audit detail would."""
    planted = json.dumps({"oops": value}) if column == "detail" else f"boom: {value}"
    where = f"WHERE id = (SELECT min(id) FROM {table})"
    if url.startswith("postgresql"):
        cast = "::json" if column == "detail" else ""
        asyncio.run(_pg_execute(url, f"UPDATE {table} SET {column} = $1{cast} {where}", planted))
        return
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        with conn:
            assert conn.execute(f"UPDATE {table} SET {column} = ? {where}", (planted,)).rowcount
    finally:
        conn.close()


async def _pg_execute(url: str, sql: str, *args: Any) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        assert await conn.execute(sql, *args) == "UPDATE 1"
    finally:
        await conn.close()


@contextmanager
def database_copy(url: str, scratch: Path) -> Iterator[str]:
    """A throwaway copy of the bot's database, outside the test's folder: a file copy for
    SQLite, `CREATE DATABASE ... TEMPLATE` for PostgreSQL; gone afterwards."""
    if not url.startswith("postgresql"):
        target = scratch / f"copy-{uuid.uuid4().hex[:6]}.db"
        shutil.copy(url.removeprefix("sqlite:///"), target)
        try:
            yield f"sqlite:///{target}"
        finally:
            target.unlink(missing_ok=True)
        return
    admin = pg_admin_url()
    assert admin is not None
    name, original = f"sabot_copy_{uuid.uuid4().hex[:10]}", url.rsplit("/", 1)[1]
    asyncio.run(pg_execute(admin, f'CREATE DATABASE "{name}" TEMPLATE "{original}"'))
    try:
        yield f"{admin.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- the loggers really are at DEBUG, and production keeps bodies out --------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {n: logging.getLogger(n).level for n in (*LIBRARY_LOGGERS, *logs.NOISY_LOGGERS)}
    for name in levels:  # as a fresh process has them (an in-process Bolt app sets its own)
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in levels.items():
        logging.getLogger(name).setLevel(was)


def test_library_loggers_follow_log_level_and_bodies_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    levels = {}
    for bodies in ("1", ""):
        monkeypatch.setenv("LOG_BODIES", bodies)
        logs.configure("DEBUG", fmt="json", stream=io.StringIO())
        levels[bodies] = {n: logging.getLogger(n).getEffectiveLevel() for n in LIBRARY_LOGGERS}
    monkeypatch.delenv("LOG_BODIES")
    logs.configure("INFO", fmt="json", stream=io.StringIO())
    production = {n: logging.getLogger(n).getEffectiveLevel() for n in LIBRARY_LOGGERS}

    assert levels["1"] == dict.fromkeys(LIBRARY_LOGGERS, logging.DEBUG)  # what the tests run
    held = {n for n, lv in levels[""].items() if lv > logging.DEBUG}
    assert held == {"slack_sdk.webhook.async_client", "slack_bolt.oauth"}  # bodies held back
    assert min(production.values()) == logging.INFO
