"""A token's use as Atlassian reports it (`lastAccess` / `lastActiveAt`): read by the daily
idle check and by expiry warnings (which say so when the token is unused)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from workflows.models import ApiToken, ServiceAccount
from workflows.ports import TokenUse
from workflows.providers.atlassian import AtlassianError
from workflows.providers.atlassian_contract import RemoteToken
from workflows.runtime import Runtime

log = logging.getLogger(__name__)


def moment(value: Any) -> datetime | None:
    """An Atlassian time: ISO 8601 (`...Z`), or epoch seconds or milliseconds; else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def made(token: ApiToken, remote: RemoteToken | None) -> datetime:
    """When the token was made: Atlassian's word for it, else when sabot minted it."""
    return (remote and moment(remote.created_at)) or token.delivered_at or token.created_at


def use_of(now: datetime, last_used: datetime | None, created: datetime) -> TokenUse:
    since = last_used or created
    return TokenUse(idle_days=max((now - since).days, 0), never_used=last_used is None)


def match(token: ApiToken, remote: Sequence[RemoteToken]) -> RemoteToken | None:
    """The token at Atlassian: by its id when sabot knows it (a hand-made one by its label)."""
    for found in remote:
        if token.atlassian_token_id and found.id == token.atlassian_token_id:
            return found
    if token.atlassian_token_id:
        return None
    return next((found for found in remote if found.label == token.label), None)


async def remote_tokens(runtime: Runtime, account: ServiceAccount) -> list[RemoteToken] | None:
    """The account's live tokens at Atlassian; None when they could not be read."""
    if not account.atlassian_account_id:
        return None
    try:
        return await runtime.atlassian.tokens(account.atlassian_account_id, account.atlassian_id)
    except AtlassianError as error:
        log.warning("could not read the tokens of %s at Atlassian: %s", account.name, error.reason)
        return None


def unused(
    runtime: Runtime, token: ApiToken, remote: Sequence[RemoteToken] | None
) -> TokenUse | None:
    """For an expiry warning: the token's use if it is unused (for N days, or ever); None if
    it is in use or its use is not known. `remote`: the account's tokens at Atlassian as read
    now (None: unreadable), else the last daily check's reading counts."""
    now, days = runtime.clock(), runtime.policy.rules.lifecycle.idle_token_days
    found = match(token, remote) if remote is not None else None
    if found is not None:
        use = use_of(now, moment(found.last_used), made(token, found))
    elif token.use_checked_at is not None:
        use = use_of(now, token.last_used_at, made(token, None))
    else:
        return None
    return use if use.never_used or use.idle_days >= days else None
