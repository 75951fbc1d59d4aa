"""`sabot audit export` and `sabot reconcile` as an operator runs them.

Real processes against a real database (SQLite and PostgreSQL) and the Atlassian stand-in. The
bot's records come from running the whole flow through `sabot serve`; drift is then made the way
it happens in life: at Atlassian, behind the bot's back.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sandbox.bot_process import BotProcess
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    GOOD_FORM,
    reveal_offer,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.cli import run_sabot, sabot
from tests.support.databases import dump_database, execute, rows
from workflows import audit
from workflows.audit_export import export_audit
from workflows.db import Database
from workflows.migrations import upgrade

FILLER = 85  # deleted accounts listed first, so the bot's accounts sit on Atlassian's 2nd page
EXPORT_FIELDS = ["at", "actor", "action", "request", "account", "detail"]


# -- helpers ------------------------------------------------------------------------------------


def request_id(database_url: str, name: str) -> int:
    [row] = rows(database_url, f"SELECT id FROM service_account_request WHERE name = '{name}'")
    return int(row["id"])


def status_of(database_url: str, name: str) -> str:
    [row] = rows(database_url, f"SELECT status FROM service_account_request WHERE name = '{name}'")
    return str(row["status"])


def provision(slack: SlackSandbox, database_url: str, name: str) -> None:
    """Ask for `name`, approve it, and wait until the account is active."""
    submit_request(slack, form={**GOOD_FORM, "name": {"name": name}})

    def approval() -> dict[str, Any] | None:
        posted = [
            m for m in slack.messages(APPROVALS) if not m["thread_ts"] and name in json.dumps(m)
        ]
        return posted[-1] if posted else None

    message = slack.wait_for(approval, what=f"the approval request for {name}")
    slack.click(BOB, APPROVALS, message["ts"], "request_approve")
    slack.wait_for(
        lambda: status_of(database_url, name) == "active", timeout=30, what=f"{name} active"
    )


def due_jobs(database_url: str) -> list[dict[str, Any]]:
    """Jobs not done that are due now (timers days ahead, such as expiry warnings, are not)."""
    soon = datetime.now(UTC) + timedelta(minutes=1)
    waiting = rows(database_url, "SELECT kind, run_after FROM job WHERE status != 'done'")
    return [job for job in waiting if _utc(job["run_after"]) < soon]


def _utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def settle(slack: SlackSandbox, bot: BotProcess) -> None:
    """Let the bot finish its jobs, then stop it, so the database holds still."""
    slack.wait_for(lambda: not due_jobs(bot.database_url), what="every due job done")
    bot.stop()


def remote(sandbox: Sandbox, name: str) -> Any:
    [account] = [a for a in sandbox.atlassian.accounts.values() if a.display_name == name]
    return account


def seed_filler(sandbox: Sandbox) -> None:
    """Accounts made and deleted outside the bot: listed, but no drift."""
    for i in range(FILLER):
        sandbox.atlassian.delete_account(sandbox.atlassian.seed_account(f"old-{i:02d}"))


def reveal_token(slack: SlackSandbox) -> None:
    slack.click(ALICE, GENERAL, reveal_offer(slack)["ts"], "token_reveal")
    slack.wait_for(lambda: token_replies(slack), what="the token reply")


def audit_rows(database_url: str, action: str) -> list[dict[str, Any]]:
    found = rows(
        database_url,
        f"SELECT actor_id, request_id, detail FROM audit_event WHERE action = '{action}' "
        "ORDER BY id",
    )
    for row in found:  # PostgreSQL's asyncpg and SQLite both hand JSON back as text here
        if isinstance(row["detail"], str):
            row["detail"] = json.loads(row["detail"])
    return found


# -- reconcile ----------------------------------------------------------------------------------


def test_reconcile_reports_every_kind_of_drift_and_applies_only_the_certain(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess, tmp_path: Path
) -> None:
    url, state = bot.database_url, sandbox.atlassian
    seed_filler(sandbox)
    names = ["ci-release-bot", "gone-bot", "purged-bot", "mail-bot", "zombie-bot", "renamed-bot"]
    for name in names:
        provision(slack, url, name)
    settle(slack, bot)
    ids = {name: request_id(url, name) for name in names}

    # Drift of every kind, made where it happens in life.
    hand_made = state.seed_account("hand-made")
    state.delete_account(remote(sandbox, "gone-bot"))
    del state.accounts[remote(sandbox, "purged-bot").id]  # past the 14 days: not listed at all
    execute(
        url, f"UPDATE service_account_request SET status = 'revoked' WHERE id = {ids['purged-bot']}"
    )
    old_email = remote(sandbox, "mail-bot").email
    remote(sandbox, "mail-bot").email = "mail-bot-moved@serviceaccount.atlassian.com"
    execute(
        url, f"UPDATE service_account_request SET status = 'deleted' WHERE id = {ids['zombie-bot']}"
    )
    remote(sandbox, "renamed-bot").display_name = "Renamed by hand"
    listed = FILLER + len(names) - 1 + 1  # purged one gone, hand-made one added

    # A dry run: the report, exit 1, and not one row changed.
    before, calls_before = dump_database(url), len(state.calls)
    dry = sabot(url, tmp_path, "reconcile", sandbox=sandbox)
    assert dry.returncode == 1, dry.stderr
    assert dump_database(url) == before
    assert {c["method"] for c in state.calls[calls_before:]} == {"GET"}  # only listed
    assert "checked 80 accounts..." in dry.stderr
    assert f"checked {listed} accounts, done" in dry.stderr
    sa = {name: f"SA-{i}" for name, i in ids.items()}
    assert dry.stdout.splitlines() == [
        f"Compared {listed} account(s) at Atlassian with {len(names)} recorded by sabot.",
        f"made outside sabot: hand-made <{hand_made.email}> (Atlassian id {hand_made.id}) "
        "is not recorded here; a person must adopt or delete it",
        f"missing at Atlassian: {sa['gone-bot']} gone-bot is active here but deleted at "
        "Atlassian (--apply: marked deleted)",
        f"missing at Atlassian: {sa['purged-bot']} purged-bot is revoked here but not listed "
        "at Atlassian (--apply: marked deleted)",
        f"status drift: {sa['zombie-bot']} zombie-bot is deleted here but active at Atlassian; "
        "a person must delete it there or restore the record",
        f"email drift: {sa['mail-bot']} mail-bot is {old_email} here but "
        "mail-bot-moved@serviceaccount.atlassian.com at Atlassian (--apply: email updated)",
        f"name drift: {sa['renamed-bot']} renamed-bot is named 'Renamed by hand' at Atlassian; "
        "the name here is the bot's key, so a person decides",
        "Drift found: 1 made outside sabot, 2 missing at Atlassian, 1 deleted here but live at "
        "Atlassian, 1 email drift, 1 display-name drift; nothing changed.",
    ]

    # --apply: the two gone accounts are marked deleted and the email taken over, audited.
    applied = sabot(url, tmp_path, "reconcile", "--apply", sandbox=sandbox)
    assert applied.returncode == 1, applied.stderr
    out = applied.stdout
    assert f"{sa['gone-bot']} gone-bot is active here but deleted at Atlassian -> marked" in out
    assert f"{sa['purged-bot']} purged-bot is revoked here but not listed at Atlassian -> " in out
    assert "at Atlassian -> email updated" in out
    assert "2 missing at Atlassian" in out and "3 record(s) corrected." in out
    assert {name: status_of(url, name) for name in names} == {
        "ci-release-bot": "active",
        "gone-bot": "deleted",
        "purged-bot": "deleted",
        "mail-bot": "active",
        "zombie-bot": "deleted",
        "renamed-bot": "active",
    }
    marked = audit_rows(url, "reconcile_marked_deleted")
    assert [(m["actor_id"], m["request_id"]) for m in marked] == [
        ("sabot-reconcile", ids["gone-bot"]),
        ("sabot-reconcile", ids["purged-bot"]),
    ]
    assert [m["detail"]["why"] for m in marked] == [
        "deleted at Atlassian",
        "not listed at Atlassian",
    ]
    [moved] = audit_rows(url, "reconcile_updated_email")
    assert moved["actor_id"] == "sabot-reconcile" and moved["request_id"] == ids["mail-bot"]
    assert moved["detail"] == {
        "old_email": old_email,
        "new_email": "mail-bot-moved@serviceaccount.atlassian.com",
    }
    assert rows(url, f"SELECT email FROM service_account WHERE request_id = {ids['mail-bot']}") == [
        {"email": "mail-bot-moved@serviceaccount.atlassian.com"}
    ]
    refreshes = rows(url, "SELECT request_id FROM job WHERE kind = 'refresh' AND status = 'queued'")
    assert sorted(r["request_id"] for r in refreshes) == sorted(
        [ids["gone-bot"], ids["purged-bot"]]
    )  # so the Slack messages show the account deleted
    assert hand_made.id in state.accounts and remote(sandbox, "zombie-bot").status == "active"

    # Again: what needs a person is still reported, the corrected drift is not.
    again = sabot(url, tmp_path, "reconcile", sandbox=sandbox)
    assert again.returncode == 1
    kinds = [line.split(":")[0] for line in again.stdout.splitlines()[1:-1]]
    assert kinds == ["made outside sabot", "status drift", "name drift"]

    # A person settles those at Atlassian: no drift, exit 0.
    state.delete_account(hand_made)
    state.delete_account(remote(sandbox, "zombie-bot"))
    remote(sandbox, "Renamed by hand").display_name = "renamed-bot"
    clean = sabot(url, tmp_path, "reconcile", sandbox=sandbox)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines()[-1] == "No drift found."


def test_reconcile_refuses_without_atlassian_settings(tmp_path: Path) -> None:
    done = sabot(f"sqlite:///{tmp_path / 'sabot.db'}", tmp_path, "reconcile")
    assert done.returncode == 2
    assert done.stderr == "sabot: missing settings: ATLASSIAN_ORG_ID, ATLASSIAN_API_KEY\n"


def test_reconcile_says_when_atlassian_refuses(sandbox: Sandbox, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sabot.db'}"
    assert sabot(url, tmp_path, "db", "upgrade").returncode == 0
    settings = sandbox.bot_env()
    sandbox.atlassian.api_key = "rotated-elsewhere"  # the bot still sends the old key
    done = run_sabot(url, tmp_path, ("reconcile",), settings)
    assert done.returncode == 3 and done.stdout == ""
    assert "could not list Atlassian's service accounts" in done.stderr
    assert "ATLASSIAN_API_KEY" in done.stderr and settings["ATLASSIAN_API_KEY"] not in done.stderr


# -- audit export -------------------------------------------------------------------------------


def test_audit_export_writes_the_whole_trail_and_never_a_token(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess, tmp_path: Path
) -> None:
    url = bot.database_url
    provision(slack, url, "ci-release-bot")
    reveal_token(slack)
    settle(slack, bot)
    [token] = sandbox.atlassian.minted_values()
    total = len(rows(url, "SELECT id FROM audit_event"))

    as_csv = sabot(url, tmp_path, "audit", "export")
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stderr.splitlines()[-1] == f"exported {total} audit event(s)"
    reader = csv.DictReader(io.StringIO(as_csv.stdout))
    assert reader.fieldnames == EXPORT_FIELDS
    records = [{**r, "detail": json.loads(r["detail"])} for r in reader]
    assert len(records) == total

    as_json = sabot(url, tmp_path, "audit", "export", "--format", "json", "--output", "a.json")
    assert as_json.returncode == 0 and as_json.stdout == ""
    assert json.loads((tmp_path / "a.json").read_text()) == records
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]

    for text in (as_csv.stdout, (tmp_path / "a.json").read_text()):
        assert token not in text
    moments = [datetime.fromisoformat(r["at"]) for r in records]
    assert moments == sorted(moments) and all(m.tzinfo == UTC for m in moments)
    actions = [r["action"] for r in records]
    for action in ("request_submitted", "account_created", "account_ready", "token_delivered"):
        assert action in actions
    submitted = records[actions.index("request_submitted")]
    assert submitted["actor"] == ALICE and submitted["account"] == "ci-release-bot"
    assert submitted["request"] == "SA-1" and submitted["detail"]["lifetime_days"] == 30


def test_audit_export_since(
    sandbox: Sandbox, slack: SlackSandbox, bot: BotProcess, tmp_path: Path
) -> None:
    url = bot.database_url
    provision(slack, url, "ci-release-bot")
    settle(slack, bot)

    def exported(*args: str) -> list[dict[str, Any]]:
        done = sabot(url, tmp_path, "audit", "export", "--format", "json", *args)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    everything = exported()
    assert len(everything) == len(rows(url, "SELECT id FROM audit_event")) > 2
    today = datetime.now(UTC).date()
    assert exported("--since", str(today - timedelta(days=1))) == everything
    assert exported("--since", str(today + timedelta(days=1))) == []
    middle = everything[len(everything) // 2]["at"]
    later = [r for r in everything if r["at"] >= middle]
    assert exported("--since", middle) == later
    # The same moment written with another zone selects the same events.
    shifted = datetime.fromisoformat(middle).astimezone(timezone(timedelta(hours=2)))
    assert exported("--since", shifted.isoformat()) == later


def test_audit_export_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sabot.db'}"
    cases = [
        (("--since", "2024-13-45"), "argument --since: '2024-13-45' is not a date"),
        (("--since", "yesterday"), "use YYYY-MM-DD or ISO 8601"),
        (("--format", "xml"), "argument --format: invalid choice: 'xml'"),
        (("--output", str(tmp_path / "no" / "such" / "dir.csv")), "cannot write"),
        (("--output", str(tmp_path)), "Is a directory"),
    ]
    for args, says in cases:
        done = sabot(url, tmp_path, "audit", "export", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.splitlines()) == 1 and says in done.stderr, done.stderr
        assert done.stdout == ""
    # Nothing written anywhere: not beside the folder given as the file, not in the folder.
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}*")) and not list(tmp_path.iterdir())


def test_audit_export_before_the_schema_exists(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()  # a file, with no tables in it
    done = sabot(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path, "audit", "export")
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        "sabot: cannot read the audit trail: OperationalError: no such table: audit_event; "
        "run `sabot db upgrade` first"
    ]
    assert done.stdout == ""  # no CSV header: `> audit.csv` must not look like an empty trail


@pytest.mark.parametrize("command", [("audit", "export"), ("findings",)])
def test_reading_commands_make_no_database_file(tmp_path: Path, command: tuple[str, ...]) -> None:
    """A mistyped DATABASE_URL (or none, in another folder): said, and no empty file left."""
    missing = tmp_path / "no-such.db"
    done = sabot(f"sqlite:///{missing}", tmp_path, *command)
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        f"sabot: no SQLite file at {missing}: check DATABASE_URL, or make one with "
        "`sabot db upgrade`"
    ]
    assert done.stdout == "" and not missing.exists()


async def test_export_pages_through_events_that_share_a_moment(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        t = datetime(2024, 5, 1, 12, tzinfo=UTC)
        # Inserted out of time order, several at the same moment: the export sorts by time,
        # then by insertion, and a batch boundary inside a tie loses and repeats nothing.
        moments = [t + timedelta(seconds=3), t, t, t, t + timedelta(seconds=1), t, t]
        async with db.transaction() as session:
            for i, at in enumerate(moments):
                audit.record(session, at=at, actor="U0X", action=f"event_{i}", request_id=None)
        out = io.StringIO()
        count = await export_audit(db, since=None, fmt="json", out=out, batch_size=2)
        since = io.StringIO()
        later = await export_audit(
            db, since=t + timedelta(seconds=1), fmt="csv", out=since, batch_size=2
        )
    finally:
        await db.dispose()
    assert count == 7
    assert [r["action"] for r in json.loads(out.getvalue())] == [
        "event_1",
        "event_2",
        "event_3",
        "event_5",
        "event_6",
        "event_4",
        "event_0",
    ]
    assert [r["request"] for r in json.loads(out.getvalue())] == [""] * 7
    assert later == 2
    assert [r["action"] for r in csv.DictReader(io.StringIO(since.getvalue()))] == [
        "event_4",
        "event_0",
    ]
