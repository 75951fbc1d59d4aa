"""Discovery findings: Offer / Dismiss (admins), and the person's Open form / Not automation /
Revoke the old token. Each click is checked against its clicker in the domain: a DM can be
forwarded and a value forged."""

from __future__ import annotations

from slack_bolt.app.async_app import AsyncApp

from bot.slack.clicks import Click, on_click, register_buttons
from bot.slack.ids import ActionId, BlockId, CallbackId, routes
from bot.slack.replies import open_request_form
from bot.slack.submissions import Submission, on_answer
from bot.slack.views import replacement as replacement_views
from bot.slack.views.reason_modals import dismiss_finding_modal
from workflows.discovery import replacement

ACCOUNT_ID_MAX = 128


@on_click
async def offer(click: Click) -> None:
    done = await replacement.offer(click.runtime, click.account_id, click.user)
    await click.say(replacement_views.offered_text(done))


@on_click(opens_modal=True)
async def dismiss(click: Click) -> None:
    """Ask why; who may dismiss is checked when the reason is submitted."""
    await click.open(dismiss_finding_modal(click.account_id))


@on_click(opens_modal=True)
async def open_form(click: Click) -> None:
    prefill = await replacement.prefill(click.runtime, click.account_id, click.user)
    await open_request_form(click.services, click.client, click.body["trigger_id"], None, prefill)


@on_click
async def decline(click: Click) -> None:
    await replacement.decline(click.runtime, click.account_id, click.user)
    await click.replace(replacement_views.DECLINED)


@on_click
async def confirm(click: Click) -> None:
    done = await replacement.confirm(click.runtime, click.account_id, click.user)
    await click.replace(replacement_views.confirmed_text(done))


@on_answer(BlockId.DISMISS_REASON, "Say why.")
async def submit_dismissal(answer: Submission) -> None:
    account_id = str(answer.metadata.get("account_id") or "")[:ACCOUNT_ID_MAX]
    reason = answer.answer(BlockId.DISMISS_REASON)
    await replacement.dismiss(answer.runtime, account_id, answer.user, reason)


def register(app: AsyncApp) -> None:
    register_buttons(
        app,
        [
            (routes(ActionId.FINDING_OFFER), offer),
            (routes(ActionId.FINDING_DISMISS), dismiss),
            (ActionId.REPLACEMENT_FORM.value, open_form),
            (ActionId.REPLACEMENT_DECLINE.value, decline),
            (ActionId.REPLACEMENT_CONFIRM.value, confirm),
        ],
    )
    app.view(CallbackId.FINDING_DISMISS.value)(submit_dismissal)
