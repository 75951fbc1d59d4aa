"""Database tables. The database, never a Slack message, is the source of truth.

No table has a column for an API token's value: a token lives in memory between mint and
ephemeral delivery only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from workflows.states import ENDED, JobStatus, RequestStatus, RevealStatus, TokenState


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_column(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def json_column(**column: Any) -> Any:
    return Field(default_factory=list, sa_type=sa.JSON, nullable=False, sa_column_kwargs=column)


def added_later(default: Any, server_default: Any) -> Any:
    """A column a migration added to a table that had rows: they got `server_default`, and a
    database made from the models (workflows.migrations `_create`) has the same default."""
    return Field(default=default, sa_column_kwargs={"server_default": server_default})


# A name is taken while its request has not ended. In the statuses' order, this is the text
# migration 0003 wrote; a status added to ENDED needs a migration that rebuilds the index.
LIVE_NAME = sa.text(
    "status NOT IN (" + ", ".join(f"'{s.value}'" for s in RequestStatus if s in ENDED) + ")"
)


class ServiceAccountRequest(SQLModel, table=True):
    __tablename__ = "service_account_request"
    # One live request per name, enforced by the database (see migration 0003).
    __table_args__ = (
        sa.Index(
            "uq_service_account_request_live_name",
            "name",
            unique=True,
            sqlite_where=LIVE_NAME,
            postgresql_where=LIVE_NAME,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=40)
    justification: str = Field(max_length=500)
    products: list[str] = json_column()
    scopes: list[str] = json_column()
    lifetime_days: int
    # Fixed when the request is made: a later policy change does not move the goalposts.
    required_approvals: int = added_later(1, "1")  # migration 0002
    requester_id: str = Field(index=True, max_length=32)
    origin_channel_id: str | None = Field(default=None, max_length=32)
    status: str = Field(default=RequestStatus.SUBMITTED.value, index=True, max_length=16)
    status_reason: str | None = Field(default=None, max_length=1000)
    decided_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = utc_column()
    updated_at: datetime = utc_column()

    @property
    def short_id(self) -> str:
        return f"SA-{self.id}"


class ServiceAccount(SQLModel, table=True):
    """What exists (or is being made) at Atlassian for one approved request."""

    __tablename__ = "service_account"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="service_account_request.id", unique=True)
    name: str = Field(index=True, max_length=40)
    owner_id: str = Field(index=True, max_length=32)
    # Set before the create call: on a retry it says "a create may have happened", so the saga
    # adopts an account of that name instead of making a second one.
    create_started_at: datetime | None = utc_column(nullable=True)
    atlassian_id: str | None = Field(default=None, max_length=128)
    atlassian_account_id: str | None = Field(default=None, index=True, max_length=128)
    email: str | None = Field(default=None, max_length=320)
    granted_products: list[str] = json_column()
    reveal_status: str = Field(default=RevealStatus.LOCKED.value, max_length=16)
    revealed_at: datetime | None = utc_column(nullable=True)
    # Set when the owner's Slack account is found deactivated: admins must reassign or revoke.
    orphaned_at: datetime | None = utc_column(nullable=True)
    # Who revoked its tokens last, and whether as an admin: an admin's revoke is not the
    # owner's to undo.
    revoked_by: str | None = Field(default=None, max_length=32)
    revoked_by_admin: bool = added_later(False, sa.false())  # migration 0006
    created_at: datetime = utc_column()
    # Idle accounts (the daily idle check): when its deletion was last proposed, and when the
    # owner or an admin last chose to keep it; neither is proposed again for another N days.
    idle_proposed_at: datetime | None = utc_column(nullable=True)
    idle_kept_at: datetime | None = utc_column(nullable=True)


class ApiToken(SQLModel, table=True):
    """A minted token's metadata, never its value."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="service_account.id", index=True)
    label: str = Field(unique=True, max_length=128)
    atlassian_token_id: str | None = Field(default=None, max_length=128)
    scopes: list[str] = json_column()
    state: str = Field(default=TokenState.MINTING.value, max_length=16)
    expires_at: datetime | None = utc_column(nullable=True)
    created_at: datetime = utc_column()
    delivered_at: datetime | None = utc_column(nullable=True)
    # A rotated-out token lives on until then, so automation can switch to the new one.
    revoke_after: datetime | None = utc_column(nullable=True)
    revoked_at: datetime | None = utc_column(nullable=True)
    # Its last use as Atlassian last reported it (None: never used, or never read), and when
    # that was read: an expiry warning says "unused" only from a read, not from no read.
    last_used_at: datetime | None = utc_column(nullable=True)
    use_checked_at: datetime | None = utc_column(nullable=True)
    # When the owner was asked about it as idle, and when they chose to keep it: not asked
    # again until it has been idle another N days.
    idle_asked_at: datetime | None = utc_column(nullable=True)
    idle_kept_at: datetime | None = utc_column(nullable=True)


class Decision(SQLModel, table=True):
    """One approver's approve or deny: rows, not a counter, so nobody counts twice."""

    __tablename__ = "decision"
    __table_args__ = (sa.UniqueConstraint("request_id", "approver_id"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="service_account_request.id", index=True)
    approver_id: str = Field(max_length=32)
    verdict: str = Field(max_length=12)  # a Verdict
    reason: str | None = Field(default=None, max_length=500)
    # Whether this approval counted when the quorum was last evaluated: an approver removed
    # from the approvers since no longer counts (and counts again if added back).
    counts: bool = added_later(True, sa.true())  # migration 0006
    created_at: datetime = utc_column()


class SlackMessage(SQLModel, table=True):
    """Where a copy of a request's message lives in Slack, so every copy can be updated."""

    __tablename__ = "slack_message"
    __table_args__ = (sa.UniqueConstraint("request_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="service_account_request.id", index=True)
    kind: str = Field(max_length=32)
    channel_id: str = Field(max_length=32)
    ts: str = Field(max_length=32)
    created_at: datetime = utc_column()


class AuditEvent(SQLModel, table=True):
    """Append-only trail: who did what to which request, and why. Never a token value."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_column(index=True)
    actor_id: str = Field(max_length=32)
    action: str = Field(max_length=48, index=True)
    request_id: int | None = Field(default=None, index=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)


class Job(SQLModel, table=True):
    """Slow work done after Slack's acknowledgement, claimed by any worker with a lease."""

    __tablename__ = "job"
    __table_args__ = (sa.Index("ix_job_claim", "status", "run_after"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    request_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON, nullable=False)
    status: str = Field(default=JobStatus.QUEUED.value, max_length=16)
    attempts: int = 0
    run_after: datetime = utc_column()
    locked_by: str | None = Field(default=None, max_length=64)
    locked_until: datetime | None = utc_column(nullable=True)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = utc_column()


class RecurringTask(SQLModel, table=True):
    """A periodic job (reconcile, owner check): whoever moves next_run_at on first runs it."""

    __tablename__ = "recurring_task"

    name: str = Field(primary_key=True, max_length=48)
    next_run_at: datetime = utc_column()


class InboundEvent(SQLModel, table=True):
    """An Events API delivery already taken: Slack retries a delivery it thinks was lost (even
    while the first is still being handled), so an event's id is recorded with its work."""

    __tablename__ = "inbound_event"

    event_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=48)
    received_at: datetime = utc_column(index=True)


class Finding(SQLModel, table=True):
    """A person that discovery flagged as automation on a human account, with its tracked state.

    One row per Atlassian account: a re-run of discovery refreshes the evidence and keeps the
    state, so an offer or a dismissal is not lost when discovery runs again.
    """

    __tablename__ = "finding"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(unique=True, max_length=128)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=255)
    reasons: list[str] = json_column()
    billable: bool = False
    last_ui_activity: datetime | None = utc_column(nullable=True)
    # The person's tokens as discovery saw them: id, label, last use, expiry (never a value).
    tokens: list[dict[str, Any]] = json_column()
    state: str = Field(default="open", index=True, max_length=24)
    state_reason: str | None = Field(default=None, max_length=500)
    state_by: str | None = Field(default=None, max_length=32)
    # Product keys the person has access to ("jira-software", "confluence"): the offer's
    # request form starts with these products ticked. (Migration 0009 added it: '[]' before.)
    products: list[str] = json_column(server_default=sa.text("'[]'"))
    # Set when an admin offers a service account: the person in Slack, and the token to replace.
    slack_user_id: str | None = Field(default=None, max_length=32)
    replaced_token_id: str | None = Field(default=None, max_length=128)
    replaced_token_label: str | None = Field(default=None, max_length=255)
    # The service-account request offered in its place, once there is one.
    request_id: int | None = Field(default=None, foreign_key="service_account_request.id")
    # The old token is revoked only once the person and an admin (someone else) both say so.
    person_confirmed_at: datetime | None = utc_column(nullable=True)
    admin_confirmed_by: str | None = Field(default=None, max_length=32)
    # False once a later run no longer flags the person (the row and its state stay).
    flagged: bool = True
    first_seen_at: datetime = utc_column()
    last_seen_at: datetime = utc_column()
    updated_at: datetime = utc_column()
