"""How the domain talks to people, without knowing it is Slack.

`bot/` implements `Notifier` with the Slack Web API; tests and the CLI may implement it otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import SecretStr

from workflows.models import Decision, ServiceAccount, ServiceAccountRequest


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
        self, snapshot: RequestSnapshot, label: str, expires_at: datetime, days: int
    ) -> None: ...

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
