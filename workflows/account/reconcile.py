"""Comparing the bot's records with the organisation's service accounts at Atlassian.

Three kinds of drift: accounts made outside the bot; accounts the bot records as existing that
Atlassian no longer has; and records that disagree with Atlassian (recorded deleted but live,
another email or display name). Nothing changes unless asked to apply, and even then only what
is certain: an account gone at Atlassian is marked deleted, and a changed email is taken over.
Deciding about an unknown account or a deleted one come back to life needs a person.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import select, update
from sqlmodel import col

from workflows import audit
from workflows.clock import Clock
from workflows.db import Database, rowcount
from workflows.jobs import queue
from workflows.models import ServiceAccount, ServiceAccountRequest
from workflows.providers.atlassian_contract import LIST_PAGE_LIMIT, RemoteAccount
from workflows.states import Event, JobKind, RequestStatus, transition

ACTOR = "sabot-reconcile"
REMOTE_DELETED = "deleted"  # Atlassian keeps a deleted account listed for 14 days
REMOTE_ACTIVE = "active"
# The statuses in which the bot believes the account exists at Atlassian.
EXISTING = frozenset({RequestStatus.ACTIVE.value, RequestStatus.REVOKED.value})


class AccountDirectory(Protocol):
    """The one thing reconcile needs from Atlassian (AtlassianAdmin has it)."""

    def service_accounts(self) -> AsyncIterator[RemoteAccount]: ...


@dataclass(frozen=True)
class RecordedAccount:
    """A service account as the bot recorded it, with its request's status."""

    request_id: int
    name: str
    status: str
    email: str | None
    atlassian_id: str
    atlassian_account_id: str | None
    changed_at: datetime  # the request's last change of status

    @property
    def short_id(self) -> str:
        return f"SA-{self.request_id}"


@dataclass(frozen=True)
class Mismatch:
    """A record and what Atlassian shows for it (None: not listed at all)."""

    recorded: RecordedAccount
    remote: RemoteAccount | None


@dataclass
class ReconcileReport:
    """What was compared, what disagreed, and (with apply) what was changed."""

    checked: int = 0  # accounts listed at Atlassian
    in_use: int = 0  # of them, not deleted: what the organisation's quota counts
    compared: int = 0  # bot records with an Atlassian id
    applied: bool = False
    made_outside: list[RemoteAccount] = field(default_factory=list)
    missing: list[Mismatch] = field(default_factory=list)
    deleted_but_live: list[Mismatch] = field(default_factory=list)
    status_drift: list[Mismatch] = field(default_factory=list)  # a status other than the above
    email_drift: list[Mismatch] = field(default_factory=list)
    name_drift: list[Mismatch] = field(default_factory=list)
    marked_deleted: list[int] = field(default_factory=list)  # request ids
    emails_updated: list[int] = field(default_factory=list)
    changed_meanwhile: list[int] = field(default_factory=list)  # apply lost a race: left alone

    @property
    def drift_found(self) -> bool:
        return any(
            (
                self.made_outside,
                self.missing,
                self.deleted_but_live,
                self.status_drift,
                self.email_drift,
                self.name_drift,
            )
        )

    def lines(self) -> list[str]:
        """The report as readable lines: one per finding, then a summary."""
        lines = [
            f"Compared {self.checked} account(s) at Atlassian with {self.compared} "
            "recorded by sabot."
        ]
        lines += [_outside_line(remote) for remote in self.made_outside]
        lines += [self._missing_line(m) for m in self.missing]
        lines += [_deleted_but_live_line(m) for m in self.deleted_but_live]
        lines += [_status_line(m) for m in self.status_drift]
        lines += [self._email_line(m) for m in self.email_drift]
        lines += [_name_line(m) for m in self.name_drift]
        lines += [
            f"left alone: SA-{rid} changed while reconcile ran; run it again"
            for rid in self.changed_meanwhile
        ]
        lines.append(self._summary())
        return lines

    def _missing_line(self, m: Mismatch) -> str:
        r, where = m.recorded, ("deleted" if m.remote else "not listed")
        outcome = _outcome(self.applied, r.request_id in self.marked_deleted, "marked deleted")
        said = f"{r.short_id} {r.name} is {r.status} here but {where} at Atlassian"
        return f"missing at Atlassian: {said}{outcome}"

    def _email_line(self, m: Mismatch) -> str:
        assert m.remote is not None
        r = m.recorded
        outcome = _outcome(self.applied, r.request_id in self.emails_updated, "email updated")
        return (
            f"email drift: {r.short_id} {r.name} is {r.email or '(none)'} here but "
            f"{_shown(m.remote.email)} at Atlassian{outcome}"
        )

    def _summary(self) -> str:
        if not self.drift_found:
            return "No drift found."
        counts = [
            (len(self.made_outside), "made outside sabot"),
            (len(self.missing), "missing at Atlassian"),
            (len(self.deleted_but_live), "deleted here but live at Atlassian"),
            (len(self.status_drift), "other status drift"),
            (len(self.email_drift), "email drift"),
            (len(self.name_drift), "display-name drift"),
        ]
        found = ", ".join(f"{n} {what}" for n, what in counts if n)
        changed = len(self.marked_deleted) + len(self.emails_updated)
        tail = f"; {changed} record(s) corrected" if self.applied else "; nothing changed"
        return f"Drift found: {found}{tail}."


def _shown(text: str) -> str:
    # Names and emails come from Atlassian: keep a control character from forging a line.
    return "".join(c if c.isprintable() else "?" for c in text)


def _outcome(applied: bool, done: bool, what: str) -> str:
    if done:
        return f" -> {what}"
    return "" if applied else f" (--apply: {what})"


def _outside_line(remote: RemoteAccount) -> str:
    return (
        f"made outside sabot: {_shown(remote.display_name)} <{_shown(remote.email)}> "
        f"(Atlassian id {_shown(remote.id)}) is not recorded here; a person must adopt or "
        "delete it"
    )


def _deleted_but_live_line(m: Mismatch) -> str:
    assert m.remote is not None
    r = m.recorded
    return (
        f"status drift: {r.short_id} {r.name} is deleted here but {_shown(m.remote.status)} "
        "at Atlassian; a person must delete it there or restore the record"
    )


def _status_line(m: Mismatch) -> str:
    assert m.remote is not None
    r = m.recorded
    return (
        f"status drift: {r.short_id} {r.name} is {r.status} here but "
        f"{_shown(m.remote.status)} at Atlassian"
    )


def _name_line(m: Mismatch) -> str:
    assert m.remote is not None
    r = m.recorded
    return (
        f"name drift: {r.short_id} {r.name} is named {_shown(m.remote.display_name)!r} at "
        "Atlassian; the name here is the bot's key, so a person decides"
    )


# -- reading ------------------------------------------------------------------------------------


async def _remote_accounts(
    atlassian: AccountDirectory, progress: Callable[[int], None] | None
) -> list[RemoteAccount]:
    found: list[RemoteAccount] = []
    async for remote in atlassian.service_accounts():
        found.append(remote)
        if progress is not None and len(found) % LIST_PAGE_LIMIT == 0:
            progress(len(found))  # a page's worth: Atlassian lists at most 80 at a time
    return found


async def _recorded_accounts(db: Database) -> list[RecordedAccount]:
    account, request = ServiceAccount, ServiceAccountRequest
    query = (
        select(
            col(account.request_id),
            col(account.name),
            col(request.status),
            col(account.email),
            col(account.atlassian_id),
            col(account.atlassian_account_id),
            col(request.updated_at),
        )
        .join(request, col(request.id) == col(account.request_id))
        .where(col(account.atlassian_id).is_not(None))
        .order_by(col(account.request_id))
    )
    async with db.transaction() as session:
        rows = (await session.execute(query)).all()
    return [
        RecordedAccount(
            request_id=row.request_id,
            name=row.name,
            status=row.status,
            email=row.email,
            atlassian_id=str(row.atlassian_id),
            atlassian_account_id=row.atlassian_account_id,
            changed_at=row.updated_at,
        )
        for row in rows
    ]


# -- comparing ----------------------------------------------------------------------------------


def _compare(
    recorded: list[RecordedAccount],
    remotes: list[RemoteAccount],
    listed_since: datetime,
    report: ReconcileReport,
) -> None:
    by_id = {r.id: r for r in remotes}
    by_account_id = {r.atlassian_id: r for r in remotes}
    matched: set[str] = set()
    for record in recorded:
        remote = by_id.get(record.atlassian_id) or by_account_id.get(
            record.atlassian_account_id or ""
        )
        if remote is not None:
            matched.add(remote.id)
        # Changed while Atlassian was being listed (say, just provisioned): the listing may
        # predate the change, so no verdict until the next run.
        if record.changed_at < listed_since:
            _compare_one(record, remote, report)
    report.made_outside = sorted(
        (r for r in remotes if r.id not in matched and r.status != REMOTE_DELETED),
        key=lambda r: (r.display_name, r.id),
    )


def _compare_one(
    record: RecordedAccount, remote: RemoteAccount | None, report: ReconcileReport
) -> None:
    gone = remote is None or remote.status == REMOTE_DELETED
    if record.status in EXISTING and gone:
        report.missing.append(Mismatch(record, remote))
        return
    if gone or remote is None:
        return  # recorded deleted (or never finished) and gone at Atlassian: they agree
    if record.status == RequestStatus.DELETED.value:
        report.deleted_but_live.append(Mismatch(record, remote))
        return
    if record.status in EXISTING and remote.status != REMOTE_ACTIVE:
        report.status_drift.append(Mismatch(record, remote))
    if record.email != remote.email:
        report.email_drift.append(Mismatch(record, remote))
    if record.name != remote.display_name:
        report.name_drift.append(Mismatch(record, remote))


# -- applying -----------------------------------------------------------------------------------


async def _mark_deleted(db: Database, m: Mismatch, now: datetime, report: ReconcileReport) -> None:
    record = m.recorded
    why = "deleted at Atlassian" if m.remote else "not listed at Atlassian"
    async with db.transaction() as session:
        # Through the state machine: if someone changed the request meanwhile, this does nothing.
        if not await transition(
            session,
            record.request_id,
            Event.DELETE,
            now,
            status_reason=f"{why}, outside sabot (found by reconcile)",
        ):
            report.changed_meanwhile.append(record.request_id)
            return
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="reconcile_marked_deleted",
            request_id=record.request_id,
            why=why,
            previous_status=record.status,
            atlassian_id=record.atlassian_id,
        )
        queue.enqueue(session, JobKind.REFRESH, now=now, request_id=record.request_id)
    report.marked_deleted.append(record.request_id)


async def _update_email(db: Database, m: Mismatch, now: datetime, report: ReconcileReport) -> None:
    assert m.remote is not None
    record, new_email = m.recorded, m.remote.email
    async with db.transaction() as session:
        # Conditional on the email read earlier, so a concurrent change is not overwritten.
        result = await session.execute(
            update(ServiceAccount)
            .where(
                col(ServiceAccount.request_id) == record.request_id,
                col(ServiceAccount.email).is_not_distinct_from(record.email),
            )
            .values(email=new_email)
        )
        if not rowcount(result):
            report.changed_meanwhile.append(record.request_id)
            return
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="reconcile_updated_email",
            request_id=record.request_id,
            old_email=record.email,
            new_email=new_email,
        )
    report.emails_updated.append(record.request_id)


async def _apply(db: Database, report: ReconcileReport, now: datetime) -> None:
    report.applied = True
    for m in report.missing:
        await _mark_deleted(db, m, now, report)
    for m in report.email_drift:
        await _update_email(db, m, now, report)


async def reconcile(
    db: Database,
    atlassian: AccountDirectory,
    *,
    apply: bool,
    clock: Clock,
    progress: Callable[[int], None] | None = None,
) -> ReconcileReport:
    """Compare records with Atlassian; with `apply`, correct what needs no person's judgement.

    Marks accounts gone at Atlassian deleted and takes over changed emails; only reports
    accounts made outside the bot, deleted records live at Atlassian, and renamed accounts.
    `progress` is called with the number of accounts listed so far, once per page.
    """
    # Atlassian first, then the records: an account the bot creates meanwhile then has its
    # record, so it does not show up as "made outside"; the record is too new to judge.
    listed_since = clock()
    remotes = await _remote_accounts(atlassian, progress)
    recorded = await _recorded_accounts(db)
    in_use = sum(r.status != REMOTE_DELETED for r in remotes)
    report = ReconcileReport(checked=len(remotes), compared=len(recorded), in_use=in_use)
    _compare(recorded, remotes, listed_since, report)
    if apply:
        await _apply(db, report, clock())
    return report
