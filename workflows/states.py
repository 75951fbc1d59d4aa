"""Every lifecycle sabot keeps, named in one place, and the life of a request as one table.

A request changes status only through `transition`, which the database applies as a conditional
update (`... WHERE status IN (:sources)`), so two clicks or two replicas can never both win.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from workflows.db import rowcount


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

# A request in one of these is over: its name may be asked for again (see models.LIVE_NAME).
ENDED: frozenset[RequestStatus] = frozenset({S.DENIED, S.CANCELLED, S.EXPIRED, S.FAILED, S.DELETED})


def sources_of(event: Event) -> list[RequestStatus]:
    """Every status from which `event` is allowed."""
    return [source for (source, ev) in TRANSITIONS if ev == event]


async def transition(
    session: AsyncSession, request_id: int, event: Event, now: datetime, **values: object
) -> bool:
    """Apply `event` if the request is in a status that allows it. False if it is not.

    One UPDATE for every source of the event: right because each event has one destination."""
    # The models name their defaults and the live-name index after this module's statuses, so
    # they are imported when first needed, not while this module loads.
    from workflows.models import ServiceAccountRequest

    sources = sources_of(event)
    target = TRANSITIONS[(sources[0], event)]
    result = await session.execute(
        update(ServiceAccountRequest)
        .where(
            col(ServiceAccountRequest.id) == request_id,
            col(ServiceAccountRequest.status).in_([s.value for s in sources]),
        )
        .values(status=target.value, updated_at=now, **values)
    )
    return bool(rowcount(result))


class Verdict(StrEnum):
    """One person's decision on a pending request (`decision.verdict`)."""

    APPROVE = "approve"
    DENY = "deny"
    BREAK_GLASS = "break_glass"  # the requester approved their own, in an emergency


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


# Tokens that work at Atlassian for their owner: the ones sabot delivered, and the ones an admin
# was asked to make by hand under sabot's label after a refused mint (their value never passes
# through sabot). Both are warned about before they expire and revoked on rotation, a hand-made
# one once Atlassian lists it (the list and the metrics count it from the daily check that
# first saw it: `accounts.live_token`).
LIVE_TOKENS: tuple[TokenState, ...] = (TokenState.DELIVERED, TokenState.MANUAL)

# Tokens that may be live at Atlassian without ever having reached their owner.
UNDELIVERED: frozenset[TokenState] = frozenset(
    {TokenState.MINTING, TokenState.MINTED, TokenState.UNWANTED}
)


class Step(StrEnum):
    """The saga's steps that act at Atlassian or in Slack, as metrics and log lines name them."""

    CREATE_ACCOUNT = "create_account"
    GRANT_ACCESS = "grant_access"
    MINT_TOKEN = "mint_token"
    DELIVER_TOKEN = "deliver_token"


class JobStatus(StrEnum):
    """Where a queued job stands (`job.status`)."""

    QUEUED = "queued"  # waiting for its time, or handed back to be tried again
    RUNNING = "running"  # claimed by a worker, under a lease it renews while it runs
    DONE = "done"
    FAILED = "failed"  # gave up after its last attempt


class JobKind(StrEnum):
    """What a job does (`job.kind`, and a recurring task's name); each has one handler."""

    # A request's Slack messages
    ANNOUNCE = "announce"
    REFRESH = "refresh"
    THREAD_NOTE = "thread_note"
    TELL_REQUESTER = "tell_requester"
    TELL_APPROVERS = "tell_approvers"
    NOTIFY_READY = "notify_ready"
    BREAK_GLASS_ALERT = "break_glass_alert"
    # A pending request's timers
    REMIND = "remind"
    ESCALATE = "escalate"
    EXPIRE = "expire"
    # Work at Atlassian
    PROVISION = "provision"
    REVEAL = "reveal"
    MANUAL_TOKEN = "manual_token"
    REVOKE_TOKEN = "revoke_token"
    REVOKE_ALL = "revoke_all"
    DELETE_ACCOUNT = "delete_account"
    # An account's tokens over time
    OFFER_TOKEN = "offer_token"
    EXPIRY_WARNING = "expiry_warning"
    TOKEN_EXPIRED = "token_expired"
    # Owners who left, and what Atlassian holds that sabot does not know
    CHECK_OWNERS = "check_owners"
    OWNER_LEFT = "owner_left"
    ORPHAN_ALERT = "orphan_alert"
    RECONCILE_REPORT = "reconcile_report"
    # Idle credentials
    IDLE_CREDENTIALS = "idle_credentials"
    ASK_IDLE_TOKEN = "ask_idle_token"
    PROPOSE_DELETION = "propose_deletion"
    # A person's own API token replaced by a service account (discovery findings)
    OFFER_REPLACEMENT = "offer_replacement"
    CONFIRM_REPLACEMENT = "confirm_replacement"
    REVOKE_HUMAN_TOKEN = "revoke_human_token"
    # Housekeeping
    FORGET_OLD_EVENTS = "forget_old_events"


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
