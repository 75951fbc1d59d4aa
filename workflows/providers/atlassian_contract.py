"""Every Atlassian admin route and body this app uses, in one place.

Facts from ../shared/reference/atlassian-service-accounts.md. When Atlassian changes a route or a
field, this module (and the sandbox that mirrors it) is the one edit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

CONSOLE = "/admin/account-management/v1/orgs/{org}"
# The documented ("API Access", experimental) routes: preferred where they do the job, with the
# console route as the fallback when Atlassian refuses them.
ACCESS = "/admin/api-access/v1/orgs/{org}"
LIST_PAGE_LIMIT = 80  # Atlassian answers 400 above 80 (console list)
# The two route sets, as `AtlassianAdmin.route_sets` names them.
API_ACCESS, CONSOLE_SET = "api-access", "console"
# Answers that say "this route is not here, or not for this key": nothing was done, so even a
# create may be sent again on the other route. 400: the documented route does not take this
# body or query; 501: the method is not implemented.
ROUTE_REFUSED = frozenset({400, 403, 404, 405, 501})
# The mint has no documented route; these answers (JSON, not an SSO page) say it is refused.
MINT_REFUSED = frozenset({403, 404, 405})
# Where an admin makes a service account's token by hand (admin.atlassian.com).
MANUAL_TOKEN_STEPS = (
    "admin.atlassian.com",
    "Directory",
    "Service accounts",
    "{account}",
    "Credentials",
    "Create API token",
)
DIRECTORY_LAG_TEXT = "not found in the directory"

# `jira-software`, not `jira`: the plain form is accepted and grants nothing.
PRODUCT_RESOURCES = {
    "jira": (
        "ari:cloud:jira-software::site/{cloud}",
        "ari:cloud:jira-software::role/product/member",
    ),
    "confluence": (
        "ari:cloud:confluence::site/{cloud}",
        "ari:cloud:confluence::role/product/member",
    ),
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    # Safe to send twice: a retry after a lost answer cannot make a second thing.
    idempotent: bool = True
    # 402/409 here means the service-account or licence quota is full (create, grant only).
    quota_limited: bool = False


@dataclass(frozen=True)
class RemoteAccount:
    id: str
    atlassian_id: str
    email: str
    display_name: str
    status: str
    description: str = ""


@dataclass(frozen=True)
class MintedToken:
    id: str
    label: str
    value: SecretStr
    expiry: str


@dataclass(frozen=True)
class RemoteToken:
    id: str
    label: str
    expiry: str | None
    # Last use as Atlassian reports it (`lastAccess` on the console list, `lastActiveAt` on
    # the documented one); None when never used, or when the route does not say.
    last_used: str | None = None
    created_at: str | None = None


def is_documented(route: Route) -> bool:
    """A route of the documented API Access set (which a scoped key may call)."""
    return route.path.startswith("/admin/api-access/")


# -- documented API Access routes (the service account's admin `id`) -------------------------


def access_list_accounts(org: str) -> Route:
    # No `limit`: the documented route does not say it takes one; links.next pages.
    return Route("GET", ACCESS.format(org=org) + "/service-accounts")


def access_create_account(org: str, display_name: str, description: str) -> Route:
    """Documented create. It may also take permission rules, but their field names are not
    certain, so product access is still granted through the console invite route."""
    return Route(
        "POST",
        ACCESS.format(org=org) + "/service-accounts",
        body={"displayName": display_name, "description": description},
        idempotent=False,
        quota_limited=True,
    )


def access_list_tokens(org: str, account_id: str) -> Route:
    return Route("GET", ACCESS.format(org=org) + f"/service-accounts/{account_id}/api-tokens")


def access_revoke_all_tokens(org: str, account_id: str) -> Route:
    """Documented as revoking EVERY token of the account: only for "revoke them all"."""
    return Route("DELETE", ACCESS.format(org=org) + f"/service-accounts/{account_id}/api-tokens")


def delete_account(org: str, account_id: str) -> Route:
    """The documented delete; which id it takes is unsure, so the admin `id`, as the other
    documented routes take (the console fallback takes the atlassianId)."""
    return Route("DELETE", ACCESS.format(org=org) + f"/service-accounts/{account_id}")


# -- console routes (the fallback; an unscoped key only) ---------------------------------------


def list_accounts(org: str) -> Route:
    return Route(
        "GET", CONSOLE.format(org=org) + "/service-accounts", params={"limit": LIST_PAGE_LIMIT}
    )


def create_account(org: str, display_name: str, description: str) -> Route:
    return Route(
        "POST",
        CONSOLE.format(org=org) + "/service-accounts",
        body={"displayName": display_name, "description": description},
        idempotent=False,
        quota_limited=True,
    )


def grant_access(org: str, atlassian_id: str, product: str, cloud_id: str) -> Route:
    resource, role = PRODUCT_RESOURCES[product]
    rule = {"resource": resource.format(cloud=cloud_id), "role": role}
    return Route(
        "POST",
        CONSOLE.format(org=org) + "/service-accounts/invite",
        body={"userIds": [atlassian_id], "permissionRules": [rule]},
        quota_limited=True,
    )


def mint_token(atlassian_id: str, label: str, scopes: list[str], expiry: datetime) -> Route:
    # The field must be `expiry` (RFC 3339); `expiresAt` is refused with INVALID_EXPIRY.
    body = {"label": label, "scopes": scopes, "expiry": expiry.isoformat().replace("+00:00", "Z")}
    return Route("POST", f"/users/{atlassian_id}/manage/api-tokens", body=body, idempotent=False)


def list_tokens(atlassian_id: str) -> Route:
    return Route("GET", f"/users/{atlassian_id}/manage/api-tokens")


def revoke_token(atlassian_id: str, token_id: str) -> Route:
    return Route("DELETE", f"/users/{atlassian_id}/manage/api-tokens/{token_id}")


def delete_account_lifecycle(atlassian_id: str, message: str) -> Route:
    """The console route, used when the documented one is refused; Atlassian keeps the account
    14 days."""
    return Route(
        "POST", f"/users/{atlassian_id}/manage/lifecycle/delete", body={"message": message}
    )


def find_sites(org: str) -> Route:
    return Route("POST", f"/admin/v2/orgs/{org}/workspaces", body={})


# -- discovery's reads: people, their UI activity and seats, their own API tokens -------------
# Read-only. `DELETE {ACCESS}/api-tokens` revokes EVERY managed user's token: never sent.

TOKEN_PAGE_SIZE = 100  # the most `GET /api-tokens` is taken to give in one page
DIRECTORY_PAGE_SIZE = 100


@dataclass(frozen=True)
class HumanToken:
    """A managed person's own API token (metadata; no route ever shows a value)."""

    id: str
    label: str
    status: str
    account_id: str
    name: str
    email: str
    created_at: datetime | None
    expires_at: datetime | None
    last_active_at: datetime | None


@dataclass(frozen=True)
class DirectoryUser:
    """A person in the organisation's directory. `product_activity`: product key -> the last
    time they viewed its pages (API calls do not count; lags up to 24 h), None when never."""

    account_id: str
    account_type: str
    status: str
    name: str
    email: str
    mfa_enabled: bool | None
    product_activity: dict[str, datetime | None]


def human_tokens(org: str, cursor: str | None = None) -> Route:
    """`GET /api-tokens` (documented, not experimental): every managed user's API tokens."""
    params: dict[str, Any] = {"pageSize": TOKEN_PAGE_SIZE}
    if cursor:
        params["cursor"] = cursor
    return Route("GET", ACCESS.format(org=org) + "/api-tokens", params=params)


def search_directory(org: str, cursor: str | None = None) -> Route:
    """The v2 directory search (the GET form stops working after 2027-06-30). A read, so safe
    to send again."""
    body: dict[str, Any] = {"limit": DIRECTORY_PAGE_SIZE, "expand": ["productAccess", "groups"]}
    if cursor:
        body["cursor"] = cursor
    return Route("POST", f"/admin/v2/orgs/{org}/directories/-/users/search", body=body)


def org_users(org: str, cursor: str | None = None) -> Route:
    """The v1 user list: the only read that says whether a person holds a billable seat."""
    return Route("GET", f"/admin/v1/orgs/{org}/users", params={"cursor": cursor} if cursor else {})


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (with or without a zone: UTC), or epoch seconds or milliseconds; else None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def page_items(body: Any) -> list[dict[str, Any]]:
    """A page's items: `data` (the published samples) or `items`."""
    if not isinstance(body, dict):
        return []
    items = body.get("data", body.get("items", []))
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def parse_human_token(item: dict[str, Any]) -> HumanToken:
    user = item.get("user") or {}
    return HumanToken(
        id=str(item["id"]),
        label=str(item.get("label") or ""),
        status=str(item.get("status") or ""),
        account_id=str(user.get("id") or ""),
        name=str(user.get("name") or ""),
        email=str(user.get("email") or ""),
        created_at=parse_time(item.get("createdAt")),
        expires_at=parse_time(item.get("expiresAt")),
        last_active_at=parse_time(item.get("lastActiveAt")),
    )


def parse_directory_user(item: dict[str, Any]) -> DirectoryUser:
    activity: dict[str, datetime | None] = {}
    for access in item.get("productAccess") or []:
        if isinstance(access, dict) and access.get("key"):
            key = str(access["key"])
            seen = parse_time(access.get("lastActiveTimestamp"))
            known = activity.get(key)
            activity[key] = max(filter(None, (known, seen)), default=None)
    mfa = item.get("mfaEnabled")
    return DirectoryUser(
        account_id=str(item["accountId"]),
        account_type=str(item.get("accountType") or ""),
        status=str(item.get("status") or ""),
        name=str(item.get("name") or ""),
        email=str(item.get("email") or ""),
        mfa_enabled=mfa if isinstance(mfa, bool) else None,
        product_activity=activity,
    )


def parse_billable(item: dict[str, Any]) -> tuple[str, bool]:
    """(account id, holds a billable seat) from a v1 user."""
    return str(item["account_id"]), item.get("access_billable") is True


def parse_account(item: dict[str, Any]) -> RemoteAccount:
    return RemoteAccount(
        id=str(item["id"]),
        atlassian_id=str(item["atlassianId"]),
        email=str(item.get("email", "")),
        display_name=str(item.get("displayName", "")),
        status=str(item.get("status", "")),
        description=str(item.get("description") or ""),
    )


def parse_minted(body: dict[str, Any]) -> MintedToken:
    return MintedToken(
        id=str(body["id"]),
        label=str(body.get("label", "")),
        value=SecretStr(str(body["token"])),
        expiry=str(body.get("expiry", "")),
    )


def parse_tokens(body: Any) -> list[RemoteToken]:
    """Either list: the console's bare array (`expiry`) or the documented `{items}` page,
    whose items likely carry `expiresAt` instead."""
    items = body if isinstance(body, list) else body.get("items", [])
    return [
        RemoteToken(
            id=str(t["id"]),
            label=str(t.get("label", "")),
            expiry=t.get("expiry") or t.get("expiresAt"),
            last_used=t.get("lastAccess") or t.get("lastActiveAt"),
            created_at=t.get("createdAt"),
        )
        for t in items
    ]


def parse_site_ids(body: dict[str, Any]) -> list[str]:
    """Cloud ids of the organisation's Jira/Confluence sites (`ari:cloud:jira::site/<id>`)."""
    ids = []
    for workspace in body.get("data", []):
        ari = str(workspace.get("id", ""))
        if "::site/" in ari:
            ids.append(ari.rsplit("/", 1)[1])
    return sorted(set(ids))


def parse_site_products(body: dict[str, Any]) -> dict[str, set[str]]:
    """Cloud id -> the products on that site, by the workspaces' `attributes.typeKey`
    (`jira-software`, `confluence`, ...)."""
    products: dict[str, set[str]] = {}
    for workspace in body.get("data", []):
        ari = str(workspace.get("id", ""))
        kind = (workspace.get("attributes") or {}).get("typeKey")
        if "::site/" in ari and isinstance(kind, str):
            products.setdefault(ari.rsplit("/", 1)[1], set()).add(kind)
    return products


def next_page(body: dict[str, Any]) -> str | None:
    links = body.get("links") or {}
    return links.get("next") or None


def is_page(content_type: str, text: str) -> bool:
    """An HTML page (an SSO or proxy wall), not an answer of the API."""
    return "html" in content_type.lower() or text.lstrip().startswith("<")


def error_text(status: int, content_type: str, text: str) -> str:
    """A short readable reason from any of Atlassian's error body shapes (or an HTML page)."""
    if is_page(content_type, text):
        return "an HTML page came back instead of JSON (an SSO or proxy wall?)"
    try:
        body = json.loads(text)
    except ValueError:
        return text[:200] or f"HTTP {status}"
    return _message_of(body) or f"HTTP {status}"


def _message_of(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    for key in ("message", "detail", "error"):
        if isinstance(body.get(key), str) and body[key]:
            return str(body[key])[:300]
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        parts = [str(first[k]) for k in ("code", "title", "detail") if first.get(k)]
        return ": ".join(parts)[:300]
    return ""
