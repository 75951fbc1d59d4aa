"""Replacing automation on a person's account with a service account, in a few clicks.

An admin offers a service account on a discovery finding: the person gets a DM whose button
opens the request form filled in from the finding (the name from the token's label, products
from their access), and the usual policy and approvals follow. Once the new account's token is
revealed the finding is `migrated`, and the person and an admin (someone else) are asked to
confirm that the old token can go; when both have, sabot revokes that one token at Atlassian
(`DELETE /users/{account_id}/manage/api-tokens/{tokenId}`) and the finding is
`human_token_revoked`. Every step is audited through `discovery.set_state` or here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select, update

from workflows import audit
from workflows.catalog import Product
from workflows.db import rowcount
from workflows.discovery.findings import bot_like, set_state
from workflows.errors import Conflict, NotAllowed, NotFound, UserError
from workflows.jobs import queue
from workflows.jobs.queue import Job
from workflows.models import Finding, ServiceAccountRequest
from workflows.policy import Offer
from workflows.ports import Replacement
from workflows.providers.atlassian import AtlassianError
from workflows.request.validation import JUSTIFICATION_MAX, check_name
from workflows.runtime import Runtime
from workflows.states import FindingState as F
from workflows.states import JobKind

ACTOR = "sabot"
NAME_MAX = 40  # the request form's name field


@dataclass(frozen=True)
class Prefill:
    """What the request form starts with when a person answers an offer."""

    account_id: str
    name: str
    products: list[Product]
    justification: str


@dataclass(frozen=True)
class Confirmed:
    finding: Finding
    as_admin: bool
    both: bool  # the person and an admin have confirmed: the revoke is queued


async def finding_of(runtime: Runtime, account_id: str) -> Finding:
    async with runtime.db.reading() as session:
        row = (
            await session.execute(select(Finding).where(col(Finding.account_id) == account_id))
        ).scalar_one_or_none()
    if row is None:
        raise NotFound("There is no discovery finding for that account.")
    return row


def token_to_replace(tokens: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The token an offer is about: a bot-like label first, then the one used most lately."""
    if not tokens:
        return None
    return max(tokens, key=lambda t: (bot_like(str(t["label"])), str(t["last_active_at"] or "")))


async def offer(runtime: Runtime, account_id: str, admin: str) -> Finding:
    """An admin offers a service account in place of the finding's token; the person's DM is
    queued in the same transaction as the state change."""
    if not await runtime.policy.is_admin(admin):
        raise NotAllowed("Only admins can offer a service account on a finding.")
    row = await finding_of(runtime, account_id)
    token = token_to_replace(row.tokens)
    if token is None:
        raise UserError(
            "{} has no API token of their own to replace: dismiss the finding, or free the "
            "seat in admin.atlassian.com.",
            row.email or account_id,
        )
    person = await _slack_user(runtime, row.email or "")

    def enqueue_offer(session: AsyncSession, now: datetime) -> None:
        queue.enqueue(
            session, JobKind.OFFER_REPLACEMENT, now=now, payload={"account_id": account_id}
        )

    done = await set_state(
        runtime.db,
        account_id,
        F.OFFERED,
        actor=admin,
        now=runtime.clock(),
        values={
            "slack_user_id": person,
            "replaced_token_id": str(token["id"])[:128],
            "replaced_token_label": str(token["label"])[:255],
            "person_confirmed_at": None,
            "admin_confirmed_by": None,
        },
        then=enqueue_offer,
    )
    runtime.jobs_queued()
    return done


async def _slack_user(runtime: Runtime, email: str) -> str:
    directory = runtime.policy.directory
    person = await directory.user_by_email(email) if directory and email else None
    if person is None:
        raise UserError(
            "Nobody in this Slack workspace has the email {}: offer it to them another way, "
            "or dismiss the finding.",
            email or "(none)",
        )
    return person


async def decline(runtime: Runtime, account_id: str, user: str) -> Finding:
    """The person says the token is no automation: the finding is open again for an admin to
    judge (dismiss it, or offer again), and the admin who offered is told."""
    row = await finding_of(runtime, account_id)
    if user != row.slack_user_id:
        raise NotAllowed("Only the person it was offered to can decline it.")
    done = await set_state(
        runtime.db,
        account_id,
        F.OPEN,
        actor=user,
        now=runtime.clock(),
        reason="declined: the person says it is not automation",
    )
    if row.state_by:
        await runtime.notifier.tell(
            row.state_by,
            f"{row.email or account_id} says the API token '{row.replaced_token_label}' is not "
            "automation and declined the service account: the finding is open again.",
        )
    return done


async def dismiss(runtime: Runtime, account_id: str, admin: str, reason: str) -> Finding:
    """An admin judges the finding fine, with the reason kept in the audit trail."""
    if not await runtime.policy.is_admin(admin):
        raise NotAllowed("Only admins can dismiss a finding.")
    return await set_state(
        runtime.db, account_id, F.DISMISSED, actor=admin, now=runtime.clock(), reason=reason
    )


def suggested_name(label: str, offer: Offer) -> str:
    """A name the policy accepts made from the token's label, or "" to leave it to the person."""
    names = offer.names
    core = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    room = NAME_MAX - len(names.prefix) - len(names.suffix)
    name = f"{names.prefix}{core[:room].strip('-')}{names.suffix}"
    return name if check_name(name, offer) is None else ""


def offered_products(product_keys: list[str], offer: Offer) -> list[Product]:
    """Atlassian's product keys ("jira-software", "confluence") as the form's products."""
    return [p for p in offer.scopes if any(k.startswith(p.value) for k in product_keys)]


async def prefill(runtime: Runtime, account_id: str, user: str) -> Prefill:
    """The form for the person the offer went to (one read: a trigger lives three seconds)."""
    row = await finding_of(runtime, account_id)
    if row.state != F.OFFERED or user != row.slack_user_id:
        raise NotAllowed("This offer is not open to you any more. Ask the admin who sent it.")
    label = row.replaced_token_label or ""
    offer_ = runtime.policy.offer
    why = (
        f"Replaces the API token '{label}' on my own Atlassian account ({row.email}), which "
        "discovery found automation using. Which automation, which projects or spaces: "
    )
    return Prefill(
        account_id,
        suggested_name(label, offer_),
        offered_products(list(row.products), offer_),
        why[:JUSTIFICATION_MAX],
    )


async def link_request(
    runtime: Runtime, account_id: str, request: ServiceAccountRequest, user: str
) -> bool:
    """The request a person submitted from an offer's form: the finding follows it. Only the
    person the offer went to links a request, and only while the offer stands."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        changed = await session.execute(
            update(Finding)
            .where(
                col(Finding.account_id) == account_id,
                col(Finding.state) == F.OFFERED.value,
                col(Finding.slack_user_id) == user,
            )
            .values(request_id=request.id, updated_at=now)
        )
        if not rowcount(changed):
            return False
        audit.record(
            session,
            at=now,
            actor=user,
            action="finding_request_linked",
            request_id=request.id,
            account_id=account_id,
        )
    return True


async def on_token_delivered(session: AsyncSession, request_id: int, now: datetime) -> None:
    """In the transaction that records a delivered token: a finding waiting on this request is
    migrated, and the person and the admins are asked to confirm the old token can go."""
    rows = (
        await session.execute(
            select(Finding).where(
                col(Finding.request_id) == request_id, col(Finding.state) == F.OFFERED.value
            )
        )
    ).scalars()
    for row in rows:
        changed = await session.execute(
            update(Finding)
            .where(col(Finding.id) == row.id, col(Finding.state) == F.OFFERED.value)
            .values(state=F.MIGRATED.value, state_by=ACTOR, state_reason=None, updated_at=now)
        )
        if not rowcount(changed):
            continue
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="finding_migrated",
            request_id=request_id,
            account_id=row.account_id,
            previous=F.OFFERED.value,
        )
        payload = {"account_id": row.account_id}
        queue.enqueue(session, JobKind.CONFIRM_REPLACEMENT, now=now, payload=payload)


async def confirm(runtime: Runtime, account_id: str, user: str) -> Confirmed:
    """The person, or an admin who is not the person, says the old token can go. The second
    of the two queues the revoke (each update is conditional, so it is queued once)."""
    row = await finding_of(runtime, account_id)
    if row.state != F.MIGRATED:
        raise Conflict(f"This finding is {row.state}: there is nothing to confirm now.")
    as_admin = user != row.slack_user_id
    if as_admin and not await runtime.policy.is_admin(user):
        raise NotAllowed("Only the person whose token it is, or an admin, can confirm.")
    now = runtime.clock()
    column, value = (
        (Finding.admin_confirmed_by, user) if as_admin else (Finding.person_confirmed_at, now)
    )
    async with runtime.db.transaction() as session:
        changed = await session.execute(
            update(Finding)
            .where(
                col(Finding.id) == row.id,
                col(Finding.state) == F.MIGRATED.value,
                col(column).is_(None),
            )
            .values({column: value, "updated_at": now})
        )
        if not rowcount(changed):
            raise Conflict("That confirmation is already given; the other one is awaited.")
        audit.record(
            session,
            at=now,
            actor=user,
            action="finding_revocation_confirmed",
            request_id=row.request_id,
            account_id=account_id,
            role="admin" if as_admin else "person",
        )
        fresh = await session.get(Finding, row.id, populate_existing=True)
        assert fresh is not None
        both = fresh.person_confirmed_at is not None and fresh.admin_confirmed_by is not None
        if both:
            payload = {"account_id": account_id}
            queue.enqueue(session, JobKind.REVOKE_HUMAN_TOKEN, now=now, payload=payload)
    if both:
        runtime.jobs_queued()
    return Confirmed(fresh, as_admin, both)


async def _replacement(runtime: Runtime, row: Finding) -> Replacement:
    request_ref = account = None
    if row.request_id is not None:
        async with runtime.db.reading() as session:
            request = await session.get(ServiceAccountRequest, row.request_id)
        if request is not None:
            request_ref, account = request.short_id, request.name
    return Replacement(
        account_id=row.account_id,
        person_id=row.slack_user_id or "",
        email=row.email or "",
        name=row.name or "",
        token_label=row.replaced_token_label or "",
        offered_by=row.state_by or "",
        reasons=list(row.reasons),
        request_ref=request_ref,
        service_account=account,
    )


async def tell_offer(runtime: Runtime, job: Job) -> None:
    """Job: the offer's DM to the person (unless it was withdrawn meanwhile)."""
    row = await finding_of(runtime, str(job.payload["account_id"]))
    if row.state == F.OFFERED and row.slack_user_id:
        await runtime.notifier.offer_replacement(await _replacement(runtime, row))


async def ask_confirmation(runtime: Runtime, job: Job) -> None:
    """Job: the person and every admin (but the person) are asked to confirm the revoke."""
    row = await finding_of(runtime, str(job.payload["account_id"]))
    if row.state != F.MIGRATED:
        return
    replacement = await _replacement(runtime, row)
    admins = sorted(await runtime.policy.people(runtime.policy.rules.admins))
    await runtime.notifier.ask_to_revoke_old_token(replacement.person_id, replacement, False)
    for admin in admins:
        if admin != replacement.person_id:
            await runtime.notifier.ask_to_revoke_old_token(admin, replacement, True)


async def revoke_old_token(runtime: Runtime, job: Job) -> None:
    """Job: revoke the one token the offer was about (the route takes a person's account id as
    it takes a service account's; a 404 means it is gone already), then record it."""
    account_id = str(job.payload["account_id"])
    row = await finding_of(runtime, account_id)
    if row.state != F.MIGRATED or not row.replaced_token_id:
        return
    try:
        await runtime.atlassian.revoke_token(account_id, row.replaced_token_id)
    except AtlassianError as error:
        if error.transient:
            raise  # the job runs again later
        await revoke_failed(runtime, row, error.reason)
        return
    label = row.replaced_token_label or row.replaced_token_id
    try:
        await set_state(
            runtime.db,
            account_id,
            F.HUMAN_TOKEN_REVOKED,
            actor=ACTOR,
            now=runtime.clock(),
            reason=f"token {label} revoked; confirmed by the person and {row.admin_confirmed_by}",
        )
    except NotAllowed:
        return  # a retry after the state was already recorded
    done = await _replacement(runtime, await finding_of(runtime, account_id))
    for user in dict.fromkeys(filter(None, (row.slack_user_id, row.admin_confirmed_by))):
        await runtime.notifier.tell_old_token_revoked(user, done)


async def revoke_failed(runtime: Runtime, row: Finding, reason: str) -> None:
    """Atlassian refused the revoke for good (or it kept failing): the admin's confirmation is
    taken back, so an admin can confirm again once the cause is fixed, and is told why."""
    now = runtime.clock()
    async with runtime.db.transaction() as session:
        await session.execute(
            update(Finding)
            .where(col(Finding.id) == row.id, col(Finding.state) == F.MIGRATED.value)
            .values(admin_confirmed_by=None, updated_at=now)
        )
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="finding_revoke_failed",
            request_id=row.request_id,
            account_id=row.account_id,
            reason=reason[:300],
        )
    if row.admin_confirmed_by:
        replacement = await _replacement(runtime, row)
        await runtime.notifier.tell(
            row.admin_confirmed_by,
            f"The old API token '{row.replaced_token_label}' on {row.email}'s account could not "
            f"be revoked: {reason[:300]}. Confirm again once that is fixed, or revoke it in "
            "admin.atlassian.com.",
        )
        await runtime.notifier.ask_to_revoke_old_token(row.admin_confirmed_by, replacement, True)


async def give_up_revoke(runtime: Runtime, job: Job, reason: str) -> None:
    """The revoke job failed for good (Atlassian kept failing)."""
    row = await finding_of(runtime, str(job.payload["account_id"]))
    if row.state == F.MIGRATED:
        await revoke_failed(runtime, row, reason)
