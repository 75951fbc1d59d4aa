"""The secret sweep: after every test that ran a bot, no minted token and no credential in its
database, its log and any other file the test left (DEBUG on, tracebacks included), what it
sent Atlassian or answered Slack, or any Slack call but the ephemeral replies to the token's
owner. A hit names where, never the secret.

Bots are registered here as they start (`STARTED`): conftest hooks the processes of
sandbox.bot_process and the in-process bot of the slack tier in, runs the sweep after each test
and once more at the end of the session."""

from __future__ import annotations

import functools
import html
import json
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sandbox.runner import Sandbox
from tests.support.databases import database_tables


class RunningBot(Protocol):
    """What the sweep needs of a bot, a process (`sandbox.bot_process.BotProcess`) or one
    served in the test's own process."""

    log_path: Path
    database_url: str
    # (setting, value) of the credentials it was started with: what the sweep looks for
    credentials: tuple[tuple[str, str], ...]

    def running(self) -> bool: ...

    def stop(self) -> None: ...


# Every bot started since the running test began (with its stand-ins): swept when it ends.
STARTED: list[tuple[RunningBot, Sandbox]] = []
# Bots a module- or session-scoped fixture started: swept with every test while they run, and
# once more when the session ends.
LONG_LIVED: list[tuple[RunningBot, Sandbox]] = []

MAX_FILE_BYTES = 64 * 1024 * 1024


class SecretLeak(AssertionError):
    """A secret was found where it must never be; the message says where, never the value."""


@dataclass(frozen=True)
class Secret:
    """One value to hunt for. `name` is safe to print (a token's label, a setting's name)."""

    name: str
    value: str
    token: bool = False  # a minted token may go to its owner in an ephemeral reply, only there

    def needles(self) -> tuple[bytes, ...]:
        """The value as written, JSON-escaped, HTML-escaped and URL-encoded; a long one also
        by its head and tail, since a cut-off copy of a token is still a leak."""
        return _needles(self.value)


@functools.lru_cache(maxsize=4096)
def _needles(v: str) -> tuple[bytes, ...]:
    spellings = {
        v,
        json.dumps(v)[1:-1],
        html.escape(v, quote=False),
        urllib.parse.quote(v, safe=""),
        urllib.parse.quote_plus(v),
    }
    if len(v) >= 64:
        spellings |= {v[:32], v[-32:]}
    return tuple(sorted(x.encode() for x in spellings))


def found(data: bytes, secrets: Iterable[Secret]) -> list[Secret]:
    """The secrets any spelling of which is in `data`."""
    return [s for s in secrets if any(n in data for n in s.needles())]


def _text(value: Any) -> bytes:
    return json.dumps(value, default=str, ensure_ascii=False).encode("utf-8", "replace")


def secrets_of(bots: Iterable[tuple[RunningBot, Sandbox]]) -> list[Secret]:
    """Every token the stand-ins minted, the credentials each bot was started with, and those
    the stand-ins hold now (a test may have changed them since)."""
    out: dict[str, Secret] = {}
    for bot, sandbox in bots:
        for token in sandbox.atlassian.tokens:
            out.setdefault(token.value, Secret(f"token {token.label!r}", token.value, True))
        now_held = [
            ("SLACK_BOT_TOKEN", sandbox.slack.bot_token),
            ("SLACK_SIGNING_SECRET", sandbox.slack.signing_secret),
            ("SLACK_APP_TOKEN", sandbox.slack.app_token),
            ("ATLASSIAN_API_KEY", sandbox.atlassian.api_key),
        ]
        for name, value in [*bot.credentials, *now_held]:
            if value:
                out.setdefault(value, Secret(name, value))
    return list(out.values())


@dataclass
class DatabaseSweep:
    rows: int = 0
    tables: int = 0
    findings: list[str] = field(default_factory=list)
    # An account's Atlassian id -> the people its token may be shown to (requester, owner).
    recipients: dict[str, set[str]] = field(default_factory=dict)


def sweep_database(database_url: str, secrets: list[Secret]) -> DatabaseSweep:
    """Every row of every table, each column searched; a hit names table, row and column."""
    tables = database_tables(database_url)
    out = DatabaseSweep(tables=len(tables))
    engine = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    for table, rows in tables.items():
        out.rows += len(rows)
        if not found(_text(rows), secrets):
            continue
        for index, row in enumerate(rows):
            for column, value in row.items():
                for secret in found(_text(value), secrets):
                    out.findings.append(
                        f"{secret.name} in the {engine} database: table {table}, "
                        f"row {index + 1}, column {column}"
                    )
    out.recipients = token_recipients(tables)
    return out


def token_recipients(tables: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """An account's Atlassian ids -> everyone who has owned it: its requester, its owner now,
    and every owner the audit trail names (reassigning rewrites the rows, not the history)."""
    owners: dict[Any, set[str]] = {}
    for request in tables.get("service_account_request", []):
        owners.setdefault(request.get("id"), set()).add(str(request.get("requester_id")))
    for event in tables.get("audit_event", []):
        detail = event.get("detail")
        detail = json.loads(detail) if isinstance(detail, str) else detail or {}
        people = owners.setdefault(event.get("request_id"), set())
        if event.get("action") == "request_submitted":
            people.add(str(event.get("actor_id")))
        if event.get("action") in ("owner_left", "owner_reassigned"):
            people.update(str(detail.get(k)) for k in ("previous", "owner") if detail.get(k))
    out: dict[str, set[str]] = {}
    for account in tables.get("service_account", []):
        people = {str(account.get("owner_id")), *owners.get(account.get("request_id"), set())}
        for key in (account.get("atlassian_account_id"), account.get("atlassian_id")):
            if key:
                out.setdefault(str(key), set()).update(people)
    return out


@dataclass
class FileSweep:
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (lines, bytes)
    findings: list[str] = field(default_factory=list)


def sweep_files(folders: Iterable[Path], secrets: list[Secret]) -> FileSweep:
    """Every file under the folders, as bytes: logs of every process the test started (the
    bot's, a worker's, a crashed server's), tracebacks in them, a SQLite file with its freed
    pages and journal, exports. A hit names the file and the line."""
    out = FileSweep()
    seen: set[Path] = set()
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path in seen or path.is_symlink() or not path.is_file():
                continue
            seen.add(path)
            data = path.read_bytes()[:MAX_FILE_BYTES]
            out.files[str(path)] = (data.count(b"\n"), len(data))
            for secret in found(data, secrets):
                at = min(i for n in secret.needles() if (i := data.find(n)) >= 0)
                line = data.count(b"\n", 0, at) + 1
                out.findings.append(f"{secret.name} in file {path}, line {line}")
    return out


def ephemeral_recipient(state: Any, call: dict[str, Any]) -> str | None:
    """The one person who sees this Slack call, if it is an ephemeral reply; else None.

    A response_url post is ephemeral unless `in_channel`, and stays so only if it does not
    replace a message others can see; chat.postEphemeral is seen by its `user`."""
    args = call.get("args") or {}
    if call.get("method") == "chat.postEphemeral":
        return str(args.get("user") or "") or None
    if call.get("method") != "response_url":
        return None
    if args.get("response_type", "ephemeral") != "ephemeral":
        return None
    replace = args.get("replace_original")
    if replace is None or replace is True or str(replace).lower() == "true":
        entry = state.response_urls.get(args.get("rid"))
        if entry is not None and entry.message_ts:
            original = next(
                (
                    m
                    for m in state.messages
                    if m.channel == entry.channel and m.ts == entry.message_ts
                ),
                None,
            )
            if original is not None and not original.ephemeral:
                return None  # it would replace a message others see
    return str(args.get("user") or "") or None


@dataclass
class CallSweep:
    slack_calls: int = 0
    deliveries: int = 0
    atlassian_calls: int = 0
    exempt: int = 0  # ephemeral replies carrying a token to its owner
    findings: list[str] = field(default_factory=list)


def sweep_calls(
    sandbox: Sandbox, secrets: list[Secret], recipients: dict[str, set[str]]
) -> CallSweep:
    """Every Web API and response_url call the bot made, every answer it gave Slack (an error
    body would be there), every call it made to Atlassian. A token is allowed in one place
    only: an ephemeral reply to the owner of the token's account (twice if it was retried)."""
    out = CallSweep()
    owner_of = {t.value: recipients.get(t.atlassian_id, set()) for t in sandbox.atlassian.tokens}
    slack = sandbox.slack
    for index, call in enumerate(list(slack.calls)):
        out.slack_calls += 1
        hits = found(_text(call), secrets)
        if not hits:
            continue
        to = ephemeral_recipient(slack, call)
        for secret in hits:
            if secret.token and to is not None and to in owner_of.get(secret.value, set()):
                out.exempt += 1
                continue
            whom = f" (ephemeral to {to})" if to else ""
            out.findings.append(
                f"{secret.name} in Slack call #{index + 1} {call.get('method')}{whom}"
            )
    for index, delivery in enumerate(list(slack.deliveries)):
        out.deliveries += 1
        for secret in found(_text(delivery), secrets):
            out.findings.append(
                f"{secret.name} in what Slack sent the bot or its answer: delivery "
                f"#{index + 1} ({delivery.get('kind')}, HTTP {delivery.get('status')})"
            )
    for index, call in enumerate(list(sandbox.atlassian.calls)):
        out.atlassian_calls += 1
        for secret in found(_text(call), secrets):
            out.findings.append(
                f"{secret.name} in Atlassian call #{index + 1} {call.get('method')} "
                f"{call.get('path')}"
            )
    return out


@dataclass
class SweepOutcome:
    tokens: set[str] = field(default_factory=set)
    databases: dict[str, DatabaseSweep] = field(default_factory=dict)
    files: FileSweep = field(default_factory=FileSweep)
    calls: CallSweep = field(default_factory=CallSweep)
    findings: list[str] = field(default_factory=list)  # not counting those raised before DROP

    def describe(self) -> str:
        shown = "\n  ".join(self.findings[:20])
        more = f"\n  ... and {len(self.findings) - 20} more" if len(self.findings) > 20 else ""
        return f"secret sweep: {len(self.findings)} hit(s):\n  {shown}{more}"


# Databases already searched just before they were dropped, in this test.
_SWEPT_DATABASES: dict[str, DatabaseSweep] = {}


def sweep_before_drop(url: str) -> None:
    """A throwaway PostgreSQL database is dropped when its fixture ends, before the autouse
    sweep runs: its bots are stopped and its rows searched here, and a hit fails the test."""
    bots = [(b, s) for b, s in STARTED + LONG_LIVED if b.database_url == url]
    if not bots:
        return
    for bot, _ in bots:
        bot.stop()
    started = time.monotonic()
    result = sweep_database(url, secrets_of(STARTED + LONG_LIVED))
    _SWEPT_DATABASES[url] = result
    SWEEP_TOTALS.hits += len(result.findings)
    SWEEP_TOTALS.seconds += time.monotonic() - started
    if result.findings:
        raise SecretLeak(
            f"secret sweep: {len(result.findings)} hit(s):\n  " + "\n  ".join(result.findings)
        )


def sweep(
    bots: list[tuple[RunningBot, Sandbox]],
    folders: Iterable[Path],
    *,
    counted: list[tuple[RunningBot, Sandbox]] | None = None,
) -> SweepOutcome:
    """Search everything these bots could have written or sent for every token their
    stand-ins minted and every credential. `counted`: the bots to stop first (the others are
    a wider fixture's, still serving)."""
    for bot, _ in counted or []:
        bot.stop()
    secrets = secrets_of(bots)
    outcome = SweepOutcome(tokens={s.value for s in secrets if s.token})
    recipients: dict[str, set[str]] = {}
    for url in dict.fromkeys(b.database_url for b, _ in bots):
        result = _SWEPT_DATABASES.get(url)
        if result is None:
            result = sweep_database(url, secrets)
            outcome.findings += result.findings
        outcome.databases[url] = result
        for account, people in result.recipients.items():
            recipients.setdefault(account, set()).update(people)
    outcome.files = sweep_files(folders, secrets)
    outcome.findings += outcome.files.findings
    sandboxes = {id(s): s for _, s in bots}
    for sandbox in sandboxes.values():
        calls = sweep_calls(sandbox, secrets, recipients)
        outcome.calls.slack_calls += calls.slack_calls
        outcome.calls.deliveries += calls.deliveries
        outcome.calls.atlassian_calls += calls.atlassian_calls
        outcome.calls.exempt += calls.exempt
        outcome.findings += calls.findings
    return outcome


@dataclass
class SweepTotals:
    """What the sweep searched over the session (a file or database searched again after a
    later test counts once, at its latest size)."""

    tests: int = 0
    tokens: set[str] = field(default_factory=set)
    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    database_rows: dict[str, int] = field(default_factory=dict)
    slack_calls: int = 0
    deliveries: int = 0
    atlassian_calls: int = 0
    exempt: int = 0
    hits: int = 0
    seconds: float = 0.0

    def add(self, outcome: SweepOutcome, *, test: bool) -> None:
        self.tests += int(test)
        self.tokens |= outcome.tokens
        self.files.update(outcome.files.files)
        self.database_rows.update({u: d.rows for u, d in outcome.databases.items()})
        self.slack_calls += outcome.calls.slack_calls
        self.deliveries += outcome.calls.deliveries
        self.atlassian_calls += outcome.calls.atlassian_calls
        self.exempt += outcome.calls.exempt
        self.hits += len(outcome.findings)

    def note(self) -> str:
        lines = sum(n for p, (n, _) in self.files.items() if p.endswith(".log"))
        size = sum(b for _, b in self.files.values())
        return (
            f"{self.tests} tests that ran a bot; {len(self.tokens)} minted tokens and the "
            f"credentials searched for in {len(self.database_rows)} databases "
            f"({sum(self.database_rows.values())} rows), {len(self.files)} files "
            f"({lines} log lines, {size} bytes), {self.slack_calls} Slack calls "
            f"({self.exempt} ephemeral token replies to the owner allowed), "
            f"{self.deliveries} Slack deliveries and {self.atlassian_calls} Atlassian calls; "
            f"{self.hits} hits; {self.seconds:.1f} s spent searching"
        )


SWEEP_TOTALS = SweepTotals()


def begin_test() -> None:
    """Before a test: a bot already registered came from a fixture of a wider scope (autouse
    fixtures start before the test's own fixtures of the same scope)."""
    LONG_LIVED.extend(STARTED)
    STARTED.clear()
    _SWEPT_DATABASES.clear()


def end_test(tmp_path: Path | None) -> None:
    """After a test: sweep the bots it started and those of wider fixtures still running; a hit
    fails the test."""
    owned = STARTED[:]
    running = [(b, s) for b, s in LONG_LIVED if b.running()]
    try:
        if not owned and not running:
            return
        started = time.monotonic()
        folders = [b.log_path.parent for b, _ in owned + running]
        if tmp_path is not None:  # torn down by now, but its folder stays
            folders.append(tmp_path)
        outcome = sweep(owned + running, folders, counted=owned)
        SWEEP_TOTALS.add(outcome, test=True)
        SWEEP_TOTALS.seconds += time.monotonic() - started
        if outcome.findings:
            raise SecretLeak(outcome.describe())
    finally:
        STARTED.clear()
        _SWEPT_DATABASES.clear()


def end_session() -> list[str]:
    """Sweep the bots of wider fixtures once more, now that they have stopped (their last log
    lines included); the hits (no test is left to fail)."""
    if not LONG_LIVED:
        return []
    started = time.monotonic()
    outcome = sweep(LONG_LIVED, [b.log_path.parent for b, _ in LONG_LIVED], counted=LONG_LIVED)
    SWEEP_TOTALS.add(outcome, test=False)
    SWEEP_TOTALS.seconds += time.monotonic() - started
    LONG_LIVED.clear()
    return outcome.findings
