"""Buttons of requests and accounts: Approve, Deny, Break glass, Cancel, Reveal, Rotate, the
account list's pages, the confirm steps of revoke and delete, Reassign, Home's Request."""

from __future__ import annotations

import re

from slack_bolt.app.async_app import AsyncApp

from bot.slack.clicks import Click, on_click, register_buttons
from bot.slack.ids import ActionId, routes
from bot.slack.replies import open_request_form, rotate_and_tell
from bot.slack.views import accounts as account_views
from bot.slack.views.reason_modals import break_glass_modal, deny_modal
from workflows.account import accounts, reveal
from workflows.errors import NotFound
from workflows.request import decisions, requests
from workflows.states import Verdict


@on_click
async def approve(click: Click) -> None:
    await decisions.decide(click.runtime, click.request_id, click.user, Verdict.APPROVE)


@on_click(opens_modal=True)
async def deny(click: Click) -> None:
    """Ask for a reason; who may deny is checked when the reason is submitted."""
    await click.open(deny_modal(click.request_id))


@on_click(opens_modal=True)
async def break_glass(click: Click) -> None:
    await click.open(break_glass_modal(click.request_id))


@on_click
async def cancel(click: Click) -> None:
    request = await requests.cancel(click.runtime, click.request_id, click.user)
    await click.say(f"{request.short_id} is cancelled.")


@on_click
async def reveal_token(click: Click) -> None:
    await reveal.request_reveal(click.runtime, click.request_id, click.target)


@on_click
async def accounts_page(click: Click) -> None:
    """Next/Previous on an account list: the same filters, another page, in place."""
    try:
        flt, offset = account_views.filter_of(click.value)
    except (ValueError, KeyError, TypeError):
        raise NotFound("That page button is not one I made.") from None
    page = await accounts.list_accounts(click.runtime, click.user, flt, offset)
    await click.replace(*account_views.account_list(page, flt))


@on_click
async def confirm_revoke(click: Click) -> None:
    request = await accounts.revoke_all(click.runtime, click.ref, click.user)
    await click.replace(account_views.revoking_text(request))


@on_click
async def confirm_delete(click: Click) -> None:
    request = await accounts.delete(click.runtime, click.ref, click.user)
    await click.replace(account_views.deleting_text(request))


@on_click
async def dismiss(click: Click) -> None:
    await click.delete()


@on_click
async def rotate(click: Click) -> None:
    """Rotate from an expiry warning or the Home tab (which gives no response_url)."""
    await rotate_and_tell(click.services, click.ref, click.user, click.show, False)


@on_click(opens_modal=True)
async def home_request(click: Click) -> None:
    """The Home tab's "Request a service account": the same modal as the command."""
    await open_request_form(click.services, click.client, click.body["trigger_id"], None)


@on_click(opens_modal=True)
async def reassign(click: Click) -> None:
    """From an orphan alert: ask the admin for the new owner (checked at submit)."""
    await click.open(account_views.reassign_modal(click.ref))


def register(app: AsyncApp) -> None:
    register_buttons(
        app,
        [
            (routes(ActionId.APPROVE), approve),
            (routes(ActionId.DENY), deny),
            (ActionId.REVEAL.value, reveal_token),
            (ActionId.CANCEL.value, cancel),
            (ActionId.BREAK_GLASS.value, break_glass),
            (routes(ActionId.ROTATE), rotate),
            (re.compile(f"^{ActionId.ACCOUNTS_PAGE.value}_"), accounts_page),
            (ActionId.CONFIRM_REVOKE.value, confirm_revoke),
            (ActionId.CONFIRM_DELETE.value, confirm_delete),
            (ActionId.DISMISS.value, dismiss),
            (ActionId.REASSIGN.value, reassign),
            (ActionId.HOME_REQUEST.value, home_request),
        ],
    )
