"""`sabot audit export` and `sabot reconcile`: the operator's view of the trail and the drift.

Exit codes, for cron: 0 done (reconcile: no drift), 1 drift found, 2 bad input or settings,
3 the database or Atlassian could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from bot.process import logs
from bot.process.settings import Settings, load_settings

EXPORT_NEEDS = ("database_url",)
RECONCILE_NEEDS = ("database_url", "atlassian_org_id", "atlassian_api_key")
EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 1, 2, 3

EXIT_CODES = (
    "exit status: 0 no drift, 1 drift found (also after --apply corrected it), "
    "2 bad input or settings, 3 the database or Atlassian could not be read"
)


class _OneLineErrors(argparse.ArgumentParser):
    """Reports bad input in one line instead of a usage dump, so a cron mail says what is wrong."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see --help)\n")


def parse_since(text: str) -> datetime:
    """`2024-05-01` (midnight UTC) or full ISO 8601; a time without a zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or ISO 8601 such as 2024-05-01T12:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _settings(needs: tuple[str, ...]) -> Settings:
    settings = load_settings()
    settings.require(*needs)
    logs.configure(settings.log_level, settings.credentials())
    return settings


def _fail(message: str, code: int) -> int:
    print(f"sabot: {message}", file=sys.stderr)
    return code


# -- audit export -------------------------------------------------------------------------------


class _Output:
    """stdout, or a file that appears only once complete (a cron job never ships half of one)."""

    def __init__(self, path: str | None) -> None:
        self._target = None if path in (None, "-") else Path(str(path))
        self._partial: Path | None = None
        if self._target is None:
            self.stream: TextIO = sys.stdout
            return
        if self._target.is_dir():  # else the partial file would land beside it, in its parent
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(self._target))
        self._partial = self._target.with_name(f".{self._target.name}.partial")
        self.stream = self._partial.open("w", encoding="utf-8", newline="")

    def finish(self, complete: bool) -> None:
        if self._partial is None or self._target is None:
            self.stream.flush()
            return
        self.stream.close()
        try:
            if complete:
                os.replace(self._partial, self._target)
        finally:
            self._partial.unlink(missing_ok=True)  # after a failed replace too


def _audit_export(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from workflows.audit_export import export_audit
    from workflows.db import Database

    settings = _settings(EXPORT_NEEDS)

    async def go(out: TextIO) -> int:
        db = Database(settings.database_url.get_secret_value())
        try:
            return await export_audit(db, since=args.since, fmt=args.format, out=out)
        finally:
            await db.dispose()

    try:
        output = _Output(args.output)  # before the database: a bad path fails at once
    except OSError as error:
        return _fail(f"cannot write {args.output}: {error.strerror or error}", EXIT_BAD_INPUT)
    if missing := _no_database(settings):
        output.finish(complete=False)
        return _fail(missing, EXIT_UNREACHABLE)
    complete = False
    try:
        count = asyncio.run(go(output.stream))
        complete = True
    except (SQLAlchemyError, OSError) as error:  # OSError: e.g. the database refused to connect
        return _fail(f"cannot read the audit trail: {_database_problem(error)}", EXIT_UNREACHABLE)
    finally:
        output.finish(complete)
    print(f"exported {count} audit event(s)", file=sys.stderr)
    return EXIT_OK


def _no_database(settings: Settings) -> str | None:
    """For a command that only reads: the line to stop with when DATABASE_URL names an SQLite
    file that is not there (opening it would leave an empty one behind), else None."""
    from workflows.db import sqlite_file

    path = sqlite_file(settings.database_url.get_secret_value())
    if path is None or path.is_file():
        return None
    return f"no SQLite file at {path}: check DATABASE_URL, or make one with `sabot db upgrade`"


def _database_problem(error: Exception) -> str:
    # The driver's own first line (e.g. "no such table: audit_event"), not the SQL and its values.
    cause = getattr(error, "orig", None) or error
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    # SQLite's "no such table: x", PostgreSQL's 'relation "x" does not exist' (not its
    # 'database "x" does not exist', which no upgrade mends)
    missing_table = "no such table" in first or first.startswith("relation ")
    hint = "; run `sabot db upgrade` first" if missing_table else ""
    return f"{type(cause).__name__}: {first}{hint}"


# -- reconcile ----------------------------------------------------------------------------------


def _progress(count: int) -> None:
    print(f"checked {count} accounts...", file=sys.stderr, flush=True)


def _reconcile(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.process.assembly import atlassian_client
    from workflows.account.reconcile import ReconcileReport, reconcile
    from workflows.clock import system_clock
    from workflows.db import Database
    from workflows.providers.atlassian import AtlassianError

    settings = _settings(RECONCILE_NEEDS)

    async def go() -> ReconcileReport:
        db, atlassian = (
            Database(settings.database_url.get_secret_value()),
            atlassian_client(settings),
        )
        try:
            return await reconcile(
                db, atlassian, apply=args.apply, clock=system_clock, progress=_progress
            )
        finally:
            await atlassian.aclose()
            await db.dispose()

    try:
        report = asyncio.run(go())
    except AtlassianError as error:
        reason = f"could not list Atlassian's service accounts: {error.reason}"
        return _fail(reason, EXIT_UNREACHABLE)
    except (SQLAlchemyError, OSError) as error:
        return _fail(f"cannot read the records: {_database_problem(error)}", EXIT_UNREACHABLE)
    print(f"checked {report.checked} accounts, done", file=sys.stderr)
    print("\n".join(report.lines()))
    return EXIT_DRIFT if report.drift_found else EXIT_OK


# -- parsers ------------------------------------------------------------------------------------


def _audit_parsers(sub: Any) -> None:
    audit = sub.add_parser("audit", help="export the audit trail")
    actions = audit.add_subparsers(
        dest="audit_command", required=True, metavar="ACTION", parser_class=_OneLineErrors
    )
    export = actions.add_parser(
        "export",
        help="write the audit trail as CSV or JSON",
        description="Write the append-only audit trail, oldest first: one record per event "
        "with at (ISO 8601 UTC), actor, action, request (SA-n), account and detail (a JSON "
        "string in CSV). Token values are never in the trail. Uses DATABASE_URL; the count "
        "goes to stderr.",
        epilog="exit status: 0 written, 2 bad input or settings, 3 the database could not be read",
    )
    export.add_argument(
        "--since",
        type=parse_since,
        metavar="DATE",
        help="only events at or after DATE: YYYY-MM-DD (midnight UTC) or ISO 8601 such as "
        "2024-05-01T12:00:00Z (no zone means UTC)",
    )
    export.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="default %(default)s"
    )
    export.add_argument(
        "--output",
        metavar="FILE",
        help="write to FILE, which appears only once complete (default: stdout)",
    )
    export.set_defaults(run=_audit_export)


def _reconcile_parser(sub: Any) -> None:
    reconcile = sub.add_parser(
        "reconcile",
        help="compare the records with Atlassian's service accounts",
        description="List the organisation's service accounts at Atlassian and report accounts "
        "made outside sabot, accounts sabot records as existing that Atlassian no longer has, "
        "and status, email or display-name drift. Changes nothing unless --apply is given. "
        "Needs DATABASE_URL, ATLASSIAN_ORG_ID and ATLASSIAN_API_KEY.",
        epilog=EXIT_CODES,
    )
    reconcile.add_argument(
        "--apply",
        action="store_true",
        help="mark accounts gone at Atlassian deleted and take over changed emails (both "
        "audited as sabot-reconcile); accounts made outside, deleted ones still live and "
        "renamed ones are only reported, since they need a person",
    )
    reconcile.set_defaults(run=_reconcile)


def add_admin_parsers(sub: Any) -> None:
    """Register `audit export` and `reconcile` on the `sabot` command's subparsers."""
    _audit_parsers(sub)
    _reconcile_parser(sub)
