"""Tests of the Atlassian stand-in: it must behave as the reference file says the service does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from sandbox.atlassian import AtlassianState, create_atlassian_app

BASE = "http://atl.test"
CONSOLE = "/admin/account-management/v1/orgs/org-sandbox"
ACCESS = "/admin/api-access/v1/orgs/org-sandbox"
AUTH = {"Authorization": "Bearer atl-sandbox-key"}
JIRA_SW = {
    "resource": "ari:cloud:jira-software::site/cloud-sandbox-1",
    "role": "ari:cloud:jira-software::role/product/member",
}
CONFLUENCE = {
    "resource": "ari:cloud:confluence::site/cloud-sandbox-1",
    "role": "ari:cloud:confluence::role/product/member",
}
JIRA_PLAIN = {
    "resource": "ari:cloud:jira::site/cloud-sandbox-1",
    "role": "ari:cloud:jira::role/product/member",
}


class Clock:
    """A clock the test moves by hand, so delays need no sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> AtlassianState:
    return AtlassianState(clock=clock, scoped_key="atl-scoped-key")


@pytest.fixture
async def client(state: AtlassianState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_atlassian_app(state))
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=AUTH) as c:
        yield c


async def create(client: httpx.AsyncClient, name: str = "ci-bot") -> dict[str, Any]:
    """Create a service account through the console route and return its item."""
    response = await client.post(f"{CONSOLE}/service-accounts", json={"displayName": name})
    assert response.status_code == 201, response.text
    return response.json()


def expiry(days: float) -> str:
    """An RFC 3339 expiry `days` ahead of now."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def mint(client: httpx.AsyncClient, atlassian_id: str, **body: Any) -> httpx.Response:
    """Mint a token; keyword arguments override a valid body."""
    full = {"label": "ci", "scopes": ["read:jira-work"], "expiry": expiry(30), **body}
    return await client.post(f"/users/{atlassian_id}/manage/api-tokens", json=full)


async def test_create_and_list_pages_with_absolute_next(client: httpx.AsyncClient) -> None:
    first = await create(client, "Build Bot")
    await create(client, "Build Bot")  # not idempotent: a second account with the same name
    for i in range(83):
        await create(client, f"acct {i}")
    assert first["email"].startswith("build-bot-")
    assert first["email"].endswith("@serviceaccount.atlassian.com")
    assert first["atlassianId"].startswith("712020:") and first["id"] != first["atlassianId"]

    page = (await client.get(f"{CONSOLE}/service-accounts")).json()
    assert (len(page["items"]), page["total"]) == (80, 85)
    assert page["links"]["next"].startswith(f"{BASE}{CONSOLE}/service-accounts?")
    rest = (await client.get(page["links"]["next"])).json()
    assert len(rest["items"]) == 5 and "next" not in rest["links"]
    assert sum(i["displayName"] == "Build Bot" for i in page["items"]) == 2

    too_many = await client.get(f"{CONSOLE}/service-accounts", params={"limit": 81})
    assert too_many.status_code == 400 and "message" in too_many.json()


async def test_next_link_can_point_off_host(client: httpx.AsyncClient, state: AtlassianState):
    state.next_link_base = "https://api.atlassian.com"
    await create(client, "a")
    await create(client, "b")
    page = (await client.get(f"{CONSOLE}/service-accounts", params={"limit": 1})).json()
    assert page["links"]["next"].startswith(f"https://api.atlassian.com{CONSOLE}/")


async def test_create_needs_display_name_and_respects_quota(
    client: httpx.AsyncClient, state: AtlassianState
) -> None:
    missing = await client.post(f"{CONSOLE}/service-accounts", json={"description": "x"})
    assert missing.status_code == 400
    state.quota = 1
    await create(client)
    full = await client.post(f"{CONSOLE}/service-accounts", json={"displayName": "two"})
    assert full.status_code == 409
    assert full.json() == {"message": "Service account limit reached for this organization"}


async def test_invite_404_until_propagated_then_202(
    client: httpx.AsyncClient, state: AtlassianState, clock: Clock
) -> None:
    state.propagation_seconds = 5
    account = await create(client)
    body = {"userIds": [account["atlassianId"]], "permissionRules": [JIRA_SW]}
    early = await client.post(f"{CONSOLE}/service-accounts/invite", json=body)
    assert early.status_code == 404 and "not found in the directory" in early.json()["message"]
    clock.now += 5
    assert (await client.post(f"{CONSOLE}/service-accounts/invite", json=body)).status_code == 202
    by_admin_id = {**body, "userIds": [account["id"]]}  # the wrong id of the two
    assert (
        await client.post(f"{CONSOLE}/service-accounts/invite", json=by_admin_id)
    ).status_code == 404


async def test_plain_jira_grants_nothing_jira_software_applies_later(
    client: httpx.AsyncClient, state: AtlassianState, clock: Clock
) -> None:
    state.grant_apply_seconds = 10
    uid = (await create(client))["atlassianId"]

    async def invite(*rules: dict[str, str]) -> int:
        body = {"userIds": [uid], "permissionRules": list(rules)}
        return (await client.post(f"{CONSOLE}/service-accounts/invite", json=body)).status_code

    assert await invite(JIRA_PLAIN) == 202
    assert await invite(JIRA_SW) == 202
    assert await invite(JIRA_SW) == 202  # re-sending is harmless
    assert state.effective_grants(uid) == []
    clock.now += 10
    assert [g["resource"] for g in state.effective_grants(uid)] == [JIRA_SW["resource"]]
    assert await invite(CONFLUENCE) == 202
    clock.now += 10
    assert len(state.effective_grants(uid)) == 2
    unknown_site = {**JIRA_SW, "resource": "ari:cloud:jira-software::site/nope"}
    assert await invite(unknown_site) == 400
    assert await invite({**JIRA_SW, "role": "ari:cloud:confluence::role/product/member"}) == 400


async def test_mint_returns_tokens_of_varying_length(
    client: httpx.AsyncClient, state: AtlassianState
) -> None:
    uid = (await create(client))["atlassianId"]
    bodies = [(await mint(client, uid, label=f"t{i}")).json() for i in range(8)]
    assert set(bodies[0]) == {"id", "label", "token", "expiry"}
    assert len({len(b["token"]) for b in bodies}) > 1
    assert state.minted_values() == [b["token"] for b in bodies]


@pytest.mark.parametrize(
    ("changes", "code"),  # a None value leaves the field out
    [
        ({"expiry": None, "expiresAt": expiry(30)}, "INVALID_EXPIRY"),
        ({"expiry": None}, "INVALID_EXPIRY"),
        ({"expiry": expiry(400)}, "INVALID_EXPIRY"),
        ({"expiry": expiry(-1)}, "INVALID_EXPIRY"),
        ({"expiry": "next tuesday"}, "INVALID_EXPIRY"),
        ({"scopes": []}, "MISSING_SCOPES"),
        ({"scopes": None}, "MISSING_SCOPES"),
        ({"scopes": ["read:jira-work", "admin:org"]}, "INVALID_SCOPES"),
    ],
)
async def test_mint_rejections(client: httpx.AsyncClient, changes: dict[str, Any], code: str):
    uid = (await create(client))["atlassianId"]
    body = {"label": "x", "scopes": ["read:issue:jira"], "expiry": expiry(30), **changes}
    body = {k: v for k, v in body.items() if v is not None}
    response = await client.post(f"/users/{uid}/manage/api-tokens", json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == code


async def test_tokens_list_revoke_and_label_uniqueness(client: httpx.AsyncClient) -> None:
    uid = (await create(client))["atlassianId"]
    token = (await mint(client, uid, label="ci")).json()
    duplicate = await mint(client, uid, label="ci")
    assert duplicate.status_code == 409 and duplicate.json()["errors"][0]["code"]

    listed = (await client.get(f"/users/{uid}/manage/api-tokens")).json()
    assert [set(t) for t in listed] == [{"id", "label", "createdAt", "expiry", "lastAccess"}]
    url = f"/users/{uid}/manage/api-tokens/{token['id']}"
    assert (await client.delete(url)).status_code == 204
    assert (await client.delete(url)).status_code == 404
    assert (await client.get(f"/users/{uid}/manage/api-tokens")).json() == []
    assert (await mint(client, uid, label="ci")).status_code == 201  # label free again


async def test_lifecycle_delete(client: httpx.AsyncClient, state: AtlassianState) -> None:
    uid = (await create(client))["atlassianId"]
    await mint(client, uid)
    deleted = await client.post(f"/users/{uid}/manage/lifecycle/delete", json={"message": "bye"})
    assert deleted.status_code == 204
    assert all(t.revoked for t in state.tokens) and state.live_accounts() == []
    items = (await client.get(f"{CONSOLE}/service-accounts")).json()["items"]
    assert [i["status"] for i in items] == ["deleted"]  # kept through the grace period
    assert (await mint(client, uid, label="again")).status_code == 404


async def test_workspaces(client: httpx.AsyncClient) -> None:
    body = (await client.post("/admin/v2/orgs/org-sandbox/workspaces", json={})).json()
    ids = {(w["id"], w["attributes"]["typeKey"]) for w in body["data"]}
    assert ids == {
        ("ari:cloud:jira::site/cloud-sandbox-1", "jira-software"),
        ("ari:cloud:confluence::site/cloud-sandbox-1", "confluence"),
    }
    assert all(w["attributes"]["hostUrl"].startswith("https://") for w in body["data"])


async def test_auth_and_scoped_key(client: httpx.AsyncClient) -> None:
    url = f"{CONSOLE}/service-accounts"
    assert (await client.get(url, headers={"Authorization": ""})).status_code == 401
    wrong = await client.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Unauthorized"
    scoped = {"Authorization": "Bearer atl-scoped-key"}
    assert (await client.get(url, headers=scoped)).status_code == 403
    uid = (await create(client))["atlassianId"]
    assert (await client.get(f"/users/{uid}/manage/api-tokens", headers=scoped)).status_code == 403
    assert (await client.get(f"{ACCESS}/service-accounts", headers=scoped)).status_code == 200
    other_org = "/admin/account-management/v1/orgs/other/service-accounts"
    assert (await client.get(other_org)).status_code == 404


async def test_api_access_routes_use_admin_id(client: httpx.AsyncClient) -> None:
    account = await create(client)
    await mint(client, account["atlassianId"])
    tokens = (await client.get(f"{ACCESS}/service-accounts/{account['id']}/api-tokens")).json()
    assert tokens["total"] == 1
    org_tokens = (await client.get(f"{ACCESS}/service-accounts/api-tokens")).json()
    assert org_tokens["items"][0]["serviceAccountId"] == account["id"]
    count_url = f"{ACCESS}/service-accounts/count"
    counts = await client.post(count_url, json={"serviceAccountIds": [account["id"]]})
    assert counts.json() == {"counts": {account["id"]: 1}}
    too_many = await client.post(count_url, json={"serviceAccountIds": ["x"] * 101})
    assert too_many.status_code == 400
    assert (
        await client.delete(f"{ACCESS}/service-accounts/{account['id']}/api-tokens")
    ).status_code == 204
    assert (
        await client.delete(f"{ACCESS}/service-accounts/{account['atlassianId']}")
    ).status_code == 404
    assert (await client.delete(f"{ACCESS}/service-accounts/{account['id']}")).status_code == 204


@pytest.mark.parametrize("reset", ["iso", "epoch"])
async def test_fault_429_has_reset_but_no_retry_after(client: httpx.AsyncClient, reset: str):
    await client.post("/_sandbox/faults", json={"route": "list", "kind": "429", "reset": reset})
    limited = await client.get(f"{CONSOLE}/service-accounts")
    assert limited.status_code == 429 and "retry-after" not in limited.headers
    assert limited.headers["x-ratelimit-remaining"] == "0"
    value = limited.headers["x-ratelimit-reset"]
    assert value.isdigit() if reset == "epoch" else value.endswith("Z")
    assert (await client.get(f"{CONSOLE}/service-accounts")).status_code == 200  # count was 1


async def test_faults_500_html403_409(client: httpx.AsyncClient, state: AtlassianState) -> None:
    state.add_fault("any", "500")
    state.add_fault("create", "html403")
    state.add_fault("create", "409")
    error = await client.get(f"{CONSOLE}/service-accounts")
    assert error.status_code == 500 and {"timestamp", "requestId"} <= set(error.json())
    sso = await client.post(f"{CONSOLE}/service-accounts", json={"displayName": "x"})
    assert sso.status_code == 403 and sso.headers["content-type"].startswith("text/html")
    conflict = await client.post(f"{CONSOLE}/service-accounts", json={"displayName": "x"})
    assert conflict.status_code == 409 and state.accounts == {}


async def test_fault_after_loses_answer_but_keeps_effect(
    client: httpx.AsyncClient, state: AtlassianState
) -> None:
    uid = (await create(client))["atlassianId"]
    state.add_fault("mint", "500", after=True)
    assert (await mint(client, uid)).status_code == 500
    assert len(state.minted_values()) == 1  # a live token nobody saw


async def test_control_routes(client: httpx.AsyncClient, state: AtlassianState) -> None:
    seeded = (await client.post("/_sandbox/seed", json={"displayName": "Legacy"})).json()
    assert seeded["createdById"] != (await create(client))["createdById"]
    await mint(client, seeded["atlassianId"])
    config = await client.post("/_sandbox/config", json={"quota": 5, "answer_delay_seconds": 0})
    assert config.json()["quota"] == 5 and state.quota == 5
    summary = (await client.get("/_sandbox/state")).json()
    assert "value" not in summary["tokens"][0] and summary["tokens"][0]["label"] == "ci"
    assert (await client.get("/_sandbox/minted")).json() == state.minted_values()
    calls = (await client.get("/_sandbox/calls")).json()
    assert [c["status"] for c in calls] == [201, 201]  # control routes are not recorded
    assert calls[1]["json"]["label"] == "ci"


async def test_answer_delay(client: httpx.AsyncClient, state: AtlassianState) -> None:
    await client.post("/_sandbox/config", json={"answer_delay_seconds": 0.2})
    started = time.monotonic()
    await client.get(f"{CONSOLE}/service-accounts")
    assert time.monotonic() - started >= 0.2


@asynccontextmanager
async def served(state: AtlassianState) -> AsyncIterator[str]:
    """Run the app on a real uvicorn server on a free port; yield its base URL."""
    config = uvicorn.Config(create_atlassian_app(state), port=0, log_level="critical")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_reset_drops_the_connection(state: AtlassianState) -> None:
    state.add_fault("create", "reset")
    async with served(state) as base, httpx.AsyncClient(base_url=base, headers=AUTH) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post(f"{CONSOLE}/service-accounts", json={"displayName": "x"})
        assert (await c.get(f"{CONSOLE}/service-accounts")).status_code == 200
    assert state.calls[0]["status"] is None


async def test_reset_in_process_raises_transport_error(
    client: httpx.AsyncClient, state: AtlassianState
) -> None:
    state.add_fault("list", "reset")
    with pytest.raises(httpx.TransportError):
        await client.get(f"{CONSOLE}/service-accounts")


async def test_hang_makes_clients_time_out(state: AtlassianState) -> None:
    state.add_fault("mint", "hang")
    uid = state.create_account("x").atlassian_id
    async with served(state) as base, httpx.AsyncClient(base_url=base, headers=AUTH) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post(
                f"/users/{uid}/manage/api-tokens",
                json={"label": "x", "scopes": ["read:jira-work"], "expiry": expiry(30)},
                timeout=0.5,  # the server would answer after 60 s
            )


# -- route sets switched off (issue 11: documented routes first, console fallback) -----------


async def test_documented_token_list_has_the_api_token_shape(client: httpx.AsyncClient) -> None:
    account = await create(client)
    await mint(client, account["atlassianId"], label="ci")
    await mint(client, account["atlassianId"], label="other")

    url = f"{ACCESS}/service-accounts/{account['id']}/api-tokens"
    page = (await client.get(url)).json()
    labelled = (await client.get(url, params={"tokenLabel": "ci"})).json()

    assert set(page) == {"links", "items", "total"} and page["total"] == 2
    assert [set(t) for t in page["items"]] == [
        {"id", "label", "createdAt", "expiresAt", "lastActiveAt"}
    ] * 2
    assert [t["label"] for t in labelled["items"]] == ["ci"]


@pytest.mark.parametrize("absent", ["404", "405"])
async def test_switched_off_documented_routes_answer_as_absent_for_any_key(
    client: httpx.AsyncClient, state: AtlassianState, absent: str
) -> None:
    account = await create(client)
    state.switch_off("access", absent)
    scoped = {"Authorization": "Bearer atl-scoped-key"}

    answers = [
        await client.get(f"{ACCESS}/service-accounts"),
        await client.get(f"{ACCESS}/service-accounts", headers=scoped),
        await client.post(f"{ACCESS}/service-accounts", json={"displayName": "x"}),
        await client.delete(f"{ACCESS}/service-accounts/{account['id']}"),
    ]

    for answer in answers:
        assert answer.status_code == int(absent)
        assert answer.json() == {"code": int(absent), "message": answer.reason_phrase}
    assert len(state.live_accounts()) == 1  # nothing was made or deleted
    assert (await client.get(f"{CONSOLE}/service-accounts")).status_code == 200
    # Switched on again, served again; a wrong key is still a 401 while off.
    state.switch_off("access", "")
    assert (await client.get(f"{ACCESS}/service-accounts")).status_code == 200
    state.switch_off("console", absent)
    wrong = await client.get(f"{CONSOLE}/service-accounts", headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401
    assert (await client.get(f"{CONSOLE}/service-accounts")).status_code == int(absent)
    uid = account["atlassianId"]
    assert (await client.get(f"/users/{uid}/manage/api-tokens")).status_code == int(absent)
    assert (await client.get(f"{ACCESS}/service-accounts")).status_code == 200


async def test_a_missing_account_and_a_missing_route_differ_in_their_404(
    client: httpx.AsyncClient, state: AtlassianState
) -> None:
    missing = await client.get(f"{ACCESS}/service-accounts/no-such-id/api-tokens")
    state.switch_off("access", "404")
    absent = await client.get(f"{ACCESS}/service-accounts/no-such-id/api-tokens")

    assert missing.status_code == absent.status_code == 404
    assert missing.json() == {"detail": "Service account not found"}
    assert absent.json() == {"code": 404, "message": "Not Found"}


@pytest.mark.parametrize("refusal", ["403", "404", "405"])
async def test_the_mint_alone_can_be_refused(
    client: httpx.AsyncClient, state: AtlassianState, refusal: str
) -> None:
    account = await create(client)
    state.switch_off("mint", refusal)

    refused = await mint(client, account["atlassianId"])

    assert refused.status_code == int(refusal) and state.tokens == []
    if refusal == "403":  # refused in the /users routes' own error style
        assert refused.json()["errors"][0]["code"] == "FORBIDDEN"
    uid = account["atlassianId"]
    assert (await client.get(f"/users/{uid}/manage/api-tokens")).status_code == 200
    configured = await client.post("/_sandbox/config", json={"mint_refused": ""})
    assert configured.json()["mint_refused"] == ""
    assert (await mint(client, uid)).status_code == 201


def test_a_switch_takes_only_the_answers_atlassian_gives(state: AtlassianState) -> None:
    with pytest.raises(ValueError):
        state.switch_off("access", "403")
    with pytest.raises(ValueError):
        state.switch_off("everything", "404")
    assert state.access_routes_off == "" and state.mint_refused == ""
