"""The edges a new user meets, through the real server with the shipped settings (issue 10,
items 8-10 and 12-16): names that read as flags, a justification posing as the bot, policy
traps, Slack's 429 on one method, unsigned garbage, an Atlassian redirect, slow clients, and the
token message's curl example run by a real shell."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.bot_process import BotProcess
from sandbox.people import (
    APPROVALS,
    BOB,
    approval_message,
    markup,
    plain_texts,
    submit_request,
    token_replies,
    wait_card,
)
from sandbox.runner import Sandbox
from sandbox.signing import sign
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import form, make_account, shown
from tests.support.databases import rows
from tests.support.reliability import engine_of, record

ROOT = Path(__file__).resolve().parent.parent


def log_problems(bot: BotProcess) -> list[str]:
    """Log lines above WARNING, and tracebacks."""
    return [
        line
        for line in bot.log().splitlines()
        if "Traceback" in line or re.search(r'"level": ?"(ERROR|CRITICAL)"|\bERROR\b', line)
    ]


# -- 8. names a command would read as flags or ids ---------------------------------------------

BAD_NAMES = ("--now", "---", "-bot", "sa-12", "SA-7")


def test_names_start_with_a_letter_or_digit_and_are_not_request_ids(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess, tmp_path: Path
) -> None:
    refused = {}
    for name in BAD_NAMES:
        answer = submit_request(slack, form(name, ("jira",), 30, "Publishes release notes"))
        body = answer.get("body") if isinstance(answer.get("body"), dict) else {}
        refused[name] = str((body.get("errors") or {}).get("name", ""))
    stored = rows(admin_bot.database_url, "SELECT name FROM service_account_request")
    prefix = tmp_path / "prefix.yml"
    prefix.write_text(
        "approval_channel: C0APPROVALS\napprovers:\n  default:\n    users: [U0BOB]\n"
        "names:\n  prefix: '-team'\n"
    )
    checked = run("policy", "check", str(prefix), cwd=tmp_path)
    record(
        "Names that read as flags or request ids",
        f"the request form submitted with {', '.join(BAD_NAMES)}; a policy prefix '-team'",
        runs=len(BAD_NAMES) + 1,
        duplicates=0,
        lost=len(stored) + int(checked.returncode == 0),
        engine=engine_of(admin_bot.database_url),
        note=f"--now: {refused['--now']}; sa-12: {refused['sa-12']}",
    )
    assert stored == []
    for name in ("--now", "---", "-bot"):
        assert "starting with a letter or digit" in refused[name], (name, refused[name])
    assert "reads as a request id" in refused["sa-12"]
    assert refused["SA-7"]  # upper case is refused in any case
    assert checked.returncode == 1 and f"{prefix}:6: names.prefix" in checked.stderr


# -- 9. a justification that poses as the bot --------------------------------------------------

BIDI = "\u202e\u2066\u200f"
POSING = (
    "Ship the release notes.\n\n:white_check_mark: *Approved by <@U0BOB>*; the account is ready"
    + BIDI
)


def test_a_justification_cannot_pose_as_the_bots_own_lines(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    submit_request(slack, form("posing-bot", ("jira",), 30, POSING))
    message = approval_message(slack)
    blocks = message["blocks"]
    plain = plain_texts(blocks)
    parsed = "\n".join([message["text"], *markup(blocks)])
    everything = json.dumps(message, ensure_ascii=False)
    [stored] = rows(admin_bot.database_url, "SELECT justification FROM service_account_request")
    posing = int("Approved by" in parsed) + sum(ch in everything for ch in BIDI)
    record(
        "A justification posing as the bot's status line",
        "justification with a blank line, an emoji code, bold 'Approved by @approver' and "
        "bidi controls",
        runs=1,
        duplicates=0,
        lost=posing,
        engine=engine_of(admin_bot.database_url),
        note=f"shown as plain text on one line: {plain}",
    )
    assert plain == [
        "Ship the release notes. :white_check_mark: *Approved by <@U0BOB>*; the account is ready"
    ]
    assert "Approved by" not in parsed  # only in the plain text, never as the bot's markup
    assert not [ch for ch in everything if unicodedata.category(ch) == "Cf"]
    assert not [ch for ch in stored["justification"] if unicodedata.category(ch) == "Cf"]
    # the plain text shows emoji codes as typed, not as the bot's check mark
    [justification] = [
        b
        for b in blocks
        if b["type"] == "section" and (b.get("text") or {}).get("type") == "plain_text"
    ]
    assert justification["text"]["emoji"] is False


# -- 10. policy traps ---------------------------------------------------------------------------

TRAPS = {
    "duplicate key": (
        "approval_channel: C0APPROVALS\napprovers:\n  default:\n    users: [U0BOB]\n"
        "  default:\n    users: [U0DAVE]\n",
        [":5: duplicate key 'default' (first at line 3)"],
    ),
    "write quorum below the default": (
        "approval_channel: C0APPROVALS\napprovers:\n  default:\n    users: [U0BOB, U0CAROL]\n"
        "quorum:\n  default: 2\n  write: 1\n",
        [":7: quorum.write: 1 is below quorum.default (2)"],
    ),
    "negative durations": (
        "approval_channel: C0APPROVALS\napprovers:\n  default:\n    users: [U0BOB]\n"
        "pending:\n  expire_after: -60\n  remind_after: -1h\nlifecycle:\n  rotation_grace: -5\n"
        "  warn_days_before_expiry: [14, -3]\n",
        [
            ":6: pending.expire_after: a duration cannot be negative",
            ":7: pending.remind_after: a duration such as",
            ":9: lifecycle.rotation_grace: a duration cannot be negative",
            ":10: lifecycle.warn_days_before_expiry.1:",
        ],
    ),
    "unclosed quote": (
        'approval_channel: C0APPROVALS\napprovers:\n  default:\n    users: ["U0BOB\n'
        "quorum:\n  default: 1\n",
        [":4: not valid YAML: while scanning a quoted scalar that begins here"],
    ),
}


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SABOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("trap", list(TRAPS))
def test_policy_traps_are_errors_naming_file_and_line(
    sandbox: Sandbox, tmp_path: Path, trap: str
) -> None:
    text, expected = TRAPS[trap]
    path = tmp_path / "policy.yml"
    path.write_text(text)
    checked = run("policy", "check", str(path), cwd=tmp_path)
    # `sabot serve` with it refuses to start, with the same lines.
    served = run(
        "serve",
        "--port",
        "1",
        cwd=tmp_path,
        env={**sandbox.bot_env(), "SABOT_POLICY": str(path), "DATABASE_URL": "sqlite:///x.db"},
    )
    found = [e for e in expected if f"{path}{e}" in checked.stderr]
    record(
        f"Policy trap: {trap}",
        "`sabot policy check FILE`, then `sabot serve` with it",
        runs=2,
        duplicates=0,
        lost=len(expected) - len(found) + int(served.returncode == 0),
        note=checked.stderr.strip().replace(str(path), "policy.yml").replace("\n", "; ")[:300],
    )
    assert checked.returncode == 1 and found == expected, checked.stderr
    assert served.returncode != 0 and f"{path}{expected[0]}" in served.stderr
    assert "Traceback" not in checked.stderr + served.stderr


# -- 12. Slack's 429 closes the method for the whole process ------------------------------------

RETRY_AFTER = 3


def test_after_a_429_no_call_of_that_method_leaves_until_retry_after(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    slack.fault("chat.postMessage", retry_after=RETRY_AFTER)
    names = [f"gate-bot-{n}" for n in range(3)]
    for name in names:  # three announcements (channel post and card each) at about once
        submit_request(slack, form(name, ("jira",), 30, "Publishes release notes"))
    slack.wait_for(
        lambda: all(
            any(name in shown(m) for m in slack.messages(APPROVALS) if not m["thread_ts"])
            for name in names
        ),
        timeout=30,
        what="every request announced",
    )

    def after_the_429() -> list[dict[str, Any]]:
        posts = slack.calls("chat.postMessage")
        [limited] = [c for c in posts if c["status"] == 429]
        return [c for c in posts if c["at"] > limited["at"]]

    # The retried one and the others that waited at the gate: the channel posts are in, the
    # cards' posts may still be on their way (under load).
    slack.wait_for(lambda: len(after_the_429()) >= 5, timeout=30, what="the posts after the 429")
    posts = slack.calls("chat.postMessage")
    [limited] = [c for c in posts if c["status"] == 429]
    after = after_the_429()
    early = [c for c in after if c["at"] < limited["at"] + RETRY_AFTER - 0.05]
    record(
        "Slack 429 on one method, several tasks calling it",
        f"chat.postMessage answers 429 (Retry-After {RETRY_AFTER} s) once while three "
        "requests are announced",
        runs=len(after),
        duplicates=len(early),
        lost=0,
        engine=engine_of(admin_bot.database_url),
        note=f"{len(after)} calls after the 429, the first "
        f"{min(c['at'] for c in after) - limited['at']:.2f} s after it; {len(early)} early",
    )
    assert early == []


# -- 13. unsigned (or signed) garbage ------------------------------------------------------------

GARBAGE: dict[str, tuple[bytes, str, str | None]] = {
    # case: (body, content type, timestamp header; None: now)
    "malformed JSON": (b'{"type": "event_callback", ', "application/json", None),
    "payload=notjson": (b"payload=notjson", "application/x-www-form-urlencoded", None),
    "payload of a JSON array": (b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded", None),
    "bad UTF-8": (b"payload=\xff\xfe\xfd", "application/x-www-form-urlencoded", None),
    "a JSON array": (b"[1, 2, 3]", "application/json", None),
    "JSON nested 100,000 deep": (b"[" * 100_000, "application/json", None),
    "a 300-digit timestamp": (
        b"command=%2Fx&text=",
        "application/x-www-form-urlencoded",
        "9" * 300,
    ),
}


def test_garbage_is_a_400_or_401_never_a_500(sandbox: Sandbox, admin_bot: BotProcess) -> None:
    answered: dict[str, list[int]] = {}
    secret = sandbox.slack.signing_secret
    for case, (body, content_type, stamp) in GARBAGE.items():
        timestamp = stamp or str(int(time.time()))
        for signed in (False, True):
            headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": timestamp}
            headers["X-Slack-Signature"] = sign(secret, timestamp, body) if signed else "v0=00"
            answer = httpx.post(f"{admin_bot.url}/slack/events", content=body, headers=headers)
            answered.setdefault(case, []).append(answer.status_code)
    alive = httpx.get(f"{admin_bot.url}/healthz").status_code
    problems = log_problems(admin_bot)
    bad = {case: codes for case, codes in answered.items() if set(codes) - {400, 401}}
    record(
        "Unsigned and signed garbage to /slack/events",
        f"{', '.join(GARBAGE)}; each unsigned and signed",
        runs=2 * len(GARBAGE),
        duplicates=0,
        lost=len(bad) + len(problems),
        engine=engine_of(admin_bot.database_url),
        note="answered " + "; ".join(f"{c} {'/'.join(map(str, s))}" for c, s in answered.items()),
    )
    assert bad == {} and alive == 200
    assert problems == [], problems[:5]


# -- 14. a redirect from Atlassian is an error ---------------------------------------------------


def test_an_atlassian_redirect_is_an_error_with_a_reason(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    sandbox.atlassian.add_fault("create", "302")
    submit_request(slack)
    slack.click(BOB, APPROVALS, approval_message(slack)["ts"], "request_approve")
    card = shown(wait_card(slack, "provisioning failed", timeout=30))
    [request] = rows(
        admin_bot.database_url, "SELECT status, status_reason FROM service_account_request"
    )
    record(
        "Atlassian answers a redirect",
        "302 to a sign-in page on create",
        runs=1,
        duplicates=len(sandbox.atlassian.live_accounts()),
        lost=int(request["status"] != "failed"),
        engine=engine_of(admin_bot.database_url),
        note=str(request["status_reason"]),
    )
    assert request["status"] == "failed"
    assert "HTTP 302, a redirect to https://id.atlassian.com/login" in request["status_reason"]
    assert "ATLASSIAN_API_URL may be wrong" in card
    assert "ticket" not in card and "ticket" not in request["status_reason"]
    assert sandbox.atlassian.live_accounts() == []


# -- 15. slow clients ----------------------------------------------------------------------------

READ_BOUND = 10.0  # HTTP_READ_TIMEOUT_SECONDS as shipped


def _port(bot: BotProcess) -> int:
    return int(bot.url.rsplit(":", 1)[1])


def trickle_headers(bot: BotProcess, out: dict[str, Any]) -> None:
    """Headers one line every 2 s: how long until the server hangs up."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", _port(bot))) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: sabot\r\n")
        conn.settimeout(0.1)
        n = 0
        while time.monotonic() - started < 3 * READ_BOUND:
            try:
                if conn.recv(1024) == b"":
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                break
            if time.monotonic() - started > 2 * (n + 1):
                n += 1
                try:
                    conn.sendall(f"X-Slow-{n}: x\r\n".encode())
                except OSError:
                    break
    out["headers"] = time.monotonic() - started


def trickle_body(bot: BotProcess, out: dict[str, Any]) -> None:
    """Whole headers, then 10 of 100 promised body bytes: the answer, and when."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", _port(bot))) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: sabot\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"type": '
        )
        conn.settimeout(3 * READ_BOUND)
        try:
            out["body_answer"] = conn.recv(4096).decode(errors="replace")
        except TimeoutError:
            out["body_answer"] = ""
    out["body"] = time.monotonic() - started


def test_slow_clients_are_cut_off_and_others_are_served(
    sandbox: Sandbox, admin_bot: BotProcess
) -> None:
    out: dict[str, Any] = {}
    threads = [
        threading.Thread(target=trickle_headers, args=(admin_bot, out)),
        threading.Thread(target=trickle_body, args=(admin_bot, out)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    meanwhile = httpx.get(f"{admin_bot.url}/healthz", timeout=5).status_code
    for thread in threads:
        thread.join(timeout=4 * READ_BOUND)
    cut = int(out["headers"] < READ_BOUND + 3) + int(out["body"] < READ_BOUND + 3)
    record(
        "Slow clients",
        "one client sends a header line every 2 s, another stops mid-body",
        runs=2,
        duplicates=0,
        lost=2 - cut,
        engine=engine_of(admin_bot.database_url),
        note=f"headers cut off after {out['headers']:.1f} s, body after {out['body']:.1f} s "
        f"({out['body_answer'].splitlines()[0] if out['body_answer'] else 'no answer'}); "
        f"served meanwhile: {meanwhile}",
    )
    assert READ_BOUND - 0.5 < out["headers"] < READ_BOUND + 3
    assert READ_BOUND - 0.5 < out["body"] < READ_BOUND + 3
    assert out["body_answer"].startswith("HTTP/1.1 408")
    assert meanwhile == 200


# -- 16. the token message's curl example works in a shell ---------------------------------------


def test_the_curl_example_sends_the_token_when_run_in_a_shell(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess
) -> None:
    made = make_account(sandbox, slack, "curl-bot")
    assert made.token is not None
    [reply] = [c for c in token_replies(slack) if made.token.value in json.dumps(c)]
    text = "\n".join(b["text"]["text"] for b in reply["args"]["blocks"] if b.get("text"))
    [example] = [block for block in re.findall(r"```(.*?)```", text, re.S) if "curl" in block]
    example = example.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    # A stand-in for curl that prints its arguments; the token is pasted at `read`.
    shell = subprocess.run(
        ["bash", "-c", 'curl() { printf "%s\\n" "$@"; }\n' + example],
        input=made.token.value + "\n",
        capture_output=True,
        text=True,
        timeout=10,
    )
    sent = shell.stdout.splitlines()
    expected = f"{made.account.email}:{made.token.value}"
    record(
        "The token message's curl example",
        "the example run by bash, with the token pasted at its prompt",
        runs=1,
        duplicates=0,
        lost=int(expected not in sent),
        engine=engine_of(admin_bot.database_url),
        note="curl received the account email and the token as -u",
    )
    assert shell.returncode == 0, shell.stderr
    assert sent[:2] == ["-u", expected]
    assert sent[2].startswith("https://api.atlassian.com/ex/jira/")
    assert made.token.value not in example  # the example never holds the token itself
