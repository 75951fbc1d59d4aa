"""`sabot discover`: automation running on people's Atlassian accounts (read-only at Atlassian).

Exit codes, for cron: 0 nothing flagged, 1 people flagged, 2 bad input or settings, 3 the
database or Atlassian could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from bot.cli.admin import (
    EXIT_DRIFT,
    EXIT_OK,
    EXIT_UNREACHABLE,
    _database_problem,
    _fail,
    _no_database,
    _settings,
)
from workflows.discovery.findings import DiscoveryReport, Progress
from workflows.states import FindingState

if TYPE_CHECKING:
    from workflows.models import Finding

DISCOVER_NEEDS = ("database_url", "atlassian_org_id", "atlassian_api_key")
ACTOR = "sabot-discover"
PROGRESS_EVERY_S = 0.5
CSV_FIELDS = [
    "account_id",
    "email",
    "name",
    "state",
    "reasons",
    "billable",
    "last_ui_activity",
    "tokens",
]
EXIT_CODES = (
    "exit status: 0 nobody flagged, 1 people flagged, 2 bad input or settings, "
    "3 the database or Atlassian could not be read"
)
HELP = """\
Reads, through Atlassian's documented read routes only, every managed user's own API tokens
(GET /api-tokens), the directory (product UI activity, account type, MFA) and who holds a
billable seat, and flags each person, with reasons:

  token_used_while_ui_idle       a token used within discovery.recent_token_days (policy,
                                 default 7) while the person has not viewed a product's pages
                                 for discovery.ui_idle_days (default 30), or never
  bot_like_name / _email / _token_label
                                 bot, svc, ci, jenkins, automation, integration, noreply as a
                                 word or a dash/dot/underscore separated part
  billable_seat_on_bot_identity  a billable seat held by a bot-like identity

Findings are kept in the database with their state (open, offered, migrated,
human_token_revoked, dismissed); a re-run refreshes them and keeps the state. Nothing at
Atlassian is changed. Progress goes to stderr, the report to stdout. Needs DATABASE_URL,
ATLASSIAN_ORG_ID and ATLASSIAN_API_KEY (and the policy, for the thresholds)."""


class _ProgressLine:
    """`read N pages: P people, T tokens` on stderr, at most twice a second."""

    def __init__(self, out: TextIO) -> None:
        self.out, self.last, self.seen = out, 0.0, Progress()

    def __call__(self, progress: Progress) -> None:
        self.seen = progress
        if time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.last = time.monotonic()
            self.print()

    def print(self) -> None:
        seen = self.seen
        print(
            f"read {seen.pages} pages: {seen.people} people, {seen.tokens} tokens",
            file=self.out,
            flush=True,
        )


def _discover(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.process.assembly import atlassian_client, policy_rules
    from workflows.clock import system_clock
    from workflows.db import Database
    from workflows.discovery.findings import Thresholds, discover, store
    from workflows.providers.atlassian import AtlassianError

    settings = _settings(DISCOVER_NEEDS)
    rules = policy_rules(settings).discovery
    thresholds = Thresholds(rules.recent_token_days, rules.ui_idle_days)
    line = _ProgressLine(sys.stderr)

    async def go() -> DiscoveryReport:
        db, atlassian = (
            Database(settings.database_url.get_secret_value()),
            atlassian_client(settings),
        )
        try:
            report = await discover(atlassian, thresholds, system_clock(), line)
            return await store(db, report, ACTOR)
        finally:
            await atlassian.aclose()
            await db.dispose()

    try:
        report = asyncio.run(go())
    except AtlassianError as error:
        return _fail(
            f"could not read Atlassian's users and tokens: {error.reason}", EXIT_UNREACHABLE
        )
    except (SQLAlchemyError, OSError) as error:
        return _fail(f"cannot store the findings: {_database_problem(error)}", EXIT_UNREACHABLE)
    line.print()
    {"json": write_json, "csv": write_csv, "text": write_text}[args.format](report, sys.stdout)
    return EXIT_DRIFT if report.findings else EXIT_OK


FINDING_FIELDS = [
    "account_id",
    "email",
    "name",
    "state",
    "state_reason",
    "state_by",
    "reasons",
    "request_id",
    "replaced_token_label",
    "flagged",
    "first_seen_at",
    "last_seen_at",
]


def finding_json(row: Finding) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in FINDING_FIELDS}
    for moment in ("first_seen_at", "last_seen_at"):
        values[moment] = values[moment].isoformat().replace("+00:00", "Z")
    return values


def _findings(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from workflows.db import Database
    from workflows.discovery.findings import list_findings

    settings = _settings(("database_url",))
    state = FindingState(args.state) if args.state else None
    if missing := _no_database(settings):
        return _fail(missing, EXIT_UNREACHABLE)

    async def go() -> list[Finding]:
        db = Database(settings.database_url.get_secret_value())
        try:
            return await list_findings(db, state)
        finally:
            await db.dispose()

    try:
        rows = [finding_json(r) for r in asyncio.run(go())]
    except (SQLAlchemyError, OSError) as error:
        return _fail(f"cannot read the findings: {_database_problem(error)}", EXIT_UNREACHABLE)
    {"json": _findings_json, "csv": _findings_csv, "text": _findings_text}[args.format](
        rows, sys.stdout
    )
    return EXIT_OK


def _findings_json(rows: list[dict[str, Any]], out: TextIO) -> None:
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    json.dump({"findings": rows, "summary": {"findings": len(rows), "states": states}}, out)
    out.write("\n")


def _findings_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=FINDING_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cells = {k: _cell(v) if isinstance(v, str) else v for k, v in row.items()}
        writer.writerow({**cells, "reasons": " ".join(row["reasons"])})


def _findings_text(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        out.write("no findings\n")
    for row in rows:
        request = f" SA-{row['request_id']}" if row["request_id"] else ""
        why = f" ({row['state_reason']})" if row["state_reason"] else ""
        out.write(
            f"{row['email'] or row['account_id']} [{row['state']}{request}]{why}: "
            f"{', '.join(row['reasons'])}\n"
        )


def with_states(report: DiscoveryReport) -> dict[str, Any]:
    """The JSON report; the summary also counts findings by state."""
    body = report.as_json()
    states: dict[str, int] = {}
    for finding in report.findings:
        states[finding.state.value] = states.get(finding.state.value, 0) + 1
    body["summary"]["states"] = states
    return body


def write_json(report: DiscoveryReport, out: TextIO) -> None:
    json.dump(with_states(report), out, indent=2)
    out.write("\n")


def _cell(value: str) -> str:
    # A name is the person's own text: a leading = + - @ would be a formula in a spreadsheet.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def write_csv(report: DiscoveryReport, out: TextIO) -> None:
    """One row per flagged person; `reasons` space-separated, `tokens` a JSON list."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for finding in report.findings:
        row = finding.as_json()
        writer.writerow(
            {
                "account_id": row["account_id"],
                "email": _cell(row["email"]),
                "name": _cell(row["name"]),
                "state": finding.state.value,
                "reasons": " ".join(row["reasons"]),
                "billable": "yes" if row["billable"] else "no",
                "last_ui_activity": row["last_ui_activity"] or "",
                "tokens": json.dumps(row["tokens"]),
            }
        )


def answers(report: DiscoveryReport) -> list[str]:
    """The three questions, answered in a line each."""
    s = report.summary()
    return [
        f"Read {s['accounts']} managed accounts, {s['tokens']} API tokens, {s['seats']} billable "
        f"seats; {s['flagged']} people flagged.",
        f"1. Shared user credentials in use? {s['shared_credentials']} people have a token used "
        f"in the last {s['recent_token_days']} days ({s['shared_credential_tokens']} tokens) "
        f"but no product page viewed in {s['ui_idle_days']} days.",
        f"2. Scripts authenticating as people? {s['bot_like_identities']} bot-like names, "
        "emails or token labels on human accounts.",
        f"3. Licences spent on fake people? {s['billable_bot_seats']} billable seats on "
        "bot-like identities.",
    ]


def evidence(report: DiscoveryReport, finding_index: int) -> list[str]:
    finding = report.findings[finding_index]
    p = finding.person
    seen = p.last_ui_activity.date().isoformat() if p.last_ui_activity else "never"
    lines = [
        f"{p.email or p.account_id} ({p.name}) [{finding.state.value}]: "
        + ", ".join(r.value for r in finding.reasons),
        f"    account {p.account_id}; billable seat: {'yes' if p.billable else 'no'}; "
        f"product pages last viewed: {seen}",
    ]
    for token in p.tokens:
        used = token.last_active_at.date().isoformat() if token.last_active_at else "never"
        expires = token.expires_at.date().isoformat() if token.expires_at else "no expiry"
        lines.append(f"    token {token.label!r} ({token.id}): last used {used}, expires {expires}")
    return lines


def write_text(report: DiscoveryReport, out: TextIO) -> None:
    lines = answers(report)
    for index in range(len(report.findings)):
        lines += ["", *evidence(report, index)]
    out.write("\n".join(lines) + "\n")


def add_discover_parser(sub: Any) -> None:
    discover = sub.add_parser(
        "discover",
        help="find automation running on people's Atlassian accounts (read-only)",
        description=HELP,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    discover.add_argument(
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="text: the three answers and the evidence; json: {findings: [...], summary}; "
        "csv: one row per person (default %(default)s)",
    )
    discover.set_defaults(run=_discover)
    findings = sub.add_parser(
        "findings",
        help="where each discovery finding stands (from the database; Atlassian is not read)",
        description="Lists the findings `discover` stored, newest first, with their state, who "
        "moved them there and why, the service-account request offered in their place and "
        "the human token it replaces. Needs DATABASE_URL.",
        epilog="exit status: 0 listed, 2 bad input or settings, 3 the database cannot be read",
    )
    findings.add_argument("--state", choices=[s.value for s in FindingState], default=None)
    findings.add_argument("--format", choices=("text", "json", "csv"), default="text")
    findings.set_defaults(run=_findings)
