"""Discovery: automation running on people's Atlassian accounts.

Reads, with documented read routes only, every managed user's own API tokens (`lastActiveAt`),
the directory (product UI activity, account type, MFA) and who holds a billable seat, then
answers the three questions Atlassian's terms raise:

1. shared credentials: a token used recently while its person has not opened a product's pages
   for a long time (or ever): someone, or something, else is using it;
2. scripts as people: a bot-like name, email or token label on a human account;
3. licences on fake people: a billable seat held by a bot-like identity.

Each flagged person becomes a `Finding` row with a tracked state (`FindingState`); a re-run
refreshes the evidence and keeps the state. Nothing at Atlassian is changed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select, update

from workflows import audit
from workflows.db import Database, rowcount
from workflows.errors import NotAllowed, NotFound, UserError
from workflows.models import Finding
from workflows.providers import atlassian_contract as contract
from workflows.providers.atlassian import AtlassianAdmin
from workflows.runtime import Runtime
from workflows.states import FINDING_TRANSITIONS, FindingState

# Whole words, or dash/dot/underscore/camel-case separated parts: "ci-runner", "svc.jira",
# "JenkinsBot" match; "Cicely", "Abbott", "Robotham" do not.
BOT_WORDS = frozenset({"bot", "bots", "svc", "ci", "jenkins", "automation", "integration"})
BOT_WORDS_JOINED = frozenset({"noreply", "donotreply"})  # also as "no-reply", "do_not_reply"
HUMAN = "atlassian"  # accountType of a person (service accounts are "app")


class Reason(StrEnum):
    TOKEN_WITHOUT_UI = "token_used_while_ui_idle"
    BOT_NAME = "bot_like_name"
    BOT_EMAIL = "bot_like_email"
    BOT_TOKEN_LABEL = "bot_like_token_label"
    BILLABLE_BOT = "billable_seat_on_bot_identity"


BOT_LIKE = frozenset({Reason.BOT_NAME, Reason.BOT_EMAIL, Reason.BOT_TOKEN_LABEL})


@dataclass(frozen=True)
class Thresholds:
    recent_token_days: int = 7
    ui_idle_days: int = 30


@dataclass
class Progress:
    pages: int = 0
    people: int = 0
    tokens: int = 0


@dataclass
class Person:
    account_id: str
    name: str = ""
    email: str = ""
    account_type: str = HUMAN
    mfa_enabled: bool | None = None
    billable: bool = False
    last_ui_activity: datetime | None = None
    products: list[str] = field(default_factory=list)  # product keys they have access to
    tokens: list[contract.HumanToken] = field(default_factory=list)


@dataclass(frozen=True)
class PersonFinding:
    person: Person
    reasons: list[Reason]
    state: FindingState = FindingState.OPEN

    def as_json(self) -> dict[str, Any]:
        p = self.person
        return {
            "account_id": p.account_id,
            "email": p.email,
            "name": p.name,
            "reasons": [r.value for r in self.reasons],
            "billable": p.billable,
            "last_ui_activity": _iso(p.last_ui_activity),
            "tokens": [token_json(t) for t in p.tokens],
        }


@dataclass
class DiscoveryReport:
    findings: list[PersonFinding]
    accounts: int  # managed human accounts read
    tokens: int  # their API tokens
    seats: int  # billable seats among them
    thresholds: Thresholds
    at: datetime

    def count(self, *reasons: Reason) -> int:
        return sum(1 for f in self.findings if set(reasons) & set(f.reasons))

    def summary(self) -> dict[str, Any]:
        bots = [f for f in self.findings if Reason.BILLABLE_BOT in f.reasons]
        return {
            "accounts": self.accounts,
            "tokens": self.tokens,
            "seats": self.seats,
            "flagged": len(self.findings),
            # 1. shared user credentials in use
            "shared_credentials": self.count(Reason.TOKEN_WITHOUT_UI),
            "shared_credential_tokens": sum(
                len(recent_tokens(f.person, self.thresholds, self.at))
                for f in self.findings
                if Reason.TOKEN_WITHOUT_UI in f.reasons
            ),
            # 2. scripts authenticating as people
            "bot_like_identities": self.count(*BOT_LIKE),
            # 3. licences spent on fake people
            "billable_bot_seats": len(bots),
            "recent_token_days": self.thresholds.recent_token_days,
            "ui_idle_days": self.thresholds.ui_idle_days,
            "at": _iso(self.at),
        }

    def as_json(self) -> dict[str, Any]:
        return {"findings": [f.as_json() for f in self.findings], "summary": self.summary()}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def token_json(token: contract.HumanToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "label": token.label,
        "last_active_at": _iso(token.last_active_at),
        "expires_at": _iso(token.expires_at),
    }


# -- judging ------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # JenkinsBot -> Jenkins Bot
    return [w for w in re.split(r"[^a-z]+", spaced.lower()) if w]


def bot_like(text: str) -> bool:
    words = _words(text)
    if any(w in BOT_WORDS for w in words):
        return True
    joined = ("".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1))
    return any(w in BOT_WORDS_JOINED for w in joined)


def recent_tokens(
    person: Person, thresholds: Thresholds, now: datetime
) -> list[contract.HumanToken]:
    since = now - timedelta(days=thresholds.recent_token_days)
    return [t for t in person.tokens if t.last_active_at is not None and t.last_active_at >= since]


def reasons_for(person: Person, thresholds: Thresholds, now: datetime) -> list[Reason]:
    reasons: list[Reason] = []
    ui_idle_since = now - timedelta(days=thresholds.ui_idle_days)
    ui_idle = person.last_ui_activity is None or person.last_ui_activity < ui_idle_since
    if ui_idle and recent_tokens(person, thresholds, now):
        reasons.append(Reason.TOKEN_WITHOUT_UI)
    if bot_like(person.name):
        reasons.append(Reason.BOT_NAME)
    if bot_like(person.email.split("@", 1)[0]):  # the domain is everyone's
        reasons.append(Reason.BOT_EMAIL)
    if any(bot_like(t.label) for t in person.tokens):
        reasons.append(Reason.BOT_TOKEN_LABEL)
    if person.billable and BOT_LIKE & set(reasons):
        reasons.append(Reason.BILLABLE_BOT)
    return reasons


# -- reading ------------------------------------------------------------------------------------


async def read_people(
    atlassian: AtlassianAdmin, progress: Callable[[Progress], None] | None = None
) -> dict[str, Person]:
    """Everyone the three reads know, by account id; the three routes are paged at once."""
    people: dict[str, Person] = {}
    seen = Progress()

    def person(account_id: str) -> Person:
        return people.setdefault(account_id, Person(account_id))

    def tick(**added: int) -> None:
        seen.pages += 1
        for key, value in added.items():
            setattr(seen, key, getattr(seen, key) + value)
        if progress is not None:
            progress(Progress(seen.pages, seen.people, seen.tokens))

    async def tokens() -> None:
        async for page in atlassian.human_tokens():
            for token in page:
                owner = person(token.account_id)
                owner.tokens.append(token)
                owner.name, owner.email = owner.name or token.name, owner.email or token.email
            tick(tokens=len(page))

    async def directory() -> None:
        async for page in atlassian.directory_users():
            for user in page:
                found = person(user.account_id)
                found.name, found.email = user.name or found.name, user.email or found.email
                found.account_type, found.mfa_enabled = user.account_type, user.mfa_enabled
                seen_at = [t for t in user.product_activity.values() if t is not None]
                found.last_ui_activity = max(seen_at, default=None)
                found.products = sorted(user.product_activity)
            tick(people=len(page))

    async def seats() -> None:
        async for page in atlassian.billable_seats():
            for account_id, billable in page:
                person(account_id).billable = billable
            tick()

    await asyncio.gather(tokens(), directory(), seats())
    return people


async def discover(
    atlassian: AtlassianAdmin,
    thresholds: Thresholds,
    now: datetime,
    progress: Callable[[Progress], None] | None = None,
) -> DiscoveryReport:
    """Read everything and judge each managed person (service accounts are not people)."""
    people = [
        p for p in (await read_people(atlassian, progress)).values() if p.account_type == HUMAN
    ]
    findings = []
    for person in people:
        reasons = reasons_for(person, thresholds, now)
        if reasons:
            findings.append(PersonFinding(person, reasons))
    findings.sort(key=lambda f: (-len(f.reasons), f.person.email, f.person.account_id))
    return DiscoveryReport(
        findings=findings,
        accounts=len(people),
        tokens=sum(len(p.tokens) for p in people),
        seats=sum(1 for p in people if p.billable),
        thresholds=thresholds,
        at=now,
    )


# -- storing ------------------------------------------------------------------------------------


async def store(db: Database, report: DiscoveryReport, actor: str) -> DiscoveryReport:
    """Upsert one finding per flagged person (keeping its state), unflag those no longer
    flagged, audit new findings and the run. Returns the report with the stored states."""
    now = report.at
    flagged = {f.person.account_id: f for f in report.findings}
    stored: dict[str, FindingState] = {}
    async with db.transaction() as session:
        rows = {r.account_id: r for r in (await session.execute(select(Finding))).scalars()}
        for account_id, found in flagged.items():
            p, row = found.person, rows.get(account_id)
            evidence: dict[str, Any] = {
                "email": p.email[:320],
                "name": p.name[:255],
                "reasons": [r.value for r in found.reasons],
                "billable": p.billable,
                "last_ui_activity": p.last_ui_activity,
                "products": p.products,
                "tokens": [token_json(t) for t in p.tokens],
                "flagged": True,
                "last_seen_at": now,
            }
            if row is None:
                row = Finding(account_id=account_id, first_seen_at=now, updated_at=now, **evidence)
                session.add(row)
                audit.record(
                    session,
                    at=now,
                    actor=actor,
                    action="finding_opened",
                    account_id=account_id,
                    reasons=evidence["reasons"],
                )
            else:
                for key, value in evidence.items():
                    setattr(row, key, value)
            stored[account_id] = FindingState(row.state)
        for account_id, row in rows.items():
            if account_id not in flagged and row.flagged:
                row.flagged, row.last_seen_at = False, now
        audit.record(session, at=now, actor=actor, action="discovery_run", **_run_detail(report))
    report.findings = [
        PersonFinding(f.person, f.reasons, stored[f.person.account_id]) for f in report.findings
    ]
    return report


def _run_detail(report: DiscoveryReport) -> dict[str, Any]:
    summary = report.summary()
    keys = ("accounts", "tokens", "seats", "flagged")
    return {k: summary[k] for k in keys}


async def set_state(
    db: Database,
    account_id: str,
    to: FindingState,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    request_id: int | None = None,
    values: dict[str, Any] | None = None,
    then: Callable[[AsyncSession, datetime], None] | None = None,
) -> Finding:
    """Move one finding on (`FINDING_TRANSITIONS`), audited; a dismissal needs its reason. The
    update is conditional on the state read, so two admins' clicks cannot both win. `values`
    are more columns to set; `then` adds work (jobs) to the same transaction."""
    if to is FindingState.DISMISSED and not (reason and reason.strip()):
        raise NotAllowed("Say why this finding is dismissed.")
    async with db.transaction() as session:
        row = (
            await session.execute(select(Finding).where(col(Finding.account_id) == account_id))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"No finding for account {account_id}.")
        current = FindingState(row.state)
        if (current, to) not in FINDING_TRANSITIONS:
            raise NotAllowed(f"A finding that is {current.value} cannot become {to.value}.")
        changes: dict[str, Any] = {
            **(values or {}),
            "state": to.value,
            "state_reason": (reason or "")[:500] or None,
            "state_by": actor,
            "updated_at": now,
        }
        if request_id is not None:
            changes["request_id"] = request_id
        changed = await session.execute(
            update(Finding)
            .where(col(Finding.id) == row.id, col(Finding.state) == current.value)
            .values(**changes)
        )
        if rowcount(changed) != 1:
            raise NotAllowed("Someone else changed this finding just now; look again.")
        audit.record(
            session,
            at=now,
            actor=actor,
            action=f"finding_{to.value}",
            request_id=request_id,
            account_id=account_id,
            previous=current.value,
            reason=reason,
        )
        if then is not None:
            then(session, now)
    async with db.reading() as session:
        return (
            await session.execute(select(Finding).where(col(Finding.account_id) == account_id))
        ).scalar_one()


async def list_findings(db: Database, state: FindingState | None = None) -> list[Finding]:
    """Every finding (or those in one state), newest first."""
    query = select(Finding).order_by(col(Finding.last_seen_at).desc(), col(Finding.id))
    if state is not None:
        query = query.where(col(Finding.state) == state.value)
    async with db.reading() as session:
        return list((await session.execute(query)).scalars())


async def discover_for(runtime: Runtime, user: str) -> DiscoveryReport:
    """`/service-account discover`: admins only; reads, judges, stores, audited as `user`."""
    if not await runtime.policy.is_admin(user):
        raise NotAllowed("Only admins can run discovery.")
    rules = runtime.policy.rules.discovery
    thresholds = Thresholds(rules.recent_token_days, rules.ui_idle_days)
    report = await discover(runtime.atlassian, thresholds, runtime.clock())
    return await store(runtime.db, report, user)


async def findings_for(runtime: Runtime, user: str, state: FindingState | None) -> list[Finding]:
    """`/service-account findings [STATE]`: admins only, read from the table (no Atlassian)."""
    if not await runtime.policy.is_admin(user):
        raise NotAllowed("Only admins can list findings.")
    return await list_findings(runtime.db, state)


def parse_state(word: str) -> FindingState:
    try:
        return FindingState(word.lower())
    except ValueError:
        known = ", ".join(s.value for s in FindingState)
        raise UserError("{} is not a finding state; one of " + known + ".", word[:40]) from None
