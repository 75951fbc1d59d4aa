"""Local stand-in for Atlassian's organisation admin API (service accounts, grants, tokens).

It encodes the facts of the Atlassian reference (shared/reference/atlassian-service-accounts.md
in the team's docs) so that the bot's tests exercise the real service's awkward parts: two ids
per account, absolute `links.next`, a limit of 80, propagation 404s, `jira` vs `jira-software`
grants, `expiry` vs `expiresAt`, variable-length tokens, route-specific error bodies, rate
limits without `Retry-After`.

Choices the reference leaves open (documented here, relied on by tests):
- Times in the state (`created_at`, `updated_at`, `deleted_at`, grant `effective_at`, token
  `created_at`) are epoch seconds read from `AtlassianState.clock` (`time.time` by default), so
  a test can move time forward by swapping the clock instead of sleeping.
- A deleted account stays listed with status "deleted" (the 14-day grace); it no longer counts
  toward the quota, its tokens are revoked, and token, grant and delete calls on it answer 404.
- Error bodies: `{"message"}` on console routes and workspaces, `{"errors": [...]}` on `/users/...`
  routes, `{"detail"}` on the documented api-access routes, Spring style on every 5xx, and
  `{"code": 401, "message": "Unauthorized"}` for a missing or wrong key anywhere.
- A fault queued with `"after": true` lets the request take effect and then loses the answer
  (e.g. a mint whose token exists but was never seen by the client).
- A route set can be switched off (`AtlassianState.switch_off`, or `POST /_sandbox/config`
  with `access_routes_off`, `console_routes_off`, `mint_refused`): its routes then answer as
  the gateway answers a route that is not there, `{"code": 404, "message": "Not Found"}` (or
  405 "Method Not Allowed"), whatever the key; the mint alone may also answer a plain 403 in
  the `/users` error style. A missing account on a documented route says "Service account not
  found" (`{"detail"}`), so the two 404s differ in their bodies, as Atlassian's do.
- The documented token lists show tokens in the ApiToken shape (`expiresAt`, `lastActiveAt`);
  the console list keeps its own (`expiry`, `lastAccess`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

CONSOLE = "/admin/account-management/v1/orgs/{orgId}"
ACCESS = "/admin/api-access/v1/orgs/{orgId}"
USERS = "/users/{atlassianId}/manage"
MAX_PAGE = 80
MAX_COUNT_IDS = 100
HANG_SECONDS = 60.0
EMAIL_DOMAIN = "serviceaccount.atlassian.com"
BOT_CREATOR_ID = "712020:sandbox-org-api-key"  # createdById of accounts made through the API
HUMAN_CREATOR_ID = "557058:sandbox-human-admin"  # createdById of accounts seeded as drift
QUOTA_MESSAGE = "Service account limit reached for this organization"
CLASSIC_SCOPES = frozenset(
    {
        "read:jira-work",
        "write:jira-work",
        "read:jira-user",
        "read:confluence-content.all",
        "write:confluence-content",
        "read:confluence-space.summary",
        "read:confluence-user",
    }
)
GRANULAR_SCOPE = re.compile(
    r"^(read|write|delete|manage):[a-z0-9.-]+(:[a-z0-9.-]+)?:(jira|confluence)$"
)
RESOURCE = re.compile(r"^ari:cloud:(jira-software|confluence|jira)::site/(.+)$")
FAULT_ROUTES = frozenset(
    {"create", "grant", "mint", "list", "revoke", "delete", "workspaces", "any"}
    | {"api-tokens", "directory-search", "org-users"}  # discovery's reads (see `Directory`)
)
FAULT_KINDS = frozenset({"429", "500", "reset", "hang", "html403", "409", "402", "302", "slow"})
ROUTE_SETS = {"access": ("404", "405"), "console": ("404", "405"), "mint": ("403", "404", "405")}


def _route_answer(routes: str) -> Callable[[Any], str]:
    """Validates a switch: "" serves the routes, else the status they answer."""

    def check(value: Any) -> str:
        answer = str(value or "")
        if answer and answer not in ROUTE_SETS[routes]:
            raise ValueError(f"{routes} routes answer one of {ROUTE_SETS[routes]}, or ''")
        return answer

    return check


CONFIG_KEYS: dict[str, Callable[[Any], Any]] = {
    "quota": int,
    "propagation_seconds": float,
    "grant_apply_seconds": float,
    "answer_delay_seconds": float,
    "access_routes_off": _route_answer("access"),
    "console_routes_off": _route_answer("console"),
    "mint_refused": _route_answer("mint"),
}


def _default_sites() -> list[dict[str, Any]]:
    return [
        {
            "cloud_id": "cloud-sandbox-1",
            "product": "jira-software",
            "host_url": "https://sandbox.atlassian.net",
        },
        {
            "cloud_id": "cloud-sandbox-1",
            "product": "confluence",
            "host_url": "https://sandbox.atlassian.net/wiki",
        },
    ]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Account:
    """One service account; `id` is the admin collection id, `atlassian_id` the account id."""

    id: str
    atlassian_id: str
    email: str
    display_name: str
    description: str = ""
    status: str = "active"  # "active" | "deleted"
    created_at: float = 0.0  # epoch seconds from AtlassianState.clock
    grants: list[dict[str, Any]] = field(default_factory=list)  # {"resource","role","effective_at"}
    deleted_at: float | None = None
    created_by_id: str = BOT_CREATOR_ID
    updated_at: float = 0.0

    def item(self, org_id: str) -> dict[str, Any]:
        """The account as the list and create routes show it."""
        return {
            "atlassianId": self.atlassian_id,
            "id": self.id,
            "email": self.email,
            "displayName": self.display_name,
            "picture": "https://avatar-management.services.atlassian.com/default/48",
            "container": {"type": "org", "id": org_id},
            "updatedAt": int(self.updated_at * 1000),
            "status": self.status,
            "createdById": self.created_by_id,
            "description": self.description,
        }


@dataclass
class Token:
    """One minted API token; `value` is kept so tests can hunt for leaks of it."""

    id: str
    atlassian_id: str
    label: str
    value: str
    scopes: list[str]
    expiry: str
    created_at: float
    revoked: bool = False
    # When it was last used (epoch seconds), None: never. Tests set it (see `use_token`).
    last_used_at: float | None = None

    def info(self) -> dict[str, Any]:
        """The token as list routes show it: no value, no scopes."""
        return {
            "id": self.id,
            "label": self.label,
            "createdAt": _iso(self.created_at),
            "expiry": self.expiry,
            "lastAccess": _iso(self.last_used_at) if self.last_used_at is not None else None,
        }

    def access_info(self) -> dict[str, Any]:
        """The token as the documented routes show it (the ApiToken shape): no value."""
        return {
            "id": self.id,
            "label": self.label,
            "createdAt": _iso(self.created_at),
            "expiresAt": self.expiry,
            "lastActiveAt": _iso(self.last_used_at) if self.last_used_at is not None else None,
        }


@dataclass
class Fault:
    """An injected failure for the next `count` requests of a route family."""

    route: str  # create|grant|mint|list|revoke|delete|workspaces|any
    kind: str  # 429|500|reset|hang|html403|409|402|302|slow
    count: int = 1
    reset: str = "iso"  # format of X-RateLimit-Reset on 429: "iso" or "epoch"
    after: bool = False  # True: perform the request, then lose its answer to the fault
    seconds: float = 0.0  # "slow": the request takes effect, and is answered, this much later
    skip: int = 0  # let this many matching requests through first (a fault mid-way in paging)


@dataclass
class AtlassianState:
    """All mutable state of the stand-in; tests read and change it in-process."""

    org_id: str = "org-sandbox"
    api_key: str = "atl-sandbox-key"
    scoped_key: str | None = None
    sites: list[dict[str, Any]] = field(default_factory=_default_sites)
    quota: int = 1000
    propagation_seconds: float = 0.0
    grant_apply_seconds: float = 0.0
    answer_delay_seconds: float = 0.0
    accounts: dict[str, Account] = field(default_factory=dict)
    tokens: list[Token] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    next_link_base: str | None = None  # e.g. "https://api.atlassian.com": links.next off-host
    # Route sets switched off: "" served, else the status they answer (see `switch_off`).
    access_routes_off: str = ""
    console_routes_off: str = ""
    mint_refused: str = ""
    # The organisation's managed people and their own API tokens (discovery's reads).
    directory: Directory = field(default_factory=lambda: Directory())

    def switch_off(self, routes: str, answer: str) -> None:
        """Make a route set answer as a route that is not there ("404", "405") or, for the
        mint alone, as a refused one ("403"); "" serves it again. `routes`: "access" (the
        documented API Access routes), "console" (/admin/account-management and /users) or
        "mint". Same as POST /_sandbox/config."""
        key = {"access": "access_routes_off", "console": "console_routes_off"}.get(
            routes, "mint_refused"
        )
        if routes not in ROUTE_SETS:
            raise ValueError(f"no route set {routes!r}")
        setattr(self, key, CONFIG_KEYS[key](answer))

    def create_account(
        self, display_name: str, description: str = "", *, created_by_bot: bool = True
    ) -> Account:
        """Make a live account (no quota check; the create route checks it)."""
        slug = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-") or "service-account"
        now = self.clock()
        account = Account(
            id=str(uuid.uuid4()),
            atlassian_id=f"712020:{uuid.uuid4()}",
            email=f"{slug}-{secrets.token_hex(3)}@{EMAIL_DOMAIN}",
            display_name=display_name,
            description=description,
            created_at=now,
            updated_at=now,
            created_by_id=BOT_CREATOR_ID if created_by_bot else HUMAN_CREATOR_ID,
        )
        self.accounts[account.id] = account
        return account

    def seed_account(self, display_name: str, *, created_by_bot: bool = False) -> Account:
        """An account made outside the bot a day ago (already propagated), for drift tests."""
        account = self.create_account(display_name, created_by_bot=created_by_bot)
        account.created_at = account.updated_at = self.clock() - 86400
        return account

    def scope_the_key(self) -> None:
        """The key clients hold becomes a scoped key: the documented API Access routes (and
        the workspaces) still take it, the console and /users routes answer 403. The
        organisation's unscoped key is then another one, which no client has."""
        self.scoped_key, self.api_key = self.api_key, f"atl-unscoped-{secrets.token_hex(8)}"

    def revoke_the_key(self) -> None:
        """The key clients hold stops working (revoked, or past its year): 401 everywhere."""
        if self.scoped_key == self.api_key:
            self.scoped_key = None
        self.api_key = f"atl-new-{secrets.token_hex(8)}"

    def live_accounts(self) -> list[Account]:
        """Accounts not deleted."""
        return [a for a in self.accounts.values() if a.status == "active"]

    def by_atlassian_id(self, atlassian_id: str) -> Account | None:
        """The account with this atlassianId, deleted or not."""
        return next((a for a in self.accounts.values() if a.atlassian_id == atlassian_id), None)

    def effective_grants(self, atlassian_id: str) -> list[dict[str, Any]]:
        """Grants already applied, minus the plain `jira` form that grants nothing."""
        account = self.by_atlassian_id(atlassian_id)
        if account is None or account.status != "active":
            return []
        now = self.clock()
        return [
            g
            for g in account.grants
            if g["effective_at"] <= now and not g["resource"].startswith("ari:cloud:jira::")
        ]

    def make_token_by_hand(
        self, atlassian_id: str, label: str, scopes: list[str], expires_at: float
    ) -> Token:
        """What an admin does in the console after a refused mint: a token on the account,
        under the label sabot asked for; its value goes to the owner, not to sabot."""
        token = Token(
            str(uuid.uuid4()),
            atlassian_id,
            label,
            _token_value(),
            list(scopes),
            _iso(expires_at),
            self.clock(),
        )
        self.tokens.append(token)
        return token

    def minted_values(self) -> list[str]:
        """Every token value ever minted, revoked or not."""
        return [t.value for t in self.tokens]

    def add_fault(
        self,
        route: str,
        kind: str,
        count: int = 1,
        *,
        reset: str = "iso",
        after: bool = False,
        seconds: float = 0.0,
        skip: int = 0,
    ) -> Fault:
        """Queue a fault in-process (same effect as POST /_sandbox/faults)."""
        if route not in FAULT_ROUTES or kind not in FAULT_KINDS or reset not in ("iso", "epoch"):
            raise ValueError(f"bad fault {route=} {kind=} {reset=}")
        fault = Fault(route, kind, count, reset, after, seconds, skip)
        self.faults.append(fault)
        return fault

    def take_fault(self, route: str) -> Fault | None:
        """Consume one use of the first queued fault matching this route family."""
        for fault in self.faults:
            if fault.route in (route, "any"):
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def use_token(
        self, token_id: str, *, last_used_at: float | None, created_at: float | None = None
    ) -> Token:
        """Say when a token was last used (None: never) and, optionally, when it was made
        (epoch seconds): what an idle credential looks like at Atlassian."""
        token = next(t for t in self.tokens if t.id == token_id)
        token.last_used_at = last_used_at
        if created_at is not None:
            token.created_at = created_at
        return token

    def revoke_all(self, atlassian_id: str) -> None:
        """Revoke every live token of one account."""
        for token in self.tokens:
            if token.atlassian_id == atlassian_id:
                token.revoked = True

    def delete_account(self, account: Account) -> None:
        """Start the 14-day grace: status deleted, tokens revoked."""
        account.status = "deleted"
        account.deleted_at = account.updated_at = self.clock()
        self.revoke_all(account.atlassian_id)

    def summary(self) -> dict[str, Any]:
        """State for humans and tests, without token values."""
        return {
            "orgId": self.org_id,
            "config": {k: getattr(self, k) for k in CONFIG_KEYS},
            "accounts": [
                {
                    **a.item(self.org_id),
                    "grants": a.grants,
                    "effectiveGrants": self.effective_grants(a.atlassian_id),
                }
                for a in self.accounts.values()
            ],
            "tokens": [{k: v for k, v in asdict(t).items() if k != "value"} for t in self.tokens],
            "calls": len(self.calls),
            "faults": [asdict(f) for f in self.faults],
        }


class ApiError(Exception):
    """Raised by handlers; rendered in the error style of the route it came from."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class SandboxConnectionReset(httpx.RemoteProtocolError):
    """Raised to drop a connection; in-process (ASGITransport) clients see it as is."""


class _DropConnection(Response):
    """Closes the connection without any answer, like a reset mid-request."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn marks the response started, then its HTTP writer rejects the bad header
        # before writing a byte; the exception below makes it close the socket silently.
        with contextlib.suppress(Exception):
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"x-sandbox-reset", b"\r\n")],
                }
            )
        raise SandboxConnectionReset("Server disconnected without sending a response.")


class _Hang(Response):
    """Answers only after a long wait (or never, if the client gives up first)."""

    def __init__(self, answer: Response, seconds: float) -> None:
        super().__init__(status_code=answer.status_code)
        self.answer, self.seconds = answer, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        # Stop waiting when the client hangs up, so a server shutdown is not held for 60 s.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until_disconnect(), self.seconds)
        await self.answer(scope, receive, send)


class _QuietReset(logging.Filter):
    """Keeps uvicorn from logging a traceback for every deliberate connection reset."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SandboxConnectionReset))


def _spring(status: int, path: str, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "timestamp": datetime.now(UTC).isoformat(),
            "path": path,
            "status": status,
            "error": HTTPStatus(status).phrase,
            "message": message,
            "requestId": uuid.uuid4().hex,
        },
        status_code=status,
    )


def _error(style: str, status: int, message: str, path: str, code: str = "") -> JSONResponse:
    if status >= 500:
        return _spring(status, path, message)
    if style == "errors":
        code = code or HTTPStatus(status).phrase.upper().replace(" ", "_")
        error = {"code": code, "title": HTTPStatus(status).phrase, "detail": message}
        return JSONResponse({"errors": [error]}, status_code=status)
    if style == "detail":
        return JSONResponse({"detail": message}, status_code=status)
    return JSONResponse({"message": message}, status_code=status)


def _fault_response(state: AtlassianState, fault: Fault, style: str, path: str) -> Response:
    if fault.kind == "429":
        reset_at = int(state.clock()) + 1  # whole second, so at most ~1 s ahead
        reset = str(reset_at) if fault.reset == "epoch" else _iso(reset_at)
        headers = {
            "X-RateLimit-Limit": "100",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset,
        }
        response = _error(style, 429, "Rate limit exceeded", path, "RATE_LIMITED")
        response.headers.update(headers)
        return response
    if fault.kind == "html403":
        page = "<html><head><title>Log in</title></head><body>Single sign-on required</body></html>"
        return HTMLResponse(page, status_code=403)
    if fault.kind == "302":  # a proxy or SSO gateway sending the client to a sign-in page
        location = "https://id.atlassian.com/login?continue=%2Fadmin&ticket=sandbox-ticket"
        return Response(status_code=302, headers={"Location": location})
    if fault.kind == "reset":
        return _DropConnection(status_code=500)
    if fault.kind == "hang":
        return _Hang(_spring(504, path, "Gateway timeout"), HANG_SECONDS)
    if fault.kind in ("409", "402"):
        message = QUOTA_MESSAGE if fault.route in ("create", "grant") else "Conflict"
        return _error(style, int(fault.kind), message, path)
    return _spring(500, path, "Internal server error")


Handler = Callable[[AtlassianState, Request, Any], Response]


def _switched_off(state: AtlassianState, path: str, family: str) -> Response | None:
    """The answer of a route set switched off (see `AtlassianState.switch_off`), or None."""
    if path.startswith("/admin/api-access/"):
        answer = state.access_routes_off
    elif path.startswith(("/admin/account-management/", "/users/")):
        answer = state.console_routes_off
        if not answer and family == "mint":
            answer = state.mint_refused
            if answer == "403":
                refusal = "API tokens for this account cannot be created through this route"
                return _error("errors", 403, refusal, path, "FORBIDDEN")
    else:
        return None
    if not answer:
        return None
    status = int(answer)
    # The gateway's own answer for a route it does not have: not the route's error style.
    return JSONResponse({"code": status, "message": HTTPStatus(status).phrase}, status_code=status)


def _api(
    state: AtlassianState, handler: Handler, *, family: str, style: str, console: bool
) -> Callable[[Request], Any]:
    """Wrap a handler with recording, delay, auth, org check, faults and error rendering."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = await request.json()
            except ValueError:
                bad_json = True
        call: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "json": body,
            "status": None,
            "at": state.clock(),
        }
        state.calls.append(call)
        response = await answer(request, body, bad_json)
        call["status"] = None if isinstance(response, _DropConnection) else response.status_code
        return response

    async def answer(request: Request, body: Any, bad_json: bool) -> Response:
        path = request.url.path
        if state.answer_delay_seconds > 0:
            await asyncio.sleep(state.answer_delay_seconds)
        key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if key not in (state.api_key, state.scoped_key) or not key:
            return JSONResponse({"code": 401, "message": "Unauthorized"}, status_code=401)
        switched_off = _switched_off(state, path, family)
        if switched_off is not None:
            return switched_off
        try:
            if console and key != state.api_key:
                raise ApiError(403, "The API key is scoped; this route needs an unscoped key")
            if request.path_params.get("orgId", state.org_id) != state.org_id:
                raise ApiError(404, "Organization not found")
            fault = state.take_fault(family)
            if fault is not None and fault.kind == "slow":
                await asyncio.sleep(fault.seconds)  # then served as usual, late
                fault = None
            if fault is not None and not fault.after:
                return _fault_response(state, fault, style, path)
            if bad_json:
                raise ApiError(400, "Request body is not valid JSON", "INVALID_JSON")
            try:
                response = handler(state, request, body)
            except ApiError as exc:
                response = _error(style, exc.status, exc.message, path, exc.code)
            if fault is not None:  # an "after" fault: the request took effect, its answer is lost
                response = _fault_response(state, fault, style, path)
            return response
        except ApiError as exc:
            return _error(style, exc.status, exc.message, path, exc.code)

    return endpoint


# ---- service accounts ------------------------------------------------------------------------


def _cursor_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("o:"))
    except ValueError as exc:
        raise ApiError(400, "Invalid cursor") from exc


def _page(state: AtlassianState, request: Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Cursor paging with an ABSOLUTE links.next, like the real service."""
    try:
        limit = int(request.query_params.get("limit", MAX_PAGE))
    except ValueError as exc:
        raise ApiError(400, "limit must be an integer") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(400, f"limit must be between 1 and {MAX_PAGE}")
    offset = _cursor_offset(request.query_params.get("cursor"))
    url = request.url
    if state.next_link_base:
        base = URL(state.next_link_base)
        url = url.replace(scheme=base.scheme, netloc=base.netloc)

    def link(at: int) -> str:
        cursor = base64.urlsafe_b64encode(f"o:{at}".encode()).decode()
        return str(url.include_query_params(limit=limit, cursor=cursor))

    links: dict[str, str] = {}
    if offset + limit < len(items):
        links["next"] = link(offset + limit)
    if offset > 0:
        links["prev"] = link(max(0, offset - limit))
    return {"links": links, "items": items[offset : offset + limit], "total": len(items)}


def list_accounts(state: AtlassianState, request: Request, body: Any) -> Response:
    """GET service-accounts (console and api-access)."""
    items = [a.item(state.org_id) for a in state.accounts.values()]
    return JSONResponse(_page(state, request, items))


def create_account(state: AtlassianState, request: Request, body: Any) -> Response:
    """POST service-accounts: not idempotent, limited by the quota."""
    name = body.get("displayName") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "displayName is required")
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise ApiError(400, "description must be a string")
    if len(state.live_accounts()) >= state.quota:
        raise ApiError(409, QUOTA_MESSAGE)
    account = state.create_account(name, description)
    return JSONResponse(account.item(state.org_id), status_code=201)


def _parse_rule(state: AtlassianState, rule: Any) -> tuple[str, str]:
    if not isinstance(rule, dict):
        raise ApiError(400, "permissionRules items must be objects")
    resource, role = rule.get("resource"), rule.get("role")
    match = RESOURCE.match(resource) if isinstance(resource, str) else None
    if match is None:
        raise ApiError(400, f"Invalid resource {resource!r}")
    product, cloud_id = match.groups()
    if role != f"ari:cloud:{product}::role/product/member":
        raise ApiError(400, f"Invalid role {role!r} for resource {resource}")
    site_product = "jira-software" if product == "jira" else product
    if not any(s["cloud_id"] == cloud_id and s["product"] == site_product for s in state.sites):
        raise ApiError(400, f"Unknown site {cloud_id}")
    return str(resource), str(role)


def invite(state: AtlassianState, request: Request, body: Any) -> Response:
    """POST service-accounts/invite: 404 until propagated, then 202 with a delayed grant."""
    body = body if isinstance(body, dict) else {}
    user_ids, rules = body.get("userIds"), body.get("permissionRules")
    if not isinstance(user_ids, list) or not user_ids or not isinstance(rules, list) or not rules:
        raise ApiError(400, "userIds and permissionRules are required")
    parsed = [_parse_rule(state, rule) for rule in rules]  # validate all before applying any
    now = state.clock()
    accounts = []
    for user_id in user_ids:
        account = state.by_atlassian_id(str(user_id))
        if (
            account is None
            or account.status != "active"
            or now - account.created_at < state.propagation_seconds
        ):
            raise ApiError(404, f"User {user_id} not found in the directory")
        accounts.append(account)
    for account in accounts:
        for resource, role in parsed:
            if not any(g["resource"] == resource and g["role"] == role for g in account.grants):
                account.grants.append(
                    {
                        "resource": resource,
                        "role": role,
                        "effective_at": now + state.grant_apply_seconds,
                    }
                )
                account.updated_at = now
    return JSONResponse({}, status_code=202)


def workspaces(state: AtlassianState, request: Request, body: Any) -> Response:
    """POST /admin/v2/orgs/{orgId}/workspaces: one entry per product site."""
    data = []
    for site in state.sites:
        ari_product = "jira" if site["product"] == "jira-software" else site["product"]
        data.append(
            {
                "id": f"ari:cloud:{ari_product}::site/{site['cloud_id']}",
                "type": "workspace",
                "attributes": {
                    "typeKey": site["product"],
                    "name": URL(site["host_url"]).hostname,
                    "hostUrl": site["host_url"],
                },
            }
        )
    return JSONResponse({"data": data, "links": {}})


# ---- per-user routes (atlassianId) -------------------------------------------------------------


def _live_user(state: AtlassianState, request: Request) -> Account:
    account = state.by_atlassian_id(request.path_params["atlassianId"])
    if account is None or account.status != "active":
        raise ApiError(404, "User not found", "NOT_FOUND")
    return account


def _check_expiry(state: AtlassianState, body: dict[str, Any]) -> str:
    expiry = body.get("expiry")
    if "expiresAt" in body or not isinstance(expiry, str):
        raise ApiError(400, "expiry (RFC 3339) is required", "INVALID_EXPIRY")
    try:
        when = datetime.fromisoformat(expiry)
    except ValueError as exc:
        raise ApiError(400, f"Cannot parse expiry {expiry!r}", "INVALID_EXPIRY") from exc
    now = datetime.fromtimestamp(state.clock(), UTC)
    # 1 to 365 days; an hour of slack below one day for the time a request spends in flight.
    if when.tzinfo is None or not (
        now + timedelta(days=1, hours=-1) <= when <= now + timedelta(days=365)
    ):
        raise ApiError(400, "expiry must be 1 to 365 days ahead", "INVALID_EXPIRY")
    return expiry


def _token_value() -> str:
    # Shaped like real tokens (prefix, body, '=', checksum) but of varying length on purpose.
    length = 150 + secrets.randbelow(51)
    return f"ATATT3x{secrets.token_urlsafe(length)[:length]}={secrets.token_hex(4).upper()}"


def mint(state: AtlassianState, request: Request, body: Any) -> Response:
    """POST /users/{atlassianId}/manage/api-tokens."""
    account = _live_user(state, request)
    body = body if isinstance(body, dict) else {}
    scopes = body.get("scopes")
    if not scopes:
        raise ApiError(400, "At least one scope is required", "MISSING_SCOPES")
    if not isinstance(scopes, list) or not all(
        isinstance(s, str) and (s in CLASSIC_SCOPES or GRANULAR_SCOPE.match(s)) for s in scopes
    ):
        raise ApiError(400, "Only Jira and Confluence scopes can be chosen", "INVALID_SCOPES")
    label = body.get("label")
    if not isinstance(label, str) or not label.strip():
        raise ApiError(400, "label is required", "INVALID_LABEL")
    expiry = _check_expiry(state, body)
    if any(
        t.atlassian_id == account.atlassian_id and t.label == label and not t.revoked
        for t in state.tokens
    ):
        raise ApiError(409, f"A token labelled {label!r} already exists", "DUPLICATE_LABEL")
    token = Token(
        str(uuid.uuid4()),
        account.atlassian_id,
        label,
        _token_value(),
        list(scopes),
        expiry,
        state.clock(),
    )
    state.tokens.append(token)
    return JSONResponse(
        {"id": token.id, "label": label, "token": token.value, "expiry": expiry}, status_code=201
    )


def _live_tokens(state: AtlassianState, atlassian_id: str) -> list[Token]:
    return [t for t in state.tokens if t.atlassian_id == atlassian_id and not t.revoked]


def list_tokens(state: AtlassianState, request: Request, body: Any) -> Response:
    """GET /users/{atlassianId}/manage/api-tokens: a bare array, no scopes, no values (a
    service account's tokens, or a managed person's own)."""
    person = request.path_params["atlassianId"]
    if person in state.directory.people:
        return JSONResponse(state.directory.listed(state, person))
    account = _live_user(state, request)
    return JSONResponse([t.info() for t in _live_tokens(state, account.atlassian_id)])


def revoke_token(state: AtlassianState, request: Request, body: Any) -> Response:
    """DELETE /users/{atlassianId}/manage/api-tokens/{tokenId}: a service account's token, or
    a managed person's own (the route takes either account id)."""
    if request.path_params["atlassianId"] in state.directory.people:
        return state.directory.revoke(
            request.path_params["atlassianId"], request.path_params["tokenId"]
        )
    account = _live_user(state, request)
    token_id = request.path_params["tokenId"]
    token = next((t for t in _live_tokens(state, account.atlassian_id) if t.id == token_id), None)
    if token is None:
        raise ApiError(404, f"Token {token_id} not found", "NOT_FOUND")
    token.revoked = True
    return Response(status_code=204)


def lifecycle_delete(state: AtlassianState, request: Request, body: Any) -> Response:
    """POST /users/{atlassianId}/manage/lifecycle/delete: grace period starts."""
    state.delete_account(_live_user(state, request))
    return Response(status_code=204)


# ---- documented api-access routes (admin id) -------------------------------------------------


def _live_account(state: AtlassianState, request: Request) -> Account:
    account = state.accounts.get(request.path_params["id"])
    if account is None or account.status != "active":
        raise ApiError(404, "Service account not found")
    return account


def access_delete(state: AtlassianState, request: Request, body: Any) -> Response:
    """DELETE /service-accounts/{id} by admin id (an atlassianId gives 404)."""
    state.delete_account(_live_account(state, request))
    return Response(status_code=204)


def _token_page(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One page holds them all: the stand-in never splits a token list."""
    return {"links": {"next": None, "prev": None}, "items": items, "total": len(items)}


def _labelled(request: Request, tokens: list[Token]) -> list[Token]:
    """The documented `?tokenLabel=` filter."""
    label = request.query_params.get("tokenLabel")
    return [t for t in tokens if not label or t.label == label]


def access_tokens(state: AtlassianState, request: Request, body: Any) -> Response:
    """GET /service-accounts/{id}/api-tokens: the ApiToken shape, in a page."""
    account = _live_account(state, request)
    items = [t.access_info() for t in _labelled(request, _live_tokens(state, account.atlassian_id))]
    return JSONResponse(_token_page(items))


def access_revoke_all(state: AtlassianState, request: Request, body: Any) -> Response:
    """DELETE /service-accounts/{id}/api-tokens: revoke every token of the account."""
    state.revoke_all(_live_account(state, request).atlassian_id)
    return Response(status_code=204)


def access_org_tokens(state: AtlassianState, request: Request, body: Any) -> Response:
    """GET /service-accounts/api-tokens: live tokens of every live account."""
    items = [
        {**t.access_info(), "serviceAccountId": a.id, "atlassianId": a.atlassian_id}
        for a in state.live_accounts()
        for t in _labelled(request, _live_tokens(state, a.atlassian_id))
    ]
    return JSONResponse(_token_page(items))


def access_count(state: AtlassianState, request: Request, body: Any) -> Response:
    """POST /service-accounts/count: live token counts, at most 100 ids; unknown ids count 0."""
    ids = body.get("serviceAccountIds") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or len(ids) > MAX_COUNT_IDS:
        raise ApiError(400, f"serviceAccountIds must hold 1 to {MAX_COUNT_IDS} ids")
    counts: dict[str, int] = {}
    for account_id in map(str, ids):
        account = state.accounts.get(account_id)
        counts[account_id] = len(_live_tokens(state, account.atlassian_id)) if account else 0
    return JSONResponse({"counts": counts})


# ---- people and their own API tokens (discovery's reads) -----------------------------------
#
# Choices the reference leaves open (relied on by tests):
# - `GET /api-tokens` answers `{"data": [...], "links": {"self", "next", "prev"}}` (the published
#   sample's shape) where `next` is a cursor for `?cursor=`; `pageSize` is 1 to 100 (default 20),
#   more is refused with 400, as is a cursor of another route.
# - `POST /admin/v2/.../directories/-/users/search` takes `limit` 1 to 100 (default 100) and
#   answers `{"data": [...], "links": {"next": cursor}}`; `productAccess` and `groups` are in the
#   items only when `expand` asks for them. Only the `-` directory exists.
# - `GET /admin/v1/orgs/{orgId}/users` pages 100 at a time; its `links.next` is an ABSOLUTE URL.
# - A product page view shows in `lastActiveTimestamp` (and v1 `last_active`) only once
#   `Directory.ui_activity_lag_seconds` (24 h by default) have passed, as Atlassian's lags.
# - Activity is judged against `Directory.now` when a test sets it (`POST /_sandbox/directory`),
#   else the state's clock; seeded "days ago" are counted back from that same moment.

DIRECTORY_SEARCH = "/admin/v2/orgs/{orgId}/directories/{directoryId}/users/search"
ORG_USERS = "/admin/v1/orgs/{orgId}/users"
TOKEN_PAGE_DEFAULT, TOKEN_PAGE_MAX = 20, 100
SEARCH_PAGE_MAX = 100
ORG_USERS_PAGE = 100
DAY = 86400.0


@dataclass
class Person:
    """A managed Atlassian account of the organisation (a human's, or one that looks human)."""

    account_id: str
    name: str
    email: str
    account_type: str = "atlassian"  # "atlassian" | "app" | "customer"
    status: str = "active"
    mfa_enabled: bool = False
    billable: bool = True
    # product key ("jira-software", "confluence") -> epoch seconds of each page view
    visits: dict[str, list[float]] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    # product keys the person has access to; None: every product of the organisation
    products: list[str] | None = None

    def last_seen(self, product: str, now: float, lag: float) -> float | None:
        """The newest page view Atlassian reports by `now`: older than the lag."""
        shown = [v for v in self.visits.get(product, []) if v <= now - lag]
        return max(shown) if shown else None


@dataclass
class HumanToken:
    """A person's own API token, as the org-wide `GET /api-tokens` lists it (no value)."""

    id: str
    account_id: str
    label: str
    created_at: float
    expires_at: float | None
    last_active_at: float | None = None
    status: str = "ALLOWED"  # "ALLOWED" | "BLOCKED"


@dataclass
class Directory:
    people: dict[str, Person] = field(default_factory=dict)
    tokens: list[HumanToken] = field(default_factory=list)
    revoked: list[HumanToken] = field(default_factory=list)  # by DELETE, newest last
    now: float | None = None  # the moment activity is judged at; None: the state's clock
    ui_activity_lag_seconds: float = DAY

    def moment(self, state: AtlassianState) -> float:
        return self.now if self.now is not None else state.clock()

    def add_person(
        self,
        state: AtlassianState,
        name: str,
        email: str | None = None,
        *,
        ui_days_ago: dict[str, float | None] | float | None = None,
        account_type: str = "atlassian",
        billable: bool = True,
        mfa_enabled: bool = False,
        status: str = "active",
        products: list[str] | None = None,
    ) -> Person:
        """A person whose last page view of each product was that many days ago (a number:
        every product of the organisation; None: never), with access to `products` (None:
        every product)."""
        now = self.moment(state)
        every = sorted({site["product"] for site in state.sites})
        days = ui_days_ago if isinstance(ui_days_ago, dict) else dict.fromkeys(every, ui_days_ago)
        slug = re.sub(r"[^a-z0-9]+", ".", name.lower()).strip(".") or "person"
        person = Person(
            account_id=f"5b10ac8d82e05b22cc7d{secrets.token_hex(6)}",
            name=name,
            email=email or f"{slug}@example.com",
            account_type=account_type,
            status=status,
            mfa_enabled=mfa_enabled,
            billable=billable,
            visits={p: [now - d * DAY] for p, d in days.items() if d is not None},
            products=products,
        )
        self.people[person.account_id] = person
        return person

    def add_token(
        self,
        state: AtlassianState,
        person: Person,
        label: str,
        *,
        last_active_days_ago: float | None = None,
        created_days_ago: float = 60,
        expires_in_days: float | None = 300,
    ) -> HumanToken:
        now = self.moment(state)
        token = HumanToken(
            id=str(uuid.uuid4()),
            account_id=person.account_id,
            label=label,
            created_at=now - created_days_ago * DAY,
            expires_at=None if expires_in_days is None else now + expires_in_days * DAY,
            last_active_at=None
            if last_active_days_ago is None
            else now - last_active_days_ago * DAY,
        )
        self.tokens.append(token)
        return token

    def seed(
        self,
        state: AtlassianState,
        count: int,
        tokens: int,
        *,
        prefix: str = "Person",
        ui_days_ago: float | None = 2,
        token_days_ago: float | None = 3,
        billable: bool = True,
    ) -> list[Person]:
        """`count` people named `prefix 1` ... and `tokens` tokens dealt round-robin to them."""
        made = [
            self.add_person(state, f"{prefix} {n}", ui_days_ago=ui_days_ago, billable=billable)
            for n in range(1, count + 1)
        ]
        for n in range(tokens):
            self.add_token(
                state, made[n % count], f"token {n + 1}", last_active_days_ago=token_days_ago
            )
        return made

    def listed(self, state: AtlassianState, account_id: str) -> list[dict[str, Any]]:
        """A person's tokens in the per-user route's shape (`expiry`, `lastAccess`)."""
        return [
            {
                "id": t.id,
                "label": t.label,
                "createdAt": _iso(t.created_at),
                "expiry": _maybe_iso(t.expires_at),
                "lastAccess": _maybe_iso(t.last_active_at),
            }
            for t in self.tokens
            if t.account_id == account_id
        ]

    def revoke(self, account_id: str, token_id: str) -> Response:
        """A person's token revoked: gone from every list, as at Atlassian."""
        token = next(
            (t for t in self.tokens if t.id == token_id and t.account_id == account_id), None
        )
        if token is None:
            raise ApiError(404, f"Token {token_id} not found", "NOT_FOUND")
        self.tokens.remove(token)
        self.revoked.append(token)
        return Response(status_code=204)

    def token_item(self, state: AtlassianState, token: HumanToken) -> dict[str, Any]:
        person = self.people.get(token.account_id)
        return {
            "id": token.id,
            "label": token.label,
            "status": token.status,
            "createdAt": _iso(token.created_at),
            "expiresAt": None if token.expires_at is None else _iso(token.expires_at),
            "lastActiveAt": None if token.last_active_at is None else _iso(token.last_active_at),
            "user": {
                "id": token.account_id,
                "orgId": state.org_id,
                "name": person.name if person else "",
                "email": person.email if person else "",
            },
        }

    def _product_ids(self, state: AtlassianState) -> dict[str, str]:
        return {site["product"]: site["cloud_id"] for site in state.sites}

    def search_item(
        self, state: AtlassianState, person: Person, expand: set[str]
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "accountId": person.account_id,
            "accountType": person.account_type,
            "status": person.status,
            "name": person.name,
            "email": person.email,
            "mfaEnabled": person.mfa_enabled,
            "managementSource": "managed",
        }
        now, lag = self.moment(state), self.ui_activity_lag_seconds
        if "productAccess" in expand:
            item["productAccess"] = [
                {
                    "key": product,
                    "id": site_id,
                    "lastActiveTimestamp": _maybe_iso(person.last_seen(product, now, lag)),
                }
                for product, site_id in self._product_ids(state).items()
                if self.has_access(person, product)
            ]
        if "groups" in expand:
            item["groups"] = [{"id": g, "name": g} for g in person.groups]
        return item

    @staticmethod
    def has_access(person: Person, product: str) -> bool:
        if person.products is not None:
            return product in person.products
        return product in person.visits or person.account_type == "atlassian"

    def org_user_item(self, state: AtlassianState, person: Person) -> dict[str, Any]:
        now, lag = self.moment(state), self.ui_activity_lag_seconds
        seen = {p: person.last_seen(p, now, lag) for p in self._product_ids(state)}
        latest = max((v for v in seen.values() if v is not None), default=None)
        return {
            "account_id": person.account_id,
            "account_type": person.account_type,
            "account_status": person.status,
            "name": person.name,
            "email": person.email,
            "picture": "https://avatar-management.services.atlassian.com/default/48",
            "last_active": _maybe_iso(latest),
            "product_access": [
                {
                    "key": p,
                    "name": p,
                    "url": "https://sandbox.atlassian.net",
                    "last_active": _maybe_iso(v),
                }
                for p, v in seen.items()
                if v is not None
            ],
            "access_billable": person.billable,
        }


def _maybe_iso(epoch: float | None) -> str | None:
    return None if epoch is None else _iso(epoch)


def _encode_cursor(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode()


def _decode_cursor(kind: str, cursor: Any) -> int:
    """An offset from a cursor of this route; another route's cursor is refused."""
    if cursor in (None, ""):
        return 0
    try:
        text = base64.urlsafe_b64decode(str(cursor).encode()).decode()
        prefix, _, offset = text.partition(":")
        if prefix != kind:
            raise ValueError(prefix)
        return int(offset)
    except ValueError as exc:
        raise ApiError(400, "Invalid cursor") from exc


def _bounded(value: Any, default: int, most: int, name: str) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, f"{name} must be an integer") from exc
    if not 1 <= number <= most:
        raise ApiError(400, f"{name} must be between 1 and {most}")
    return number


def human_api_tokens(state: AtlassianState, request: Request, body: Any) -> Response:
    """GET /api-tokens: every managed user's own API tokens, a page at a time."""
    directory, query = state.directory, request.query_params
    size = _bounded(query.get("pageSize"), TOKEN_PAGE_DEFAULT, TOKEN_PAGE_MAX, "pageSize")
    offset = _decode_cursor("t", query.get("cursor"))
    status = query.get("status")
    if status not in (None, "ALLOWED", "BLOCKED"):
        raise ApiError(400, "status must be ALLOWED or BLOCKED")
    tokens = (
        directory.tokens if status is None else [t for t in directory.tokens if t.status == status]
    )
    page = tokens[offset : offset + size]
    links: dict[str, str | None] = {"self": _encode_cursor("t", offset), "next": None, "prev": None}
    if offset + size < len(tokens):
        links["next"] = _encode_cursor("t", offset + size)
    if offset > 0:
        links["prev"] = _encode_cursor("t", max(0, offset - size))
    return JSONResponse({"data": [directory.token_item(state, t) for t in page], "links": links})


def bulk_revoke_human_tokens(state: AtlassianState, request: Request, body: Any) -> Response:
    """DELETE /api-tokens: revokes EVERY managed user's token, as Atlassian documents."""
    state.directory.tokens.clear()
    return Response(status_code=204)


def directory_search(state: AtlassianState, request: Request, body: Any) -> Response:
    """POST /admin/v2/orgs/{orgId}/directories/-/users/search."""
    if request.path_params["directoryId"] != "-":
        raise ApiError(404, "Directory not found")
    body = body if isinstance(body, dict) else {}
    limit = _bounded(body.get("limit"), SEARCH_PAGE_MAX, SEARCH_PAGE_MAX, "limit")
    offset = _decode_cursor("d", body.get("cursor"))
    expand = body.get("expand") or []
    if not isinstance(expand, list) or not set(expand) <= {"productAccess", "groups"}:
        raise ApiError(400, "expand takes productAccess and groups")
    people = list(state.directory.people.values())
    page = people[offset : offset + limit]
    nxt = _encode_cursor("d", offset + limit) if offset + limit < len(people) else None
    items = [state.directory.search_item(state, p, set(expand)) for p in page]
    return JSONResponse({"data": items, "links": {"next": nxt}})


def org_users(state: AtlassianState, request: Request, body: Any) -> Response:
    """GET /admin/v1/orgs/{orgId}/users?cursor=: 100 a page, an absolute links.next."""
    offset = _decode_cursor("u", request.query_params.get("cursor"))
    people = list(state.directory.people.values())
    page = people[offset : offset + ORG_USERS_PAGE]
    links: dict[str, str] = {}
    url = request.url
    if state.next_link_base:
        base = URL(state.next_link_base)
        url = url.replace(scheme=base.scheme, netloc=base.netloc)
    links["self"] = str(url)
    if offset + ORG_USERS_PAGE < len(people):
        cursor = _encode_cursor("u", offset + ORG_USERS_PAGE)
        links["next"] = str(url.replace_query_params(cursor=cursor))
    items = [state.directory.org_user_item(state, p) for p in page]
    return JSONResponse({"data": items, "links": links})


def _epoch_of(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _directory_control_routes(state: AtlassianState) -> list[Route]:
    directory = state.directory

    async def people(request: Request) -> Response:
        """`{"people": [{name, email?, accountType?, billable?, mfaEnabled?, status?,
        uiActiveDaysAgo?: number | {product: number | null} | null, products?: [key],
        tokens?: [{label,
        lastActiveDaysAgo?, createdDaysAgo?, expiresInDays?}]}]}`, or in bulk `{"count": N,
        "tokens": M, "namePrefix"?, "uiActiveDaysAgo"?, "tokenActiveDaysAgo"?, "billable"?}`."""
        body = await request.json()
        try:
            if "count" in body:
                made = directory.seed(
                    state,
                    int(body["count"]),
                    int(body.get("tokens", 0)),
                    prefix=str(body.get("namePrefix", "Person")),
                    ui_days_ago=body.get("uiActiveDaysAgo", 2),
                    token_days_ago=body.get("tokenActiveDaysAgo", 3),
                    billable=bool(body.get("billable", True)),
                )
                return JSONResponse(
                    {"people": len(made), "tokens": int(body.get("tokens", 0))}, 201
                )
            ids = []
            for given in body["people"]:
                person = directory.add_person(
                    state,
                    str(given["name"]),
                    given.get("email"),
                    ui_days_ago=given.get("uiActiveDaysAgo"),
                    account_type=str(given.get("accountType", "atlassian")),
                    billable=bool(given.get("billable", True)),
                    mfa_enabled=bool(given.get("mfaEnabled", False)),
                    status=str(given.get("status", "active")),
                    products=given.get("products"),
                )
                for token in given.get("tokens", []):
                    directory.add_token(
                        state,
                        person,
                        str(token["label"]),
                        last_active_days_ago=token.get("lastActiveDaysAgo"),
                        created_days_ago=float(token.get("createdDaysAgo", 60)),
                        expires_in_days=token.get("expiresInDays", 300),
                    )
                ids.append(person.account_id)
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"message": f"bad people: {exc}"}, status_code=400)
        return JSONResponse({"accountIds": ids}, status_code=201)

    async def settings(request: Request) -> Response:
        """`{"now": ISO 8601 | epoch seconds | null, "uiActivityLagSeconds": n}`."""
        body = await request.json()
        unknown = set(body) - {"now", "uiActivityLagSeconds"}
        if unknown:
            return JSONResponse({"message": f"unknown keys {sorted(unknown)}"}, status_code=400)
        try:
            if "now" in body:
                directory.now = _epoch_of(body["now"])
            if "uiActivityLagSeconds" in body:
                directory.ui_activity_lag_seconds = float(body["uiActivityLagSeconds"])
        except (TypeError, ValueError) as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        return JSONResponse(
            {
                "now": directory.now,
                "uiActivityLagSeconds": directory.ui_activity_lag_seconds,
                "people": len(directory.people),
                "tokens": len(directory.tokens),
            }
        )

    return [
        Route("/_sandbox/people", people, methods=["POST"]),
        Route("/_sandbox/directory", settings, methods=["POST"]),
    ]


# ---- test control routes (no auth, not recorded) ---------------------------------------------


def _control_routes(state: AtlassianState) -> list[Route]:
    async def add_fault(request: Request) -> Response:
        body = await request.json()
        try:
            fault = state.add_fault(
                str(body.get("route", "any")),
                str(body.get("kind")),
                int(body.get("count", 1)),
                reset=str(body.get("reset", "iso")),
                after=bool(body.get("after", False)),
                seconds=float(body.get("seconds", 0.0)),
                skip=int(body.get("skip", 0)),
            )
        except ValueError as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        return JSONResponse(asdict(fault), status_code=201)

    async def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return Response(status_code=204)

    async def config(request: Request) -> Response:
        body = await request.json()
        unknown = set(body) - set(CONFIG_KEYS)
        if unknown:
            return JSONResponse({"message": f"unknown keys {sorted(unknown)}"}, status_code=400)
        for key, value in body.items():
            setattr(state, key, CONFIG_KEYS[key](value))
        return JSONResponse(state.summary()["config"])

    async def seed(request: Request) -> Response:
        body = await request.json()
        by_bot = bool(body.get("createdByBot", False))
        if "count" in body:  # that many accounts, named `displayName-1` ... `displayName-N`
            made = [
                state.seed_account(f"{body['displayName']}-{n}", created_by_bot=by_bot)
                for n in range(1, int(body["count"]) + 1)
            ]
            return JSONResponse({"items": [a.item(state.org_id) for a in made]}, status_code=201)
        account = state.seed_account(str(body["displayName"]), created_by_bot=by_bot)
        return JSONResponse(account.item(state.org_id), status_code=201)

    async def key(request: Request) -> Response:
        """`{"scoped": true}` or `{"revoked": true}`: what happens to the key clients hold."""
        body = await request.json()
        if body == {"scoped": True}:
            state.scope_the_key()
        elif body == {"revoked": True}:
            state.revoke_the_key()
        else:
            return JSONResponse({"message": 'send {"scoped": true} or {"revoked": true}'}, 400)
        return Response(status_code=204)

    async def sites(request: Request) -> Response:
        """Replace the organisation's sites: `{"sites": [{cloud_id, product, host_url}]}`,
        one entry per product on a site (`jira-software`, `confluence`)."""
        body = await request.json()
        given = body.get("sites") if isinstance(body, dict) else None
        fields = {"cloud_id", "product", "host_url"}
        if not isinstance(given, list) or not all(
            isinstance(s, dict) and set(s) == fields for s in given
        ):
            return JSONResponse({"message": f"sites: a list of {sorted(fields)}"}, 400)
        state.sites = [{k: str(v) for k, v in site.items()} for site in given]
        return JSONResponse(state.sites)

    async def summary(request: Request) -> Response:
        return JSONResponse(state.summary())

    async def minted(request: Request) -> Response:
        return JSONResponse(state.minted_values())

    async def calls(request: Request) -> Response:
        return JSONResponse(state.calls)

    return [
        Route("/_sandbox/faults", add_fault, methods=["POST"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
        Route("/_sandbox/config", config, methods=["POST"]),
        Route("/_sandbox/seed", seed, methods=["POST"]),
        Route("/_sandbox/key", key, methods=["POST"]),
        Route("/_sandbox/sites", sites, methods=["POST"]),
        Route("/_sandbox/state", summary, methods=["GET"]),
        Route("/_sandbox/minted", minted, methods=["GET"]),
        Route("/_sandbox/calls", calls, methods=["GET"]),
        *_directory_control_routes(state),
    ]


def create_atlassian_app(state: AtlassianState) -> Starlette:
    """Build the stand-in as an ASGI app bound to `state` (serve with uvicorn or ASGITransport)."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietReset) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_QuietReset())

    def api(path: str, handler: Handler, method: str, family: str) -> Route:
        console = path.startswith(("/admin/account-management", "/users/"))
        style = (
            "errors"
            if path.startswith("/users/")
            else ("detail" if path.startswith("/admin/api-access") else "message")
        )
        endpoint = _api(state, handler, family=family, style=style, console=console)
        return Route(path, endpoint, methods=[method])

    # Literal paths come before `{id}` paths so "api-tokens" and "count" are not taken as ids.
    routes = [
        api(f"{CONSOLE}/service-accounts", list_accounts, "GET", "list"),
        api(f"{CONSOLE}/service-accounts", create_account, "POST", "create"),
        api(f"{CONSOLE}/service-accounts/invite", invite, "POST", "grant"),
        api(f"{USERS}/api-tokens", mint, "POST", "mint"),
        api(f"{USERS}/api-tokens", list_tokens, "GET", "list"),
        api(f"{USERS}/api-tokens/{{tokenId}}", revoke_token, "DELETE", "revoke"),
        api(f"{USERS}/lifecycle/delete", lifecycle_delete, "POST", "delete"),
        api("/admin/v2/orgs/{orgId}/workspaces", workspaces, "POST", "workspaces"),
        api(f"{ACCESS}/service-accounts", list_accounts, "GET", "list"),
        api(f"{ACCESS}/service-accounts", create_account, "POST", "create"),
        api(f"{ACCESS}/service-accounts/api-tokens", access_org_tokens, "GET", "list"),
        api(f"{ACCESS}/service-accounts/count", access_count, "POST", "list"),
        api(f"{ACCESS}/service-accounts/{{id}}", access_delete, "DELETE", "delete"),
        api(f"{ACCESS}/service-accounts/{{id}}/api-tokens", access_tokens, "GET", "list"),
        api(f"{ACCESS}/service-accounts/{{id}}/api-tokens", access_revoke_all, "DELETE", "revoke"),
        api(f"{ACCESS}/api-tokens", human_api_tokens, "GET", "api-tokens"),
        api(f"{ACCESS}/api-tokens", bulk_revoke_human_tokens, "DELETE", "revoke"),
        api(DIRECTORY_SEARCH, directory_search, "POST", "directory-search"),
        api(ORG_USERS, org_users, "GET", "org-users"),
    ]
    return Starlette(routes=routes + _control_routes(state))
