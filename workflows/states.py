"""The life of a service-account request, as one table.

Every change of status goes through `next_status`, and the database applies it as a conditional
update (`... WHERE status = :expected`), so two clicks or two replicas can never both win.
"""

from __future__ import annotations

from enum import StrEnum


class RequestStatus(StrEnum):
    SUBMITTED = "submitted"
    PENDING = "pending"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
    REVOKED = "revoked"
    DELETED = "deleted"


class Event(StrEnum):
    ANNOUNCE = "announce"  # posted to the approvers
    APPROVE = "approve"  # quorum reached
    DENY = "deny"
    CANCEL = "cancel"  # by the requester
    EXPIRE = "expire"  # waited too long for a decision
    START_PROVISIONING = "start_provisioning"
    PROVISIONED = "provisioned"
    FAIL = "fail"
    RETRY = "retry"  # an admin retries a failed request
    REVOKE = "revoke"
    REACTIVATE = "reactivate"  # a new token for an account whose tokens were revoked
    DELETE = "delete"


S, E = RequestStatus, Event

# (from, event) -> to. Anything not listed is refused.
TRANSITIONS: dict[tuple[RequestStatus, Event], RequestStatus] = {
    (S.SUBMITTED, E.ANNOUNCE): S.PENDING,
    (S.SUBMITTED, E.CANCEL): S.CANCELLED,
    (S.PENDING, E.APPROVE): S.APPROVED,
    (S.PENDING, E.DENY): S.DENIED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.PENDING, E.EXPIRE): S.EXPIRED,
    (S.APPROVED, E.START_PROVISIONING): S.PROVISIONING,
    (S.APPROVED, E.FAIL): S.FAILED,
    (S.PROVISIONING, E.PROVISIONED): S.ACTIVE,
    (S.PROVISIONING, E.FAIL): S.FAILED,
    (S.FAILED, E.RETRY): S.APPROVED,
    (S.ACTIVE, E.REVOKE): S.REVOKED,
    (S.REVOKED, E.REACTIVATE): S.ACTIVE,
    (S.ACTIVE, E.DELETE): S.DELETED,
    (S.REVOKED, E.DELETE): S.DELETED,
    (S.FAILED, E.DELETE): S.DELETED,
}

# A name stays taken while a request or account in one of these is alive.
ENDED: frozenset[RequestStatus] = frozenset({S.DENIED, S.CANCELLED, S.EXPIRED, S.FAILED, S.DELETED})


class RevealStatus(StrEnum):
    """Whether the owner may click Reveal on an account now."""

    LOCKED = "locked"  # not provisioned yet, or revoked/deleted
    READY = "ready"  # a token may be minted on the owner's click
    REVEALING = "revealing"  # one click is being served; others are told to wait
    REVEALED = "revealed"  # shown once; a new one needs rotate or token
    # Atlassian refused the mint: an admin makes the token by hand in the console and gives it
    # to the owner (rotate or token opens Reveal again, e.g. once the mint route is back).
    MANUAL = "manual"


class TokenState(StrEnum):
    """An API token's metadata row (never its value)."""

    MINTING = "minting"  # the mint was (maybe) sent; a lost answer is found by its label
    MINTED = "minted"  # Atlassian answered; not yet shown to the owner
    UNWANTED = "unwanted"  # a revoke overtook the mint: revoked as soon as it is seen
    DELIVERED = "delivered"  # shown to the owner: the one live state
    REVOKED = "revoked"
    EXPIRED = "expired"
    FAILED = "failed"  # Atlassian refused the mint
    # The mint route was refused for good: an admin was asked to make this token by hand,
    # under this label (its value never passes through sabot).
    MANUAL = "manual"


# Tokens that may be live at Atlassian without ever having reached their owner.
UNDELIVERED: frozenset[TokenState] = frozenset(
    {TokenState.MINTING, TokenState.MINTED, TokenState.UNWANTED}
)


class IllegalTransition(Exception):
    """The event does not apply to a request in this status."""

    def __init__(self, status: RequestStatus, event: Event) -> None:
        super().__init__(f"cannot {event.value} a request that is {status.value}")
        self.status = status
        self.event = event


def next_status(status: RequestStatus, event: Event) -> RequestStatus:
    """The status after `event`, or IllegalTransition."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(status, event) from None


def sources_of(event: Event) -> list[RequestStatus]:
    """Every status from which `event` is allowed."""
    return [source for (source, ev) in TRANSITIONS if ev == event]


class FindingState(StrEnum):
    """Where a discovery finding stands on its way to a service account (or not)."""

    OPEN = "open"  # flagged, nobody has acted yet
    OFFERED = "offered"  # an admin offered the person a service account in its place
    MIGRATED = "migrated"  # the service account's token is revealed; automation moved over
    HUMAN_TOKEN_REVOKED = "human_token_revoked"  # the old token on the human account is gone
    DISMISSED = "dismissed"  # an admin judged it fine, with a reason


F = FindingState
# (from, to) a finding may take; anything else is refused. A dismissal may be reopened.
FINDING_TRANSITIONS: frozenset[tuple[FindingState, FindingState]] = frozenset(
    {
        (F.OPEN, F.OFFERED),
        (F.OPEN, F.DISMISSED),
        (F.OFFERED, F.OPEN),  # the offer was withdrawn or declined
        (F.OFFERED, F.MIGRATED),
        (F.OFFERED, F.DISMISSED),
        (F.MIGRATED, F.HUMAN_TOKEN_REVOKED),
        (F.DISMISSED, F.OPEN),
    }
)
