"""Atlassian admin API client: httpx, a timeout on every call, bounded retries.

Routes and bodies come from `atlassian_contract`; this module only sends them and decides what a
failure means: worth retrying, or final with a reason a person can act on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from workflows.providers import atlassian_contract as contract

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Seconds are settings so tests can run the same logic fast."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    # 404 "not found in the directory" right after create: wait 2 s, 4 s, 8 s ... up to this many.
    propagation_attempts: int = 7
    propagation_base_delay: float = 2.0


class AtlassianError(Exception):
    """A call failed for good. `reason` is meant for people; it never holds a credential."""

    def __init__(self, reason: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.status, self.transient = reason, status, transient


def _explain(status: int, detail: str, route: contract.Route) -> str:
    if status == 401:
        return f"Atlassian refused the API key (HTTP 401: {detail}); check ATLASSIAN_API_KEY"
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
        retry: RetryPolicy | None = None,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,  # in-process tests only
    ) -> None:
        self.org_id = org_id
        self.retry = retry or RetryPolicy()
        # A call's answer can come no later than this after it was sent.
        self.answer_window = timedelta(seconds=timeout)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
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
        body = await self._call(contract.create_account(self.org_id, display_name, description))
        return contract.parse_account(body)

    async def service_accounts(self) -> AsyncIterator[contract.RemoteAccount]:
        """Every service account of the organisation, following `links.next`."""
        route: contract.Route | None = contract.list_accounts(self.org_id)
        while route is not None:
            body = await self._call(route)
            for item in body.get("items", []):
                yield contract.parse_account(item)
            route = self._follow(contract.next_page(body))

    async def find_by_display_name(self, display_name: str) -> list[contract.RemoteAccount]:
        return [a async for a in self.service_accounts() if a.display_name == display_name]

    async def grant_product(self, atlassian_id: str, product: str, cloud_id: str) -> None:
        """Grant product access; 202 counts as granted (Atlassian applies it later)."""
        route = contract.grant_access(self.org_id, atlassian_id, product, cloud_id)
        for attempt in range(1, self.retry.propagation_attempts + 1):
            try:
                await self._call(route)
                return
            except AtlassianError as error:
                lagging = error.status == 404 and contract.DIRECTORY_LAG_TEXT in error.reason
                if not lagging:
                    raise
                if attempt == self.retry.propagation_attempts:
                    waited = self.retry.propagation_base_delay * (2 ** (attempt - 1) - 1)
                    raise AtlassianError(
                        f"the new account had still not reached Atlassian's directory after "
                        f"{attempt} tries over {waited:.1f} s ({error.reason})",
                        status=404,
                        transient=True,
                    ) from None
                # A new account takes a while to reach the directory; re-sending is harmless.
                await asyncio.sleep(self.retry.propagation_base_delay * 2 ** (attempt - 1))

    async def mint_token(
        self, atlassian_id: str, label: str, scopes: list[str], expiry: datetime
    ) -> contract.MintedToken:
        body = await self._call(contract.mint_token(atlassian_id, label, scopes, expiry))
        return contract.parse_minted(body)

    async def tokens(self, atlassian_id: str) -> list[contract.RemoteToken]:
        return contract.parse_tokens(await self._call(contract.list_tokens(atlassian_id)))

    async def revoke_token(self, atlassian_id: str, token_id: str) -> None:
        try:
            await self._call(contract.revoke_token(atlassian_id, token_id))
        except AtlassianError as error:
            if error.status != 404:  # already gone is what we wanted
                raise

    async def revoke_all_tokens(self, atlassian_id: str) -> list[contract.RemoteToken]:
        """Revoke every token of the account, one by one (the console routes); returns them."""
        tokens = await self.tokens(atlassian_id)
        for token in tokens:
            await self.revoke_token(atlassian_id, token.id)
        return tokens

    async def delete_service_account(self, account_id: str, atlassian_id: str, message: str) -> str:
        """Delete through the documented route, else the lifecycle route; says which worked."""
        try:
            await self._call(contract.delete_account(self.org_id, account_id))
            return "api-access"
        except AtlassianError as error:
            if error.status not in (400, 403, 404, 405, 501):
                raise
            log.info("documented delete refused (HTTP %s); using the lifecycle route", error.status)
        await self._call(contract.delete_account_lifecycle(atlassian_id, message))
        return "lifecycle"

    # -- transport -------------------------------------------------------------------------

    def _follow(self, next_url: str | None) -> contract.Route | None:
        if not next_url:
            return None
        # links.next is absolute: keep only path and query, so requests stay on the base host.
        parts = urlsplit(next_url)
        return contract.Route("GET", parts.path + (f"?{parts.query}" if parts.query else ""))

    async def _call(self, route: contract.Route) -> Any:
        last = "no attempt made"
        for attempt in range(1, self.retry.attempts + 1):
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
                delay = self._backoff(attempt)
            else:
                if response.status_code < 300:
                    return _json_of(response)
                if response.status_code < 400:
                    raise AtlassianError(_redirected(response), status=response.status_code)
                detail = contract.error_text(
                    response.status_code, response.headers.get("content-type", ""), response.text
                )
                status = response.status_code
                if status not in RETRYABLE_STATUS:
                    raise AtlassianError(_explain(status, detail, route), status=status)
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
                self.retry.attempts,
                delay,
            )
            if attempt < self.retry.attempts:
                await asyncio.sleep(delay)
        raise AtlassianError(
            f"Atlassian kept failing after {self.retry.attempts} attempts (last: {last})",
            transient=True,
        )

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        """Retry-After when present, else the rate-limit reset time, else backoff; capped."""
        wait: float | None = None
        if "retry-after" in response.headers:
            try:
                wait = float(response.headers["retry-after"])
            except ValueError:
                wait = None
        elif "x-ratelimit-reset" in response.headers:
            wait = _seconds_until(response.headers["x-ratelimit-reset"], datetime.now(UTC))
        if wait is None:
            return self._backoff(attempt)
        return min(max(wait, 0.0), self.retry.max_delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter, so replicas do not retry in step
