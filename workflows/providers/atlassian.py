"""Atlassian admin API client: httpx, a timeout on every call, bounded retries.

Routes and bodies come from `atlassian_contract`, how often to try from `workflows.retries`; this
module only sends them and decides what a failure means: worth retrying, or final with a reason
a person can act on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from workflows.providers import atlassian_contract as contract
from workflows.retries import RETRYABLE_STATUS, SHIPPED, FailurePolicy

log = logging.getLogger(__name__)

# What httpx calls before each request is sent and as each answer arrives (`event_hooks`).
EventHooks = Mapping[str, list[Callable[[Any], Awaitable[None]]]]

API_ACCESS, CONSOLE = contract.API_ACCESS, contract.CONSOLE_SET
# The operations that have a documented route as well as a console one.
LIST, CREATE, DELETE, TOKENS, REVOKE_ALL = "list", "create", "delete", "tokens", "revoke_all"
# Operations on one account: their 404 may be the account's, not the route's.
PER_ACCOUNT = frozenset({DELETE, TOKENS, REVOKE_ALL})
# Operations with no documented route at all.
CONSOLE_ONLY = ("grant", "mint", "revoke_token")


class AtlassianError(Exception):
    """A call failed for good. `reason` is meant for people; it never holds a credential."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        transient: bool = False,
        detail: str = "",
        page: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason, self.status, self.transient = reason, status, transient
        # Atlassian's own words, and whether an HTML page (an SSO or proxy wall) came back.
        self.detail, self.page = detail, page


class MintRefused(AtlassianError):
    """The mint route refused a key that may call the console routes, for an account that is
    there. No documented route mints a token, so an admin makes it by hand in the console."""


def _explain(status: int, detail: str, route: contract.Route, *, scoped: bool = False) -> str:
    if status == 401:
        return f"Atlassian refused the API key (HTTP 401: {detail}); check ATLASSIAN_API_KEY"
    if status == 403 and scoped:
        return (
            f"Atlassian forbade the call (HTTP 403: {detail}); the organisation API key is "
            "most likely scoped: the documented API Access routes accept it, but this console "
            "route needs a key without scopes (set ATLASSIAN_API_KEY to one, made in "
            "admin.atlassian.com, Settings, API keys)"
        )
    if status == 403:
        return (
            f"Atlassian forbade the call (HTTP 403: {detail}); the organisation API key may "
            "be scoped (account routes need a key without scopes) or lack admin rights"
        )
    if status in (402, 409) and route.quota_limited:  # elsewhere 409 is e.g. a label in use
        return (
            f"the organisation's service-account or licence quota is full (HTTP {status}: {detail})"
        )
    return f"Atlassian answered HTTP {status}: {detail}"


def _redirected(response: httpx.Response) -> str:
    """A 3xx is never the API's answer (its routes do not redirect): say where it pointed,
    without the query, which may carry a sign-in ticket."""
    target = urlsplit(response.headers.get("location", ""))
    where = f" to {target.scheme}://{target.netloc}{target.path}" if target.netloc else ""
    return (
        f"Atlassian answered HTTP {response.status_code}, a redirect{where}, instead of an "
        "answer: ATLASSIAN_API_URL may be wrong, or a proxy or sign-in page is in the way"
    )


def _json_of(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise AtlassianError(
            f"Atlassian answered HTTP {response.status_code} with a page that is not JSON "
            "(an SSO or proxy wall?)",
            status=response.status_code,
        ) from None


def _seconds_until(reset: str, now: datetime) -> float | None:
    """X-RateLimit-Reset is documented as ISO 8601 UTC; epoch seconds are accepted too."""
    try:
        return float(reset) - now.timestamp()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - now).total_seconds()


class AtlassianAdmin:
    """The organisation's service accounts, as Atlassian's admin API offers them."""

    def __init__(
        self,
        base_url: str,
        org_id: str,
        api_key: SecretStr,
        *,
        retries: FailurePolicy = SHIPPED,
        timeout: float = 15.0,
        event_hooks: EventHooks | None = None,  # metrics, in bot/
        transport: httpx.AsyncBaseTransport | None = None,  # in-process tests only
    ) -> None:
        self.org_id = org_id
        # Only its `atlassian_request` and `grant_access` rules are this client's.
        self.retries = retries
        # Operation -> the route set that answered it: chosen once, for the client's life.
        self._routes: dict[str, str] = {}
        # A call's answer can come no later than this after it was sent.
        self.answer_window = timedelta(seconds=timeout)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            event_hooks=event_hooks,
            headers={
                "Authorization": f"Bearer {api_key.get_secret_value()}",
                "Accept": "application/json",
            },
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- routes ----------------------------------------------------------------------------

    async def find_site_ids(self) -> list[str]:
        return contract.parse_site_ids(await self._call(contract.find_sites(self.org_id)))

    async def create_service_account(
        self, display_name: str, description: str
    ) -> contract.RemoteAccount:
        # A refusal (4xx) made nothing, so the console route may be tried; a lost answer or a
        # 5xx may have made the account: that raises (transient) and the caller adopts by name.
        org = self.org_id
        _, body = await self._prefer_documented(
            CREATE,
            contract.access_create_account(org, display_name, description),
            contract.create_account(org, display_name, description),
        )
        return contract.parse_account(body)

    async def service_accounts(self) -> AsyncIterator[contract.RemoteAccount]:
        """Every service account of the organisation, following `links.next`."""
        _, body = await self._prefer_documented(
            LIST,
            contract.access_list_accounts(self.org_id),
            contract.list_accounts(self.org_id),
        )
        while True:
            for item in body.get("items", []):
                yield contract.parse_account(item)
            route = self._follow(contract.next_page(body))
            if route is None:
                return
            body = await self._call(route)

    async def find_by_display_name(self, display_name: str) -> list[contract.RemoteAccount]:
        return [a async for a in self.service_accounts() if a.display_name == display_name]

    async def grant_product(self, atlassian_id: str, product: str, cloud_id: str) -> None:
        """Grant product access; 202 counts as granted (Atlassian applies it later)."""
        route = contract.grant_access(self.org_id, atlassian_id, product, cloud_id)
        rule = self.retries.grant_access
        for attempt in range(1, rule.attempts + 1):
            try:
                await self._call(route)
                return
            except AtlassianError as error:
                lagging = error.status == 404 and contract.DIRECTORY_LAG_TEXT in error.reason
                if not lagging:
                    raise
                if attempt == rule.attempts:
                    raise AtlassianError(
                        f"the new account had still not reached Atlassian's directory after "
                        f"{attempt} tries over {rule.waited(attempt):.1f} s ({error.reason})",
                        status=404,
                        transient=True,
                    ) from None
                # A new account takes a while to reach the directory; re-sending is harmless.
                await asyncio.sleep(rule.wait(attempt))

    async def mint_token(
        self,
        atlassian_id: str,
        label: str,
        scopes: list[str],
        expiry: datetime,
        *,
        account_id: str | None = None,
    ) -> contract.MintedToken:
        """Mint through the console route (no documented route mints). MintRefused when that
        route refuses although the account is there and the key may use the console routes."""
        try:
            body = await self._call(contract.mint_token(atlassian_id, label, scopes, expiry))
        except AtlassianError as error:
            refused = error.status in contract.MINT_REFUSED and not error.page
            if refused and await self._only_the_mint_refused(atlassian_id, account_id):
                raise MintRefused(
                    f"Atlassian refused to mint the token (HTTP {error.status}: {error.detail}) "
                    "although the account is there and the API key may call the console "
                    "routes; no documented route mints a token",
                    status=error.status,
                    detail=error.detail,
                ) from None
            raise
        return contract.parse_minted(body)

    async def _only_the_mint_refused(self, atlassian_id: str, account_id: str | None) -> bool:
        """After a refused mint (403/404/405), tell a refused route from a missing account or
        a scoped key, by reading: the account's tokens through the console (an unscoped key
        only), else, when those routes are gone too, through the documented collection."""
        try:
            await self._call(contract.list_tokens(atlassian_id))
            return True
        except AtlassianError as probe:
            # 403: a scoped key (or no admin rights): the mint's own 403 explanation stands.
            if probe.status not in (404, 405) or account_id is None:
                return False
        try:
            await self._call(contract.access_list_tokens(self.org_id, account_id))
        except AtlassianError:
            return False  # the account is gone (or Atlassian is failing): not a manual step
        return True

    async def tokens(
        self, atlassian_id: str, account_id: str | None = None
    ) -> list[contract.RemoteToken]:
        """The account's live tokens: the documented route by admin `id` when it is known,
        else the console route by atlassianId."""
        documented = contract.access_list_tokens(self.org_id, account_id) if account_id else None
        _, body = await self._prefer_documented(
            TOKENS, documented, contract.list_tokens(atlassian_id)
        )
        found = contract.parse_tokens(body)
        while isinstance(body, dict) and (route := self._follow(contract.next_page(body))):
            body = await self._call(route)
            found += contract.parse_tokens(body)
        return found

    async def revoke_token(self, atlassian_id: str, token_id: str) -> None:
        """One token by id: only the console route revokes a single token."""
        try:
            await self._call(contract.revoke_token(atlassian_id, token_id))
        except AtlassianError as error:
            if error.status != 404:  # already gone is what we wanted
                raise

    async def revoke_all_tokens(
        self, atlassian_id: str, account_id: str | None = None
    ) -> list[contract.RemoteToken]:
        """Revoke every token of the account (the documented revoke-all, else one by one on
        the console); returns the tokens that were live when it started."""
        tokens = await self.tokens(atlassian_id, account_id)

        async def one_by_one() -> None:
            for token in tokens:
                await self.revoke_token(atlassian_id, token.id)

        documented = (
            contract.access_revoke_all_tokens(self.org_id, account_id) if account_id else None
        )
        await self._prefer_documented(
            REVOKE_ALL, documented, one_by_one, "DELETE /users/{atlassianId}/manage/api-tokens/{id}"
        )
        return tokens

    async def delete_service_account(self, account_id: str, atlassian_id: str, message: str) -> str:
        """Delete through the documented route, else the lifecycle route; says which worked."""
        chosen, _ = await self._prefer_documented(
            DELETE,
            contract.delete_account(self.org_id, account_id),
            contract.delete_account_lifecycle(atlassian_id, message),
        )
        return "api-access" if chosen == API_ACCESS else "lifecycle"

    # -- discovery's reads (read-only) -------------------------------------------------------

    async def human_tokens(self) -> AsyncIterator[list[contract.HumanToken]]:
        """Every managed user's API tokens, a page at a time (`links.next` is a cursor)."""
        async for body in self._cursor_pages(lambda c: contract.human_tokens(self.org_id, c)):
            yield [contract.parse_human_token(i) for i in contract.page_items(body)]

    async def directory_users(self) -> AsyncIterator[list[contract.DirectoryUser]]:
        """The directory with each person's product UI activity, a page at a time."""
        async for body in self._cursor_pages(lambda c: contract.search_directory(self.org_id, c)):
            yield [contract.parse_directory_user(i) for i in contract.page_items(body)]

    async def billable_seats(self) -> AsyncIterator[list[tuple[str, bool]]]:
        """(account id, billable) for every managed user, a page at a time."""
        async for body in self._cursor_pages(lambda c: contract.org_users(self.org_id, c)):
            yield [contract.parse_billable(i) for i in contract.page_items(body)]

    async def _cursor_pages(
        self, route_for: Callable[[str | None], contract.Route]
    ) -> AsyncIterator[Any]:
        """Follow a route's own `links.next`: a cursor for the next request, or (v1) a URL,
        of which only path and query are kept so requests stay on the base host. A cursor seen
        twice ends the walk instead of looping."""
        route, seen = route_for(None), set()
        while True:
            body = await self._call(route)
            yield body
            following = contract.next_page(body) if isinstance(body, dict) else None
            if not following or following in seen:
                return
            seen.add(following)
            looks_like_url = following.startswith("/") or "://" in following
            followed = self._follow(following) if looks_like_url else None
            route = followed if followed is not None else route_for(following)

    async def route_sets(self) -> dict[str, str]:
        """Which route set each operation uses: operation -> "api-access" | "console".

        Read-only (for `sabot doctor`): when the list has not been called yet, one page is
        read, documented route first. An operation not called yet is reported as the list
        answered (the documented set is one API, there or not as a whole); its first real
        call confirms it. grant, mint and revoke_token have console routes only.
        Raises AtlassianError when neither list route answers."""
        if LIST not in self._routes:
            _, body = await self._prefer_documented(
                LIST,
                contract.access_list_accounts(self.org_id),
                contract.list_accounts(self.org_id),
            )
            await self._probe_tokens(body)
        listed = self._routes.get(LIST, CONSOLE)
        sets = {op: self._routes.get(op, listed) for op in (LIST, CREATE, DELETE, TOKENS)}
        sets[REVOKE_ALL] = self._routes.get(REVOKE_ALL, listed)
        return sets | {op: CONSOLE for op in CONSOLE_ONLY}

    async def _probe_tokens(self, page: dict[str, Any]) -> None:
        """Read one live account's tokens, so the token route's set is known, not inferred."""
        live = [contract.parse_account(i) for i in page.get("items", [])]
        live = [a for a in live if a.status == "active"]
        if TOKENS in self._routes or not live:
            return
        try:
            await self.tokens(live[0].atlassian_id, live[0].id)
        except AtlassianError as error:
            log.info("could not read a token list to see its route set: %s", error.reason)

    # -- choosing between the documented and the console routes -----------------------------

    async def _prefer_documented(
        self,
        operation: str,
        documented: contract.Route | None,
        console: contract.Route | Callable[[], Awaitable[Any]],
        console_name: str = "",
    ) -> tuple[str, Any]:
        """The documented route, or the console one when Atlassian refuses the documented one
        (`ROUTE_REFUSED` in JSON: nothing was done, so even a create may go to the other
        route).

        The set that answered is kept for the client's life and logged once. Once the
        documented route answered, its refusals are the call's own (a 404: the account is
        not there) and raise. A per-account 404 while the documented list answers is the
        account's (or its id's): the console route serves that call, nothing is kept."""
        known, refused = self._routes.get(operation), None
        if documented is not None and known != CONSOLE:
            try:
                body = await self._call(documented)
            except AtlassianError as error:
                # An HTML page is a wall in front of Atlassian (SSO, proxy), not a refusal
                # by the route: it would stand in front of the console route too.
                if known == API_ACCESS or error.page or error.status not in contract.ROUTE_REFUSED:
                    raise
                refused = error
            else:
                self._chose(operation, API_ACCESS, f"{documented.method} {documented.path}")
                return API_ACCESS, body
        if isinstance(console, contract.Route):
            body, console_name = await self._call(console), f"{console.method} {console.path}"
        else:
            body = await console()
        account_404 = (
            refused is not None
            and operation in PER_ACCOUNT
            and refused.status == 404
            and self._routes.get(LIST) == API_ACCESS
        )
        if refused is not None and not account_404:
            self._chose(operation, CONSOLE, console_name, refused)
        return CONSOLE, body

    def _chose(
        self, operation: str, chosen: str, route: str, refused: AtlassianError | None = None
    ) -> None:
        if operation in self._routes:
            return
        self._routes[operation] = chosen
        route = route.split("?")[0]
        if refused is None:
            log.info("Atlassian %s: using the documented API Access route (%s)", operation, route)
        else:
            log.info(
                "Atlassian %s: the documented API Access route was refused (%s); using the "
                "console route (%s)",
                operation,
                refused.reason,
                route,
            )

    # -- transport -------------------------------------------------------------------------

    def _follow(self, next_url: str | None) -> contract.Route | None:
        if not next_url:
            return None
        # links.next is absolute: keep only path and query, so requests stay on the base host.
        parts = urlsplit(next_url)
        return contract.Route("GET", parts.path + (f"?{parts.query}" if parts.query else ""))

    async def _call(self, route: contract.Route) -> Any:
        last, rule = "no attempt made", self.retries.atlassian_request
        for attempt in range(1, rule.attempts + 1):
            try:
                response = await self._http.request(
                    route.method, route.path, params=route.params or None, json=route.body
                )
            except httpx.TransportError as error:
                if not route.idempotent:
                    # The request may have reached Atlassian: the caller decides (adopt by name,
                    # revoke by label) instead of blindly sending it again.
                    raise AtlassianError(
                        f"no answer from Atlassian ({type(error).__name__})", transient=True
                    ) from None
                last = f"no answer ({type(error).__name__})"
                delay = rule.wait(attempt)
            else:
                if response.status_code < 300:
                    return _json_of(response)
                if response.status_code < 400:
                    raise AtlassianError(_redirected(response), status=response.status_code)
                content_type = response.headers.get("content-type", "")
                detail = contract.error_text(response.status_code, content_type, response.text)
                status = response.status_code
                if status not in RETRYABLE_STATUS:
                    # A console 403 to a key the documented routes took: a scoped key.
                    scoped = not contract.is_documented(route) and API_ACCESS in set(
                        self._routes.values()
                    )
                    raise AtlassianError(
                        _explain(status, detail, route, scoped=scoped),
                        status=status,
                        detail=detail,
                        page=contract.is_page(content_type, response.text),
                    )
                last = f"HTTP {status}: {detail}"
                if not route.idempotent and status != 429:
                    # Only a 429 says the request was not acted on; a 5xx may follow a create
                    # that happened, so as with a lost answer the caller adopts or revokes.
                    raise AtlassianError(
                        f"Atlassian answered {last}", status=status, transient=True
                    )
                delay = self._retry_delay(response, attempt)
            log.info(
                "atlassian %s %s: %s; retry %d/%d in %.1fs",
                route.method,
                route.path.split("?")[0],
                last,
                attempt,
                rule.attempts,
                delay,
            )
            if attempt < rule.attempts:
                await asyncio.sleep(delay)
        raise AtlassianError(
            f"Atlassian kept failing after {rule.attempts} attempts (last: {last})",
            transient=True,
        )

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        """Retry-After when present, else the rate-limit reset time, else backoff; capped."""
        rule = self.retries.atlassian_request
        wait: float | None = None
        if "retry-after" in response.headers:
            try:
                wait = float(response.headers["retry-after"])
            except ValueError:
                wait = None
        elif "x-ratelimit-reset" in response.headers:
            wait = _seconds_until(response.headers["x-ratelimit-reset"], datetime.now(UTC))
        if wait is None:
            return rule.wait(attempt)
        return min(max(wait, 0.0), rule.cap)
