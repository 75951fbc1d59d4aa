"""`sabot`: serve Slack over HTTP or Socket Mode, run jobs, migrate, and try it all locally."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.process import logs
from bot.process.settings import (
    SERVE_NEEDS,
    SOCKET_NEEDS,
    WORKER_NEEDS,
    Settings,
    SettingsError,
    load_settings,
)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.process.http_protocol import header_bounded
    from bot.process.server import SignalledServer, create_server

    settings = _settings(SERVE_NEEDS)
    stop = asyncio.Event()  # set by a signal: it also stops the start-up
    app = create_server(
        settings, run_worker=not args.no_worker, migrate=not args.no_migrate, stop=stop
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=20,
        http=header_bounded(settings.http_read_timeout_seconds),
    )
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT, re-raised once stopped: as uvicorn.run
        SignalledServer(config, stop).run()
    return 0


def _worker(_args: argparse.Namespace) -> int:
    from bot.process.runners import run_worker

    return asyncio.run(run_worker(_settings(WORKER_NEEDS)))


def _socket(_args: argparse.Namespace) -> int:
    from bot.process.runners import run_socket_mode

    return asyncio.run(run_socket_mode(_settings(SOCKET_NEEDS)))


def _db_upgrade(_args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from bot.cli.admin import EXIT_UNREACHABLE, _database_problem, _fail
    from workflows.db import Database
    from workflows.migrations import shipped_head, upgrade

    settings = _settings((), policy=False)

    async def go() -> str:
        db = Database(settings.database_url.get_secret_value())
        try:
            return await upgrade(db)
        finally:
            await db.dispose()

    try:
        done = asyncio.run(go())
    except (SQLAlchemyError, OSError) as error:  # OSError: e.g. the server refused to connect
        return _fail(f"cannot migrate the database: {_database_problem(error)}", EXIT_UNREACHABLE)
    said = {
        "current": "the database was already at the newest schema",
        "made": "the database's tables were made, at the newest schema",
        "migrated": "the database was migrated to the newest schema",
    }
    print(f"{said[done]} ({shipped_head()})")
    return 0


def _policy_check(args: argparse.Namespace) -> int:
    from bot.cli.policy import check

    return check(args.file or load_settings().sabot_policy)


def _policy_explain(args: argparse.Namespace) -> int:
    from bot.cli.policy import explain

    return asyncio.run(
        explain(load_settings(), args.requester, args.products, args.scopes, args.file)
    )


def _sandbox(args: argparse.Namespace) -> int:
    from sandbox.runner import serve_forever

    return serve_forever(host=args.host, bot_url=args.bot_url)


def _demo(args: argparse.Namespace) -> int:
    from bot.cli.demo import run_demo

    return run_demo(socket_mode=args.socket_mode)


def _manifest(args: argparse.Namespace) -> int:
    from bot.cli.manifest import ManifestError, render, render_socket_mode

    try:
        if args.socket_mode:
            print(render_socket_mode(args.file), end="")
        else:
            print(render(args.url, args.file), end="")
    except ManifestError as error:
        print(f"sabot: {error}", file=sys.stderr)
        return 2
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from bot.cli.doctor import run

    settings = load_settings()
    # Every credential masked in the log lines and in the report itself.
    logs.configure(settings.log_level, settings.credentials())
    return run(settings, args.format, args.timeout)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 300 seconds")
    return value


DOCTOR_HELP = """\
Checks a deployment without changing anything, with the settings `sabot serve` reads
(environment or .env): one line per check, `ok   CHECK: what was seen` or
`FAIL CHECK: what is wrong — the fix`; `warn` passes but says what will fail soon, `skip`
could not be checked because a check it needs failed.

  policy                  the policy file (or SABOT_* settings) is valid, as `sabot policy check`
  database                DATABASE_URL answers (an SQLite file is opened read-only)
  database schema         migrated to the newest revision (else: `sabot db upgrade`)
  slack token             auth.test accepts SLACK_BOT_TOKEN
  slack scopes            the granted scopes (x-oauth-scopes) cover app_manifest.yml's
  slack channel           the approvers' channel exists and the bot is a member
  slack people            every approver and admin id exists and is not deactivated
  slack groups            every user group the policy names is readable, with members
  slack app token         when SLACK_APP_TOKEN is set: apps.connections.open accepts it
  atlassian key           ATLASSIAN_API_KEY is accepted
  atlassian org           ATLASSIAN_ORG_ID resolves
  atlassian key scope     the key has no scopes (a scoped one cannot grant or mint)
  atlassian routes        which route set (documented api-access, or console) answers
  atlassian sites         the site: ATLASSIAN_SITE_ID, or the organisation's only one
  atlassian products      the products the policy offers are on that site
  atlassian quota         service accounts in use of the policy's service_account_limit

Slack, Atlassian and the database are asked at once; each check gets --timeout seconds.
Exit status: 0 when every check passed (warnings included), 1 when any failed or could not be
checked, 2 when a setting is malformed."""


def _doctor_parser(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check a deployment (Slack, Atlassian, database, policy) without changing it",
        description=DOCTOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: one line per check; json: {checks: [{check, ok, status, detail, fix}], "
        "summary} (default %(default)s)",
    )
    doctor.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="longest wait for one check's answers (default %(default)g)",
    )
    doctor.set_defaults(run=_doctor)


def _manifest_parser(sub: Any) -> None:
    manifest = sub.add_parser(
        "manifest",
        help="print the Slack app manifest for a public URL, or for Socket Mode",
        description="Prints app_manifest.yml with https://bot.example.com replaced by --url, "
        "or, with --socket-mode, with Socket Mode on and no request URLs.",
    )
    where = manifest.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="public base URL, e.g. https://bot.acme.io")
    where.add_argument(
        "--socket-mode",
        action="store_true",
        help="for `sabot socket`: no public URL, an app-level token (SLACK_APP_TOKEN) instead",
    )
    manifest.add_argument("--file", type=Path, help="manifest to read (default: app_manifest.yml)")
    manifest.set_defaults(run=_manifest)


def _settings(needs: tuple[str, ...], *, policy: bool = True) -> Settings:
    """The settings a command needs, its policy checked before anything starts."""
    settings = load_settings()
    settings.require(*needs)
    if policy:
        from bot.process.assembly import policy_rules

        policy_rules(settings)  # an invalid policy stops start-up here, with file and line
    logs.configure(settings.log_level, settings.credentials())
    return settings


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sabot", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="serve Slack over HTTP at POST /slack/events",
        description="HTTP mode under uvicorn. Applies migrations on start "
        "(under a database lock) and runs the job worker in-process.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=port, default=3000, help="port (default %(default)s)")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run jobs here (run `sabot worker` separately)",
    )
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    serve.set_defaults(run=_serve)

    sub.add_parser(
        "worker",
        help="run jobs only, no HTTP",
        description="Claims jobs from the database until SIGTERM/SIGINT.",
    ).set_defaults(run=_worker)
    sub.add_parser(
        "socket",
        help="serve Slack over Socket Mode (needs SLACK_APP_TOKEN)",
        description="For a laptop without a public URL. Runs until SIGTERM/SIGINT (exit 0); "
        "exits 2 with one line when Slack refuses SLACK_APP_TOKEN.",
    ).set_defaults(run=_socket)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser(
        "upgrade", help="apply migrations up to the newest schema", description="Uses DATABASE_URL."
    ).set_defaults(run=_db_upgrade)

    _policy_parsers(sub)
    _manifest_parser(sub)
    _doctor_parser(sub)
    from bot.cli.admin import add_admin_parsers

    add_admin_parsers(sub)
    from bot.cli.discover import add_discover_parser

    add_discover_parser(sub)

    sandbox = sub.add_parser(
        "sandbox",
        help="run the local Slack and Atlassian stand-ins",
        description="Starts both stand-ins on free local ports and prints "
        "the settings that point a bot at them.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind")
    sandbox.add_argument(
        "--bot-url",
        default="http://127.0.0.1:3000",
        help="where the Slack stand-in sends commands and clicks",
    )
    sandbox.set_defaults(run=_sandbox)

    demo = sub.add_parser(
        "demo",
        help="play the whole flow locally, no credentials needed",
        description="Starts the stand-ins and a real server with a temporary "
        "database, plays a requester and an approver, prints what each saw; exits 0 "
        "only if the token reached the requester ephemerally.",
    )
    demo.add_argument(
        "--socket-mode",
        action="store_true",
        help="run `sabot socket` instead of `sabot serve`: Slack's envelopes over a WebSocket",
    )
    demo.set_defaults(run=_demo)
    return top


def _policy_parsers(sub: Any) -> None:
    policy = sub.add_parser("policy", help="check or preview the approval policy")
    actions = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a policy file without starting",
        description="Exit 0 if the file is valid; otherwise print each "
        "problem with its file and line and exit 1.",
    )
    check.add_argument("file", nargs="?", help="policy file (default: SABOT_POLICY)")
    check.set_defaults(run=_policy_check)
    explain = actions.add_parser(
        "explain",
        help="who could approve a request, and how many approvals it needs",
        description="Preview the policy for one request. User groups are resolved through "
        "Slack when SLACK_BOT_TOKEN is set.",
    )
    explain.add_argument("--requester", required=True, help="Slack user id of the requester")
    explain.add_argument(
        "--products", required=True, help="comma-separated products, e.g. jira,confluence"
    )
    explain.add_argument(
        "--scopes",
        required=True,
        help="comma-separated scopes, e.g. read:jira-work,write:jira-work",
    )
    explain.add_argument("--file", help="policy file (default: SABOT_POLICY, else the settings)")
    explain.set_defaults(run=_policy_explain)


def port(text: str) -> int:
    """A TCP port to listen on: checked before anything starts (uvicorn binds it last)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return value


# They turn the garbage collector back on once started (bot/__main__.py says why it is off).
LONG_RUNNING = (_serve, _worker, _socket)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    if run not in LONG_RUNNING:
        gc.enable()
    try:
        sys.exit(run(args))
    except SettingsError as error:
        print(f"sabot: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        # Imported here: the policy file's module needs PyYAML, which `serve` without a policy
        # file never loads (a few percent of its start-up).
        from workflows.policy_file import PolicyError

        if not isinstance(error, PolicyError):
            raise
        print(f"sabot: {error}", file=sys.stderr)
        sys.exit(2)
