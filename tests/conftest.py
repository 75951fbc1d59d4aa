"""Fixtures that run the real thing (stand-ins on local ports, `sabot serve` as a process or in
process, a real SQLite file or a throwaway PostgreSQL database), the secret sweep after every
test, and the tiers.

Tiers, one marker each (pyproject.toml): `unit`, `domain`, `slack` and `e2e`. A test's tier is
its own marker if it has one, else its entry in TEST_TIERS, else its module's in MODULE_TIERS,
else `e2e`: a new test runs in CI (`make test`) whatever its tier. `make check` runs all but
`e2e`. Below e2e no test may start a process: one that does fails, saying so."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import bot_process
from sandbox.bot_process import BotProcess, start_bot
from sandbox.people import ADMIN_ENV
from sandbox.runner import Sandbox, start_sandbox
from sandbox.slack_client import SlackSandbox
from tests.support import sweep
from tests.support.in_process import InProcessBot, serve_in_process
from tests.support.lifecycle import World
from tests.support.lifecycle import lifecycle_world as make_lifecycle_world
from tests.support.reliability import record
from tests.support.throwaway import throwaway_database

TIERS = ("unit", "domain", "slack", "e2e")
# unit: functions and views, no database, no server. domain: the workflows in process (SQLite
# or PostgreSQL, the Atlassian stand-in and its client, a clock the test moves). slack: the
# Bolt app or the Slack stand-in in process, the stand-ins on a thread. e2e: sabot processes.
DEFAULT_TIER = "e2e"
MODULE_TIERS = {
    "test_escaping": "unit",
    "test_rendering_limits": "unit",
    "test_validation": "unit",
    "test_atlassian_client": "domain",
    "test_database": "domain",
    "test_lifecycle": "domain",
    "test_pending": "domain",
    "test_quota_line": "domain",
    "test_sandbox_atlassian": "domain",
    "test_states": "domain",
    "test_bolt_app": "slack",
    "test_sandbox_slack": "slack",
}
# The tests of an e2e module that start no process.
TEST_TIERS = {
    "test_admin_cli::test_export_pages_through_events_that_share_a_moment": "domain",
    "test_admin_commands::test_page_buttons_keep_every_filter": "unit",
    "test_deploy::test_chart_ingress_routes_only_slack_events_and_bounds_slow_clients": "unit",
    "test_deploy::test_chart_passes_helm_lint_strict": "unit",
    "test_deploy::test_chart_refuses_to_render_without_what_it_needs": "unit",
    "test_deploy::test_chart_renders_objects_kubernetes_accepts": "unit",
    "test_deploy::test_chart_runs_http_replicas_and_a_worker": "unit",
    "test_deploy::test_chart_service_and_disruption_budget_select_the_http_pods": "unit",
    "test_deploy::test_chart_takes_credentials_from_the_secret_and_mounts_the_policy": "unit",
    "test_deploy::test_compose_runs_the_bot_a_worker_and_postgres": "unit",
    "test_deploy::test_docker_build_context_has_what_the_dockerfile_copies": "unit",
    "test_deploy::test_dockerfile_installs_the_lock_as_a_non_root_user": "unit",
    "test_deploy::test_lock_file_pins_every_dependency_with_hashes": "unit",
    "test_deploy::test_manifest_url_is_normalised": "unit",
    "test_deploy::test_metrics_port_is_the_http_port": "unit",
    "test_deploy::test_release_named_sabot_is_not_repeated": "unit",
    "test_discover::test_the_stand_in_pages_as_documented_and_refuses_big_pages": "domain",
    "test_doctor::test_the_slack_stand_in_grants_what_the_manifest_asks_for": "unit",
    "test_doctor::test_the_slack_stand_in_names_the_scopes_and_refuses_a_call_without_its_own": (
        "slack"
    ),
    "test_idle_tokens::test_a_kept_token_is_asked_about_again_after_another_n_days": "domain",
    "test_observability::test_atlassian_routes_fold_ids": "unit",
    "test_observability::test_database_gauges": "domain",
    "test_observability::test_json_lines_carry_the_context_into_tasks": "unit",
    "test_observability::test_log_format_setting": "unit",
    "test_observability::test_no_credential_or_token_in_any_log_line": "unit",
    "test_observability::test_text_lines_show_the_context": "unit",
    "test_observability::test_uvicorn_lines_are_adopted": "unit",
    "test_observability::test_worker_metrics_are_served_on_their_own_port": "slack",
    "test_policy::test_approvers_must_be_allowed_every_scope_and_never_the_requester": "unit",
    "test_policy::test_broken_files_say_where_and_what": "unit",
    "test_policy::test_requesters_and_admins_from_groups": "unit",
    "test_policy::test_the_example_is_valid_and_says_what_it_means": "unit",
    "test_processes::test_a_new_database_is_made_as_the_migrations_would_make_it": "domain",
    "test_processes::test_migrated_schema_is_the_models_schema": "domain",
    "test_secret_sweep::test_library_loggers_follow_log_level_and_bodies_only_when_asked": "unit",
    "test_settings::test_comma_lists_and_trailing_slash": "unit",
    "test_settings::test_defaults": "unit",
    "test_settings::test_dotenv_in_the_working_folder_is_read": "unit",
    "test_settings::test_malformed_settings_name_themselves": "unit",
    "test_settings::test_manifest_declares_what_the_app_uses": "unit",
    "test_settings::test_missing_settings_are_listed_together": "unit",
    "test_settings::test_secrets_never_show_in_repr_or_str": "unit",
    "test_settings::test_the_database_password_never_shows_in_repr_or_json": "unit",
    "test_slack_limits::test_a_message_over_a_limit_is_refused_as_slack_refuses_it": "slack",
    "test_slack_limits::test_a_view_over_a_limit_is_refused_as_slack_refuses_it": "slack",
    "test_slack_limits::test_the_same_blocks_just_within_the_limits_are_posted": "slack",
    "test_socket_mode::test_a_ticket_opens_one_connection_which_says_hello": "slack",
    "test_socket_mode::test_an_envelope_not_acked_within_3_seconds_is_slacks_timeout": "slack",
    "test_socket_mode::test_connections_open_takes_the_app_level_token_only": "slack",
    "test_socket_mode::test_disconnect_is_sent_and_the_link_closed": "slack",
    "test_socket_mode::test_envelopes_carry_the_http_payloads_and_an_ack_payload_is_the_answer": (
        "slack"
    ),
    "test_socket_mode::test_with_socket_mode_on_and_no_connection_slack_cannot_dispatch": "slack",
}


def tier_of(item: pytest.Item) -> str | None:
    """The closest tier marker: the test's own, else its module's."""
    return next((m.name for m in item.iter_markers() if m.name in TIERS), None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if tier_of(item) is None:
            module = item.path.stem
            name = getattr(item, "originalname", item.name)
            tier = TEST_TIERS.get(f"{module}::{name}") or MODULE_TIERS.get(module, DEFAULT_TIER)
            item.add_marker(tier)


@pytest.fixture(autouse=True)
def processes_only_in_e2e(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps the tiers honest: below e2e, starting a process fails the test."""
    tier = tier_of(request.node)
    if tier == "e2e":
        return

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError(f"a {tier} test starts no process: mark it e2e (tests/conftest.py)")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


# Every bot started as a process is searched by the secret sweep.
bot_process.ON_START.append(lambda bot, sandbox: sweep.STARTED.append((bot, sandbox)))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes it runs on both engines."""
    with throwaway_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """For what only PostgreSQL supports: several processes on one database."""
    with throwaway_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    stand_ins = start_sandbox()
    yield stand_ins
    stand_ins.stop()


@pytest.fixture
def slack(sandbox: Sandbox) -> Iterator[SlackSandbox]:
    with SlackSandbox(sandbox.slack_url) as client:
        yield client


@pytest.fixture(autouse=True)
def no_secret_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that ran a bot, the secret sweep (tests/support/sweep.py): no minted
    token and no credential anywhere but the ephemeral replies to the token's owner. A hit
    fails the test, naming where, never the secret."""
    sweep.begin_test()
    yield
    sweep.end_test((getattr(request.node, "funcargs", None) or {}).get("tmp_path"))


@pytest.fixture
def bot(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[BotProcess]:
    process = start_bot(sandbox, database_url, tmp_path / "sabot.log")
    yield process
    process.stop()


@pytest.fixture
def admin_bot(sandbox: Sandbox, database_url: str, tmp_path: Path) -> Iterator[BotProcess]:
    """The bot with Carol as its admin."""
    process = start_bot(sandbox, database_url, tmp_path / "sabot.log", extra_env=ADMIN_ENV)
    yield process
    process.stop()


@pytest.fixture
def in_process_bot(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InProcessBot]:
    """The slack tier's bot: `sabot serve`'s app in this process, on SQLite, with Carol as its
    admin; Slack's requests go to it."""
    url = f"sqlite:///{tmp_path / 'sabot.db'}"
    with serve_in_process(sandbox, url, tmp_path / "sabot.log", monkeypatch, ADMIN_ENV) as bot:
        sandbox.slack.bot_url = bot.url
        sweep.STARTED.append((bot, sandbox))
        yield bot


@pytest.fixture
async def lifecycle_world(tmp_path: Path) -> AsyncIterator[World]:
    """The domain in process with a clock the test moves (tests/support/lifecycle.py)."""
    async with make_lifecycle_world(tmp_path) as world:
        yield world


# Hits of the last sweep of wider fixtures' bots, at the end of the session (no test to fail).
_SESSION_FINDINGS: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Sweep the bots of wider fixtures once more, now that they have stopped (their last log
    lines included), then record what the sweep searched over the session."""
    findings = sweep.end_session()
    if findings:
        _SESSION_FINDINGS.extend(findings)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    totals = sweep.SWEEP_TOTALS
    if totals.tests:
        record(
            "Secret sweep over the whole suite",
            "after every test that ran a bot: every table of its database (both engines, "
            "before a PostgreSQL one is dropped), every file it left (each process's log at "
            "DEBUG, slack_sdk/slack_bolt/aiohttp/httpx included, tracebacks, the SQLite file), "
            "every Slack call and answer, every Atlassian call",
            runs=totals.tests,
            duplicates=0,
            lost=totals.hits,
            note=totals.note(),
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if sweep.SWEEP_TOTALS.tests:
        terminalreporter.write_line(f"secret sweep: {sweep.SWEEP_TOTALS.note()}")
    for finding in _SESSION_FINDINGS:
        terminalreporter.write_line(f"secret sweep, after the session: {finding}", red=True)
