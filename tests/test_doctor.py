"""`sabot doctor` as an operator runs it: the real command, as its own process, with the
settings a bot gets, against the Slack and Atlassian stand-ins and a real database.

First a deployment where everything is right (exit 0, every check line, nothing changed
anywhere), then each thing that can be wrong, set up in the stand-ins the way it goes wrong in
life, each failing its own check with the problem and the fix while every other check still
runs. Every run is searched for the credentials it was given.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli.manifest import bot_scopes
from sandbox.bot_process import bot_environment
from sandbox.runner import Sandbox
from sandbox.slack import SlackState
from sandbox.slack_client import SlackSandbox
from tests.support.databases import execute, rows
from workflows.db import Database
from workflows.migrations import shipped_head, upgrade

BOB, CAROL, DAVE = "U0BOB", "U0CAROL", "U0DAVE"
APPROVALS, NOBOT = "C0APPROVALS", "C0NOBOT"
# Every check, in the order the report gives them: what an operator reads.
CHECKS = (
    "policy",
    "database",
    "database schema",
    "slack token",
    "slack scopes",
    "slack channel",
    "slack people",
    "slack groups",
    "slack app token",
    "atlassian key",
    "atlassian org",
    "atlassian key scope",
    "atlassian routes",
    "atlassian sites",
    "atlassian products",
    "atlassian quota",
)
LINE = re.compile(r"^(ok  |warn|FAIL|skip) ([a-z ]+): (.*)$")
ONE_SITE_JIRA_ONLY = [
    {
        "cloud_id": "cloud-sandbox-1",
        "product": "jira-software",
        "host_url": "https://s.atlassian.net",
    }
]


@dataclass
class Report:
    code: int
    stdout: str
    stderr: str
    seconds: float
    lines: dict[str, tuple[str, str]]  # check -> (status, the rest of its line)

    def status(self, check: str) -> str:
        return self.lines[check][0].strip()

    def text(self, check: str) -> str:
        return self.lines[check][1]

    def failed(self) -> list[str]:
        return [c for c, (s, _) in self.lines.items() if s == "FAIL"]


def run_doctor(
    sandbox: Sandbox,
    database_url: str,
    cwd: Path,
    extra: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    given: dict[str, str] | None = None,
) -> Report:
    """`sabot doctor` with the environment a bot gets (logging at DEBUG, bodies included), and
    none of the credentials it was given anywhere in what it printed. `given`: that
    environment as it was before a test changed the stand-ins' credentials (a deployment
    keeps the token it was given when Slack or Atlassian revoke it)."""
    env = {**(given or bot_environment(sandbox, database_url)), **(extra or {})}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bot", "doctor", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started
    credentials = [
        env[k]
        for k in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "ATLASSIAN_API_KEY")
        if env.get(k)
    ]
    for secret in [*credentials, sandbox.slack.bot_token, sandbox.atlassian.api_key]:
        assert secret not in done.stdout and secret not in done.stderr, "a credential was printed"
    lines: dict[str, tuple[str, str]] = {}
    if "--format" not in args:
        for line in done.stdout.splitlines():
            match = LINE.match(line)
            if match:
                assert match.group(2) not in lines, f"two lines for {match.group(2)}"
                lines[match.group(2)] = (match.group(1), match.group(3))
    return Report(done.returncode, done.stdout, done.stderr, seconds, lines)


def assert_every_check_ran(report: Report) -> None:
    assert list(report.lines) == list(CHECKS), report.stdout


def assert_fails(report: Report, check: str, problem: str, fix: str) -> None:
    """Exit 1, the check's FAIL line names the problem, then (after the dash) the fix, and the
    rest of the report is there."""
    assert report.code == 1, report.stdout + report.stderr
    assert_every_check_ran(report)
    assert report.status(check) == "FAIL", report.stdout
    what, _, how = report.text(check).partition(" — ")
    assert problem in what, report.stdout
    assert fix in how, report.stdout


@pytest.fixture
def migrated(tmp_path: Path) -> str:
    """A SQLite database at the newest schema, as `sabot serve` leaves it."""
    url = f"sqlite:///{tmp_path / 'sabot.db'}"
    db = Database(url)

    async def go() -> None:
        await upgrade(db)
        await db.dispose()

    asyncio.run(go())
    return url


def write_policy(tmp_path: Path, extra: str = "", groups: str = "[]") -> str:
    path = tmp_path / "policy.yml"
    path.write_text(
        f"""approval_channel: {APPROVALS}
approvers:
  default:
    users: [{BOB}, {CAROL}]
    groups: {groups}
admins:
  users: [{CAROL}]
{extra}"""
    )
    return str(path)


def atlassian_control(sandbox: Sandbox, route: str, body: dict[str, Any]) -> None:
    answer = httpx.post(f"{sandbox.atlassian_url}/_sandbox/{route}", json=body, timeout=10)
    assert answer.status_code < 300, answer.text


# -- everything right -------------------------------------------------------------------------


def test_a_healthy_deployment_passes_every_check_and_changes_nothing(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)

    async def migrate() -> None:
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    schema_before = rows(database_url, "SELECT version_num FROM alembic_version")
    policy = write_policy(tmp_path, groups="[S0APPROVERS]")
    extra = {"SABOT_POLICY": policy, "SLACK_APP_TOKEN": sandbox.slack.app_token}

    report = run_doctor(sandbox, database_url, tmp_path, extra)

    assert report.code == 0, report.stdout + report.stderr
    assert_every_check_ran(report)
    assert {report.status(c) for c in CHECKS} == {"ok"}, report.stdout
    assert report.stdout.strip().splitlines()[-1] == "16 of 16 passed: all checks passed"
    assert "valid" in report.text("policy")
    assert shipped_head() in report.text("database schema")
    assert "#approvals" in report.text("slack channel")
    assert "U0BOB @bob" in report.text("slack people")
    assert "S0APPROVERS (2 members)" in report.text("slack groups")
    assert "accepted" in report.text("slack app token")
    assert "0 of 1000 service accounts" in report.text("atlassian quota")
    assert "cloud-sandbox-1" in report.text("atlassian sites")
    # Read-only: no message, no account, no migration, nothing Slack or Atlassian would keep.
    assert slack.messages() == []
    methods = {c["method"] for c in slack.calls()}
    assert methods <= {
        "auth.test",
        "conversations.info",
        "users.info",
        "usergroups.users.list",
        "apps.connections.open",
    }, methods
    assert sandbox.atlassian.accounts == {}
    # Reads only: GETs, and the workspaces lookup (a POST with an empty body).
    assert sandbox.atlassian.calls
    for call in sandbox.atlassian.calls:
        assert call["method"] == "GET" or call["path"].endswith("/workspaces"), call
    assert rows(database_url, "SELECT version_num FROM alembic_version") == schema_before


def test_the_slack_stand_in_grants_what_the_manifest_asks_for() -> None:
    """What the all-ok run rests on: an app installed from app_manifest.yml gets its scopes."""
    assert SlackState().granted_scopes.split(",") == bot_scopes()


def test_the_slack_stand_in_names_the_scopes_and_refuses_a_call_without_its_own(
    sandbox: Sandbox, slack: SlackSandbox
) -> None:
    """As Slack: `x-oauth-scopes` on every answer to the bot token, errors included, and
    `missing_scope` with `needed` and `provided` for a method whose scope was not granted."""
    slack.configure(granted_scopes="commands,chat:write")
    headers = {"Authorization": f"Bearer {sandbox.slack.bot_token}"}
    api = f"{sandbox.slack_url}/api"
    answer = httpx.post(f"{api}/usergroups.users.list", data={"usergroup": "S0X"}, headers=headers)
    assert answer.headers["x-oauth-scopes"] == "commands,chat:write"
    assert answer.json() == {
        "ok": False,
        "error": "missing_scope",
        "needed": "usergroups:read",
        "provided": "commands,chat:write",
    }
    wrong = httpx.post(f"{api}/auth.test", headers={"Authorization": "Bearer xoxb-not-it"})
    assert wrong.json()["error"] == "invalid_auth" and "x-oauth-scopes" not in wrong.headers


def test_help_names_every_check_and_the_exit_status() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "doctor", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    for check in CHECKS:
        assert f"  {check} " in done.stdout, check
    assert "Exit status: 0 when every check passed" in done.stdout
    assert "--format {text,json}" in done.stdout and "--timeout SECONDS" in done.stdout


# -- each thing that can be wrong -------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """One way a deployment is wrong: how to make it so, and what the report must say."""

    name: str
    arrange: Callable[[Sandbox, SlackSandbox, Path], dict[str, str]]  # -> extra settings
    check: str
    problem: str
    fix: str
    others_ok: tuple[str, ...]  # checks of the other services, still run and passing


def then(_done: Any, env: dict[str, str] | None = None) -> dict[str, str]:
    """The settings a case adds, once the stand-in change in the first argument is made."""
    return env or {}


def _revoke_app_token(sandbox: Sandbox, slack: SlackSandbox, tmp: Path) -> dict[str, str]:
    given = sandbox.slack.app_token  # what the bot was configured with...
    slack.configure(app_token="xapp-1-A0SABOT-2-regenerated")  # ...then regenerated in Slack
    return {"SLACK_APP_TOKEN": given}


def _set(**state: Any) -> Callable[[Sandbox, SlackSandbox, Path], dict[str, str]]:
    def arrange(sandbox: Sandbox, slack: SlackSandbox, tmp: Path) -> dict[str, str]:
        slack.configure(**state)
        return {}

    return arrange


def _group_policy(group: str) -> Callable[[Sandbox, SlackSandbox, Path], dict[str, str]]:
    def arrange(sandbox: Sandbox, slack: SlackSandbox, tmp: Path) -> dict[str, str]:
        return {"SABOT_POLICY": write_policy(tmp, groups=f"[{group}]")}

    return arrange


def _scopes_without(*gone: str) -> str:
    return ",".join(s for s in bot_scopes() if s not in gone)


ATLASSIAN_OK = ("atlassian key", "atlassian sites", "atlassian quota")
SLACK_OK = ("slack token", "slack channel", "slack people")

SLACK_BROKEN = [
    Broken(
        "bot token revoked",
        _set(bot_token="xoxb-reinstalled-elsewhere"),
        "slack token",
        "Slack refused SLACK_BOT_TOKEN (invalid_auth)",
        "Bot User OAuth Token (xoxb-...)",
        ("database", *ATLASSIAN_OK),
    ),
    Broken(
        "fewer scopes granted",
        _set(granted_scopes=_scopes_without("usergroups:read", "users:read")),
        "slack scopes",
        "the bot token lacks users:read, usergroups:read",
        "then reinstall the app to the workspace",
        ("slack token", "slack channel", "database", *ATLASSIAN_OK),
    ),
    Broken(
        "channel gone",
        lambda sb, slack, tmp: then(slack.set_channel(APPROVALS, deleted=True)),
        "slack channel",
        f"{APPROVALS} not found: it does not exist, or it is private and the bot is not in it",
        "/invite @sabot",
        ("slack token", "slack people", *ATLASSIAN_OK),
    ),
    Broken(
        "bot not in the private channel",
        lambda sb, slack, tmp: then(slack.set_channel(APPROVALS, members=[BOB, CAROL])),
        "slack channel",
        f"{APPROVALS} not found",
        "invite the bot: /invite @sabot in the approvers' channel",
        ("slack token", "slack people", *ATLASSIAN_OK),
    ),
    Broken(
        "bot not in the public channel",
        lambda sb, slack, tmp: {"SABOT_APPROVAL_CHANNEL": NOBOT},
        "slack channel",
        f"the bot is not a member of #nobot ({NOBOT})",
        "/invite @sabot",
        ("slack token", "slack people", *ATLASSIAN_OK),
    ),
    Broken(
        "channel archived",
        lambda sb, slack, tmp: then(slack.set_channel(APPROVALS, is_archived=True)),
        "slack channel",
        "#approvals (C0APPROVALS) is archived",
        "unarchive it",
        ("slack token", "slack people", *ATLASSIAN_OK),
    ),
    Broken(
        "approver deactivated",
        lambda sb, slack, tmp: then(slack.set_user(BOB, deleted=True)),
        "slack people",
        "U0BOB @bob (approvers.default) is deactivated",
        "replace or remove them in the policy",
        ("slack token", "slack channel", *ATLASSIAN_OK),
    ),
    Broken(
        "approver id unknown",
        lambda sb, slack, tmp: {"SABOT_APPROVERS": f"{BOB},U0NOBODY"},
        "slack people",
        "U0NOBODY (approvers.default) not found",
        "SABOT_APPROVERS",
        ("slack token", "slack channel", *ATLASSIAN_OK),
    ),
    Broken(
        "admin deactivated",
        lambda sb, slack, tmp: then(slack.set_user(DAVE, deleted=True), {"SABOT_ADMINS": DAVE}),
        "slack people",
        "U0DAVE @dave (admins) is deactivated",
        "replace or remove them",
        ("slack token", "slack channel", *ATLASSIAN_OK),
    ),
    Broken(
        "user group does not exist",
        _group_policy("S0GONE"),
        "slack groups",
        "S0GONE (approvers.default) does not exist (no_such_subteam)",
        "fix the group ids in the policy file",
        ("slack token", "slack people", *ATLASSIAN_OK),
    ),
    Broken(
        "user group unreadable",
        lambda sb, slack, tmp: then(
            slack.configure(granted_scopes=_scopes_without("usergroups:read")),
            {"SABOT_POLICY": write_policy(tmp, groups="[S0APPROVERS]")},
        ),
        "slack groups",
        "missing_scope: needs usergroups:read",
        "add usergroups:read",
        ("slack token", "slack people", *ATLASSIAN_OK),
    ),
    Broken(
        "user group empty",
        lambda sb, slack, tmp: then(
            slack.set_usergroup("S0APPROVERS", []),
            {"SABOT_POLICY": write_policy(tmp, groups="[S0APPROVERS]")},
        ),
        "slack groups",
        "S0APPROVERS (approvers.default) has no members",
        "give each group its members",
        ("slack token", "slack people", *ATLASSIAN_OK),
    ),
    Broken(
        "app token revoked",
        _revoke_app_token,
        "slack app token",
        "Slack refused SLACK_APP_TOKEN (invalid_auth)",
        "app-level token with the connections:write scope",
        SLACK_OK + ATLASSIAN_OK,
    ),
    Broken(
        "bot token given as the app token",
        lambda sb, slack, tmp: {"SLACK_APP_TOKEN": sb.slack.bot_token},
        "slack app token",
        "SLACK_APP_TOKEN is not an app-level token (not_allowed_token_type)",
        "(xapp-...)",
        SLACK_OK + ATLASSIAN_OK,
    ),
    Broken(
        "no Socket Mode at SLACK_API_URL",
        lambda sb, slack, tmp: then(
            slack.fault("apps.connections.open", error="unknown_method"),
            {"SLACK_APP_TOKEN": sb.slack.app_token},
        ),
        "slack app token",
        "does not know apps.connections.open (unknown_method)",
        "point SLACK_API_URL at Slack's Web API",
        SLACK_OK + ATLASSIAN_OK,
    ),
]


# An organisation on the free plan: five service accounts (the stand-in's is an Enterprise one).
FREE_PLAN = {"ATLASSIAN_SERVICE_ACCOUNT_LIMIT": "5"}


def _atlassian(
    route: str, body: dict[str, Any], env: dict[str, str] | None = None
) -> Callable[[Sandbox, SlackSandbox, Path], dict]:
    def arrange(sandbox: Sandbox, slack: SlackSandbox, tmp: Path) -> dict[str, str]:
        atlassian_control(sandbox, route, body)
        return env or {}

    return arrange


ATLASSIAN_BROKEN = [
    Broken(
        "key revoked",
        _atlassian("key", {"revoked": True}),
        "atlassian key",
        "Atlassian refused ATLASSIAN_API_KEY (HTTP 401",
        "admin.atlassian.com (Settings, API keys",
        SLACK_OK,
    ),
    Broken(
        "key scoped",
        _atlassian("key", {"scoped": True}),
        "atlassian key scope",
        "the key is scoped: the console and /users routes answer 403",
        "API key WITHOUT scopes",
        ("atlassian key", "atlassian routes", "atlassian quota", *SLACK_OK),
    ),
    Broken(
        "organisation unknown",
        lambda sb, slack, tmp: {"ATLASSIAN_ORG_ID": "org-elsewhere"},
        "atlassian org",
        "organisation org-elsewhere not found",
        "set ATLASSIAN_ORG_ID",
        ("atlassian key", *SLACK_OK),
    ),
    Broken(
        "neither route set answers",
        _atlassian("config", {"access_routes_off": "404", "console_routes_off": "404"}),
        "atlassian routes",
        "neither the documented nor the console list route answers",
        "ATLASSIAN_API_URL",
        ("atlassian key", "atlassian sites", *SLACK_OK),
    ),
    Broken(
        "no sites",
        _atlassian("sites", {"sites": []}),
        "atlassian sites",
        "the organisation has no Jira or Confluence site",
        "add a Jira or Confluence site",
        ("atlassian key", "atlassian quota", *SLACK_OK),
    ),
    Broken(
        "ATLASSIAN_SITE_ID not a site",
        lambda sb, slack, tmp: {"ATLASSIAN_SITE_ID": "cloud-of-another-org"},
        "atlassian sites",
        "ATLASSIAN_SITE_ID cloud-of-another-org is not a site of the organisation "
        "(its sites: cloud-sandbox-1)",
        "set ATLASSIAN_SITE_ID to one of those",
        ("atlassian key", "atlassian quota", *SLACK_OK),
    ),
    Broken(
        "two sites and no choice",
        _atlassian(
            "sites",
            {
                "sites": [
                    *ONE_SITE_JIRA_ONLY,
                    {
                        "cloud_id": "cloud-sandbox-2",
                        "product": "confluence",
                        "host_url": "https://t.atlassian.net/wiki",
                    },
                ]
            },
        ),
        "atlassian sites",
        "the organisation has 2 sites (cloud-sandbox-1, cloud-sandbox-2)",
        "set ATLASSIAN_SITE_ID",
        ("atlassian key", "atlassian quota", *SLACK_OK),
    ),
    Broken(
        "site without Confluence",
        _atlassian("sites", {"sites": ONE_SITE_JIRA_ONLY}),
        "atlassian products",
        "site cloud-sandbox-1 has no Confluence (it has jira-software)",
        "add Confluence to the site in admin.atlassian.com (Products)",
        ("atlassian sites", "atlassian quota", *SLACK_OK),
    ),
    Broken(
        "quota full",
        _atlassian("seed", {"displayName": "made-by-hand", "count": 5}, FREE_PLAN),
        "atlassian quota",
        "5 of 5 service accounts in use: the quota is full",
        "Atlassian Guard Standard: 250, Enterprise: 1,000",
        ("atlassian key", "atlassian products", *SLACK_OK),
    ),
]


@pytest.mark.parametrize("broken", SLACK_BROKEN + ATLASSIAN_BROKEN, ids=lambda b: b.name)
def test_each_failure_fails_its_check_with_the_fix_and_the_rest_still_runs(
    broken: Broken, sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    given = bot_environment(sandbox, migrated)
    extra = broken.arrange(sandbox, slack, tmp_path)
    report = run_doctor(sandbox, migrated, tmp_path, extra, given=given)
    assert_fails(report, broken.check, broken.problem, broken.fix)
    for check in broken.others_ok:
        assert report.status(check) == "ok", (check, report.stdout)
    assert report.status("database schema") == "ok"


def test_a_scoped_key_still_counts_accounts_through_the_documented_routes(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    sandbox.atlassian.seed_account("made-by-hand")
    given = bot_environment(sandbox, migrated)
    atlassian_control(sandbox, "key", {"scoped": True})
    report = run_doctor(sandbox, migrated, tmp_path, FREE_PLAN, given=given)
    assert report.failed() == ["atlassian key scope"], report.stdout
    assert "api-access: list" in report.text("atlassian routes")
    assert report.text("atlassian quota") == "1 of 5 service accounts in use"


def test_a_nearly_full_quota_warns_and_passes(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    atlassian_control(sandbox, "seed", {"displayName": "made-by-hand", "count": 4})
    report = run_doctor(sandbox, migrated, tmp_path, FREE_PLAN)
    assert report.code == 0, report.stdout
    assert report.status("atlassian quota") == "warn"
    assert report.text("atlassian quota").startswith(
        "4 of 5 service accounts in use: nearly full (1 left) — delete accounts no longer used"
    )
    assert "1 warning(s)" in report.stdout.splitlines()[-1]


def test_the_policy_sets_the_organisations_limit(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    """Atlassian Guard Standard: 250 accounts; five in use is far from full."""
    atlassian_control(sandbox, "seed", {"displayName": "made-by-hand", "count": 5})
    policy = write_policy(tmp_path, extra="service_account_limit: 250\n")
    report = run_doctor(sandbox, migrated, tmp_path, {**FREE_PLAN, "SABOT_POLICY": policy})
    assert report.code == 0, report.stdout
    assert report.text("atlassian quota") == "5 of 250 service accounts in use"


def test_an_invalid_policy_fails_with_its_line_and_skips_what_needs_it(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, extra="quorm:\n  default: 2\n")  # a typo
    report = run_doctor(sandbox, migrated, tmp_path, {"SABOT_POLICY": policy})
    assert_fails(
        report,
        "policy",
        f"{policy}:8: quorm: unknown key 'quorm'",
        "`sabot policy check` shows each problem with its line",
    )
    for check in ("slack channel", "slack people", "slack groups", "atlassian products"):
        assert report.status(check) == "skip", report.stdout
        assert report.text(check).endswith("— fix `policy` first")
    for check in ("database", "slack token", "slack scopes", "atlassian key", "atlassian sites"):
        assert report.status(check) == "ok", report.stdout


# -- the database -----------------------------------------------------------------------------


def test_a_database_behind_the_newest_schema(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)

    async def migrate() -> None:
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    execute(database_url, "UPDATE alembic_version SET version_num = '0004'")
    report = run_doctor(sandbox, database_url, tmp_path)
    assert_fails(
        report,
        "database schema",
        f"at revision 0004, behind the newest ({shipped_head()})",
        "run `sabot db upgrade`",
    )
    assert report.status("database") == "ok"
    assert report.status("slack token") == "ok" and report.status("atlassian quota") == "ok"
    # Still behind: the doctor migrates nothing.
    assert rows(database_url, "SELECT version_num FROM alembic_version") == [
        {"version_num": "0004"}
    ]


def test_an_empty_database_has_no_schema(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        Path(database_url.removeprefix("sqlite:///")).touch()  # there, but never migrated
    report = run_doctor(sandbox, database_url, tmp_path)
    assert_fails(
        report, "database schema", "no schema yet (no alembic_version table)", "sabot db upgrade"
    )
    assert report.status("database") == "ok"


def test_a_missing_sqlite_file_is_not_created(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "nowhere.db"
    report = run_doctor(sandbox, f"sqlite:///{path}", tmp_path)
    assert_fails(report, "database", f"no SQLite file at {path}", "check DATABASE_URL")
    assert report.status("database schema") == "skip"
    assert not path.exists()


def test_an_unreachable_database_fails_without_its_password(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from sandbox.runner import free_port

    password = "s3cret-database-password"
    url = f"postgresql://sabot:{password}@127.0.0.1:{free_port()}/sabot"
    report = run_doctor(sandbox, url, tmp_path)
    assert_fails(report, "database", "cannot connect", "that the database server runs")
    assert report.status("database schema") == "skip"
    assert password not in report.stdout + report.stderr
    assert report.status("slack token") == "ok" and report.status("atlassian key") == "ok"


# -- bounded, parseable, silent about secrets ------------------------------------------------


def test_a_hanging_atlassian_ends_within_the_bound(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    """Atlassian takes every request and never answers: the doctor, at its default timeout
    (10 s a check), says so and ends; Slack and the database are still checked."""
    atlassian_control(sandbox, "faults", {"route": "any", "kind": "hang", "count": 100})
    report = run_doctor(sandbox, migrated, tmp_path)
    assert_fails(report, "atlassian key", "no answer in 10 s", "ATLASSIAN_API_URL")
    for check in CHECKS[10:]:
        assert report.status(check) == "skip", report.stdout
        assert "Atlassian did not answer" in report.text(check)
    for check in ("database schema", "slack token", "slack groups", "slack app token"):
        assert report.status(check) == "ok", report.stdout
    assert report.seconds < 20, report.seconds


def test_a_slow_atlassian_is_a_failure_not_a_wait(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    """Atlassian answers, but 30 s late: with --timeout 2 the doctor gives up after 2 s."""
    atlassian_control(
        sandbox, "faults", {"route": "list", "kind": "slow", "seconds": 30, "count": 2}
    )
    report = run_doctor(sandbox, migrated, tmp_path, args=("--timeout", "2"))
    assert_fails(report, "atlassian key", "no answer in 2 s", "Atlassian may be down")
    assert report.status("slack channel") == "ok"
    assert report.seconds < 12, report.seconds


def test_a_slack_that_does_not_answer_is_one_failure_not_a_wait(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    """auth.test answered 5 s late, --timeout 1: the Slack checks after it are skipped, not
    each left to wait in turn; Atlassian and the database are checked meanwhile."""
    slack.fault("auth.test", delay=5)
    given = {**bot_environment(sandbox, migrated), "SLACK_APP_TOKEN": sandbox.slack.app_token}
    report = run_doctor(sandbox, migrated, tmp_path, args=("--timeout", "1"), given=given)
    assert_fails(report, "slack token", "no answer in 1 s", "SLACK_API_URL")
    for check in CHECKS[4:9]:
        assert report.status(check) == "skip", report.stdout
    assert "Slack did not answer" in report.text("slack app token")
    assert report.status("atlassian quota") == "ok" and report.status("database schema") == "ok"
    assert report.seconds < 8, report.seconds


def test_json_report_matches_the_text_one(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    slack.set_user(BOB, deleted=True)
    text = run_doctor(sandbox, migrated, tmp_path)
    answer = run_doctor(sandbox, migrated, tmp_path, args=("--format", "json"))
    assert answer.code == text.code == 1
    report = json.loads(answer.stdout)
    checks = report["checks"]
    assert [c["check"] for c in checks] == list(CHECKS)
    for item in checks:
        assert set(item) == {"check", "ok", "status", "detail", "fix"}
        status, rest = text.lines[item["check"]]
        assert item["status"] == status.strip()
        assert item["ok"] is (item["status"] in ("ok", "warn"))
        assert rest.startswith(item["detail"])
        assert (item["fix"] != "") is (item["status"] != "ok")
    people = next(c for c in checks if c["check"] == "slack people")
    assert (
        people["ok"] is False
        and "U0BOB @bob (approvers.default) is deactivated" in (people["detail"])
    )
    assert "replace or remove them" in people["fix"]
    assert report["summary"] == {
        **report["summary"],
        "ok": False,
        "checks": 16,
        "passed": 15,
        "failed": 1,
        "skipped": 0,
        "warnings": 0,
    }


def test_no_credential_is_printed_whatever_fails(
    sandbox: Sandbox, slack: SlackSandbox, migrated: str, tmp_path: Path
) -> None:
    """Every credential refused at once, logging at DEBUG with bodies: the report quotes what
    the services said and the logs show every exchange, and neither holds a credential
    (run_doctor searches both for every one of them)."""
    app_token = "xapp-1-A0SABOT-9-a-revoked-app-token-value"
    given = bot_environment(sandbox, migrated)
    slack.configure(bot_token="xoxb-the-token-slack-holds-now")
    atlassian_control(sandbox, "key", {"revoked": True})
    report = run_doctor(sandbox, migrated, tmp_path, {"SLACK_APP_TOKEN": app_token}, given=given)
    assert report.failed() == ["slack token", "slack app token", "atlassian key"], report.stdout
    for secret in (given["SLACK_BOT_TOKEN"], given["ATLASSIAN_API_KEY"], app_token):
        assert secret not in report.stdout + report.stderr
    assert "DEBUG" in report.stderr  # the logs were on, and searched
