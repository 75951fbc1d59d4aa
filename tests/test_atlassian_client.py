"""The real Atlassian client against the real stand-in, served by uvicorn on a local port.

Each test checks what an operator would look at: the outcome, how many calls reached the
stand-in (`state.calls`), and the text of the error a person would read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from sandbox.atlassian import AtlassianState, create_atlassian_app
from sandbox.runner import free_port
from workflows.providers.atlassian import AtlassianAdmin, AtlassianError, MintRefused
from workflows.retries import SHIPPED, FailurePolicy, RetryRule

FAST = FailurePolicy(
    atlassian_request=RetryRule(attempts=3, backoff=0.01, cap=1.5, jitter=True),
    grant_access=RetryRule(attempts=5, backoff=0.05),
)
TIMEOUT = 1.0
CLOUD = "cloud-sandbox-1"
SCOPES = ["read:jira-work"]

MakeAdmin = Callable[..., AtlassianAdmin]


def quick(attempts: int) -> FailurePolicy:
    """The shipped policy, with `attempts` tries per request from 10 ms apart."""
    request = replace(SHIPPED.atlassian_request, attempts=attempts, backoff=0.01)
    return replace(SHIPPED, atlassian_request=request)


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
        *, key: str | None = None, retries: FailurePolicy = FAST, timeout: float = TIMEOUT
    ) -> AtlassianAdmin:
        admin = AtlassianAdmin(
            base_url,
            state.org_id,
            SecretStr(key or state.api_key),
            retries=retries,
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


@pytest.mark.parametrize("access_off", ["", "404"], ids=["documented", "console"])
@pytest.mark.parametrize("off_host_links", [False, True])
async def test_find_by_display_name_follows_pages_on_the_base_host(
    admin: AtlassianAdmin, state: AtlassianState, off_host_links: bool, access_off: str
) -> None:
    for n in range(85):
        state.seed_account(f"drift-{n:02d}")
    if off_host_links:
        # links.next is absolute and names the real host; the client must stay on its base.
        state.next_link_base = "https://api.atlassian.com"
    state.switch_off("access", access_off)

    found = await admin.find_by_display_name("drift-83")  # 84th of 85: page 2

    assert [a.display_name for a in found] == ["drift-83"]
    pages = [c for c in calls(state, "GET", "/service-accounts") if c["status"] == 200]
    # Every call arrived at the stand-in (with the documented list off, its refusal first).
    assert len(pages) == 2 and len(state.calls) == 2 + bool(access_off)
    route_set = "/account-management/" if access_off else "/api-access/"
    assert all(route_set in p["path"] for p in pages)
    if access_off:  # the console list takes at most 80 a page, and is told so
        assert "limit=80" in pages[0]["query"]
    assert "cursor=" not in pages[0]["query"] and "cursor=" in pages[1]["query"]


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
    assert elapsed < FAST.atlassian_request.cap + 0.5


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
    assert len(state.calls) == FAST.atlassian_request.attempts


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


async def test_scoped_key_creates_on_the_documented_route_and_the_grant_names_the_cause(
    make_admin: MakeAdmin, state: AtlassianState
) -> None:
    assert state.scoped_key is not None
    scoped = make_admin(key=state.scoped_key)

    account = await scoped.create_service_account("ci-bot", "")
    error = await failure(scoped.grant_product(account.atlassian_id, "jira", CLOUD))

    [create] = calls(state, "POST", "/service-accounts")
    assert "/api-access/" in create["path"] and create["status"] == 201
    assert error.transient is False and error.status == 403
    # The documented route took the key, the console one did not: said as a scoped key.
    assert "HTTP 403" in error.reason and "most likely scoped" in error.reason
    assert "ATLASSIAN_API_KEY" in error.reason
    assert len(calls(state, "POST", "/invite")) == 1
    assert state.effective_grants(account.atlassian_id) == []


async def test_scoped_key_on_create_with_the_documented_route_gone_is_a_403_naming_the_cause(
    make_admin: MakeAdmin, state: AtlassianState
) -> None:
    assert state.scoped_key is not None
    scoped = make_admin(key=state.scoped_key)
    state.switch_off("access", "404")

    error = await failure(scoped.create_service_account("ci-bot", ""))

    assert error.transient is False and error.status == 403
    assert "HTTP 403" in error.reason and "scoped" in error.reason
    assert [c["status"] for c in state.calls] == [404, 403] and state.live_accounts() == []


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
    assert 2 <= len(invites) <= FAST.grant_access.attempts
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
    assert f"after {FAST.grant_access.attempts} tries over 0.8 s" in error.reason
    assert len(calls(state, "POST", "/service-accounts/invite")) == FAST.grant_access.attempts
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
    patient = make_admin(retries=quick(attempts), timeout=timeout)
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
    admin = make_admin(retries=quick(2), timeout=0.3)
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
        await failure(scoped.tokens("712020:nobody")),
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
    state.switch_off("access", "405")  # the documented route is not there (any more)
    route = await admin.delete_service_account(account.id, account.atlassian_id, "bye")
    assert route == "lifecycle"
    assert state.accounts[account.id].status == "deleted"
    [lifecycle] = calls(state, "POST", "/manage/lifecycle/delete")
    assert lifecycle["json"] == {"message": "bye"}


async def test_an_sso_page_on_the_documented_delete_is_no_reason_to_switch_routes(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    # An HTML 403 is a wall in front of Atlassian, which would stand in front of the console
    # route too: it is reported, not taken for "this route is not here".
    account = await admin.create_service_account("old-bot", "")
    state.add_fault("delete", "html403")

    error = await failure(admin.delete_service_account(account.id, account.atlassian_id, "bye"))

    assert error.status == 403 and "SSO" in error.reason
    assert calls(state, "POST", "/manage/lifecycle/delete") == []
    assert state.accounts[account.id].status == "active"


# -- 11. documented routes first, the console as the fallback ---------------------------------

ACCESS_PATH = "/admin/api-access/"
CONSOLE_PATHS = ("/admin/account-management/", "/users/")


def route_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The client's lines saying which route set an operation uses."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "workflows.providers.atlassian" and "route (" in r.getMessage()
    ]


async def exercise(admin: AtlassianAdmin) -> tuple[str, list[Any]]:
    """Each operation with a documented route, once: create, list, tokens, revoke-all, delete."""
    account = await admin.create_service_account("ci-bot", "for CI")
    listed_accounts = [a.id async for a in admin.service_accounts() if a.status == "active"]
    assert listed_accounts == [account.id]
    await admin.mint_token(account.atlassian_id, "ci", SCOPES, in_days(30), account_id=account.id)
    listed = await admin.tokens(account.atlassian_id, account.id)
    revoked = await admin.revoke_all_tokens(account.atlassian_id, account.id)
    assert [t.label for t in listed] == [t.label for t in revoked] == ["ci"]
    route = await admin.delete_service_account(account.id, account.atlassian_id, "bye")
    return route, listed


async def test_documented_routes_are_used_first_and_said_once(
    admin: AtlassianAdmin, state: AtlassianState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workflows.providers.atlassian")

    route, listed = await exercise(admin)
    await exercise(admin)  # a second round: nothing probed again, nothing logged again

    assert route == "api-access"
    # The documented token list's items carry `expiresAt`: read as the expiry.
    assert listed[0].expiry and datetime.fromisoformat(listed[0].expiry) > datetime.now(UTC)
    used = {(c["method"], c["path"].split("/orgs/org-sandbox")[-1]) for c in state.calls}
    account_ids = {a.id for a in state.accounts.values()}
    documented = {
        ("POST", "/service-accounts"),
        ("GET", "/service-accounts"),
        *(("GET", f"/service-accounts/{i}/api-tokens") for i in account_ids),
        *(("DELETE", f"/service-accounts/{i}/api-tokens") for i in account_ids),
        *(("DELETE", f"/service-accounts/{i}") for i in account_ids),
    }
    assert documented <= used
    # The console was called for the mint alone (it has no documented route).
    console = [c for c in state.calls if c["path"].startswith(CONSOLE_PATHS)]
    assert {c["method"] for c in console} == {"POST"}
    assert all(c["path"].endswith("/manage/api-tokens") for c in console)
    assert all(c["status"] in (200, 201, 204) for c in state.calls)
    lines = route_lines(caplog)
    assert len(lines) == 5 and all("using the documented API Access route" in x for x in lines)
    assert {x.split(":")[0] for x in lines} == {
        f"Atlassian {op}" for op in ("create", "list", "tokens", "revoke_all", "delete")
    }
    assert all(state.accounts[i].status == "deleted" for i in account_ids)


@pytest.mark.parametrize("absent", ["404", "405"])
async def test_documented_routes_refused_fall_back_to_the_console_once(
    admin: AtlassianAdmin,
    state: AtlassianState,
    caplog: pytest.LogCaptureFixture,
    absent: str,
) -> None:
    caplog.set_level(logging.INFO, logger="workflows.providers.atlassian")
    state.switch_off("access", absent)

    first, _ = await exercise(admin)
    refused_first = [c for c in state.calls if c["path"].startswith(ACCESS_PATH)]
    second, _ = await exercise(admin)

    assert first == second == "lifecycle"
    # Each operation asked the documented route once, refused, and never again.
    assert len(refused_first) == 5 and {c["status"] for c in refused_first} == {int(absent)}
    assert [c for c in state.calls if c["path"].startswith(ACCESS_PATH)] == refused_first
    assert len(calls(state, "POST", "/manage/lifecycle/delete")) == 2
    assert len(calls(state, "DELETE", "/manage/api-tokens/" + state.tokens[-1].id)) == 1
    assert all(t.revoked for t in state.tokens)
    lines = route_lines(caplog)
    assert len(lines) == 5
    assert all(f"refused (Atlassian answered HTTP {absent}" in x for x in lines)
    assert all("using the console route" in x for x in lines)


async def test_console_routes_gone_the_documented_ones_still_serve(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = state.create_account("ci-bot")  # made earlier, e.g. through the console
    state.switch_off("console", "404")

    assert [a.id async for a in admin.service_accounts()] == [account.id]
    assert await admin.tokens(account.atlassian_id, account.id) == []
    assert await admin.revoke_all_tokens(account.atlassian_id, account.id) == []
    made = await admin.create_service_account("other-bot", "")
    assert await admin.delete_service_account(made.id, made.atlassian_id, "bye") == "api-access"

    assert all(c["path"].startswith(ACCESS_PATH) for c in state.calls)
    assert all(c["status"] in (200, 201, 204) for c in state.calls)


@pytest.mark.parametrize("fault", ["500", "reset"])
async def test_a_lost_documented_create_is_not_sent_again_on_the_console(
    admin: AtlassianAdmin, state: AtlassianState, fault: str
) -> None:
    # The create may have happened: no second create on either route; the caller adopts.
    state.add_fault("create", fault, after=True)

    error = await failure(admin.create_service_account("ci-bot", ""))

    assert error.transient is True
    [create] = calls(state, "POST", "/service-accounts")
    assert create["path"].startswith(ACCESS_PATH)
    assert [a.display_name for a in state.live_accounts()] == ["ci-bot"]
    assert await admin.route_sets() == {
        **dict.fromkeys(("list", "create", "delete", "tokens", "revoke_all"), "api-access"),
        **dict.fromkeys(("grant", "mint", "revoke_token"), "console"),
    }


async def test_a_refused_documented_create_makes_one_account_on_the_console(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.switch_off("access", "405")

    account = await admin.create_service_account("ci-bot", "")

    assert [a.id for a in state.live_accounts()] == [account.id]
    assert [c["status"] for c in calls(state, "POST", "/service-accounts")] == [405, 201]


async def test_a_missing_account_is_not_taken_for_a_missing_route(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "")
    [_ async for _ in admin.service_accounts()]  # the documented list answered
    state.delete_account(state.accounts[account.id])

    error = await failure(admin.tokens(account.atlassian_id, account.id))

    # The documented 404 named the account; the console said the same: a 404, no switch.
    assert error.status == 404
    live = state.create_account("live-bot")
    await admin.tokens(live.atlassian_id, live.id)
    token_lists = [c for c in state.calls if c["path"].endswith("/api-tokens")]
    assert [c["path"].startswith(ACCESS_PATH) for c in token_lists] == [True, False, True]
    assert (await admin.route_sets())["tokens"] == "api-access"


@pytest.mark.parametrize("access_off", ["", "404"])
async def test_route_sets_reads_one_page_and_probes_nothing_twice(
    admin: AtlassianAdmin, state: AtlassianState, access_off: str
) -> None:
    state.create_account("ci-bot")
    state.switch_off("access", access_off)

    sets = await admin.route_sets()
    calls_after_first = len(state.calls)
    assert await admin.route_sets() == sets

    expected = "console" if access_off else "api-access"
    assert {sets[op] for op in ("list", "create", "delete", "tokens", "revoke_all")} == {expected}
    assert sets["mint"] == sets["grant"] == sets["revoke_token"] == "console"
    assert len(state.calls) == calls_after_first  # the second look sent nothing
    assert all(c["method"] == "GET" for c in state.calls)  # read-only
    assert state.tokens == [] and len(state.live_accounts()) == 1


async def test_route_sets_fails_when_no_list_route_answers(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    state.switch_off("access", "404")
    state.switch_off("console", "404")

    error = await failure(admin.route_sets())

    assert error.status == 404 and [c["status"] for c in state.calls] == [404, 404]


@pytest.mark.parametrize("refusal", ["403", "404", "405"])
async def test_a_refused_mint_is_told_apart_as_a_manual_step(
    admin: AtlassianAdmin, state: AtlassianState, refusal: str
) -> None:
    account = await admin.create_service_account("ci-bot", "")
    state.switch_off("mint", refusal)

    error = await failure(
        admin.mint_token(account.atlassian_id, "ci", SCOPES, in_days(30), account_id=account.id)
    )

    assert isinstance(error, MintRefused) and error.transient is False
    assert error.status == int(refusal) and f"HTTP {refusal}" in error.reason
    assert "no documented route mints" in error.reason
    assert state.tokens == [] and len(calls(state, "POST", "/manage/api-tokens")) == 1


async def test_a_refused_mint_on_the_console_with_every_console_route_gone_is_manual(
    admin: AtlassianAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "")
    state.switch_off("console", "404")

    error = await failure(
        admin.mint_token(account.atlassian_id, "ci", SCOPES, in_days(30), account_id=account.id)
    )

    # The /users routes are gone too; the documented collection shows the account is there.
    assert isinstance(error, MintRefused) and error.status == 404


async def test_mint_failures_that_are_not_a_refused_route_stay_ordinary(
    admin: AtlassianAdmin, make_admin: MakeAdmin, state: AtlassianState
) -> None:
    account = await admin.create_service_account("ci-bot", "")
    assert state.scoped_key is not None
    scoped = make_admin(key=state.scoped_key)
    mint = (account.atlassian_id, "ci", SCOPES, in_days(30))

    as_scoped = await failure(scoped.mint_token(*mint, account_id=account.id))
    state.add_fault("mint", "html403")
    behind_sso = await failure(admin.mint_token(*mint, account_id=account.id))
    state.delete_account(state.accounts[account.id])
    gone = await failure(admin.mint_token(*mint, account_id=account.id))

    for error in (as_scoped, behind_sso, gone):
        assert not isinstance(error, MintRefused), error.reason
    assert as_scoped.status == 403 and "scoped" in as_scoped.reason
    assert behind_sso.status == 403 and "SSO" in behind_sso.reason
    assert gone.status == 404 and "User not found" in gone.reason
