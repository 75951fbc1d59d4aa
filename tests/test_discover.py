"""`sabot discover` and `/service-account discover`: automation on people's accounts.

Real processes (the CLI, the bot) against the Atlassian stand-in, whose people, tokens, UI
activity lag and clock the tests set. Read-only at Atlassian: checked from its request log.
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx

from sandbox.bot_process import BotProcess
from sandbox.people import ADMIN
from sandbox.runner import Sandbox
from sandbox.slack_client import SlackSandbox
from tests.support.accounts import ask, shown
from tests.support.cli import sabot
from tests.support.databases import rows

BOB = "U0BOB"
# people a test seeds: name, email, days since a product page view (None: never), tokens
QUIET_SCRIPT = {  # reason (a): token used yesterday, no page view for 45 days
    "name": "Dana Fischer",
    "email": "dana.fischer@example.com",
    "uiActiveDaysAgo": 45,
    "tokens": [{"label": "reporting", "lastActiveDaysAgo": 1}],
}
NEVER_SEEN = {  # reason (a), UI activity absent
    "name": "Eli Moreau",
    "email": "eli.moreau@example.com",
    "uiActiveDaysAgo": None,
    "tokens": [{"label": "sync", "lastActiveDaysAgo": 2}],
}
JENKINS = {  # (b) name, email and label; (c) billable; active in the UI, token idle
    "name": "Jenkins CI",
    "email": "svc-jenkins@example.com",
    "uiActiveDaysAgo": 3,
    "billable": True,
    "tokens": [{"label": "jenkins_deploy", "lastActiveDaysAgo": 20}],
}
FREE_BOT = {  # (b) by email only, no seat: no (c)
    "name": "Release Notes",
    "email": "noreply.release@example.com",
    "uiActiveDaysAgo": 5,
    "billable": False,
    "tokens": [],
}
LABELLED = {  # (b) by token label only
    "name": "Grace Hopper",
    "email": "grace.hopper@example.com",
    "uiActiveDaysAgo": 1.5,
    "billable": False,
    "tokens": [{"label": "automation.nightly", "lastActiveDaysAgo": 10}],
}
# Names with bot words inside other words, active in the UI: nobody to flag.
ORDINARY = [
    {"name": "Cicely Abbott", "email": "cicely.abbott@example.com", "uiActiveDaysAgo": 2},
    {"name": "Robin Botham", "email": "robin.botham@example.com", "uiActiveDaysAgo": 2},
    {
        "name": "Ingrid Svcova",
        "email": "ingrid.integrations-team@example.com",
        "uiActiveDaysAgo": 2,
        "tokens": [{"label": "laptop", "lastActiveDaysAgo": 1}],
    },
]
DISCOVERY_ROUTES = ("/api-tokens", "/users/search", "/admin/v1/orgs/")


def seed(sandbox: Sandbox, *people: dict[str, Any]) -> list[str]:
    answer = httpx.post(f"{sandbox.atlassian_url}/_sandbox/people", json={"people": list(people)})
    assert answer.status_code == 201, answer.text
    return list(answer.json()["accountIds"])


def discover(sandbox: Sandbox, database_url: str, cwd: Path, fmt: str = "json") -> Any:
    return sabot(database_url, cwd, "discover", "--format", fmt, sandbox=sandbox)


def migrated(sandbox: Sandbox, database_url: str, cwd: Path) -> None:
    done = sabot(database_url, cwd, "db", "upgrade", sandbox=sandbox)
    assert done.returncode == 0, done.stderr


def by_email(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["email"]: f for f in report["findings"]}


def discovery_calls(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [c for c in sandbox.atlassian.calls if any(r in c["path"] for r in DISCOVERY_ROUTES)]


def test_each_reason_flags_the_right_people(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> None:
    migrated(sandbox, database_url, tmp_path)
    ids = seed(sandbox, QUIET_SCRIPT, NEVER_SEEN, JENKINS, FREE_BOT, LABELLED, *ORDINARY)
    done = discover(sandbox, database_url, tmp_path)
    assert done.returncode == 1, done.stderr  # people flagged
    report = json.loads(done.stdout)
    found = by_email(report)
    assert set(found) == {
        "dana.fischer@example.com",
        "eli.moreau@example.com",
        "svc-jenkins@example.com",
        "noreply.release@example.com",
        "grace.hopper@example.com",
    }
    assert found["dana.fischer@example.com"]["reasons"] == ["token_used_while_ui_idle"]
    assert found["eli.moreau@example.com"]["reasons"] == ["token_used_while_ui_idle"]
    assert found["eli.moreau@example.com"]["last_ui_activity"] is None
    assert found["svc-jenkins@example.com"]["reasons"] == [
        "bot_like_name",
        "bot_like_email",
        "bot_like_token_label",
        "billable_seat_on_bot_identity",
    ]
    assert found["noreply.release@example.com"]["reasons"] == ["bot_like_email"]
    assert found["grace.hopper@example.com"]["reasons"] == ["bot_like_token_label"]
    jenkins = found["svc-jenkins@example.com"]
    assert jenkins["account_id"] == ids[2] and jenkins["billable"] is True
    assert jenkins["name"] == "Jenkins CI"
    assert [set(t) for t in jenkins["tokens"]] == [{"id", "label", "last_active_at", "expires_at"}]
    assert jenkins["tokens"][0]["label"] == "jenkins_deploy"
    assert set(report) == {"findings", "summary"}
    assert set(report["findings"][0]) == {
        "account_id",
        "email",
        "name",
        "reasons",
        "billable",
        "last_ui_activity",
        "tokens",
    }
    summary = report["summary"]
    assert (summary["accounts"], summary["tokens"], summary["flagged"]) == (8, 5, 5)
    # billable is the default for seeded people: all but the two seeded without a seat
    assert summary["seats"] == 6
    assert summary["shared_credentials"] == 2
    assert summary["bot_like_identities"] == 3
    assert summary["billable_bot_seats"] == 1
    assert "read " in done.stderr and "people" in done.stderr  # the progress line


def test_ui_activity_lag_and_the_stand_in_clock(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> None:
    """A page view from an hour ago is not reported yet (Atlassian lags up to 24 h): the
    person still looks idle; a day later by the stand-in's clock, they are not."""
    migrated(sandbox, database_url, tmp_path)
    person = {**QUIET_SCRIPT, "uiActiveDaysAgo": 1 / 24}
    seed(sandbox, person)
    first = json.loads(discover(sandbox, database_url, tmp_path).stdout)
    assert [f["reasons"] for f in first["findings"]] == [["token_used_while_ui_idle"]]
    later = time.time() + 86400
    httpx.post(f"{sandbox.atlassian_url}/_sandbox/directory", json={"now": later})
    again = discover(sandbox, database_url, tmp_path)
    assert again.returncode == 0, again.stdout  # the page view now shows: nobody flagged
    assert json.loads(again.stdout)["findings"] == []


def test_csv_and_text_formats(sandbox: Sandbox, database_url: str, tmp_path: Path) -> None:
    migrated(sandbox, database_url, tmp_path)
    seed(sandbox, QUIET_SCRIPT, JENKINS, {**FREE_BOT, "name": "=HYPERLINK(1)"})
    done = discover(sandbox, database_url, tmp_path, "csv")
    assert done.returncode == 1, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    rows_by_email = {r["email"]: r for r in table}
    assert set(rows_by_email) == {
        "dana.fischer@example.com",
        "svc-jenkins@example.com",
        "noreply.release@example.com",
    }
    jenkins = rows_by_email["svc-jenkins@example.com"]
    assert jenkins["state"] == "open" and jenkins["billable"] == "yes"
    assert "billable_seat_on_bot_identity" in jenkins["reasons"].split()
    assert json.loads(jenkins["tokens"])[0]["label"] == "jenkins_deploy"
    assert rows_by_email["noreply.release@example.com"]["name"] == "'=HYPERLINK(1)"

    text = discover(sandbox, database_url, tmp_path, "text").stdout
    assert "Read 3 managed accounts, 2 API tokens, 2 billable seats; 3 people flagged." in text
    assert "1. Shared user credentials in use? 1 people" in text
    assert "3. Licences spent on fake people? 1 billable seats" in text
    assert "token 'reporting'" in text and "product pages last viewed: never" not in text


def test_paging_a_429_mid_way_and_read_only(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> None:
    migrated(sandbox, database_url, tmp_path)
    directory = sandbox.atlassian.directory
    directory.seed(sandbox.atlassian, 250, 450, ui_days_ago=60, token_days_ago=1)
    sandbox.atlassian.add_fault("api-tokens", "429", skip=2)  # the third token page
    sandbox.atlassian.add_fault("directory-search", "429", skip=1)
    done = discover(sandbox, database_url, tmp_path)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["summary"]["accounts"] == 250 and report["summary"]["tokens"] == 450
    assert report["summary"]["shared_credentials"] == 250
    calls = discovery_calls(sandbox)
    token_pages = [c for c in calls if c["path"].endswith("/api-tokens")]
    assert [c["status"] for c in token_pages] == [200, 200, 429, 200, 200, 200]
    searches = [c for c in calls if c["path"].endswith("/users/search")]
    assert [c["status"] for c in searches] == [200, 429, 200, 200]
    seat_pages = [c for c in calls if "/admin/v1/" in c["path"]]
    assert len(seat_pages) == 3
    # read-only: GETs, and the directory search (a POST that reads)
    sent = {(c["method"], c["path"].endswith("/users/search")) for c in sandbox.atlassian.calls}
    assert sent <= {("GET", False), ("POST", True)}
    assert not sandbox.atlassian.faults


def test_a_re_run_keeps_the_state(sandbox: Sandbox, database_url: str, tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from workflows.db import Database
    from workflows.discovery.findings import set_state
    from workflows.states import FindingState

    migrated(sandbox, database_url, tmp_path)
    (dana,) = seed(sandbox, QUIET_SCRIPT)
    assert discover(sandbox, database_url, tmp_path).returncode == 1

    async def dismiss() -> None:
        db = Database(database_url)
        try:
            await set_state(
                db,
                dana,
                FindingState.DISMISSED,
                actor=ADMIN,
                now=datetime.now(UTC),
                reason="a known nightly export, approved",
            )
        finally:
            await db.dispose()

    asyncio.run(dismiss())
    done = discover(sandbox, database_url, tmp_path, "csv")
    (row,) = list(csv.DictReader(io.StringIO(done.stdout)))
    assert row["state"] == "dismissed"
    (stored,) = rows(database_url, "SELECT account_id, state, state_reason, flagged FROM finding")
    assert stored["state"] == "dismissed" and stored["state_reason"].startswith("a known")
    trail = rows(database_url, "SELECT action FROM audit_event ORDER BY id")
    actions = [r["action"] for r in trail]
    assert actions == ["finding_opened", "discovery_run", "finding_dismissed", "discovery_run"]


def test_slash_discover_for_admins(
    sandbox: Sandbox, slack: SlackSandbox, admin_bot: BotProcess, database_url: str
) -> None:
    """Carol (an admin) gets the summary and the top findings ephemerally, within Block Kit's
    limits (the stand-in refuses anything over); Bob (not an admin) is refused."""
    sandbox.atlassian.directory.seed(sandbox.atlassian, 30, 30, ui_days_ago=None, token_days_ago=1)
    seed(sandbox, JENKINS)
    reply = ask(slack, ADMIN, "discover")
    text = shown(reply)
    assert "Discovery read 31 accounts, 31 API tokens and 31 billable seats" in text
    assert "31 people flagged" in text
    assert "Jenkins CI" in text  # the most reasons first
    assert "billable_seat_on_bot_identity" in text
    assert "21 more findings" in text
    assert len(reply["blocks"]) <= 50
    states = rows(database_url, "SELECT state, flagged FROM finding")
    assert len(states) == 31 and {r["state"] for r in states} == {"open"}
    run = rows(database_url, "SELECT actor_id FROM audit_event WHERE action = 'discovery_run'")
    assert run == [{"actor_id": ADMIN}]

    refused = ask(slack, BOB, "discover")
    assert "Only admins can run discovery." in shown(refused)
    assert len(rows(database_url, "SELECT id FROM audit_event WHERE action = 'discovery_run'")) == 1
    assert {
        (c["method"], c["path"].endswith("/users/search")) for c in discovery_calls(sandbox)
    } <= {
        ("GET", False),
        ("POST", True),
    }


def test_the_stand_in_pages_as_documented_and_refuses_big_pages(sandbox: Sandbox) -> None:
    """What the client relies on: each route's own cursor, and a 400 for a page too big."""
    sandbox.atlassian.directory.seed(sandbox.atlassian, 3, 5)
    base, org = sandbox.atlassian_url, sandbox.atlassian.org_id
    key = {"Authorization": f"Bearer {sandbox.atlassian.api_key}"}
    tokens = f"{base}/admin/api-access/v1/orgs/{org}/api-tokens"
    too_big = httpx.get(tokens, params={"pageSize": 101}, headers=key)
    assert too_big.status_code == 400 and "pageSize" in too_big.json()["detail"]
    first = httpx.get(tokens, params={"pageSize": 2}, headers=key).json()
    assert len(first["data"]) == 2 and set(first["data"][0]["user"]) == {
        "id",
        "orgId",
        "name",
        "email",
    }
    second = httpx.get(
        tokens, params={"pageSize": 2, "cursor": first["links"]["next"]}, headers=key
    )
    assert second.json()["data"][0]["id"] not in {t["id"] for t in first["data"]}
    search = f"{base}/admin/v2/orgs/{org}/directories/-/users/search"
    refused = httpx.post(search, json={"limit": 500}, headers=key)
    assert refused.status_code == 400
    wrong_cursor = httpx.post(search, json={"cursor": first["links"]["next"]}, headers=key)
    assert wrong_cursor.status_code == 400  # a token-list cursor is not the directory's
    page = httpx.post(search, json={"limit": 2, "expand": ["productAccess"]}, headers=key).json()
    assert {"accountId", "accountType", "mfaEnabled", "productAccess"} <= set(page["data"][0])
    users = httpx.get(f"{base}/admin/v1/orgs/{org}/users", headers=key).json()
    assert [u["access_billable"] for u in users["data"]] == [True, True, True]
    assert httpx.get(tokens, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_finding_states_move_only_as_the_table_allows(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> None:
    import asyncio
    from datetime import UTC, datetime

    import pytest

    from workflows.db import Database
    from workflows.discovery.findings import set_state
    from workflows.errors import NotAllowed
    from workflows.states import FindingState as S

    migrated(sandbox, database_url, tmp_path)
    (dana,) = seed(sandbox, QUIET_SCRIPT)
    assert discover(sandbox, database_url, tmp_path).returncode == 1

    async def walk() -> list[str]:
        db = Database(database_url)
        now = datetime.now(UTC)
        try:
            with pytest.raises(NotAllowed, match="Say why"):
                await set_state(db, dana, S.DISMISSED, actor=ADMIN, now=now, reason=" ")
            with pytest.raises(NotAllowed, match="open cannot become migrated"):
                await set_state(db, dana, S.MIGRATED, actor=ADMIN, now=now)
            states = []
            for to in (S.OFFERED, S.MIGRATED, S.HUMAN_TOKEN_REVOKED):
                states.append((await set_state(db, dana, to, actor=ADMIN, now=now)).state)
            with pytest.raises(NotAllowed):
                await set_state(db, dana, S.OPEN, actor=ADMIN, now=now)
            return states
        finally:
            await db.dispose()

    assert asyncio.run(walk()) == ["offered", "migrated", "human_token_revoked"]
    trail = rows(database_url, "SELECT action, actor_id FROM audit_event ORDER BY id")
    assert [r["action"] for r in trail if r["action"].startswith("finding_")] == [
        "finding_opened",
        "finding_offered",
        "finding_migrated",
        "finding_human_token_revoked",
    ]
    # a re-run keeps the last state, and the evidence is refreshed
    discover(sandbox, database_url, tmp_path)
    (stored,) = rows(database_url, "SELECT state, flagged FROM finding")
    assert stored["state"] == "human_token_revoked"
