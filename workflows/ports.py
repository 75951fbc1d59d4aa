"""How the domain talks to people, without knowing it is Slack, and who watches it work.

`bot/` implements `Notifier` with the Slack Web API, and `StepObserver` with metrics and log
context; tests and the CLI may implement them otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import SecretStr

from workflows.models import Decision, ServiceAccount, ServiceAccountRequest
from workflows.states import Step


@dataclass(frozen=True)
class MessageRef:
    channel_id: str
    ts: str


@dataclass(frozen=True)
class RequestSnapshot:
    """Everything a message about one request shows, read in one transaction."""

    request: ServiceAccountRequest
    decisions: list[Decision] = field(default_factory=list)
    account: ServiceAccount | None = None
    quorum: int = 1
    break_glass_allowed: bool = False

    def fingerprint(self) -> tuple[object, ...]:
        """Everything a message shows; equal fingerprints render equal messages."""
        r, a = self.request, self.account
        decisions = tuple((d.approver_id, d.verdict, d.reason, d.counts) for d in self.decisions)
        account = (a.email, a.reveal_status, a.revealed_at, a.revoked_by) if a else None
        return (r.status, r.status_reason, r.decided_by, r.updated_at, decisions, account)


@dataclass(frozen=True)
class ReplyTarget:
    """Where to answer the person who clicked: the click's response_url, else an ephemeral."""

    user_id: str
    channel_id: str | None = None
    response_url: str | None = None


@dataclass(frozen=True)
class TokenDelivery:
    """The one moment a token value exists outside Atlassian: from mint to ephemeral reply."""

    request_short_id: str
    account_name: str
    email: str
    token: SecretStr  # repr and str show '**********'
    label: str
    expires_at: datetime
    cloud_id: str
    products: list[str]


@dataclass(frozen=True)
class ManualToken:
    """A token Atlassian would not mint: what an admin needs to make it by hand in the
    console, and whom to give it to. No value: sabot never sees this token."""

    request_short_id: str
    account_name: str
    email: str
    owner_id: str
    label: str  # the name to give it, so a later revoke by label finds it
    scopes: list[str]
    expires_at: datetime  # what the policy would have used
    products: list[str]
    cloud_id: str
    reason: str  # Atlassian's refusal, in its words


@dataclass(frozen=True)
class TokenUse:
    """What Atlassian said of a token's use: last used `idle_days` ago, or never (in the
    `idle_days` since it was made)."""

    idle_days: int
    never_used: bool


@dataclass(frozen=True)
class IdleToken:
    """A token its owner is asked about: Keep it, or Revoke it."""

    request_id: int
    account_name: str
    owner_id: str
    token_id: int  # sabot's row id, what the buttons carry
    label: str
    use: TokenUse
    expires_at: datetime | None


@dataclass(frozen=True)
class IdleAccount:
    """An account proposed for deletion: no token used, or no live token, for `idle_days`."""

    request_id: int
    account_name: str
    owner_id: str
    idle_days: int
    live_tokens: int


@dataclass(frozen=True)
class Replacement:
    """A service account offered in place of a person's own API token (a discovery finding)."""

    account_id: str  # the person's Atlassian account
    person_id: str  # the person in Slack
    email: str
    name: str
    token_label: str  # the token to replace
    offered_by: str
    reasons: list[str]
    request_ref: str | None = None  # SA-12, once the person has asked
    service_account: str | None = None  # its name


class Notifier(Protocol):
    async def post_approval_request(self, snapshot: RequestSnapshot) -> MessageRef: ...

    async def post_requester_card(self, snapshot: RequestSnapshot) -> MessageRef: ...

    async def post_approval_dm(self, user_id: str, snapshot: RequestSnapshot) -> MessageRef: ...

    async def remind(self, ref: MessageRef, snapshot: RequestSnapshot) -> None: ...

    async def escalate(
        self, ref: MessageRef, snapshot: RequestSnapshot, users: list[str], groups: list[str]
    ) -> None: ...

    async def alert_break_glass(self, snapshot: RequestSnapshot) -> None: ...

    async def offer_new_token(self, snapshot: RequestSnapshot) -> None: ...

    async def alert_orphan(self, admin_id: str, snapshot: RequestSnapshot) -> None: ...

    async def tell(self, user_id: str, text: str) -> None: ...

    async def tell_approvers(self, text: str) -> None: ...

    async def warn_expiry(
        self,
        snapshot: RequestSnapshot,
        label: str,
        expires_at: datetime,
        days: int,
        use: TokenUse | None = None,
    ) -> None:
        """`use`: given when the token is known to be unused (for long, or ever)."""
        ...

    async def ask_idle_token(self, idle: IdleToken) -> None:
        """DM the owner: this token is idle; Keep or Revoke?"""
        ...

    async def propose_deletion(self, user_id: str, idle: IdleAccount, can_delete: bool) -> None:
        """DM the owner or an admin: this account is idle; Delete (admins) or Keep?"""
        ...

    async def offer_replacement(self, offer: Replacement) -> None:
        """DM the person: a service account in place of their token, with the form's button."""
        ...

    async def ask_to_revoke_old_token(
        self, user_id: str, replacement: Replacement, as_admin: bool
    ) -> None:
        """DM the person or an admin: the new token is out; confirm the old one can go."""
        ...

    async def tell_old_token_revoked(self, user_id: str, replacement: Replacement) -> None: ...

    async def update_message(
        self, kind: str, ref: MessageRef, snapshot: RequestSnapshot
    ) -> None: ...

    async def post_in_thread(self, ref: MessageRef, text: str) -> None: ...

    async def tell_account_ready(self, snapshot: RequestSnapshot) -> None: ...

    async def deliver_token(self, target: ReplyTarget, delivery: TokenDelivery) -> None: ...

    async def ask_for_manual_token(self, admins: list[str], manual: ManualToken) -> None:
        """DM each admin how to make the token by hand (the approvers' channel if none)."""
        ...

    async def reply(self, target: ReplyTarget, text: str) -> None: ...


class StepObserver(Protocol):
    """Told of each saga step while it runs: the block around its one call."""

    def step(self, name: Step) -> AbstractAsyncContextManager[None]: ...


class Unobserved:
    """Nobody watches the steps (tests, the CLI)."""

    @asynccontextmanager
    async def step(self, name: Step) -> AsyncIterator[None]:
        yield
