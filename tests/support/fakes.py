"""In-process stand-ins for the domain's ports, for tests that move time instead of sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.ports import (
    IdleAccount,
    IdleToken,
    ManualToken,
    MessageRef,
    Replacement,
    ReplyTarget,
    RequestSnapshot,
    TokenDelivery,
    TokenUse,
)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RecordingNotifier:
    """Remembers what would have been said, and to whom."""

    said: list[tuple[str, Any]] = field(default_factory=list)
    posted: int = 0

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.said]

    def _ref(self) -> MessageRef:
        self.posted += 1
        return MessageRef("C0TEST", f"1.{self.posted}")

    async def post_approval_request(self, snapshot: RequestSnapshot) -> MessageRef:
        self.said.append(("approval", snapshot.request.status))
        return self._ref()

    async def post_requester_card(self, snapshot: RequestSnapshot) -> MessageRef:
        self.said.append(("card", snapshot.request.status))
        return self._ref()

    async def post_approval_dm(self, user_id: str, snapshot: RequestSnapshot) -> MessageRef:
        self.said.append(("approver_dm", user_id))
        return self._ref()

    async def update_message(self, kind: str, ref: MessageRef, snapshot: RequestSnapshot) -> None:
        self.said.append(("update", (kind, snapshot.request.status)))

    async def post_in_thread(self, ref: MessageRef, text: str) -> None:
        self.said.append(("thread", text))

    async def remind(self, ref: MessageRef, snapshot: RequestSnapshot) -> None:
        self.said.append(("remind", snapshot.request.short_id))

    async def escalate(
        self, ref: MessageRef, snapshot: RequestSnapshot, users: list[str], groups: list[str]
    ) -> None:
        self.said.append(("escalate", (users, groups)))

    async def alert_break_glass(self, snapshot: RequestSnapshot) -> None:
        self.said.append(("break_glass", snapshot.request.short_id))

    async def tell_account_ready(self, snapshot: RequestSnapshot) -> None:
        self.said.append(("ready", snapshot.request.short_id))

    async def deliver_token(self, target: ReplyTarget, delivery: TokenDelivery) -> None:
        self.said.append(("token", delivery.label))

    async def ask_for_manual_token(self, admins: list[str], manual: ManualToken) -> None:
        self.said.append(("manual_token", (admins, manual.label)))

    async def offer_new_token(self, snapshot: RequestSnapshot) -> None:
        self.said.append(("offer", snapshot.request.name))

    async def warn_expiry(
        self,
        snapshot: RequestSnapshot,
        label: str,
        expires_at: datetime,
        days: int,
        use: TokenUse | None = None,
    ) -> None:
        self.said.append(("warn", (label, days)))

    async def ask_idle_token(self, idle: IdleToken) -> None:
        self.said.append(("idle_token", (idle.label, idle.use)))

    async def propose_deletion(self, user_id: str, idle: IdleAccount, can_delete: bool) -> None:
        self.said.append(("propose_deletion", (user_id, idle.account_name, can_delete)))

    async def offer_replacement(self, offer: Replacement) -> None:
        self.said.append(("offer_replacement", (offer.person_id, offer.token_label)))

    async def ask_to_revoke_old_token(
        self, user_id: str, replacement: Replacement, as_admin: bool
    ) -> None:
        self.said.append(("confirm_replacement", (user_id, as_admin)))

    async def tell_old_token_revoked(self, user_id: str, replacement: Replacement) -> None:
        self.said.append(("old_token_revoked", (user_id, replacement.token_label)))

    async def alert_orphan(self, admin_id: str, snapshot: RequestSnapshot) -> None:
        self.said.append(("orphan", (admin_id, snapshot.request.name)))

    async def tell(self, user_id: str, text: str) -> None:
        self.said.append(("tell", text))

    async def tell_approvers(self, text: str) -> None:
        self.said.append(("approvers", text))

    async def reply(self, target: ReplyTarget, text: str) -> None:
        self.said.append(("reply", text))
