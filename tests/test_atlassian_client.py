"""The real Atlassian client against the real stand-in, served by uvicorn on a local port.

Each test checks what an operator would look at: the outcome, how many calls reached the
stand-in (`state.calls`), and the text of the error a person would read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from sandbox.atlassian import AtlassianState, create_atlassian_app
from sandbox.runner import free_port
from workflows.providers.atlassian import AtlassianAdmin, AtlassianError, RetryPolicy

FAST = RetryPolicy(
    attempts=3,
    base_delay=0.01,
    max_delay=1.5,
    propagation_attempts=5,
    propagation_base_delay=0.05,
)
TIMEOUT = 1.0
CLOUD = "cloud-sandbox-1"
SCOPES = ["read:jira-work"]

MakeAdmin = Callable[..., AtlassianAdmin]


@pytest.fixture
def state() -> AtlassianState:
    return AtlassianState(scoped_key="atl-scoped-key")


@pytest.fixture
async def base_url(state: AtlassianState) -> AsyncIterator[str]:
    """The stand-in on a real socket, so timeouts and dropped connections are real too."""
    port = free_port()
    config = uvicorn.Config(
        create_atlassian_app(state),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done(), "uvicorn stopped before it started"
        assert time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def make_admin(base_url: str, state: AtlassianState) -> AsyncIterator[MakeAdmin]:
    """Build clients on the stand-in (other key, policy or timeout); all closed afterwards."""
    made: list[AtlassianAdmin] = []

    def make(
        *, key: str | None = None, retry: RetryPolicy = FAST, timeout: float = TIMEOUT
    ) -> AtlassianAdmin:
        admin = AtlassianAdmin(
            base_url,
            state.org_id,
            SecretStr(key or state.api_key),
            retry=retry,
            timeout=timeout,
        )
        made.append(admin)
        return admin

    yield make
    for admin in made:
        await admin.aclose()


@pytest.fixture
def admin(make_admin: MakeAdmin) -> AtlassianAdmin:
    return make_admin()


def calls(state: AtlassianState, method: str, path_end: str) -> list[dict[str, Any]]:
    """Calls the stand-in recorded for one route."""
    return [c for c in state.calls if c["method"] == method and c["path"].endswith(path_end)]


async def failure(call: Awaitable[Any]) -> AtlassianError:
    with pytest.raises(AtlassianError) as caught:
        await call
    return caught.value


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


# -- 1. create and find, across pages ---------------------------------------------------------


async def test_create_returns_both_ids_and_is_sent_once(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "for CI")

    stored = state.by_atlassian_id(account.atlassian_id)
    assert stored is not None and stored.id == account.id
    assert account.id != account.atlassian_id
    assert account.email.endswith("@serviceaccount.atlassian.com")
    assert account.display_name == "ci-bot" and account.status == "active"
    [call] = calls(state, "POST", "/service-accounts")
    assert call["json"] == {"displayName": "ci-bot", "description": "for CI"}
    assert call["status"] == 201


@pytest.mark.parametrize("off_host_links", [False, True])
async def test_find_by_display_name_follows_pages_on_the_base_host(
    admin: AtlassianAdmin, state: AtlassianState, off_host_links: bool
) -> None:
    for n in range(85):
        state.seed_account(f"drift-{n:02d}")
    if off_host_links:
        # links.next is absolute and names the real host; the client must stay on its base.
        state.next_link_base = "https://api.atlassian.com"

    found = await admin.find_by_display_name("drift-83")  # 84th of 85: page 2

    assert [a.display_name for a in found] == ["drift-83"]
    pages = calls(state, "GET", "/service-accounts")
    assert len(pages) == len(state.calls) == 2  # every call arrived at the stand-in
    assert "limit=80" in pages[0]["query"] and "cursor=" not in pages[0]["query"]
    assert "cursor=" in pages[1]["query"] and all(p["status"] == 200 for p in pages)


async def test_find_by_display_name_finds_nothing_quietly(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.seed_account("someone-else")
    assert await admin.find_by_display_name("ci-bot") == []
    assert len(state.calls) == 1


# -- 2. rate limits without Retry-After -------------------------------------------------------


@pytest.mark.parametrize("reset", ["iso", "epoch"])
async def test_429_waits_for_the_reset_time_then_succeeds(
    admin: AtlassianAdmin, state: AtlassianState, reset: str
) -> None:
    state.add_fault("list", "429", reset=reset)

    started = time.monotonic()
    assert await admin.find_by_display_name("nobody") == []
    elapsed = time.monotonic() - started

    first, second = state.calls
    assert first["status"] == 429 and second["status"] == 200
    # The reset is the next whole second after the 429: the retry waited for it, no longer.
    assert second["at"] >= int(first["at"]) + 1 - 0.05
    assert elapsed < FAST.max_delay + 0.5


async def test_429_on_create_is_retried_without_a_duplicate(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.add_fault("create", "429", reset="epoch")

    account = await admin.create_service_account("ci-bot", "")

    assert [c["status"] for c in state.calls] == [429, 201]
    assert [a.id for a in state.live_accounts()] == [account.id]


# -- 3. server errors -------------------------------------------------------------------------


async def test_500_twice_then_success_on_an_idempotent_route(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.seed_account("ci-bot")
    state.add_fault("list", "500", count=2)

    found = await admin.find_by_display_name("ci-bot")

    assert len(found) == 1
    assert [c["status"] for c in state.calls] == [500, 500, 200]


async def test_500_on_every_attempt_is_a_transient_error_naming_the_attempts(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.add_fault("list", "500", count=10)

    error = await failure(admin.find_by_display_name("ci-bot"))

    assert error.transient is True
    assert "3 attempts" in error.reason and "HTTP 500" in error.reason
    assert "Internal server error" in error.reason
    assert len(state.calls) == FAST.attempts


async def test_500_after_create_took_effect_is_not_resent(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    # The account was made but the answer was a 500: sending create again would make a second
    # one. The caller must list and adopt instead, so the client gives up after one call.
    state.add_fault("create", "500", after=True)

    error = await failure(admin.create_service_account("ci-bot", ""))

    assert error.transient is True and error.status == 500
    assert len(calls(state, "POST", "/service-accounts")) == 1
    assert [a.display_name for a in state.live_accounts()] == ["ci-bot"]
    adopted = await admin.find_by_display_name("ci-bot")
    assert len(adopted) == 1


# -- 4. forbidden -----------------------------------------------------------------------------


async def test_html_403_explains_sso_wall_and_scoped_key(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.add_fault("list", "html403")

    error = await failure(admin.find_by_display_name("ci-bot"))

    assert error.transient is False and error.status == 403
    assert "HTTP 403" in error.reason
    assert "HTML" in error.reason and "SSO" in error.reason
    assert "scoped" in error.reason
    assert "<html" not in error.reason.lower()
    assert len(state.calls) == 1


async def test_scoped_key_on_create_is_a_403_naming_the_cause(
    make_admin: MakeAdmin, state: AtlassianState
) -> None:
    assert state.scoped_key is not None
    scoped = make_admin(key=state.scoped_key)

    error = await failure(scoped.create_service_account("ci-bot", ""))

    assert error.transient is False and error.status == 403
    assert "HTTP 403" in error.reason and "scoped" in error.reason
    assert len(state.calls) == 1 and state.live_accounts() == []


async def test_wrong_key_is_a_401_naming_the_setting(
    make_admin: MakeAdmin, state: AtlassianState
) -> None:
    error = await failure(make_admin(key="not-the-key").find_site_ids())

    assert error.status == 401 and error.transient is False
    assert "ATLASSIAN_API_KEY" in error.reason
    assert len(state.calls) == 1


# -- 5. quota ---------------------------------------------------------------------------------


async def test_quota_full_on_create(admin: AtlassianAdmin, state: AtlassianState) -> None:
    state.quota = 0

    error = await failure(admin.create_service_account("ci-bot", ""))

    assert error.status == 409 and error.transient is False
    assert "quota is full" in error.reason
    assert "Service account limit reached" in error.reason
    assert len(state.calls) == 1 and state.live_accounts() == []


@pytest.mark.parametrize("kind", ["409", "402"])
async def test_quota_fault_on_create(
    admin: AtlassianAdmin, state: AtlassianState, kind: str
) -> None:
    state.add_fault("create", kind)

    error = await failure(admin.create_service_account("ci-bot", ""))

    assert error.status == int(kind) and "quota is full" in error.reason
    assert len(state.calls) == 1


async def test_conflict_on_mint_is_not_called_a_quota(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    # A 409 means "quota full" only on create and grant; on mint it is a label already in use.
    account = await admin.create_service_account("ci-bot", "")
    await admin.mint_token(account.atlassian_id, "ci", SCOPES, in_days(30))

    error = await failure(admin.mint_token(account.atlassian_id, "ci", SCOPES, in_days(30)))

    assert error.status == 409
    assert "quota" not in error.reason
    assert "already exists" in error.reason


# -- 6. grant right after create --------------------------------------------------------------


async def test_grant_waits_for_propagation_then_grants_jira_software(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.propagation_seconds = 0.3
    account = await admin.create_service_account("ci-bot", "")

    await admin.grant_product(account.atlassian_id, "jira", CLOUD)

    invites = calls(state, "POST", "/service-accounts/invite")
    assert 2 <= len(invites) <= FAST.propagation_attempts
    assert {c["status"] for c in invites[:-1]} == {404} and invites[-1]["status"] == 202
    grants = state.effective_grants(account.atlassian_id)
    assert [g["resource"] for g in grants] == [f"ari:cloud:jira-software::site/{CLOUD}"]


async def test_grant_gives_up_when_propagation_outlasts_the_retries(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.propagation_seconds = 60
    account = await admin.create_service_account("ci-bot", "")

    error = await failure(admin.grant_product(account.atlassian_id, "confluence", CLOUD))

    assert error.status == 404 and "not found in the directory" in error.reason
    # Said as what it is (not yet, rather than not at all), with how long it was waited for.
    assert error.transient is True
    assert f"after {FAST.propagation_attempts} tries over 0.8 s" in error.reason
    assert len(calls(state, "POST", "/service-accounts/invite")) == FAST.propagation_attempts
    assert state.effective_grants(account.atlassian_id) == []


async def test_grant_to_an_unknown_site_fails_at_once(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "")

    error = await failure(admin.grant_product(account.atlassian_id, "jira", "cloud-nowhere"))

    assert error.status == 400 and "cloud-nowhere" in error.reason
    assert len(calls(state, "POST", "/service-accounts/invite")) == 1


# -- 7. no answer -----------------------------------------------------------------------------


async def test_hang_on_list_times_out_and_is_transient(
    make_admin: MakeAdmin, state: AtlassianState
) -> None:
    timeout, attempts = 0.4, 2
    patient = make_admin(retry=RetryPolicy(attempts=attempts, base_delay=0.01), timeout=timeout)
    state.add_fault("list", "hang", count=attempts)

    started = time.monotonic()
    error = await failure(patient.find_by_display_name("ci-bot"))
    elapsed = time.monotonic() - started

    assert error.transient is True and error.status is None
    assert f"{attempts} attempts" in error.reason and "Timeout" in error.reason
    assert len(state.calls) == attempts
    assert elapsed < timeout * attempts + 0.5


@pytest.mark.parametrize("after", [False, True])
async def test_reset_on_create_is_not_resent(
    admin: AtlassianAdmin, state: AtlassianState, after: bool
) -> None:
    state.add_fault("create", "reset", after=after)

    error = await failure(admin.create_service_account("ci-bot", ""))

    assert error.transient is True
    assert "no answer" in error.reason
    assert len(state.calls) == 1
    # At most the one account the lost call made, never a second one.
    assert len(state.live_accounts()) == (1 if after else 0)


async def test_reset_on_list_is_retried(admin: AtlassianAdmin, state: AtlassianState) -> None:
    state.seed_account("ci-bot")
    state.add_fault("list", "reset")

    assert len(await admin.find_by_display_name("ci-bot")) == 1
    assert [c["status"] for c in state.calls] == [None, 200]


# -- 8. tokens --------------------------------------------------------------------------------


async def test_mint_list_and_revoke_a_token(admin: AtlassianAdmin, state: AtlassianState) -> None:
    account = await admin.create_service_account("ci-bot", "")

    minted = await admin.mint_token(account.atlassian_id, "ci-2024", SCOPES, in_days(30))

    value = minted.value.get_secret_value()
    assert isinstance(minted.value, SecretStr)
    assert value in state.minted_values()
    assert value not in repr(minted) and value not in str(minted)
    assert minted.label == "ci-2024"
    assert datetime.fromisoformat(minted.expiry) > datetime.now(UTC)
    [mint_call] = calls(state, "POST", "/manage/api-tokens")
    assert mint_call["status"] == 201
    assert "expiresAt" not in mint_call["json"]
    assert mint_call["json"]["expiry"].endswith("Z")  # RFC 3339, UTC

    listed = await admin.tokens(account.atlassian_id)
    assert [(t.id, t.label) for t in listed] == [(minted.id, "ci-2024")]

    await admin.revoke_token(account.atlassian_id, minted.id)
    assert await admin.tokens(account.atlassian_id) == []
    assert calls(state, "DELETE", f"/api-tokens/{minted.id}")[0]["status"] == 204


async def test_mint_with_an_offset_expiry_is_accepted(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "")
    local = in_days(10).astimezone(timezone(timedelta(hours=2)))

    minted = await admin.mint_token(account.atlassian_id, "ci", SCOPES, local)

    [call] = calls(state, "POST", "/manage/api-tokens")
    assert call["json"]["expiry"].endswith("+02:00") and call["status"] == 201
    assert minted.value.get_secret_value() in state.minted_values()


async def test_revoking_an_unknown_token_is_quiet(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "")

    await admin.revoke_token(account.atlassian_id, "no-such-token")

    [call] = calls(state, "DELETE", "/api-tokens/no-such-token")
    assert call["status"] == 404


async def test_mint_without_scopes_is_refused_with_the_reason(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "")

    error = await failure(admin.mint_token(account.atlassian_id, "ci", [], in_days(30)))

    assert error.status == 400 and "MISSING_SCOPES" in error.reason
    assert state.minted_values() == []


# -- 9. sites ---------------------------------------------------------------------------------


async def test_find_site_ids(admin: AtlassianAdmin, state: AtlassianState) -> None:
    assert await admin.find_site_ids() == [CLOUD]

    state.sites.append(
        {
            "cloud_id": "cloud-other-2",
            "product": "confluence",
            "host_url": "https://o.atlassian.net",
        }
    )
    assert await admin.find_site_ids() == ["cloud-other-2", CLOUD]
    assert len(calls(state, "POST", "/workspaces")) == 2


# -- 10. the key stays secret -----------------------------------------------------------------


async def test_errors_and_logs_never_hold_the_api_key(
    make_admin: MakeAdmin, state: AtlassianState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = make_admin(retry=RetryPolicy(attempts=2, base_delay=0.01), timeout=0.3)
    assert state.scoped_key is not None
    scoped = make_admin(key=state.scoped_key)
    wrong = make_admin(key="atl-wrong-key")
    state.add_fault("list", "500", count=2)
    state.add_fault("workspaces", "html403")
    state.add_fault("create", "reset")
    errors = [
        await failure(admin.find_by_display_name("x")),
        await failure(admin.find_site_ids()),
        await failure(admin.create_service_account("x", "")),
        await failure(scoped.create_service_account("x", "")),
        await failure(wrong.find_site_ids()),
    ]
    state.add_fault("list", "hang", count=2)
    errors.append(await failure(admin.find_by_display_name("x")))

    secrets = [state.api_key, state.scoped_key, "atl-wrong-key"]
    for error in errors:
        text = f"{error} {error.reason} {error!r} {error.__cause__!r} {error.__context__!r}"
        assert not any(secret in text for secret in secrets), text
    assert not any(secret in caplog.text for secret in secrets)


async def test_delete_uses_the_documented_route(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("old-bot", "")
    route = await admin.delete_service_account(account.id, account.atlassian_id, "bye")
    assert route == "api-access"
    assert state.accounts[account.id].status == "deleted"
    assert calls(state, "POST", "/manage/lifecycle/delete") == []


async def test_delete_falls_back_to_the_lifecycle_route_when_refused(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("old-bot", "")
    state.add_fault("delete", "html403")  # the documented route refused (e.g. an SSO wall)
    route = await admin.delete_service_account(account.id, account.atlassian_id, "bye")
    assert route == "lifecycle"
    assert state.accounts[account.id].status == "deleted"
    [lifecycle] = calls(state, "POST", "/manage/lifecycle/delete")
    assert lifecycle["json"] == {"message": "bye"}
