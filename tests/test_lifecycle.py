"""An account's life over weeks, in-process with a clock: rotation grace, expiry warnings.

The Atlassian stand-in answers through httpx's ASGI transport (real HTTP semantics, no
socket), so the domain's own code runs unchanged while time is moved instead of slept.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.slack.views.accounts import account_details
from tests.support.lifecycle import World
from workflows.account import accounts, owners, reveal
from workflows.jobs import queue
from workflows.models import InboundEvent
from workflows.ports import ReplyTarget
from workflows.request import decisions, requests
from workflows.request.validation import RequestForm
from workflows.states import JobKind, Verdict

FORM = RequestForm("ci-bot", "Runs the nightly CI jobs", ["jira"], ["read:jira-work"], "30")
ALICE = ReplyTarget("U0ALICE", "C0GENERAL", None)


@pytest.fixture
def world(lifecycle_world: World) -> World:
    return lifecycle_world


async def approved(world: World) -> int:
    """A request asked for and approved: its account made, Reveal open."""
    request = await requests.submit(world.runtime, "U0ALICE", FORM, "C0GENERAL")
    await world.run()
    assert request.id is not None
    await decisions.decide(world.runtime, request.id, "U0BOB", Verdict.APPROVE)
    await world.run()
    return request.id


async def active_with_token(world: World) -> int:
    request_id = await approved(world)
    await reveal.request_reveal(world.runtime, request_id, ALICE)
    await world.run()
    assert len(world.live_tokens()) == 1
    return request_id


async def test_rotation_revokes_the_old_token_after_the_grace_period(world: World) -> None:
    await active_with_token(world)
    [old] = world.live_tokens()
    rotation = await accounts.rotate(world.runtime, "ci-bot", "U0CAROL")  # an admin asks
    await world.run()
    assert rotation.owner_id == "U0ALICE" and rotation.old_tokens == 1
    assert ("offer", "ci-bot") in world.notifier.said  # the owner is offered a Reveal
    assert len(world.atlassian.tokens) == 1  # nothing minted until the owner clicks
    await reveal.request_reveal(world.runtime, 1, ALICE)
    await world.run()
    assert len(world.live_tokens()) == 2  # both work during the grace period

    world.clock.advance(hours=23, minutes=59)
    await world.run()
    assert old in world.live_tokens()
    world.clock.advance(minutes=2)
    await world.run()
    assert old not in world.live_tokens() and len(world.live_tokens()) == 1


async def test_expiry_warnings_then_expired(world: World) -> None:
    await active_with_token(world)  # a 30-day token

    def warnings() -> list[Any]:
        return [w for k, w in world.notifier.said if k == "warn"]

    world.clock.advance(days=15, hours=23)
    await world.run()
    assert warnings() == []
    world.clock.advance(hours=2)  # 14 days before expiry
    await world.run()
    assert [days for _, days in warnings()] == [14]
    world.clock.advance(days=11)
    await world.run()
    world.clock.advance(days=2)
    await world.run()
    assert [days for _, days in warnings()] == [14, 3, 1]
    world.clock.advance(days=2)
    await world.run()
    details = await accounts.details(world.runtime, "ci-bot", "U0ALICE")
    assert [t.state for t in details.tokens] == ["expired"]
    assert "token_expired" in [e.action for e in details.history]


async def manual_step(world: World) -> None:
    """An approved account whose mint Atlassian refuses: Reveal ends in an admin's manual step."""
    request_id = await approved(world)
    world.atlassian.switch_off("mint", "403")
    await reveal.request_reveal(world.runtime, request_id, ALICE)
    await world.run()
    assert [k for k, _ in world.notifier.said if k == "manual_token"] == ["manual_token"]


async def make_it_by_hand(world: World, later: timedelta = timedelta(0)) -> str:
    """The admin makes the token in the console, under the label sabot asked for and with the
    expiry asked for (or `later` than it)."""
    [token] = (await accounts.details(world.runtime, "ci-bot", "U0ALICE")).tokens
    [account] = world.atlassian.live_accounts()
    assert token.state == "manual" and token.expires_at is not None
    made = world.atlassian.make_token_by_hand(
        account.atlassian_id,
        token.label,
        list(token.scopes),
        (token.expires_at + later).timestamp(),
    )
    return made.label


def warnings(world: World) -> list[tuple[str, int]]:
    return [w for k, w in world.notifier.said if k == "warn"]


async def listed_expiry(world: World) -> tuple[datetime | None, list[str]]:
    """What an admin's `list` shows: the account's token expiry, and the accounts whose token
    expires within 14 days."""
    [row] = (await accounts.list_accounts(world.runtime, "U0CAROL", accounts.AccountFilter())).rows
    soon = accounts.AccountFilter(expiring_within=timedelta(days=14))
    expiring = (await accounts.list_accounts(world.runtime, "U0CAROL", soon)).rows
    return row.token_expires_at, [r.name for r in expiring]


async def daily_check(world: World) -> None:
    async with world.runtime.db.transaction() as session:
        queue.enqueue(session, JobKind.IDLE_CREDENTIALS, now=world.clock())
    await world.run()


async def test_a_token_made_by_hand_is_warned_about_and_expires(world: World) -> None:
    await manual_step(world)
    label = await make_it_by_hand(world)
    # Listed with its expiry, as a minted token is, once a daily check has seen it at Atlassian.
    assert await listed_expiry(world) == (None, [])
    await daily_check(world)
    [token] = (await accounts.details(world.runtime, "ci-bot", "U0ALICE")).tokens
    assert await listed_expiry(world) == (token.expires_at, [])

    world.clock.advance(days=16, hours=1)  # 14 days before its 30-day expiry
    await world.run()
    assert warnings(world) == [(label, 14)]
    assert await listed_expiry(world) == (token.expires_at, ["ci-bot"])
    world.clock.advance(days=13)
    await world.run()
    assert warnings(world) == [(label, 14), (label, 3), (label, 1)]
    world.clock.advance(days=2)
    await world.run()
    details = await accounts.details(world.runtime, "ci-bot", "U0ALICE")
    assert [t.state for t in details.tokens] == ["expired"]
    assert [e.action for e in details.history].count("expiry_warning_sent") == 3
    assert await listed_expiry(world) == (None, [])


async def test_a_hand_made_token_with_another_expiry_is_warned_about_by_that_one(
    world: World,
) -> None:
    await manual_step(world)
    [asked] = (await accounts.details(world.runtime, "ci-bot", "U0ALICE")).tokens
    assert asked.expires_at is not None
    label = await make_it_by_hand(world, later=timedelta(days=10))  # the admin chose 40 days
    await daily_check(world)
    actual = asked.expires_at + timedelta(days=10)
    assert await listed_expiry(world) == (actual, [])

    world.clock.advance(days=16, hours=1)  # 14 days before the expiry asked for
    await world.run()
    assert warnings(world) == []
    world.clock.advance(days=10)  # 14 days before the real one
    await world.run()
    assert warnings(world) == [(label, 14)]
    world.clock.advance(days=4)  # past the expiry asked for: the token still works
    await world.run()
    [token] = (await accounts.details(world.runtime, "ci-bot", "U0ALICE")).tokens
    assert token.state == "manual" and token.expires_at == actual
    world.clock.advance(days=10)
    await world.run()
    assert warnings(world) == [(label, 14), (label, 3), (label, 1)]
    details = await accounts.details(world.runtime, "ci-bot", "U0ALICE")
    assert [t.state for t in details.tokens] == ["expired"]
    assert "token_expiry_seen" in [e.action for e in details.history]


async def test_a_token_never_made_by_hand_is_neither_warned_about_nor_listed(
    world: World,
) -> None:
    await manual_step(world)  # the admin never makes it
    await daily_check(world)
    assert await listed_expiry(world) == (None, [])
    world.clock.advance(days=31)
    await world.run()
    assert warnings(world) == []
    details = await accounts.details(world.runtime, "ci-bot", "U0ALICE")
    assert [t.state for t in details.tokens] == ["expired"]


async def test_no_warning_for_a_hand_made_token_while_atlassian_cannot_say_it_exists(
    world: World,
) -> None:
    await manual_step(world)
    label = await make_it_by_hand(world)
    await daily_check(world)  # seen made: its warnings are scheduled
    world.clock.advance(days=16, hours=1)
    world.atlassian.add_fault("list", "html403", count=1000)  # every read of the tokens fails
    await world.run()
    assert warnings(world) == []
    world.atlassian.faults.clear()
    world.clock.advance(hours=1)  # the warning's next try
    await world.run()
    assert warnings(world) == [(label, 14)]


async def test_rotation_revokes_a_token_made_by_hand_after_the_grace_period(
    world: World,
) -> None:
    await manual_step(world)
    label = await make_it_by_hand(world)
    rotation = await accounts.rotate(world.runtime, "ci-bot", "U0CAROL")
    await world.run()
    assert rotation.old_tokens == 1
    world.clock.advance(hours=23)
    await world.run()
    assert world.live_tokens() == [label]  # the grace period
    _, blocks = account_details(await accounts.details(world.runtime, "ci-bot", "U0ALICE"))
    assert "revoked after" in json.dumps([b.to_dict() for b in blocks])  # as `show` says it
    world.clock.advance(hours=2)
    await world.run()
    assert world.live_tokens() == []  # found by its label, revoked at Atlassian
    details = await accounts.details(world.runtime, "ci-bot", "U0ALICE")
    assert [t.state for t in details.tokens] == ["revoked"]
    world.clock.advance(days=30)
    await world.run()
    assert warnings(world) == []  # a rotated-out token is not warned about


async def test_a_hand_made_token_rotated_out_before_it_was_made_is_revoked_once_made(
    world: World,
) -> None:
    await manual_step(world)
    await accounts.rotate(world.runtime, "ci-bot", "U0CAROL")
    world.clock.advance(hours=25)  # past the grace period: nothing at Atlassian to revoke yet
    await world.run()
    [token] = (await accounts.details(world.runtime, "ci-bot", "U0ALICE")).tokens
    assert token.state == "manual"
    label = await make_it_by_hand(world)  # the admin acts on the request still in their DMs
    assert world.live_tokens() == [label]
    world.clock.advance(days=1)
    await world.run()
    assert world.live_tokens() == []
    [token] = (await accounts.details(world.runtime, "ci-bot", "U0ALICE")).tokens
    assert token.state == "revoked"


async def test_revoking_an_account_revokes_its_token_made_by_hand(world: World) -> None:
    await manual_step(world)
    await make_it_by_hand(world)
    await accounts.revoke_all(world.runtime, "ci-bot", "U0CAROL")
    await world.run()
    assert world.live_tokens() == []
    details = await accounts.details(world.runtime, "ci-bot", "U0ALICE")
    assert [t.state for t in details.tokens] == ["revoked"]
    world.clock.advance(days=31)
    await world.run()
    assert warnings(world) == []


async def test_the_daily_reconcile_tells_admins_about_drift(world: World) -> None:
    await active_with_token(world)
    world.atlassian.seed_account("made-by-hand")
    async with world.runtime.db.transaction() as session:
        queue.enqueue(session, JobKind.RECONCILE_REPORT, now=world.clock())
    await world.run()
    told = [text for kind, text in world.notifier.said if kind == "tell"]
    assert told and "made-by-hand" in told[0]


async def test_event_ids_are_remembered_for_a_day_then_forgotten(world: World) -> None:
    """A retry inside the day is recognised; a day later the id is dropped by the daily job."""

    async def deliver(event_id: str) -> bool:
        return await owners.owner_deactivated(world.runtime, event_id=event_id, owner="U0ALICE")

    async def remembered() -> list[str]:
        async with world.runtime.db.transaction() as session:
            return list((await session.execute(select(col(InboundEvent.event_id)))).scalars())

    assert await deliver("Ev0OLD") and not await deliver("Ev0OLD")
    world.clock.advance(hours=23)
    assert await deliver("Ev0NEW")
    world.clock.advance(hours=2)
    async with world.runtime.db.transaction() as session:
        queue.enqueue(session, JobKind.FORGET_OLD_EVENTS, now=world.clock())
    await world.run()
    assert await remembered() == ["Ev0NEW"]
