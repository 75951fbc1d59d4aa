"""Buttons of the idle check's DMs: Keep / Revoke an unused token, Delete / Keep an idle account.

Each button is checked against its clicker (the owner, or an admin) in the domain: a DM can be
forwarded, and a value forged."""

from __future__ import annotations

from slack_bolt.app.async_app import AsyncApp

from bot.slack.clicks import Click, on_click, register_buttons
from bot.slack.ids import ActionId
from bot.slack.views import accounts as account_views
from bot.slack.views import idle as idle_views
from workflows.account import accounts, idle


@on_click
async def keep_token(click: Click) -> None:
    done = await idle.keep_token(click.runtime, click.token_id, click.user)
    await click.replace(idle_views.token_kept(done, click.runtime.policy.rules.lifecycle))


@on_click
async def revoke_token(click: Click) -> None:
    done = await idle.revoke_token(click.runtime, click.token_id, click.user)
    await click.replace(idle_views.token_revoking(done))


@on_click
async def keep_account(click: Click) -> None:
    done = await idle.keep_account(click.runtime, click.ref, click.user)
    await click.replace(idle_views.account_kept(done, click.runtime.policy.rules.lifecycle))


@on_click
async def delete_account(click: Click) -> None:
    """The usual "are you sure?" of `delete`, whose confirm button deletes (admins only)."""
    row = await accounts.check_allowed(click.runtime, click.ref, click.user, "delete")
    await click.show(*account_views.confirm("delete", row))


def register(app: AsyncApp) -> None:
    register_buttons(
        app,
        [
            (ActionId.IDLE_TOKEN_KEEP.value, keep_token),
            (ActionId.IDLE_TOKEN_REVOKE.value, revoke_token),
            (ActionId.IDLE_ACCOUNT_KEEP.value, keep_account),
            (ActionId.IDLE_ACCOUNT_DELETE.value, delete_account),
        ],
    )
