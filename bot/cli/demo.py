"""`sabot demo`: the whole flow on this machine, no credentials, with a transcript.

The Slack and Atlassian stand-ins and a real `sabot serve` process run on free local ports with
a temporary database; a requester (alice) and an approver (bob) act over signed HTTP, as Slack
would send their clicks. With `--socket-mode` the process is `sabot socket` instead, and the
same clicks reach it as envelopes over the WebSocket it opened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sandbox.runner import APPROVAL_CHANNEL, Sandbox, free_port, start_sandbox
from sandbox.slack_client import SlackSandbox

T = TypeVar("T")
ALICE, BOB, CAROL, GENERAL = "U0ALICE", "U0BOB", "U0CAROL", "C0GENERAL"
EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "examples" / "policy.yml"
FORM = {
    "name": {"name": "ci-release-notes"},
    "justification": {
        "justification": "Posts release notes to Confluence and links Jira issues from CI"
    },
    "products": {"products": ["jira", "confluence"]},
    "scopes": {"scopes": ["read:jira-work", "write:confluence-content"]},
    "lifetime_days": {"lifetime_days": "30"},
}


class StepFailed(Exception):
    pass


NAMES = {"<@U0ALICE>": "@alice", "<@U0BOB>": "@bob", "<@U0CAROL>": "@carol"}


def block_text(blocks: list[dict[str, Any]]) -> list[str]:
    """What a person reads in a message: texts, fields, buttons (mentions shown as names)."""
    return [_named(line) for line in _lines(blocks)]


def _named(line: str) -> str:
    for mention, name in NAMES.items():
        line = line.replace(mention, name)
    return line


def _lines(blocks: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        text = (block.get("text") or {}).get("text")
        if text:
            lines.extend(str(text).splitlines())
        for item in (block.get("fields") or []) + (block.get("elements") or []):
            if item.get("type") == "button":
                lines.append(f"[{item['text']['text']}]")
            elif item.get("text"):
                lines.extend(str(item["text"]).splitlines())
    return lines


def mask(token: str) -> str:
    return f"{token[:6]}…({len(token)} characters, masked here)"


class Demo:
    def __init__(self, sandbox: Sandbox, slack: SlackSandbox) -> None:
        self.sandbox, self.slack = sandbox, slack

    def say(self, who: str, what: str, lines: list[str] | None = None) -> None:
        print(f"\n{who:>6} | {what}")
        for line in lines or []:
            print(f"{'':>6} |     {line}")

    def wait(self, predicate: Callable[[], T | None], step: str, timeout: float = 15) -> T:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise StepFailed(step)

    def play(self) -> None:
        before = set(self.slack.views())
        self.say("alice", "types `/service-account request` in #general")
        self.slack.command(ALICE, GENERAL, "request")
        view_id = self.wait(
            lambda: next(
                (
                    v
                    for v, e in self.slack.views().items()
                    if v not in before and e["user"] == ALICE
                ),
                None,
            ),
            "the request form did not open",
        )
        view = self.slack.views()[view_id]["view"]
        labels = [b["label"]["text"] for b in view["blocks"] if b.get("label")]
        self.say("alice", "sees the form and fills it in", labels)
        answer = self.slack.submit(ALICE, view_id, FORM)
        if answer["status"] != 200 or not answer.get("view"):
            raise StepFailed(f"the form was not accepted: {answer.get('body')}")
        self.say("alice", "sees", block_text(answer["view"]["blocks"]))
        message = self.wait(
            lambda: next(iter(self.slack.messages(APPROVAL_CHANNEL)), None),
            "no request reached the approvers' channel",
        )
        self.say("bob", "sees in #approvals", block_text(message["blocks"]))
        for approver in (BOB, CAROL):  # the example policy wants two approvals for write scopes
            name = NAMES[f"<@{approver}>"].lstrip("@")
            self.say(name, "clicks [Approve]")
            shown = json.dumps(message["blocks"])
            self.slack.click(approver, APPROVAL_CHANNEL, message["ts"], "request_approve")
            message = self.wait(
                partial(self._changed, message["ts"], shown), "the approval was not recorded"
            )
            self.say(
                "all", "see the approvers' message now end with", block_text(message["blocks"])[-3:]
            )
            if "Waiting for approval" not in json.dumps(message["blocks"]):
                break
        offer = self.wait(self._reveal_offer, "the account never became ready", timeout=30)
        self.say("alice", "sees, visible only to her", block_text(offer["blocks"]))
        self.say("alice", "clicks [Reveal token]")
        self.slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
        reply = self.wait(self._token_reply, "the token was not delivered")
        self._show_token(reply)

    def _changed(self, ts: str, before: str) -> dict[str, Any] | None:
        message = next(m for m in self.slack.messages(APPROVAL_CHANNEL) if m["ts"] == ts)
        return message if json.dumps(message["blocks"]) != before else None

    def _reveal_offer(self) -> dict[str, Any] | None:
        return next(
            (
                m
                for m in self.slack.messages(GENERAL, user=ALICE)
                if m["ephemeral"] and "token_reveal" in json.dumps(m["blocks"])
            ),
            None,
        )

    def _token_reply(self) -> dict[str, Any] | None:
        return next(
            (
                m
                for m in self.slack.messages(GENERAL, user=ALICE)
                if m["ephemeral"] and m["via"] == "response_url" and "API token" in json.dumps(m)
            ),
            None,
        )

    def _show_token(self, reply: dict[str, Any]) -> None:
        [token] = self.sandbox.atlassian.minted_values()
        if token not in json.dumps(reply) or reply["user"] != ALICE:
            raise StepFailed("the token reply did not hold the token for alice alone")
        lines = [line.replace(token, mask(token)) for line in block_text(reply["blocks"])]
        self.say("alice", "receives, ephemerally (only she sees it, never stored)", lines)
        card = self.wait(self._revealed_card, "the card never said the token was revealed")
        self.say("alice", "her DM card now ends with", block_text(card["blocks"])[-1:])

    def _revealed_card(self) -> dict[str, Any] | None:
        cards = self.slack.messages(self.slack.dm_channel(ALICE))
        # The blocks shown now, not the message's history of earlier versions.
        return cards[-1] if cards and "revealed at" in json.dumps(cards[-1]["blocks"]) else None


def _bot_env(sandbox: Sandbox, workdir: Path, *, socket_mode: bool) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "SABOT_", "ATLASSIAN_", "DATABASE_"))
    }
    env.update(sandbox.socket_mode_env() if socket_mode else sandbox.bot_env())
    env["DATABASE_URL"] = f"sqlite:///{workdir / 'demo.db'}"
    if EXAMPLE_POLICY.exists():  # from a checkout; an installed wheel has no examples/
        env["SABOT_POLICY"] = str(EXAMPLE_POLICY)
    return env


def _start_server(sandbox: Sandbox, workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log_path = workdir / "server.log"
    # cwd is the empty temporary folder, so no .env of the user's is read.
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        cwd=workdir,
        env=_bot_env(sandbox, workdir, socket_mode=False),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                sandbox.slack.bot_url = url
                return process, f"server at {url}", log_path
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise StepFailed(f"the server did not start:\n{log_path.read_text()[-2000:]}")


def _start_socket_bot(sandbox: Sandbox, workdir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`sabot socket`, once the Slack stand-in has its connection: no URL to send to."""
    log_path = workdir / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "socket"],
        cwd=workdir,
        env=_bot_env(sandbox, workdir, socket_mode=True),
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if "sabot connected over Socket Mode" in log_path.read_text(errors="replace"):
            return process, "`sabot socket` connected over Socket Mode", log_path
        time.sleep(0.05)
    process.kill()
    raise StepFailed(f"sabot socket did not connect:\n{log_path.read_text()[-2000:]}")


def run_demo(socket_mode: bool = False) -> int:
    """Play the flow (the bot over HTTP, or over Socket Mode); 0 only if alice received the
    token ephemerally."""
    with tempfile.TemporaryDirectory(prefix="sabot-demo-") as folder:
        sandbox = start_sandbox()
        process, log_path = None, Path(folder) / "server.log"
        try:
            start = _start_socket_bot if socket_mode else _start_server
            process, bot, log_path = start(sandbox, Path(folder))
            policy = EXAMPLE_POLICY if EXAMPLE_POLICY.exists() else "the settings"
            print(f"sabot demo: policy from {policy}")
            print(
                f"sabot demo: stand-ins at {sandbox.slack_url} (Slack) and "
                f"{sandbox.atlassian_url} (Atlassian); {bot}"
            )
            with SlackSandbox(sandbox.slack_url) as slack:
                Demo(sandbox, slack).play()
            print("\nOK: the token reached alice in an ephemeral reply to her own click.")
            return 0
        except StepFailed as failed:
            print(f"\nFAILED at this step: {failed}", file=sys.stderr)
            if log_path.exists():
                tail = log_path.read_text(errors="replace").splitlines()[-30:]
                print("server log (last lines):", *tail, sep="\n  ", file=sys.stderr)
            return 1
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
            sandbox.stop()
