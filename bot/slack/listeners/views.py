"""Modal submissions: the request form, and the modals that ask for a reason or a person."""

from __future__ import annotations

from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.models.blocks import SectionBlock
from slack_sdk.models.views import View

from bot.slack.ids import BlockId, CallbackId
from bot.slack.services import problem_text, services_of
from bot.slack.submissions import Submission, on_answer
from bot.slack.views.request_modal import field_errors, submitted_modal
from workflows.account import accounts
from workflows.discovery import replacement
from workflows.errors import FormInvalid
from workflows.request import decisions, requests
from workflows.request.validation import RequestForm
from workflows.states import Verdict


def form_of(answer: Submission) -> RequestForm:
    return RequestForm(
        name=answer.text(BlockId.NAME),
        justification=answer.text(BlockId.JUSTIFICATION),
        products=answer.chosen(BlockId.PRODUCTS),
        scopes=answer.chosen(BlockId.SCOPES),
        lifetime_days=answer.text(BlockId.LIFETIME),
    )


def _notice(title: str, text: str) -> View:
    return View(type="modal", title=title, close="Close", blocks=[SectionBlock(text=text)])


async def submit_request(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    """Validate in the modal; a valid request is stored and the modal says so."""
    answer = Submission(services_of(context), body, view)
    channel, finding = answer.metadata.get("channel"), answer.metadata.get("finding")
    origin = channel if isinstance(channel, str) else None
    try:
        request = await requests.submit(answer.runtime, answer.user, form_of(answer), origin)
        if isinstance(finding, str):  # the form of an offer: the finding follows the request
            await replacement.link_request(answer.runtime, finding[:128], request, answer.user)
    except FormInvalid as invalid:
        await ack(response_action="errors", errors=field_errors(invalid.errors))
        return
    except Exception as error:
        await ack(response_action="update", view=_notice("Not sent", problem_text(error)))
        return
    await ack(response_action="update", view=submitted_modal(request))


@on_answer(BlockId.DENY_REASON, "Give a reason.")
async def submit_denial(answer: Submission) -> None:
    """Deny with the reason typed; if the request moved on meanwhile, the modal says so."""
    reason = answer.answer(BlockId.DENY_REASON)
    await decisions.decide(answer.runtime, answer.request_id, answer.user, Verdict.DENY, reason)


@on_answer(BlockId.BREAK_GLASS_REASON, "Say why this cannot wait.")
async def submit_break_glass(answer: Submission) -> None:
    reason = answer.answer(BlockId.BREAK_GLASS_REASON)
    await decisions.break_glass(answer.runtime, answer.request_id, answer.user, reason)


@on_answer(BlockId.NEW_OWNER, "Pick someone.")
async def submit_reassign(answer: Submission) -> None:
    ref = str(answer.metadata.get("ref") or answer.metadata.get("name") or "")[:60]
    new_owner = answer.answer(BlockId.NEW_OWNER)
    await accounts.reassign(answer.runtime, ref, answer.user, new_owner)


def register(app: AsyncApp) -> None:
    app.view(CallbackId.REASSIGN.value)(submit_reassign)
    app.view(CallbackId.REQUEST.value)(submit_request)
    app.view(CallbackId.DENY.value)(submit_denial)
    app.view(CallbackId.BREAK_GLASS.value)(submit_break_glass)
