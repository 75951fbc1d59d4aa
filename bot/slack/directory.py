"""User groups, resolved with Slack's usergroups.users.list and cached briefly."""

from __future__ import annotations

import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

CACHE_SECONDS = 60.0


class SlackDirectory:
    """The domain's `Directory`: members of a user group.

    Listing who could approve may use a copy up to a minute old; a click asks Slack afresh
    (`fresh=True`), so someone removed from a group cannot approve a minute later.
    """

    def __init__(self, client: AsyncWebClient, ttl: float = CACHE_SECONDS) -> None:
        self.client, self.ttl = client, ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_id: str, *, fresh: bool = False) -> frozenset[str]:
        cached = self._cache.get(group_id)
        if cached and not fresh and cached[0] > time.monotonic():
            return cached[1]
        answer = await self.client.usergroups_users_list(usergroup=group_id)
        members = frozenset(answer.get("users") or [])
        self._cache[group_id] = (time.monotonic() + self.ttl, members)
        return members

    async def is_deactivated(self, user_id: str) -> bool:
        """`users.info` says `deleted` once a person's Slack account is deactivated."""
        answer = await self.client.users_info(user=user_id)
        return bool((answer.get("user") or {}).get("deleted"))

    async def user_by_email(self, email: str) -> str | None:
        """`users.lookupByEmail` (users:read.email); `users_not_found` is nobody."""
        try:
            answer = await self.client.users_lookupByEmail(email=email)
        except SlackApiError as error:
            if error.response.get("error") == "users_not_found":
                return None
            raise
        user = answer.get("user") or {}
        return None if user.get("deleted") else str(user["id"])
