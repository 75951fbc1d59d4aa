"""Health, readiness, metrics and structured logs, on the real server and in-process.

The server runs as its own process against the stand-ins (SQLite and PostgreSQL); the metrics
are read in Prometheus' text format after a whole request -> approve -> Reveal flow, and the
readiness probe is watched while the database goes away and comes back.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError

from bot.process import logs
from bot.process.assembly import assemble
from bot.process.metrics import (
    APPROVAL_BUCKETS,
    Metrics,
    atlassian_route,
    read_database,
    serve_worker_metrics,
)
from bot.process.settings import SettingsError, load_settings
from bot.slack.slack_api import SlackRateLimited
from sandbox.bot_process import start_bot
from sandbox.people import (
    ALICE,
    APPROVALS,
    BOB,
    GENERAL,
    GOOD_FORM,
    approval_message,
    reveal_offer,
    submit_request,
    token_replies,
)
from sandbox.runner import Sandbox, free_port
from sandbox.slack_client import SlackSandbox
from tests.support.databases import pg_admin_url, pg_execute
from workflows.db import Database
from workflows.migrations import upgrade
from workflows.models import ApiToken, Decision, Job, ServiceAccount, ServiceAccountRequest

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when it was never recorded (as Prometheus would read it)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the whole flow, then /metrics and the log ------------------------------------------------


def test_metrics_and_json_logs_follow_a_whole_flow(
    sandbox: Sandbox, slack: SlackSandbox, database_url: str, tmp_path: Path
) -> None:
    bot = start_bot(sandbox, database_url, tmp_path / "sabot.log", {"LOG_FORMAT": "json"})
    try:
        assert httpx.get(f"{bot.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{bot.url}/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        before = scrape(bot.url)
        assert value(before, "sabot_database_up") == 1
        assert value(before, "sabot_approval_latency_seconds_count") == 0
        assert value(before, "sabot_requests", status="active") == 0

        # request (10 days: its token will count as expiring soon), approve, Reveal
        form = {**GOOD_FORM, "lifetime_days": {"lifetime_days": "10"}}
        assert submit_request(slack, form)["status"] == 200
        message = approval_message(slack)
        slack.click(BOB, APPROVALS, message["ts"], "request_approve")
        offer = reveal_offer(slack)
        slack.click(ALICE, GENERAL, offer["ts"], "token_reveal")
        slack.wait_for(lambda: token_replies(slack), what="the token reply")
        [token] = sandbox.atlassian.minted_values()

        def settled() -> Samples | None:
            now = scrape(bot.url)
            idle = value(now, "sabot_job_queue_depth", state="due") == 0
            idle = idle and value(now, "sabot_job_queue_depth", state="running") == 0
            delivered = value(now, "sabot_tokens_expiring_soon") == 1
            return now if idle and delivered else None

        after = slack.wait_for(settled, what="the job queue to drain")
        assert after is not None
    finally:
        bot.stop()

    # The garbage collector, off while the process started (bot/__main__.py), runs again.
    collections = "python_gc_collections_total"
    assert value(after, collections, generation="0") > value(before, collections, generation="0")
    # Slack's requests: the command, the form, two clicks, all acknowledged with 200
    assert value(after, "sabot_slack_requests_total", outcome="2xx") >= 4
    assert value(after, "sabot_slack_requests_total", outcome="5xx") == 0
    assert value(after, "sabot_slack_request_seconds_count") == total(
        after, "sabot_slack_requests_total"
    )
    # approval latency, from the database: one approved request, within the first bucket
    assert value(after, "sabot_approval_latency_seconds_count") == 1
    assert value(after, "sabot_approval_latency_seconds_bucket", le="60.0") == 1
    assert 0 <= value(after, "sabot_approval_latency_seconds_sum") < 60
    # every saga step ran once and succeeded
    for step in ("create_account", "grant_access", "mint_token", "deliver_token"):
        count = "sabot_provisioning_step_seconds_count"
        assert value(after, count, step=step, outcome="ok") == 1, step
        assert value(after, count, step=step, outcome="failed") == 0, step
    assert value(after, "sabot_job_run_seconds_count", kind="provision", outcome="done") == 1
    assert value(after, "sabot_job_run_seconds_count", kind="reveal", outcome="done") == 1
    # outside calls, by status: Atlassian routes with ids folded, Slack methods by outcome
    # the documented API Access route first (issue 11), where the stand-in serves it
    create = {"method": "POST", "route": "/admin/api-access/v1/orgs/{id}/service-accounts"}
    assert total(after, "sabot_atlassian_requests_total", **create) == 1
    mint = {"method": "POST", "route": "/users/{id}/manage/api-tokens"}
    assert total(after, "sabot_atlassian_requests_total", **mint) == 1
    # every request sent was answered, and timed (no answer would be the difference)
    sent = total(after, "sabot_atlassian_requests_sent_total")
    assert sent > 0 and sent == total(after, "sabot_atlassian_requests_total")
    assert total(after, "sabot_atlassian_request_seconds_count") == sent
    posted = {"method": "chat.postMessage", "status": "200", "error": ""}
    assert value(after, "sabot_slack_api_calls_total", **posted) >= 2
    # views.open is called by a listener, through the client Bolt makes for each request
    assert total(after, "sabot_slack_api_calls_total", method="views.open") >= 1
    # from the database at scrape time
    assert value(after, "sabot_requests", status="active") == 1
    assert value(after, "sabot_job_oldest_due_age_seconds") == 0
    assert value(after, "sabot_jobs_failed") == 0
    assert value(after, "process_resident_memory_bytes") > 0

    # every line is JSON with the fields, and the context says who and what
    lines = json_lines(bot.log())
    assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    answered = [line for line in lines if str(line["message"]).startswith("slack request")]
    assert len(answered) == total(after, "sabot_slack_requests_total")
    assert len({line["http_request_id"] for line in answered}) == len(answered)
    assert any(line.get("slack_user") == BOB for line in lines)  # the approver's click
    provisioning = [line for line in lines if line.get("request_id") == "SA-1"]
    steps = {line.get("step") for line in provisioning}
    assert {"create_account", "mint_token"} <= steps, steps
    text = bot.log()
    for secret in (
        token,
        sandbox.slack.bot_token,
        sandbox.slack.signing_secret,
        sandbox.atlassian.api_key,
    ):
        assert secret not in text


# -- readiness while the database goes away ---------------------------------------------------


def test_readyz_turns_503_while_the_database_is_gone(
    sandbox: Sandbox, database_url: str, tmp_path: Path
) -> None:
    postgres = database_url.startswith("postgresql")
    if postgres:
        url, name = database_url, database_url.rsplit("/", 1)[1]
    else:  # a database in its own folder, which is then taken away
        folder = tmp_path / "data"
        folder.mkdir()
        url = f"sqlite:///{folder / 'sabot.db'}"
    bot = start_bot(sandbox, url, tmp_path / "sabot.log", {"LOG_FORMAT": "json"})
    try:
        assert httpx.get(f"{bot.url}/readyz").status_code == 200

        admin = pg_admin_url()
        if postgres:
            assert admin is not None
            asyncio.run(pg_execute(admin, f'DROP DATABASE "{name}" WITH (FORCE)'))
        else:
            shutil.move(folder, tmp_path / "elsewhere")

        gone = httpx.get(f"{bot.url}/readyz", timeout=10)
        assert gone.status_code == 503
        body = gone.json()
        assert body["status"] == "unavailable" and body["reason"].startswith("database")
        for leak in ("postgres", "sqlite", "127.0.0.1", str(tmp_path), "sabot.db"):
            assert leak not in body["reason"].lower(), body
        if postgres:
            assert name not in body["reason"]
        # liveness is the process alone: a database outage must not get the pod restarted
        assert httpx.get(f"{bot.url}/healthz").status_code == 200
        metrics = httpx.get(f"{bot.url}/metrics", timeout=10)
        assert metrics.status_code == 200 and "sabot_database_up 0.0" in metrics.text

        if postgres:
            assert admin is not None
            asyncio.run(pg_execute(admin, f'CREATE DATABASE "{name}"'))
        else:
            shutil.move(tmp_path / "elsewhere", folder)
        back = httpx.get(f"{bot.url}/readyz", timeout=10)
        assert back.status_code == 200 and back.json() == {"status": "ready"}
    finally:
        bot.stop()
    messages = [str(line["message"]) for line in json_lines(bot.log())]
    assert any(m.startswith("not ready: database") for m in messages)
    assert "ready again: the database answers" in messages


# -- the database gauges, exactly ------------------------------------------------------------


async def test_database_gauges(database_url: str) -> None:
    db = Database(database_url)
    await upgrade(db)
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def request(name: str, status: str, **fields: Any) -> ServiceAccountRequest:
        return ServiceAccountRequest(
            name=name,
            justification="j",
            products=["jira"],
            scopes=["read:jira-work"],
            lifetime_days=30,
            requester_id="U0ALICE",
            status=status,
            created_at=now - timedelta(hours=2),
            updated_at=now,
            **fields,
        )

    try:
        async with db.transaction() as session:
            fast = request("fast", "active", decided_by="U0BOB")
            slow = request("slow", "approved", decided_by="U0CAROL")
            denied = request("denied", "denied", decided_by="U0BOB")
            session.add_all([fast, slow, denied, request("waiting", "pending")])
            await session.flush()
            assert fast.id and slow.id and denied.id
            decided = [
                (fast.id, "U0BOB", "approve", timedelta(minutes=10)),
                (slow.id, "U0BOB", "approve", timedelta(minutes=20)),  # first of a quorum of 2
                (slow.id, "U0CAROL", "approve", timedelta(hours=1, minutes=30)),
                (denied.id, "U0BOB", "deny", timedelta(minutes=1)),
            ]
            for request_id, approver, verdict, after in decided:
                at = now - timedelta(hours=2) + after
                session.add(
                    Decision(
                        request_id=request_id, approver_id=approver, verdict=verdict, created_at=at
                    )
                )
            account = ServiceAccount(
                request_id=fast.id, name="fast", owner_id="U0ALICE", created_at=now
            )
            session.add(account)
            await session.flush()
            assert account.id
            for label, state, expires, revoke_after in (
                ("soon", "delivered", timedelta(days=3), None),
                ("rotated", "delivered", timedelta(days=3), now + timedelta(days=1)),
                ("later", "delivered", timedelta(days=40), None),
                ("past", "delivered", -timedelta(days=1), None),
                ("gone", "revoked", timedelta(days=3), None),
            ):
                session.add(
                    ApiToken(
                        account_id=account.id,
                        label=label,
                        state=state,
                        expires_at=now + expires,
                        revoke_after=revoke_after,
                        created_at=now,
                    )
                )
            for status, run_after in (
                ("queued", now - timedelta(seconds=90)),
                ("queued", now - timedelta(seconds=5)),
                ("queued", now + timedelta(days=1)),
                ("running", now),
                ("failed", now),
                ("done", now),
            ):
                session.add(Job(kind="refresh", status=status, run_after=run_after, created_at=now))
        snapshot = await read_database(db, now)
    finally:
        await db.dispose()
    assert snapshot.due_jobs == 2 and snapshot.oldest_due_age == 90
    assert snapshot.jobs_by_status == {"queued": 3, "running": 1, "failed": 1, "done": 1}
    assert snapshot.requests_by_status == {"active": 1, "approved": 1, "denied": 1, "pending": 1}
    assert snapshot.tokens_expiring == 1
    # approved after 10 minutes and after 90 minutes (the second, deciding approval)
    assert snapshot.approvals == 2
    assert snapshot.approval_seconds_sum == pytest.approx(600 + 5400, abs=0.01)
    buckets = dict(zip(APPROVAL_BUCKETS, snapshot.approval_buckets, strict=True))
    assert buckets[300] == 0 and buckets[900] == 1 and buckets[3600] == 1
    assert buckets[4 * 3600] == 2


# -- a worker process's metrics ---------------------------------------------------------------


async def test_worker_metrics_are_served_on_their_own_port(
    sandbox: Sandbox, slack: SlackSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {
        **sandbox.bot_env(),
        "DATABASE_URL": "sqlite:///w.db",
        "SLACK_RETRY_MAX_WAIT_SECONDS": "2",
    }
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    # The site lookup at start-up loses its first answer (the client sends it again).
    sandbox.atlassian.add_fault("workspaces", "reset")
    metrics = Metrics(database=False)
    assembly = await assemble(load_settings(), metrics=metrics)
    port = free_port()
    server = serve_worker_metrics(metrics, port, host="127.0.0.1")
    try:
        slack.fault("auth.test", retry_after=0)  # a 429, retried at once
        await assembly.client.auth_test()
        slack.fault("auth.test", retry_after=5)  # longer than the 2 s it may wait: fails
        with pytest.raises(SlackApiError):
            await assembly.client.auth_test()
        with pytest.raises(SlackRateLimited):  # held back until those 5 s have passed
            await assembly.client.auth_test()
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.shutdown()
        await assembly.close()
    assert answer.status_code == 200
    samples = parse(answer.text)
    # Atlassian: two requests sent, one answered
    sites = {"method": "POST", "route": "/admin/v2/orgs/{id}/workspaces"}
    assert value(samples, "sabot_atlassian_requests_sent_total", **sites) == 2
    assert value(samples, "sabot_atlassian_requests_total", **sites, status="200") == 1
    assert total(samples, "sabot_atlassian_requests_total") == 1
    # Slack: each HTTP attempt, and the call the gate held back (never sent)
    calls = "sabot_slack_api_calls_total"
    assert value(samples, calls, method="auth.test", status="429", error="ratelimited") == 2
    assert value(samples, calls, method="auth.test", status="200", error="") == 1
    assert value(samples, calls, method="auth.test", status="error", error="ratelimited") == 1
    assert value(samples, "sabot_slack_api_call_seconds_count", method="auth.test") == 4
    assert "sabot_database_up" not in answer.text  # the HTTP replicas report the database
    assert "sabot_job_run_seconds" in answer.text
    assert "_created" not in answer.text  # half the lines, and nothing a dashboard uses


# -- logs, in-process -------------------------------------------------------------------------

CREDENTIAL = 'xoxb-1234-"quoted"\\-credential'  # escaped differently inside JSON
TOKEN = "ATATT3xFfGF0-token-value<&>"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.scrubber.discard(CREDENTIAL)


def log_everything(log: logging.Logger) -> None:
    """A credential and an in-flight token, in every place a log line can carry text."""
    with logs.secret_in_flight(TOKEN):
        log.info("token %s and credential %s", TOKEN, CREDENTIAL)
        log.info(f"formatted in: {TOKEN} {CREDENTIAL}")
        log.info("as JSON: %s", json.dumps({"token": TOKEN, "key": CREDENTIAL}))
        log.info("as repr: %r", {"token": TOKEN, "key": CREDENTIAL})
        try:
            raise RuntimeError(f"Atlassian said no to {TOKEN} with {CREDENTIAL}")
        except RuntimeError:
            log.exception("failed")
        log.warning("with a stack", stack_info=True)
        try:
            raise ValueError(f"no secret in the message, but {TOKEN} in the exception")
        except ValueError as error:
            log.error("an error without the secret", exc_info=error)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_credential_or_token_in_any_log_line(fmt: str, restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("DEBUG", (CREDENTIAL,), fmt=fmt, stream=out)
    log_everything(logging.getLogger("sabot.test"))
    text = out.getvalue()
    assert text.count(logs.MASK) >= 10
    for secret in (CREDENTIAL, TOKEN):
        for spelling in logs._spellings(secret):
            assert spelling not in text
    if fmt == "json":
        lines = json_lines(text)
        assert len(lines) == 7
        failed = next(line for line in lines if line["message"] == "failed")
        assert "RuntimeError" in str(failed["exception"])
        assert "Traceback" in str(failed["exception"])
        assert TOKEN not in json.dumps(lines, ensure_ascii=False)


def test_uvicorn_lines_are_adopted(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", (CREDENTIAL,), fmt="json", stream=out)
    own = logging.getLogger("uvicorn")  # as uvicorn's dictConfig leaves it
    own_handler, aside = logging.StreamHandler(io.StringIO()), own.handlers[:]
    own.handlers[:], own.propagate = [own_handler], False
    try:
        logs.adopt("uvicorn")
        try:
            raise RuntimeError(f"a credential in an unhandled error: {CREDENTIAL}")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    finally:
        own.handlers[:], own.propagate = aside, True
    [line] = json_lines(out.getvalue())
    assert line["logger"] == "uvicorn.error" and "RuntimeError" in str(line["exception"])
    assert CREDENTIAL not in out.getvalue() and logs.MASK in str(line["exception"])


def test_json_lines_carry_the_context_into_tasks(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt="json", stream=out)
    log = logging.getLogger("sabot.test")

    async def follow_up() -> None:
        with logs.bound(request_id="SA-7", step="provision"):
            log.info("in a task started by the request")

    async def request() -> None:
        with logs.bound(http_request_id="abc123", slack_user="U0ALICE"):
            log.info("in the request")
            await asyncio.create_task(follow_up())
        log.info("after the request")

    asyncio.run(request())
    first, second, third = json_lines(out.getvalue())
    assert first["http_request_id"] == "abc123" and first["slack_user"] == "U0ALICE"
    assert second["http_request_id"] == "abc123" and second["request_id"] == "SA-7"
    assert second["step"] == "provision" and second["logger"] == "sabot.test"
    assert second["level"] == "INFO" and str(second["time"]).endswith("Z")
    assert "http_request_id" not in third and "request_id" not in third


def test_text_lines_show_the_context(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure("INFO", fmt="text", stream=out)
    with logs.bound(http_request_id="abc123", request_id="SA-7"):
        logging.getLogger("sabot.test").info("hello")
    assert (
        out.getvalue()
        .rstrip()
        .endswith("INFO sabot.test: hello [http_request_id=abc123 request_id=SA-7]")
    )


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    pipe, terminal = io.StringIO(), io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert logs.log_format(pipe) == "json" and logs.log_format(terminal) == "text"
    (tmp_path / ".env").write_text("LOG_FORMAT=text\n")
    assert logs.log_format(pipe) == "text"  # from .env, like every other setting
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert logs.log_format(terminal) == "json"  # the environment wins over .env
    monkeypatch.setenv("LOG_FORMAT", "yaml")
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        logs.log_format(pipe)


def test_atlassian_routes_fold_ids() -> None:
    org = "/admin/account-management/v1/orgs/6b1f0c2e-1234/service-accounts"
    assert atlassian_route(org) == "/admin/account-management/v1/orgs/{id}/service-accounts"
    assert atlassian_route(org + "/invite").endswith("/service-accounts/invite")
    assert atlassian_route("/users/712020:abc/manage/api-tokens/tok1") == (
        "/users/{id}/manage/api-tokens/{id}"
    )
    assert atlassian_route("/admin/api-access/v1/orgs/o/service-accounts/sa") == (
        "/admin/api-access/v1/orgs/{id}/service-accounts/{id}"
    )
