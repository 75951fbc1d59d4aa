"""Who may approve and how many approvals a request needs.

Today the policy is read from settings (approvers, admins, channel); a policy file will add
groups, per-product rules and quorums without the rest of the domain changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Policy:
    approvers: frozenset[str]
    approval_channel: str
    admins: frozenset[str] = field(default_factory=frozenset)
    quorum: int = 1

    def approvers_for(self, requester_id: str) -> frozenset[str]:
        """Who may decide on this requester's request: never the requester."""
        return self.approvers - {requester_id}

    def may_decide(self, user_id: str, requester_id: str) -> bool:
        return user_id in self.approvers_for(requester_id)

    def can_be_approved(self, requester_id: str) -> bool:
        """Enough people other than the requester exist to reach the quorum."""
        return len(self.approvers_for(requester_id)) >= self.quorum
