"""What the domain's operations need from the outside world, passed as one object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workflows.clock import Clock, system_clock
from workflows.db import Database
from workflows.policy import Policy
from workflows.ports import Notifier, StepObserver, Unobserved
from workflows.providers.atlassian import AtlassianAdmin
from workflows.request.quota import Usage, UsageCache, usage
from workflows.retries import SHIPPED, FailurePolicy


def _nothing() -> None:
    return None


@dataclass
class Runtime:
    db: Database
    policy: Policy
    atlassian: AtlassianAdmin
    notifier: Notifier
    cloud_id: str
    clock: Clock = system_clock
    # Called after a transaction that queued jobs commits: wakes an in-process worker.
    jobs_queued: Callable[[], None] = field(default=_nothing)
    # The organisation's quota when the policy does not say (ATLASSIAN_SERVICE_ACCOUNT_LIMIT).
    service_account_limit: int = 5
    # How often the saga's steps try again (the same policy as the Atlassian client's).
    retries: FailurePolicy = SHIPPED
    steps: StepObserver = field(default_factory=Unobserved)
    # The last count for the lines that only inform (see quota_usage).
    quota_lines: UsageCache = field(default_factory=UsageCache)

    async def quota_usage(self, *, fresh: bool = True) -> Usage:
        """The organisation's service accounts against its limit (see workflows.request.quota).
        `fresh=False` for a line that only informs (the form, Home): the last count, unless
        this process wrote since or it is older than `UsageCache.MAX_AGE_SECONDS`."""
        limit = self.policy.rules.service_account_limit or self.service_account_limit
        if fresh:
            return await usage(self.db, limit)
        return await self.quota_lines.get(self.db, limit)
