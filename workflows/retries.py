"""Every failure policy in one place: what sabot tries again, how many times, how long it waits
in between, and why those numbers.

Three layers, from the inside out:

1. One HTTP request, inside its client, within seconds: `atlassian_request` (every Atlassian
   route), `slack_ratelimited` and `slack_connection` (every Slack Web API call).
2. One saga step, around whole requests, where a lost answer may mean the thing was done:
   `create_account`, `grant_access`, `mint_token`. Delivering a token is never retried: a
   failed delivery revokes the token and reopens Reveal, and the owner clicks again.
3. One job, run again later from the database (it survives a restart): `jobs` for every kind,
   `unconfirmed_create` for a provision whose create could not be settled. After a job's last
   attempt it fails for good, and the give-up handlers (`workflows/jobs/handlers.py`) end a
   provisioning or a Reveal clearly instead of leaving it half-way.

Some numbers are settings, so operators can change them and tests can make them small
(`Settings.failure_policy` in bot/process/settings.py); the values here are the shipped
defaults, which the settings take from here. slack_sdk's Socket Mode reconnects are its own.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import timedelta

# What a gateway or an overloaded service answers: worth another try. Any other status is the
# API's final answer to this request.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryRule:
    """Up to `attempts` tries in all, the first included. After failed try n the wait is
    `backoff * 2**(n - 1)` seconds, at most `cap`; with `jitter`, a random part of it between
    half and all, so that replicas failing together do not retry in step."""

    attempts: int
    backoff: float = 0.0
    cap: float = math.inf
    jitter: bool = False

    def wait(self, failed: int) -> float:
        """Seconds to wait after `failed` tries have failed, before the next one."""
        ceiling = self._ceiling(failed)
        return random.uniform(ceiling / 2, ceiling) if self.jitter else ceiling

    def waited(self, tries: int) -> float:
        """The waits before try `tries`, added up (their most, when jittered)."""
        return sum(self._ceiling(n) for n in range(1, tries))

    def _ceiling(self, failed: int) -> float:
        return min(self.cap, self.backoff * 2 ** (failed - 1))


@dataclass(frozen=True)
class FailurePolicy:
    """The rules of every retry; the defaults are what sabot ships with."""

    # One HTTP request to Atlassian (ATLASSIAN_RETRY_ATTEMPTS, _BASE_SECONDS, _MAX_SECONDS): a
    # RETRYABLE_STATUS, or no answer to a request safe to send twice (a create or a mint is
    # never re-sent here: a lost answer may have made it, and its step decides). Five tries,
    # waiting 1, 2, 4, 8 s (jittered): a burst limit or a brief outage passes, and a longer one
    # is left to the step and the job. A Retry-After or X-RateLimit-Reset replaces the backoff,
    # but is waited at most the 30 s cap, so one call does not hold a worker slot for minutes.
    atlassian_request: RetryRule = RetryRule(attempts=5, backoff=1.0, cap=30.0, jitter=True)
    # The grant right after a create, while Atlassian answers 404 "not found in the directory"
    # (ATLASSIAN_PROPAGATION_ATTEMPTS, _BASE_SECONDS): a new account takes a while to reach
    # the directory, and the advice is a backoff from 2 s (2, 4, 8 s ...); re-sending a grant is
    # harmless. Seven tries wait 2 + 4 + ... + 64 = 126 s in all before the request fails.
    grant_access: RetryRule = RetryRule(attempts=7, backoff=2.0)
    # A Slack 429 (SLACK_RETRY_ATTEMPTS retries after the first try, SLACK_RETRY_MAX_WAIT_SECONDS):
    # the wait is Slack's Retry-After, shared by every call of that method in the process. A
    # Retry-After longer than the cap fails the call at once, so a long Slack outage fails the
    # job, which runs again later, instead of a worker waiting on it.
    slack_ratelimited: RetryRule = RetryRule(attempts=4, cap=30.0)
    # A Slack connection closed or reset under a request: two more tries, at the waits of
    # slack_sdk's handler (0.5 s, then 1 s, each plus up to 1 s).
    slack_connection: RetryRule = RetryRule(attempts=3)
    # Every kind of job whose run raised: 8 runs, waiting 2, 4, 8, 16, 32, 60, 60 s (about
    # three minutes; never more than a minute late for the next). A failure that outlasts the
    # retries inside the run and these is not a passing one: the job fails for good.
    jobs: RetryRule = RetryRule(attempts=8, backoff=2.0, cap=60.0)
    # After a create's answer window (ATLASSIAN_TIMEOUT_SECONDS) Atlassian may take this much
    # longer to list the account it made; a second create before then could make a twin.
    create_settle: timedelta = timedelta(seconds=5)

    @property
    def create_account(self) -> RetryRule:
        """The create step: as many tries as one request, with its waits uncapped (1, 2, 4, 8
        s). Each try after the first looks for the account an earlier lost answer may have
        made (by its marker) before it creates again."""
        request = self.atlassian_request
        return RetryRule(attempts=request.attempts, backoff=request.backoff)

    @property
    def mint_token(self) -> RetryRule:
        """The mint step, as the create: each try first revokes, by its label, whatever the
        last one may have minted."""
        return self.create_account

    @property
    def unconfirmed_create(self) -> RetryRule:
        """The provision job again while Atlassian's account list cannot be read to settle
        whether a create happened: up to as many runs as one request has tries, waiting 2, 4,
        8, 16 s (the request's waits one doubling on, capped as they are). Failing sooner
        could leave an account nobody knows of."""
        request = self.atlassian_request
        return RetryRule(attempts=request.attempts, backoff=2 * request.backoff, cap=request.cap)


SHIPPED = FailurePolicy()
# `sabot doctor`: each request once. It reports what Atlassian answers now, within its own time
# limit; retries would outlast that and hide a fault it is looking for.
ONCE = replace(SHIPPED, atlassian_request=RetryRule(attempts=1))
